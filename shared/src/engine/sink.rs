//! Writing rows: what the engine puts in the records table (its layout is in
//! [`crate::store::records`]). Writes go through [`crate::store::batch`]: requests of 25,
//! unprocessed items retried with backoff.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use serde_json::{json, Value};

use super::coerce::FieldIssue;
use super::record::{Record, RowId};
use crate::domain::ids::{RunId, SchemaId};
use crate::domain::run::RunError;
use crate::domain::run::RunErrorCode;
use crate::domain::schema::Schema;
use crate::domain::tenant::TenantId;
use crate::store::records::dead_letters_pk;
pub use crate::store::records::{schema_pk, RecordsTable};
use crate::store::{batch, limits};

type Item = HashMap<String, AttributeValue>;

/// Where a run's rows go: the records table, or (to measure the engine alone) a sink that only
/// counts.
pub trait Sink: Send + Sync {
    fn write_rows<'a>(&'a self, pk: &'a str, run: &'a RunId, rows: Vec<Row>) -> futures::future::BoxFuture<'a, Result<(), RunError>>;

    fn write_letters<'a>(
        &'a self,
        tenant: &'a TenantId,
        run: &'a RunId,
        partition: Option<u32>,
        letters: Vec<(RowId, Vec<FieldIssue>, Record)>,
    ) -> futures::future::BoxFuture<'a, Result<(), RunError>>;
}

impl Sink for RecordsTable {
    fn write_rows<'a>(&'a self, pk: &'a str, run: &'a RunId, rows: Vec<Row>) -> futures::future::BoxFuture<'a, Result<(), RunError>> {
        Box::pin(self.write(pk, run, rows))
    }

    fn write_letters<'a>(
        &'a self,
        tenant: &'a TenantId,
        run: &'a RunId,
        partition: Option<u32>,
        letters: Vec<(RowId, Vec<FieldIssue>, Record)>,
    ) -> futures::future::BoxFuture<'a, Result<(), RunError>> {
        Box::pin(self.write_dead_letters(tenant, run, partition, letters))
    }
}

/// A sink that encodes every row as the records table would (the write requests are built and
/// dropped) and counts them: the engine's own cost, without the database's.
#[derive(Debug, Default)]
pub struct CountingSink {
    pub rows: std::sync::atomic::AtomicU64,
    pub letters: std::sync::atomic::AtomicU64,
}

impl Sink for CountingSink {
    fn write_rows<'a>(&'a self, pk: &'a str, run: &'a RunId, rows: Vec<Row>) -> futures::future::BoxFuture<'a, Result<(), RunError>> {
        Box::pin(async move {
            let requests = write_requests(pk, run, rows, "2026-01-01T00:00:00.000Z")?;
            self.rows.fetch_add(requests.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
    }

    fn write_letters<'a>(
        &'a self,
        _tenant: &'a TenantId,
        _run: &'a RunId,
        _partition: Option<u32>,
        letters: Vec<(RowId, Vec<FieldIssue>, Record)>,
    ) -> futures::future::BoxFuture<'a, Result<(), RunError>> {
        self.letters.fetch_add(letters.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// A row ready to be written: its sort key and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub data: Record,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn write_error(message: impl Into<String>) -> RunError {
    RunError::new(RunErrorCode::WriteFailed, message)
}

/// The key of an upserted row: its primary key values, as a JSON array (unambiguous whatever
/// the values hold). `None` when the schema has no primary key.
pub fn upsert_key(schema: &Schema, row: &Record) -> Option<String> {
    let values: Vec<&Value> = schema.fields.iter().filter(|f| f.primary_key).map(|f| row.get(&f.name).unwrap_or(&Value::Null)).collect();
    (!values.is_empty()).then(|| format!("K#{}", Value::from(values.into_iter().cloned().collect::<Vec<_>>())))
}

/// `A#<run>#<row>` (`A#<run>#P<partition>#<row>` in a partition, whose rows number from 1 too),
/// and `.<copy>` after it for the later copies of a row that branches bring to the target more
/// than once (so that each copy is written, and the keys still sort by row).
pub fn append_key(run: &RunId, partition: Option<u32>, id: RowId) -> String {
    format!("A#{run}#{}", row_key(partition, id))
}

fn row_key(partition: Option<u32>, id: RowId) -> String {
    let part = partition.map_or(String::new(), |p| format!("P{p:05}#"));
    match id.copy {
        0 => format!("{part}{:012}", id.row),
        copy => format!("{part}{:012}.{copy}", id.row),
    }
}

/// The write requests of `rows` under `pk`, as [`RecordsTable::write`] sends them. A key given
/// twice keeps its last row: DynamoDB refuses a batch that names a key twice, and the later row
/// is the newer.
pub fn write_requests(pk: &str, run: &RunId, rows: Vec<Row>, written_at: &str) -> Result<Vec<WriteRequest>, RunError> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        last.insert(&row.key, i);
    }
    let keep: Vec<bool> = rows.iter().enumerate().map(|(i, row)| last.get(row.key.as_str()) == Some(&i)).collect();
    drop(last);
    let mut requests = Vec::with_capacity(rows.len());
    // Rows are moved into their items: names and values are not copied again.
    for (row, _) in rows.into_iter().zip(keep).filter(|(_, keep)| *keep) {
        let data = AttributeValue::M(row.data.into_iter().map(|(k, v)| (k, attribute(v))).collect());
        let item = Item::from([
            ("PK".to_string(), s(pk)),
            ("SK".to_string(), AttributeValue::S(row.key)),
            ("data".to_string(), data),
            ("runId".to_string(), s(run.as_str())),
            ("writtenAt".to_string(), s(written_at)),
        ]);
        let put = PutRequest::builder().set_item(Some(item)).build().map_err(|e| write_error(e.to_string()))?;
        requests.push(WriteRequest::builder().put_request(put).build());
    }
    Ok(requests)
}

/// A JSON value as DynamoDB stores it, the way `serde_dynamo` writes (and reads back) JSON: a
/// number as `N` in its JSON text, null as `NULL`, arrays as `L`, objects as `M`. Direct, without
/// serde's intermediate value: the write path's largest cost. Depth is bounded by the item
/// checks before any row gets here.
fn attribute(value: Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(text) => AttributeValue::S(text),
        Value::Array(items) => AttributeValue::L(items.into_iter().map(attribute).collect()),
        Value::Object(fields) => AttributeValue::M(fields.into_iter().map(|(k, v)| (k, attribute(v))).collect()),
    }
}

/// What a row's item holds beside its `data` and its sort key: the attribute names, the
/// partition key, the run id and the write time (as [`RecordsTable::write`] lays it out).
pub fn row_overhead(pk: &str, run: &RunId) -> usize {
    ["PK", "SK", "data", "runId", "writtenAt"].iter().map(|name| name.len()).sum::<usize>() + pk.len() + run.as_str().len() + STAMP_LEN
}

/// `2026-01-15T09:00:00.000Z`.
const STAMP_LEN: usize = 24;

/// A dead letter's item beside its `data`, generously: keys of a tenant, run and row.
const LETTER_OVERHEAD: usize = 512;
/// How long dead letters are kept: they explain a run, and a pipeline's runs may be deleted
/// without them (the records table's TTL removes them after this).
pub const DEAD_LETTER_DAYS: i64 = 30;

impl RecordsTable {
    /// Writes rows under `pk`. A key written twice in one call keeps its last row: DynamoDB
    /// refuses a batch that names a key twice, and the later row is the newer.
    pub async fn write(&self, pk: &str, run: &RunId, rows: Vec<Row>) -> Result<(), RunError> {
        let requests = write_requests(pk, run, rows, &crate::domain::now())?;
        batch::write_all(self.client(), self.table(), requests).await.map_err(|e| write_error(format!("writing rows failed: {e}")))
    }

    /// Deletes a generation of a schema's rows (one no reader sees any more, or never saw).
    pub async fn drop_generation(&self, tenant: &TenantId, schema: &SchemaId, generation: Option<&str>) -> Result<u64, RunError> {
        let pk = schema_pk(tenant, schema, generation);
        batch::clear_partition(self.client(), self.table(), &pk).await.map_err(|e| write_error(format!("deleting old rows failed: {e}")))
    }

    /// Where `deduplicate` nodes of `run` (in `partition`) claim their keys.
    pub fn marks(&self, tenant: &TenantId, run: &RunId, partition: Option<u32>) -> RunMarks {
        RunMarks { client: self.client().clone(), table: self.table().to_string(), tenant: tenant.clone(), run: run.clone(), partition }
    }

    /// Keeps failed rows with their run (`errorHandling: dead_letter`).
    pub async fn write_dead_letters(
        &self,
        tenant: &TenantId,
        run: &RunId,
        partition: Option<u32>,
        letters: Vec<(RowId, Vec<FieldIssue>, Record)>,
    ) -> Result<(), RunError> {
        let rows = letters
            .into_iter()
            .map(|(id, issues, record)| {
                let mut data = json!({ "row": id.row, "errors": issues, "record": record });
                if let Some(p) = partition {
                    data["partition"] = json!(p);
                }
                // A record DynamoDB would refuse (too deep, too large) is left out of its letter.
                if data.as_object().is_some_and(|letter| limits::check_row(letter, "", LETTER_OVERHEAD).is_err()) {
                    data["record"] = Value::Null;
                }
                Row { key: format!("D#{}", row_key(partition, id)), data: data.as_object().cloned().unwrap_or_default() }
            })
            .collect();
        let mut requests = write_requests(&dead_letters_pk(tenant, run), run, rows, &crate::domain::now())?;
        let expires = AttributeValue::N((chrono::Utc::now() + chrono::Duration::days(DEAD_LETTER_DAYS)).timestamp().to_string());
        for request in &mut requests {
            if let Some(put) = request.put_request.as_mut() {
                put.item.insert("expiresAt".into(), expires.clone());
            }
        }
        batch::write_all(self.client(), self.table(), requests).await.map_err(|e| write_error(format!("writing dead letters failed: {e}")))
    }
}

/// A run's `deduplicate` claims in the records table: one item per key and node,
/// `T#<t>#U#<runId>#<nodeId>#<shard>` / the key's SHA-256, written with
/// `attribute_not_exists(PK) OR claimedBy = :row` and expiring with `expiresAt` (a week, well
/// past any run). Keys are hashed (a key of any size fits) and spread over [`MARK_SHARDS`]
/// partitions, so one big run does not write one DynamoDB partition past its limit.
pub struct RunMarks {
    client: Client,
    table: String,
    tenant: TenantId,
    run: RunId,
    partition: Option<u32>,
}

pub const MARK_SHARDS: u8 = 16;
/// Claims in flight at once within a batch.
const MARK_CONCURRENCY: usize = 16;
const MARK_TTL_SECONDS: i64 = 7 * 24 * 3600;

impl super::dedupe::Marks for RunMarks {
    fn claim<'a>(&'a self, node: &'a str, claims: Vec<(String, u64)>) -> futures::future::BoxFuture<'a, Result<Vec<bool>, RunError>> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        use sha2::{Digest, Sha256};
        Box::pin(async move {
            let expires = (chrono::Utc::now().timestamp() + MARK_TTL_SECONDS).to_string();
            let part = self.partition.map_or(String::new(), |p| format!("{p}:"));
            stream::iter(claims)
                .map(|(key, row)| {
                    let digest = Sha256::digest(key.as_bytes());
                    let pk = format!("T#{}#U#{}#{node}#{:02}", self.tenant, self.run, digest[0] % MARK_SHARDS);
                    let me = format!("{part}{row}");
                    let expires = expires.clone();
                    async move {
                        let out = self
                            .client
                            .put_item()
                            .table_name(&self.table)
                            .item("PK", s(pk))
                            .item("SK", s(hex::encode(digest)))
                            .item("claimedBy", s(&me))
                            .item("expiresAt", AttributeValue::N(expires))
                            .condition_expression("attribute_not_exists(PK) OR claimedBy = :me")
                            .expression_attribute_values(":me", s(&me))
                            .send()
                            .await;
                        match out {
                            Ok(_) => Ok(true),
                            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(false),
                            Err(e) => Err(write_error(format!(
                                "deduplicate could not claim a key: {}",
                                aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e).unwrap_or("unreachable")
                            ))),
                        }
                    }
                })
                .buffered(MARK_CONCURRENCY)
                .try_collect()
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schema::{Field, FieldType};

    fn schema(pk: &[&str]) -> Schema {
        let field = |name: &str, primary_key| Field { name: name.into(), kind: FieldType::Text, required: primary_key, primary_key };
        Schema {
            id: SchemaId::generate(),
            name: "t".into(),
            display_name: "t".into(),
            description: None,
            fields: vec![field("a", pk.contains(&"a")), field("b", pk.contains(&"b")), field("c", false)],
            created_at: String::new(),
            updated_at: String::new(),
            generation: None,
        }
    }

    #[test]
    fn upsert_keys_follow_the_primary_key_and_cannot_collide() {
        let row = |a: Value, b: Value| json!({"a": a, "b": b, "c": 1}).as_object().cloned().unwrap();
        let s = schema(&["a", "b"]);
        assert_eq!(upsert_key(&s, &row(json!("x"), json!(2))), Some(r#"K#["x",2]"#.to_string()));
        // "x#y" + "z" and "x" + "y#z" would collide if joined naively.
        assert_ne!(upsert_key(&s, &row(json!("x#y"), json!("z"))), upsert_key(&s, &row(json!("x"), json!("y#z"))));
        assert_eq!(upsert_key(&schema(&[]), &row(json!(1), json!(2))), None);
    }

    #[test]
    fn rows_encode_as_serde_dynamo_reads_them() {
        let v = json!({"s": "x", "n": 1.5, "i": -7, "b": true, "z": null, "l": [1, "a", {"k": [null]}], "m": {"deep": {"er": 1}}});
        let back: Value = serde_dynamo::from_attribute_value(attribute(v.clone())).unwrap();
        assert_eq!(back, v);
        assert_eq!(attribute(json!(12345678901234567890u64)), AttributeValue::N("12345678901234567890".into()));
    }

    #[test]
    fn append_keys_sort_by_row() {
        let run = RunId::generate();
        let key = |row, copy| append_key(&run, None, RowId { row, copy });
        assert!(key(9, 0) < key(10, 0));
        assert!(key(9, 0) < key(9, 1) && key(9, 1) < key(10, 0), "a row's copies sort with it");
        assert_ne!(append_key(&run, Some(1), RowId { row: 9, copy: 0 }), append_key(&run, Some(2), RowId { row: 9, copy: 0 }));
    }
}
