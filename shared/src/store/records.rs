//! The records table: where runs write the rows of a schema, and where failed rows are kept.
//!
//! | item | PK | SK |
//! |---|---|---|
//! | a row, `upsert` | `T#<t>#S#<schemaId>[#G#<generation>]` | `K#<JSON array of the primary key values>` |
//! | a row, `append` | `T#<t>#S#<schemaId>[#G#<generation>]` | `A#<runId>#[P<partition>#]<row number>` |
//! | a dead letter | `T#<t>#R#<runId>` | `D#[P<partition>#]<row number>` |
//!
//! A schema's rows are one generation: readers see the one its schema item names (none: the
//! first). A `truncate` run writes a generation of its own (its run id) and switches readers to
//! it when it completes, so no reader ever sees a half-emptied table; the old generation is
//! deleted after the switch, and a failed or cancelled run's new one instead.
//!
//! A row's values live in its `data` map (beside `runId` and `writtenAt`), so field names never
//! collide with the keys. The engine writes them (`engine::sink`) through [`crate::store::batch`]:
//! requests of 25, unprocessed items retried with backoff.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde_json::Value;

use super::Pager;
use crate::domain::ids::{RunId, SchemaId};
use crate::domain::schema::Schema;
use crate::domain::tenant::TenantId;

#[derive(Clone, Debug)]
pub struct RecordsTable {
    client: Client,
    table: String,
}

/// Why a page of rows could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error(transparent)]
    Store(#[from] super::StoreError),
    #[error("a stored row could not be read: {0}")]
    Corrupt(String),
}

/// Where a generation of a schema's rows lives (`None`: the first generation).
pub fn schema_pk(tenant: &TenantId, schema: &SchemaId, generation: Option<&str>) -> String {
    match generation {
        None => format!("T#{tenant}#S#{schema}"),
        Some(generation) => format!("T#{tenant}#S#{schema}#G#{generation}"),
    }
}

pub(crate) fn dead_letters_pk(tenant: &TenantId, run: &RunId) -> String {
    format!("T#{tenant}#R#{run}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl RecordsTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A page of a partition's items' `data`, in key order, after the key `after`.
    async fn page(&self, pk: &str, limit: usize, after: Option<&str>) -> Result<(Vec<(String, Value)>, bool), RecordsError> {
        let query =
            self.client.query().table_name(&self.table).key_condition_expression("PK = :pk").expression_attribute_values(":pk", s(pk));
        let start = after.map(|sk| HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))]));
        let mut pages = Pager::new(query, start);
        let mut out = Vec::with_capacity(limit + 1);
        while out.len() <= limit {
            let page = pages.next(Some(limit + 1 - out.len())).await.map_err(|e| super::StoreError::dynamo("Query", e))?;
            let Some(items) = page else { break };
            for item in items {
                let key = item.get("SK").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let data: Value = item
                    .get("data")
                    .cloned()
                    .map(serde_dynamo::from_attribute_value)
                    .transpose()
                    .map_err(|e| RecordsError::Corrupt(e.to_string()))?
                    .unwrap_or_default();
                out.push((key, data));
            }
        }
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    /// Removes rows of a schema's generation until at least `max` are gone: how many, and
    /// whether none is left.
    pub async fn delete_rows_upto(
        &self,
        tenant: &TenantId,
        schema: &SchemaId,
        generation: Option<&str>,
        max: u64,
    ) -> Result<(u64, bool), super::StoreError> {
        super::batch::clear_partition_upto(&self.client, &self.table, &schema_pk(tenant, schema, generation), max).await
    }

    /// Deletes a run's dead letters: how many.
    pub async fn delete_dead_letters(&self, tenant: &TenantId, run: &RunId) -> Result<u64, super::StoreError> {
        super::batch::clear_partition(&self.client, &self.table, &dead_letters_pk(tenant, run)).await
    }

    /// A page of a schema's rows, of the generation readers see.
    pub async fn rows(
        &self,
        tenant: &TenantId,
        schema: &Schema,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<(String, Value)>, bool), RecordsError> {
        self.page(&schema_pk(tenant, &schema.id, schema.generation.as_deref()), limit, after).await
    }

    /// A page of a run's dead letters.
    pub async fn dead_letters(
        &self,
        tenant: &TenantId,
        run: &RunId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<(String, Value)>, bool), RecordsError> {
        self.page(&dead_letters_pk(tenant, run), limit, after).await
    }
}
