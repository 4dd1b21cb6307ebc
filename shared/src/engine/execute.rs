//! The data engine: reads the connector's records in batches of `batchSize`, passes them through
//! the plan's transform and filter nodes in order, checks them against the target schema, and
//! writes them to the records table with at most `parallelism` batches in flight.
//!
//! At every batch boundary it checkpoints through [`Control`]: the lease is renewed, a cancel
//! stops the run, and a used time budget suspends it with its position (`recordsRead`) so that a
//! follow-up continues where it stopped. Rows are written before that position is saved, and
//! writes are idempotent (upserts by key, appends by run and row number), so a batch written
//! twice after a crash lands once.

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::coerce::{conform, FieldIssue};
use super::dedupe::Marks;
use super::filter::{parse_filter_config, Condition};
use super::job::{Control, Engine, Job, Report, RunFailure};
use super::plan::{Input, Plan};
use super::record::{Record, RowId};
use super::sink::{append_key, row_overhead, schema_pk, upsert_key, RecordsTable, Row, Sink};
use super::source::{list_partitions, open, open_partition, partitions_by_object, Listing, Position, SourceContext};
use super::transform::{key_tuple, Transform};
use crate::domain::connector::Connector;
use crate::domain::graph::NodeType;
use crate::domain::pipeline::{ErrorHandling, LoadMode};
use crate::domain::run::RunErrorCode;
use crate::domain::run::{LogEntry, RunError};
use crate::domain::schema::{Field, Schema};
use crate::domain::tenant::TenantId;
use crate::store::limits;

pub use crate::domain::report::{NodeCount, Progress, Stats, ValidationError};

pub struct DataEngine {
    pub records: RecordsTable,
    pub sources: SourceContext,
    /// Where rows go: the records table unless set (a counting sink, for benchmarks).
    pub sink: Option<std::sync::Arc<dyn Sink>>,
}

impl DataEngine {
    pub fn new(records: RecordsTable, sources: SourceContext) -> Self {
        DataEngine { records, sources, sink: None }
    }

    fn sink(&self) -> &dyn Sink {
        self.sink.as_deref().unwrap_or(&self.records)
    }
}

/// Where a suspended run resumes: the source's position and the counts up to it (kept apart
/// from the run's live `stats`, which heartbeats move on past the checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Checkpoint {
    pub records_read: u64,
    pub position: Position,
    pub stats: Stats,
}

enum Step {
    Transform(Transform),
    Filter(Condition),
}

/// What a batch became: rows that fit the schema (conformed), and rows that did not.
pub struct Processed {
    pub good: Vec<(RowId, Record)>,
    pub bad: Vec<(RowId, Vec<FieldIssue>, Record)>,
}

/// Rows numbered by their place in the source (from 1).
pub type Rows = Vec<(u64, Record)>;

/// The pure part of a run, without I/O: a plan's transform and filter nodes as a dataflow, then
/// the target schema's checks, over numbered rows, counting as it goes.
pub struct Processor {
    steps: Vec<(String, Step)>,
    inputs: Vec<Vec<Input>>,
    target_inputs: Vec<Input>,
    /// How many edges read the source's and each step's output.
    readers: (usize, Vec<usize>),
    /// Some node passes rows down more than one edge, so a row can reach the target twice.
    copies: bool,
    target: String,
    fields: Vec<Field>,
    /// What each node passed on, up to so many records per node (previews only).
    samples: Option<(usize, BTreeMap<String, Vec<Record>>)>,
}

impl Processor {
    /// Fails on the first node whose config cannot be read, naming it.
    pub fn new(plan: &Plan, schema: &Schema) -> Result<Self, RunError> {
        let mut steps = Vec::with_capacity(plan.steps.len());
        for node in &plan.steps {
            let step = match node.node_type {
                NodeType::Filter => Step::Filter(parse_filter_config(&node.config).map_err(|e| node_error(node, e.to_string()))?),
                _ => Step::Transform(Transform::parse(&node.config).map_err(|e| node_error(node, e.to_string()))?),
            };
            steps.push((node.id.clone(), step));
        }
        let readers = plan.fan_out();
        let copies = readers.0 > 1 || readers.1.iter().any(|&n| n > 1);
        Ok(Self {
            steps,
            inputs: plan.inputs.clone(),
            target_inputs: plan.target_inputs.clone(),
            readers,
            copies,
            target: plan.target.id.clone(),
            fields: schema.fields.clone(),
            samples: None,
        })
    }

    /// Keeps the first `per_node` records each step and the target pass on ([`Self::samples`]).
    pub fn sampling(mut self, per_node: usize) -> Self {
        self.samples = Some((per_node, BTreeMap::new()));
        self
    }

    /// The records kept by [`Self::sampling`], by node id.
    pub fn samples(&mut self) -> BTreeMap<String, Vec<Record>> {
        self.samples.as_mut().map(|(_, kept)| std::mem::take(kept)).unwrap_or_default()
    }

    /// Processes numbered rows (ascending, as the source gave them); `deduplicate` nodes claim
    /// their keys in `marks`.
    pub async fn process(&mut self, rows: Rows, stats: &mut Stats, marks: &dyn Marks) -> Result<Processed, RunError> {
        let size = rows.len();
        let (first_row, span) = match (rows.first(), rows.last()) {
            (Some((first, _)), Some((last, _))) => (*first, (last - first + 1) as usize),
            _ => (0, 0),
        };
        stats.rows_in += size as u64;
        let mut flow = Flow { source: Some(rows), steps: (0..self.steps.len()).map(|_| None).collect(), readers: self.readers.clone() };
        for (i, (node_id, step)) in self.steps.iter_mut().enumerate() {
            let input = flow.gather(&self.inputs[i]);
            let before = input.len();
            let output = match step {
                Step::Filter(condition) => {
                    let mut rows = input;
                    rows.retain(|(_, r)| condition.matches(r));
                    rows
                }
                Step::Transform(Transform::Deduplicate { keys, seen }) => {
                    // What this invocation saw goes at once; the rest is claimed for the run.
                    let mut fresh = Vec::with_capacity(input.len());
                    for (row, record) in input {
                        let key = key_tuple(keys, &record);
                        if seen.insert(key.clone()) {
                            fresh.push((row, record, key));
                        }
                    }
                    let claims = fresh.iter().map(|(row, _, key)| (key.clone(), *row)).collect::<Vec<_>>();
                    let kept =
                        if claims.is_empty() { Vec::new() } else { marks.claim(node_id, claims).await.map_err(|e| e.at_node(node_id))? };
                    fresh.into_iter().zip(kept).filter(|(_, keep)| *keep).map(|((row, record, _), _)| (row, record)).collect()
                }
                Step::Transform(transform) => apply(transform, input),
            };
            let count = stats.node_counts.entry(node_id.clone()).or_default();
            count.rows_in += before as u64;
            count.rows_out += output.len() as u64;
            keep_sample(&mut self.samples, node_id, output.iter().map(|(_, r)| r));
            flow.steps[i] = Some(output);
        }

        let arrived = flow.gather(&self.target_inputs);
        stats.node_counts.entry(self.target.clone()).or_default().rows_in += arrived.len() as u64;

        // Skipped: rows of the source that reach the target by no path (filtered or deduplicated
        // away on every branch). Copies: the how-manieth arrival of its row each record is.
        let mut arrivals = vec![0u32; span];
        let mut ids = Vec::with_capacity(arrived.len());
        for (row, _) in &arrived {
            let slot = &mut arrivals[(row - first_row) as usize];
            ids.push(RowId { row: *row, copy: if self.copies { *slot } else { 0 } });
            *slot += 1;
        }
        stats.skipped_rows += (size - arrivals.iter().filter(|&&n| n > 0).count()) as u64;

        let mut processed = Processed { good: Vec::with_capacity(arrived.len()), bad: Vec::new() };
        for (id, (_, record)) in ids.into_iter().zip(arrived) {
            match conform(&self.fields, &record) {
                Ok(conformed) => processed.good.push((id, conformed)),
                Err(issues) => {
                    stats.fail(id.row, &issues);
                    processed.bad.push((id, issues, record));
                }
            }
        }
        keep_sample(&mut self.samples, &self.target, processed.good.iter().map(|(_, r)| r));
        Ok(processed)
    }
}

fn keep_sample<'r>(samples: &mut Option<(usize, BTreeMap<String, Vec<Record>>)>, node: &str, records: impl Iterator<Item = &'r Record>) {
    if let Some((cap, kept)) = samples {
        let kept = kept.entry(node.to_string()).or_default();
        let room = cap.saturating_sub(kept.len());
        kept.extend(records.take(room).cloned());
    }
}

/// One batch's outputs on their way through the plan: each is handed to the edges that read it,
/// moved to the last one and copied for the others.
struct Flow {
    source: Option<Rows>,
    steps: Vec<Option<Rows>>,
    readers: (usize, Vec<usize>),
}

impl Flow {
    /// The union of what `inputs` carry, in edge order.
    fn gather(&mut self, inputs: &[Input]) -> Rows {
        let mut union: Rows = Vec::new();
        for input in inputs {
            let (slot, left) = match *input {
                Input::Source => (&mut self.source, &mut self.readers.0),
                Input::Step(i) => (&mut self.steps[i], &mut self.readers.1[i]),
            };
            *left = left.saturating_sub(1);
            let rows = if *left == 0 { slot.take().unwrap_or_default() } else { slot.clone().unwrap_or_default() };
            if union.is_empty() {
                union = rows;
            } else {
                union.extend(rows);
            }
        }
        union
    }
}

fn node_error(node: &crate::domain::graph::Node, message: String) -> RunError {
    RunError::new(RunErrorCode::InvalidNodeConfig, format!("node '{}': {message}", node.label_or_id())).at_node(&node.id)
}

impl Engine for DataEngine {
    fn execute<'a>(&'a self, job: &'a Job<'a>, control: &'a dyn Control) -> BoxFuture<'a, Result<Report, RunFailure>> {
        Box::pin(self.run(job, control))
    }

    fn list_partitions<'a>(
        &'a self,
        connector: &'a Connector,
        tenant: &'a TenantId,
        group_bytes: u64,
        token: Option<String>,
    ) -> BoxFuture<'a, Result<Option<Listing>, RunError>> {
        Box::pin(async move {
            if !partitions_by_object(connector) {
                return Ok(None);
            }
            list_partitions(connector, tenant, &self.sources, group_bytes, token).await.map(Some)
        })
    }
}

impl DataEngine {
    async fn run(&self, job: &Job<'_>, control: &dyn Control) -> Result<Report, RunFailure> {
        let config = &job.pipeline.execution_config;
        let plan = job.plan;
        let mut processor = Processor::new(plan, job.schema)?;
        let has_key = job.schema.fields.iter().any(|f| f.primary_key);
        let mode = config.load_mode.unwrap_or(if has_key { LoadMode::Upsert } else { LoadMode::Append });
        if mode == LoadMode::Upsert && !has_key {
            let e =
                RunError::new(RunErrorCode::InvalidConfig, format!("loadMode upsert needs a primary key in schema '{}'", job.schema.name));
            return Err(e.at_node(&plan.target.id).into());
        }
        let handling = config.error_handling.unwrap_or(ErrorHandling::Skip);
        let batch_size = config.batch_size.max(1) as usize;
        let parallelism = config.parallelism.max(1) as usize;

        let resumed: Option<Checkpoint> = job.checkpoint.cloned().and_then(|c| serde_json::from_value(c).ok());
        let partition = job.scope.map(|s| s.index);
        let resumed_at = resumed.as_ref().map_or(0, |c| c.records_read);
        let (mut stats, position) = resumed.map(|c| (c.stats, Some(c.position))).unwrap_or_default();
        let mut log = Vec::new();
        // A truncate run fills a generation of its own, switched to when the run completes.
        let generation = match mode {
            LoadMode::Truncate => Some(job.run.id.as_str()),
            _ => job.schema.generation.as_deref(),
        };
        let pk = schema_pk(job.tenant, &job.schema.id, generation);
        let source = match job.scope {
            Some(scope) => open_partition(job.connector, job.tenant, &self.sources, scope.keys, position.as_ref()).await,
            None => open(job.connector, job.tenant, &self.sources, position.as_ref()).await,
        };
        let mut source = source.map_err(|e| RunFailure::from(e.at_node(&plan.source.id)))?;
        log.push(LogEntry::new("source", format!("reading {} connector '{}'", job.connector.kind, job.connector.name)));
        if mode == LoadMode::Truncate && resumed_at == 0 && job.scope.is_none() {
            log.push(LogEntry::new(
                "target",
                format!("writing a new generation of schema '{}', shown when the run completes", job.schema.name),
            ));
        }
        let overhead = row_overhead(&pk, &job.run.id);
        let marks = self.records.marks(job.tenant, &job.run.id, partition);

        let mut read = resumed_at;
        let mut in_flight = FuturesUnordered::new();
        let mut bytes_in_flight = 0usize;
        let outcome = loop {
            stats.progress = Progress { records_read: read, bytes_read: source.position().bytes_read, bytes_total: source.bytes_total() };
            if let Err(stop) = control.checkpoint(&stats).await {
                break Err(RunFailure::Stopped(stop));
            }
            if read > resumed_at && control.should_yield() {
                break Ok(false);
            }
            let batch = match source.next_batch(batch_size).await {
                Ok(Some(batch)) => batch,
                Ok(None) => break Ok(true),
                Err(e) => break Err(RunFailure::from(e.at_node(&plan.source.id))),
            };
            let first_row = read + 1;
            read += batch.len() as u64;
            stats.node_counts.entry(plan.source.id.clone()).or_default().rows_out += batch.len() as u64;
            // Items the source could not make records of are failed rows, like rows that do
            // not fit the schema.
            let mut unreadable = Vec::new();
            let mut rows = Vec::with_capacity(batch.len());
            for (i, item) in batch.into_iter().enumerate() {
                let row = first_row + i as u64;
                match item {
                    Ok(record) => rows.push((row, record)),
                    Err(why) => {
                        unreadable.push((RowId { row, copy: 0 }, vec![FieldIssue { field: RECORD.into(), message: why }], Record::new()))
                    }
                }
            }
            stats.rows_in += unreadable.len() as u64;
            for (id, issues, _) in &unreadable {
                stats.fail(id.row, issues);
            }
            let Processed { good, mut bad } = match processor.process(rows, &mut stats, &marks).await {
                Ok(processed) => processed,
                Err(e) => break Err(RunFailure::from(e)),
            };
            bad.extend(unreadable);
            let mut batch_rows: Vec<Row> = Vec::with_capacity(good.len());
            let mut batch_bytes = 0;
            for (id, data) in good {
                // Truncate keeps a row per key, as upsert does, when the schema has a key.
                let key = match mode {
                    LoadMode::Upsert => upsert_key(job.schema, &data).unwrap_or_default(),
                    LoadMode::Truncate if has_key => upsert_key(job.schema, &data).unwrap_or_default(),
                    _ => append_key(&job.run.id, partition, id),
                };
                // A row DynamoDB would refuse fails alone, instead of failing its whole batch.
                match limits::check_row(&data, &key, overhead + key.len()) {
                    Ok(bytes) => {
                        batch_bytes += bytes;
                        batch_rows.push(Row { key, data });
                    }
                    Err(limit) => {
                        let issues = vec![FieldIssue { field: limit.field().unwrap_or(RECORD).to_string(), message: limit.to_string() }];
                        stats.fail(id.row, &issues);
                        bad.push((id, issues, Record::new()));
                    }
                }
            }
            bad.sort_by_key(|(id, _, _)| (id.row, id.copy));
            if let Some((id, issues, _)) = bad.first().filter(|_| handling == ErrorHandling::Fail) {
                // The first bad row fails the run; nothing of this batch is written.
                let detail = issues.first().map_or(String::new(), |i| format!(": {} {}", i.field, i.message));
                let e = RunError::new(
                    RunErrorCode::ValidationFailed,
                    format!("row {} does not fit schema '{}'{detail}", id.row, job.schema.name),
                );
                break Err(RunFailure::Failed { error: e.at_node(&plan.target.id), stats: None, log: vec![] });
            }
            let letters = if handling == ErrorHandling::DeadLetter { bad } else { Vec::new() };
            let written = batch_rows.len() as u64;
            stats.rows_out += written;
            stats.node_counts.entry(plan.target.id.clone()).or_default().rows_out += written;
            stats.dead_letters += letters.len() as u64;
            let (records, pk, run_id, tenant) = (self.sink(), &pk, &job.run.id, job.tenant);
            bytes_in_flight += batch_bytes;
            in_flight.push(async move {
                if !letters.is_empty() {
                    records.write_letters(tenant, run_id, partition, letters).await?;
                }
                records.write_rows(pk, run_id, batch_rows).await.map(|()| batch_bytes)
            });
            // At most `parallelism` batches, and at most MAX_BYTES_IN_FLIGHT of rows, in flight:
            // wait for writes to land before reading on.
            while in_flight.len() >= parallelism || (bytes_in_flight > MAX_BYTES_IN_FLIGHT && !in_flight.is_empty()) {
                match in_flight.next().await {
                    Some(Ok(bytes)) => bytes_in_flight -= bytes,
                    Some(Err(e)) => return Err(RunFailure::from(e.at_node(&plan.target.id))),
                    None => break,
                }
            }
        };
        // Everything read so far is written before the run ends or saves its position.
        while let Some(result) = in_flight.next().await {
            if let Err(e) = result {
                return Err(RunFailure::from(e.at_node(&plan.target.id)));
            }
        }
        stats.progress = Progress { records_read: read, bytes_read: source.position().bytes_read, bytes_total: source.bytes_total() };
        let stats_value = serde_json::to_value(&stats).unwrap_or_default();
        match outcome {
            Ok(true) => {
                log.push(LogEntry::new(
                    "target",
                    format!(
                        "{} rows in, {} written to schema '{}', {} failed, {} skipped",
                        stats.rows_in, stats.rows_out, job.schema.name, stats.failed_rows, stats.skipped_rows
                    ),
                ));
                Ok(Report { with_errors: stats.failed_rows > 0, stats: stats_value, log })
            }
            Ok(false) => {
                let checkpoint = Checkpoint { records_read: read, position: source.position(), stats };
                Err(RunFailure::Suspended { checkpoint: serde_json::to_value(checkpoint).unwrap_or_default(), stats: stats_value, log })
            }
            Err(RunFailure::Failed { error, log: more, .. }) => {
                log.extend(more);
                Err(RunFailure::Failed { error, stats: Some(stats_value), log })
            }
            Err(other) => Err(other),
        }
    }
}

/// Rows waiting to be written, by their encoded size: a bound on the worker's memory beside
/// `batchSize × parallelism`, whatever the rows' sizes.
const MAX_BYTES_IN_FLIGHT: usize = 64 * 1024 * 1024;

/// The field a failure names when it is about the whole record.
const RECORD: &str = "(record)";

/// Runs a transform that maps records one to one over numbered rows, keeping each row's number
/// (`deduplicate`, which drops some, is the processor's own step).
fn apply(transform: &mut Transform, rows: Vec<(u64, Record)>) -> Vec<(u64, Record)> {
    let (numbers, records): (Vec<u64>, Vec<Record>) = rows.into_iter().unzip();
    numbers.into_iter().zip(transform.apply(records).records).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::graph::Graph;
    use crate::domain::ids::SchemaId;
    use crate::engine::dedupe::LocalMarks;
    use serde_json::json;
    use serde_json::Value;

    fn graph(nodes: Value, edges: &[(&str, &str)]) -> Graph {
        let edges: Vec<Value> =
            edges.iter().map(|(s, t)| json!({"id": format!("{s}-{t}"), "source": s, "target": t, "label": null})).collect();
        serde_json::from_value(json!({"nodes": nodes, "edges": edges})).unwrap()
    }

    fn node(id: &str, node_type: &str, config: Value) -> Value {
        json!({"id": id, "nodeType": node_type, "label": "", "config": config, "position": null})
    }

    fn eq(x: i64) -> Value {
        json!({"condition": {"field": "x", "op": "eq", "value": x}})
    }

    fn schema() -> Schema {
        serde_json::from_value(json!({
            "id": SchemaId::generate(), "name": "t", "displayName": "t", "description": null,
            "fields": [{"name": "x", "type": "integer", "required": true, "primaryKey": false},
                       {"name": "tag", "type": "text", "required": false, "primaryKey": false}],
            "createdAt": "", "updatedAt": ""
        }))
        .unwrap()
    }

    fn rows(xs: &[Value]) -> Vec<Record> {
        xs.iter().map(|x| json!({"x": x}).as_object().cloned().unwrap()).collect()
    }

    fn run(g: &Graph, batch: Vec<Record>) -> (Processed, Stats) {
        let plan = Plan::build(g).unwrap();
        let mut processor = Processor::new(&plan, &schema()).unwrap();
        let mut stats = Stats::default();
        let rows = batch.into_iter().enumerate().map(|(i, r)| (i as u64 + 1, r)).collect();
        let processed = futures::executor::block_on(processor.process(rows, &mut stats, &LocalMarks::default())).unwrap();
        (processed, stats)
    }

    fn xs(processed: &Processed) -> Vec<(u64, u32, Value)> {
        processed.good.iter().map(|(id, r)| (id.row, id.copy, r["x"].clone())).collect()
    }

    fn counts(stats: &Stats, id: &str) -> (u64, u64) {
        let c = &stats.node_counts[id];
        (c.rows_in, c.rows_out)
    }

    #[test]
    fn branches_write_the_union_of_what_each_lets_through() {
        // source → x = 1 → target, source → x = 2 → target, over x = 1, 2, 3.
        let nodes = json!([
            node("s", "source", json!({})),
            node("f1", "filter", eq(1)),
            node("f2", "filter", eq(2)),
            node("t", "target", json!({}))
        ]);
        let g = graph(nodes, &[("s", "f1"), ("s", "f2"), ("f1", "t"), ("f2", "t")]);
        let (processed, stats) = run(&g, rows(&[json!(1), json!(2), json!(3)]));
        assert_eq!(xs(&processed), [(1, 0, json!(1)), (2, 0, json!(2))]);
        assert_eq!((stats.rows_in, stats.skipped_rows, stats.failed_rows), (3, 1, 0));
        assert_eq!(counts(&stats, "f1"), (3, 1));
        assert_eq!(counts(&stats, "f2"), (3, 1));
        assert_eq!(stats.node_counts["t"].rows_in, 2);
    }

    #[test]
    fn a_diamond_brings_a_row_once_per_path() {
        // source → a (tag) → target and source → b (tag) → target: every row arrives twice.
        let tag = |v: &str| json!({"type": "add_field", "field": "tag", "value": v});
        let nodes = json!([
            node("s", "source", json!({})),
            node("a", "transform", tag("a")),
            node("b", "transform", tag("b")),
            node("t", "target", json!({}))
        ]);
        let g = graph(nodes, &[("s", "a"), ("s", "b"), ("a", "t"), ("b", "t")]);
        let (processed, stats) = run(&g, rows(&[json!(1), json!(2)]));
        let got: Vec<(u64, u32, Value)> = processed.good.iter().map(|(id, r)| (id.row, id.copy, r["tag"].clone())).collect();
        assert_eq!(got, [(1, 0, json!("a")), (2, 0, json!("a")), (1, 1, json!("b")), (2, 1, json!("b"))]);
        assert_eq!((stats.rows_in, stats.skipped_rows), (2, 0));
        assert_eq!(counts(&stats, "a"), (2, 2));
        assert_eq!(stats.node_counts["t"].rows_in, 4);
    }

    #[test]
    fn a_filter_can_feed_two_transforms_and_a_merge_takes_both() {
        // s → f (x ≥ 2) → {a, b} → m (a merge point) → t; and s → t directly.
        let nodes = json!([
            node("s", "source", json!({})),
            node("f", "filter", json!({"condition": {"field": "x", "op": "gte", "value": 2}})),
            node("a", "transform", json!({"type": "add_field", "field": "tag", "value": "a"})),
            node("b", "transform", json!({"type": "add_field", "field": "tag", "value": "b"})),
            node("m", "transform", json!({"type": "uppercase", "fields": ["tag"]})),
            node("t", "target", json!({}))
        ]);
        let g = graph(nodes, &[("s", "f"), ("f", "a"), ("f", "b"), ("a", "m"), ("b", "m"), ("m", "t"), ("s", "t")]);
        let (processed, stats) = run(&g, rows(&[json!(1), json!(2), json!(3)]));
        let mut got: Vec<(u64, Value)> =
            processed.good.iter().map(|(id, r)| (id.row, r.get("tag").cloned().unwrap_or(Value::Null))).collect();
        got.sort_by_key(|(row, tag)| (*row, tag.to_string()));
        assert_eq!(
            got,
            [(1, Value::Null), (2, json!("A")), (2, json!("B")), (2, Value::Null), (3, json!("A")), (3, json!("B")), (3, Value::Null)]
        );
        assert_eq!(counts(&stats, "f"), (3, 2));
        assert_eq!(counts(&stats, "m"), (4, 4));
        assert_eq!(stats.node_counts["t"].rows_in, 7);
        assert_eq!(stats.skipped_rows, 0);
        // Every copy of a row has its own id.
        let mut ids: Vec<(u64, u32)> = processed.good.iter().map(|(id, _)| (id.row, id.copy)).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 7);
    }

    #[test]
    fn a_chain_counts_as_before() {
        let nodes = json!([node("s", "source", json!({})), node("f", "filter", eq(2)), node("t", "target", json!({}))]);
        let (processed, stats) = run(&graph(nodes, &[("s", "f"), ("f", "t")]), rows(&[json!(1), json!("2"), json!("x")]));
        assert_eq!(xs(&processed), [(2, 0, json!(2))]);
        assert_eq!((stats.skipped_rows, stats.failed_rows), (2, 0));
    }
}
