//! The data engine: reads the connector's records in batches of `batchSize`, passes them through
//! the plan's transform and filter nodes in order, checks them against the target schema, and
//! writes them to the records table with at most `parallelism` batches in flight.
//!
//! At every batch boundary it checkpoints through [`Control`]: the lease is renewed, a cancel
//! stops the run, and a used time budget suspends it with its position (`recordsRead`) so that a
//! follow-up continues where it stopped. Rows are written before that position is saved, and
//! writes are idempotent (upserts by key, appends by run and row number), so a batch written
//! twice after a crash lands once.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::coerce::{conform, FieldIssue};
use super::filter::{parse_filter_config, Condition};
use super::job::{Control, Engine, Job, Report, RunFailure};
use super::plan::Plan;
use super::record::Record;
use super::sink::{append_key, schema_pk, upsert_key, RecordsTable, Row};
use super::source::{open, SourceContext};
use super::transform::Transform;
use crate::domain::graph::NodeType;
use crate::domain::pipeline::{ErrorHandling, LoadMode};
use crate::domain::run::{LogEntry, RunError};
use crate::domain::schema::{Field, Schema};

/// Validation errors kept on a run.
const MAX_VALIDATION_ERRORS: usize = 20;

pub struct DataEngine {
    pub records: RecordsTable,
    pub sources: SourceContext,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCount {
    #[serde(rename = "in")]
    pub rows_in: u64,
    #[serde(rename = "out")]
    pub rows_out: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationError {
    pub row: u64,
    pub field: String,
    pub message: String,
}

/// What a run reports; carried across continuations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Stats {
    pub rows_in: u64,
    pub rows_out: u64,
    pub failed_rows: u64,
    pub skipped_rows: u64,
    pub dead_letters: u64,
    pub node_counts: BTreeMap<String, NodeCount>,
    pub validation_errors: Vec<ValidationError>,
}

enum Step {
    Transform(Transform),
    Filter(Condition),
}

/// What a batch became: rows that fit the schema (conformed), and rows that did not.
pub struct Processed {
    pub good: Vec<(u64, Record)>,
    pub bad: Vec<(u64, Vec<FieldIssue>, Record)>,
}

/// The pure part of a run, without I/O: a plan's transform and filter nodes, then the target
/// schema's checks, over numbered rows, counting as it goes.
pub struct Processor {
    steps: Vec<(String, Step)>,
    target: String,
    fields: Vec<Field>,
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
        Ok(Self { steps, target: plan.target.id.clone(), fields: schema.fields.clone() })
    }

    /// Processes a batch whose first record is row `first_row` of the source.
    pub fn process(&mut self, first_row: u64, batch: Vec<Record>, stats: &mut Stats) -> Processed {
        stats.rows_in += batch.len() as u64;
        // Row numbers travel with the records through the steps, for error reports.
        let mut rows: Vec<(u64, Record)> = batch.into_iter().enumerate().map(|(i, r)| (first_row + i as u64, r)).collect();
        for (node_id, step) in &mut self.steps {
            let before = rows.len();
            rows = match step {
                Step::Filter(condition) => {
                    rows.retain(|(_, r)| condition.matches(r));
                    rows
                }
                Step::Transform(transform) => apply(transform, rows),
            };
            stats.skipped_rows += (before - rows.len()) as u64;
            let count = stats.node_counts.entry(node_id.clone()).or_default();
            count.rows_in += before as u64;
            count.rows_out += rows.len() as u64;
        }
        stats.node_counts.entry(self.target.clone()).or_default().rows_in += rows.len() as u64;
        let mut processed = Processed { good: Vec::with_capacity(rows.len()), bad: Vec::new() };
        for (row, record) in rows {
            match conform(&self.fields, &record) {
                Ok(conformed) => processed.good.push((row, conformed)),
                Err(issues) => {
                    stats.failed_rows += 1;
                    for issue in &issues {
                        if stats.validation_errors.len() < MAX_VALIDATION_ERRORS {
                            stats.validation_errors.push(ValidationError {
                                row,
                                field: issue.field.clone(),
                                message: issue.message.clone(),
                            });
                        }
                    }
                    processed.bad.push((row, issues, record));
                }
            }
        }
        processed
    }
}

fn node_error(node: &crate::domain::graph::Node, message: String) -> RunError {
    RunError::new("INVALID_NODE_CONFIG", format!("node '{}': {message}", node.label_or_id())).at_node(&node.id)
}

impl Engine for DataEngine {
    fn execute<'a>(&'a self, job: &'a Job<'a>, control: &'a dyn Control) -> BoxFuture<'a, Result<Report, RunFailure>> {
        Box::pin(self.run(job, control))
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
            let e = RunError::new("INVALID_CONFIG", format!("loadMode upsert needs a primary key in schema '{}'", job.schema.name));
            return Err(e.at_node(&plan.target.id).into());
        }
        let handling = config.error_handling.unwrap_or(ErrorHandling::Skip);
        let batch_size = config.batch_size.max(1) as usize;
        let parallelism = config.parallelism.max(1) as usize;

        let resumed_at = job.run.checkpoint.as_ref().and_then(|c| c.get("recordsRead")).and_then(Value::as_u64).unwrap_or(0);
        let mut stats: Stats = match (resumed_at, &job.run.stats) {
            (0, _) | (_, None) => Stats::default(),
            (_, Some(previous)) => serde_json::from_value(previous.clone()).unwrap_or_default(),
        };
        let mut log = Vec::new();
        let pk = schema_pk(job.tenant, &job.schema.id);
        let mut source = open(job.connector, &self.sources, resumed_at).await.map_err(|e| RunFailure::from(e.at_node(&plan.source.id)))?;
        log.push(LogEntry::new("source", format!("reading {} connector '{}'", job.connector.kind, job.connector.name)));
        // Only once the source opened: a source that fails leaves the schema's rows alone.
        if mode == LoadMode::Truncate && resumed_at == 0 {
            let deleted = self.records.truncate(&pk).await?;
            log.push(LogEntry::new("target", format!("truncated {deleted} rows of schema '{}'", job.schema.name)));
        }

        let mut read = resumed_at;
        let mut in_flight = FuturesUnordered::new();
        let outcome = loop {
            if let Err(stop) = control.checkpoint().await {
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
            let Processed { good, bad } = processor.process(first_row, batch, &mut stats);
            let mut letters = Vec::new();
            if let Some((row, issues, _)) = bad.first().filter(|_| handling == ErrorHandling::Fail) {
                // The first bad row fails the run; nothing of this batch is written.
                let detail = issues.first().map_or(String::new(), |i| format!(": {} {}", i.field, i.message));
                let e = RunError::new("VALIDATION_FAILED", format!("row {row} does not fit schema '{}'{detail}", job.schema.name));
                break Err(RunFailure::Failed { error: e.at_node(&plan.target.id), stats: None, log: vec![] });
            }
            if handling == ErrorHandling::DeadLetter {
                letters = bad;
            }
            let written = good.len() as u64;
            stats.rows_out += written;
            stats.node_counts.entry(plan.target.id.clone()).or_default().rows_out += written;
            stats.dead_letters += letters.len() as u64;
            let rows: Vec<Row> = good
                .into_iter()
                .map(|(row, data)| {
                    let key = match mode {
                        LoadMode::Upsert => upsert_key(job.schema, &data).unwrap_or_default(),
                        _ => append_key(&job.run.id, row),
                    };
                    Row { key, data }
                })
                .collect();
            let (records, pk, run_id, tenant) = (&self.records, &pk, &job.run.id, job.tenant);
            in_flight.push(async move {
                if !letters.is_empty() {
                    records.write_dead_letters(tenant, run_id, letters).await?;
                }
                records.write(pk, run_id, rows).await
            });
            // At most `parallelism` batches in flight: wait for one before reading on.
            while in_flight.len() >= parallelism {
                if let Some(Err(e)) = in_flight.next().await {
                    return Err(RunFailure::from(e.at_node(&plan.target.id)));
                }
            }
        };
        // Everything read so far is written before the run ends or saves its position.
        while let Some(result) = in_flight.next().await {
            if let Err(e) = result {
                return Err(RunFailure::from(e.at_node(&plan.target.id)));
            }
        }
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
            Ok(false) => Err(RunFailure::Suspended { checkpoint: serde_json::json!({ "recordsRead": read }), stats: stats_value, log }),
            Err(RunFailure::Failed { error, log: more, .. }) => {
                log.extend(more);
                Err(RunFailure::Failed { error, stats: Some(stats_value), log })
            }
            Err(other) => Err(other),
        }
    }
}

/// Runs a transform over numbered rows, keeping each row's number.
fn apply(transform: &mut Transform, rows: Vec<(u64, Record)>) -> Vec<(u64, Record)> {
    // Every transform maps records one to one, but deduplicate, which drops some: that one goes
    // a record at a time so that numbers stay with their rows.
    if matches!(transform, Transform::Deduplicate { .. }) {
        let mut out = Vec::with_capacity(rows.len());
        for (row, record) in rows {
            out.extend(transform.apply(vec![record]).records.into_iter().map(|r| (row, r)));
        }
        return out;
    }
    let (numbers, records): (Vec<u64>, Vec<Record>) = rows.into_iter().unzip();
    numbers.into_iter().zip(transform.apply(records).records).collect()
}
