//! What a run reports: its counts, per node and in all, its first validation errors, and how
//! far it has read; summed over partitions for a partitioned run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::run::{Partition, RunStatus};

/// Why one field of a record does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldIssue {
    pub field: String,
    pub message: String,
}

/// Validation errors kept on a run.
const MAX_VALIDATION_ERRORS: usize = 20;

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
    /// In a partitioned run, rows number from 1 in each partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
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
    pub progress: Progress,
}

/// How far a run has read its source, for a user watching it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Progress {
    pub records_read: u64,
    pub bytes_read: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
}

impl Stats {
    /// Adds partition `index`'s counts to these: the run's counts are its partitions' sum, and
    /// its validation errors the first of theirs, in partition order.
    pub fn merge(&mut self, index: u32, other: Stats) {
        self.rows_in += other.rows_in;
        self.rows_out += other.rows_out;
        self.failed_rows += other.failed_rows;
        self.skipped_rows += other.skipped_rows;
        self.dead_letters += other.dead_letters;
        for (node, count) in other.node_counts {
            let sum = self.node_counts.entry(node).or_default();
            sum.rows_in += count.rows_in;
            sum.rows_out += count.rows_out;
        }
        let room = MAX_VALIDATION_ERRORS.saturating_sub(self.validation_errors.len());
        self.validation_errors
            .extend(other.validation_errors.into_iter().take(room).map(|e| ValidationError { partition: Some(index), ..e }));
        self.progress.records_read += other.progress.records_read;
        self.progress.bytes_read += other.progress.bytes_read;
    }

    /// Counts a failed row and keeps its first issues.
    pub fn fail(&mut self, row: u64, issues: &[FieldIssue]) {
        self.failed_rows += 1;
        for issue in issues {
            if self.validation_errors.len() < MAX_VALIDATION_ERRORS {
                self.validation_errors.push(ValidationError {
                    partition: None,
                    row,
                    field: issue.field.clone(),
                    message: issue.message.clone(),
                });
            }
        }
    }
}

/// How a run's partitions stand, as its detail shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub total: u32,
    pub pending: u32,
    pub running: u32,
    pub completed: u32,
    pub failed: u32,
    pub cancelled: u32,
}

/// The sum of the partitions' counts, and how many stand where.
pub fn totals(parts: &[Partition]) -> (Stats, Summary) {
    let mut stats = Stats::default();
    let mut summary = Summary { total: parts.len() as u32, ..Summary::default() };
    for part in parts {
        if let Some(s) = part.stats.clone().and_then(|v| serde_json::from_value::<Stats>(v).ok()) {
            stats.merge(part.index, s);
        }
        let slot = match part.status {
            RunStatus::Pending => &mut summary.pending,
            RunStatus::Running => &mut summary.running,
            RunStatus::Completed | RunStatus::CompletedWithErrors => &mut summary.completed,
            RunStatus::Failed => &mut summary.failed,
            RunStatus::Cancelled => &mut summary.cancelled,
        };
        *slot += 1;
    }
    (stats, summary)
}
