//! Looking before running: a pipeline's graph over the first records of its source, and a
//! connector's source opened to read one record. Both write nothing (deduplication is claimed
//! in memory) and answer within a deadline; sources go through the same address guard and
//! bucket rules as a run's.

use std::time::Duration;

use serde::Serialize;

use super::coerce::FieldIssue;
use super::dedupe::LocalMarks;
use super::execute::{Processor, Stats};
use super::plan::Plan;
use super::record::Record;
use super::source::{open, SourceContext};
use crate::domain::connector::Connector;
use crate::domain::graph::{Graph, NodeType};
use crate::domain::report::ValidationError;
use crate::domain::run::{RunError, RunErrorCode};
use crate::domain::schema::Schema;
use crate::domain::tenant::TenantId;

/// The most bytes of samples a preview answers with: API Gateway's and Lambda's limits are
/// higher, but a console has no use for more.
pub const MAX_SAMPLE_BYTES: usize = 1024 * 1024;

/// What a preview saw: per node (in the graph's order) its counts and the first records it
/// passed on, the rows the target schema would refuse, and the error that stopped it, if any.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub records_read: u64,
    pub rows_out: u64,
    pub failed_rows: u64,
    pub skipped_rows: u64,
    pub nodes: Vec<NodePreview>,
    pub validation_errors: Vec<ValidationError>,
    pub error: Option<RunError>,
    /// Samples were cut to fit [`MAX_SAMPLE_BYTES`].
    pub truncated: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePreview {
    pub id: String,
    #[serde(rename = "type")]
    pub node_type: NodeType,
    #[serde(rename = "in")]
    pub rows_in: u64,
    #[serde(rename = "out")]
    pub rows_out: u64,
    pub sample: Vec<Record>,
}

/// Runs `graph` over the first `limit` records of `connector`'s source into `schema`, giving up
/// after `deadline`.
pub async fn preview(
    sources: &SourceContext,
    tenant: &TenantId,
    graph: &Graph,
    connector: &Connector,
    schema: &Schema,
    limit: usize,
    deadline: Duration,
) -> Preview {
    let mut stats = Stats::default();
    let mut samples = std::collections::BTreeMap::new();
    let outcome = tokio::time::timeout(deadline, read_through(sources, tenant, graph, connector, schema, limit, &mut stats, &mut samples));
    let error = match outcome.await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(too_slow(deadline)),
    };
    let nodes = graph
        .nodes
        .iter()
        .map(|n| {
            let count = stats.node_counts.get(&n.id).cloned().unwrap_or_default();
            NodePreview {
                id: n.id.clone(),
                node_type: n.node_type,
                rows_in: count.rows_in,
                rows_out: count.rows_out,
                sample: samples.remove(&n.id).unwrap_or_default(),
            }
        })
        .collect();
    let mut preview = Preview {
        records_read: stats.progress.records_read,
        rows_out: stats.rows_out,
        failed_rows: stats.failed_rows,
        skipped_rows: stats.skipped_rows,
        nodes,
        validation_errors: stats.validation_errors,
        error,
        truncated: false,
    };
    preview.fit(MAX_SAMPLE_BYTES);
    preview
}

#[allow(clippy::too_many_arguments)]
async fn read_through(
    sources: &SourceContext,
    tenant: &TenantId,
    graph: &Graph,
    connector: &Connector,
    schema: &Schema,
    limit: usize,
    stats: &mut Stats,
    samples: &mut std::collections::BTreeMap<String, Vec<Record>>,
) -> Result<(), RunError> {
    let plan = Plan::build(graph)?;
    let mut processor = Processor::new(&plan, schema)?.sampling(limit);
    let source_id = plan.source.id.as_str();
    let mut source = open(connector, tenant, sources, None).await.map_err(|e| e.at_node(source_id))?;
    let batch = source.next_batch(limit).await.map_err(|e| e.at_node(source_id))?.unwrap_or_default();
    stats.progress.records_read = batch.len() as u64;
    stats.node_counts.entry(plan.source.id.clone()).or_default().rows_out = batch.len() as u64;
    let mut rows = Vec::with_capacity(batch.len());
    for (i, item) in batch.into_iter().enumerate() {
        let row = i as u64 + 1;
        match item {
            Ok(record) => rows.push((row, record)),
            Err(why) => {
                stats.rows_in += 1;
                stats.fail(row, &[FieldIssue { field: "(record)".into(), message: why }]);
            }
        }
    }
    samples.insert(plan.source.id.clone(), rows.iter().map(|(_, r)| r.clone()).collect());
    let processed = processor.process(rows, stats, &LocalMarks::default()).await;
    samples.extend(processor.samples());
    let processed = processed?;
    stats.rows_out = processed.good.len() as u64;
    stats.node_counts.entry(plan.target.id.clone()).or_default().rows_out = stats.rows_out;
    Ok(())
}

fn too_slow(deadline: Duration) -> RunError {
    RunError::new(RunErrorCode::TimedOut, format!("the source gave no answer within {} s", deadline.as_secs()))
}

impl Preview {
    /// Halves every node's sample until the samples fit `max` bytes of JSON.
    fn fit(&mut self, max: usize) {
        let size = |p: &Preview| p.nodes.iter().map(|n| serde_json::to_vec(&n.sample).map_or(0, |v| v.len())).sum::<usize>();
        while size(self) > max {
            self.truncated = true;
            for node in &mut self.nodes {
                node.sample.truncate(node.sample.len() / 2);
            }
        }
    }
}

/// A connector's check: whether its source opened and gave a record, and that record's fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorTest {
    pub ok: bool,
    /// The first record's fields, sorted; empty when the source is empty or failed.
    pub sample_fields: Vec<String>,
    /// Whether the source had a record to read.
    pub records: u64,
    pub error: Option<RunError>,
}

/// Opens `connector`'s source and reads one record, giving up after `deadline`.
pub async fn test_connector(sources: &SourceContext, tenant: &TenantId, connector: &Connector, deadline: Duration) -> ConnectorTest {
    let first = async {
        let mut source = open(connector, tenant, sources, None).await?;
        source.next_batch(1).await
    };
    let failed = |error| ConnectorTest { ok: false, sample_fields: Vec::new(), records: 0, error: Some(error) };
    match tokio::time::timeout(deadline, first).await {
        Err(_) => failed(too_slow(deadline)),
        Ok(Err(e)) => failed(e),
        Ok(Ok(None)) => ConnectorTest { ok: true, sample_fields: Vec::new(), records: 0, error: None },
        Ok(Ok(Some(batch))) => match batch.into_iter().next() {
            None => ConnectorTest { ok: true, sample_fields: Vec::new(), records: 0, error: None },
            Some(Ok(record)) => ConnectorTest { ok: true, sample_fields: record.keys().cloned().collect(), records: 1, error: None },
            Some(Err(why)) => ConnectorTest {
                records: 1,
                ..failed(RunError::new(RunErrorCode::SourceError, format!("the first record could not be read: {why}")))
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn samples_are_halved_until_they_fit() {
        let record: Record = serde_json::from_value(json!({"text": "x".repeat(1000)})).unwrap();
        let node =
            |id: &str| NodePreview { id: id.into(), node_type: NodeType::Source, rows_in: 0, rows_out: 8, sample: vec![record.clone(); 8] };
        let mut p = Preview {
            records_read: 8,
            rows_out: 8,
            failed_rows: 0,
            skipped_rows: 0,
            nodes: vec![node("a"), node("b")],
            validation_errors: vec![],
            error: None,
            truncated: false,
        };
        p.fit(9000);
        let bytes: usize = p.nodes.iter().map(|n| serde_json::to_vec(&n.sample).unwrap().len()).sum();
        assert!(p.truncated && bytes <= 9000 && p.nodes.iter().all(|n| n.sample.len() == 4), "{bytes}");
        p.truncated = false;
        p.fit(9000);
        assert!(!p.truncated, "what fits is left alone");
    }
}
