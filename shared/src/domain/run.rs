//! Runs: one execution of a pipeline, and its lifecycle.
//!
//! ```text
//!            claim (lease)              finish
//! pending ──────────────────> running ─────────> completed | completed_with_errors | failed
//!    │                          │  ▲
//!    │                          │  ├─ time budget used: checkpointed, continued by a follow-up
//!    │ cancel                   │  └─ lease expired, attempts left: taken over (attempt + 1)
//!    ▼                          ├─ cancel requested: stops at the next batch boundary ──> cancelled
//! cancelled                     └─ lease expired, no attempts left ──> failed (ATTEMPTS_EXHAUSTED)
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{PipelineId, RunId};
use super::tenant::TenantId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Completed,
    CompletedWithErrors,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const NAMES: &'static str = "pending, running, completed, completed_with_errors, failed, cancelled";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::CompletedWithErrors => "completed_with_errors",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Manual,
    Schedule,
    Api,
    /// Again, as an ended run was (`rerunOf`): the same pipeline version.
    Rerun,
    /// A past schedule slot, for a backfill (`backfillId`, `scheduledFor`).
    Backfill,
}

/// Every code a run can end with: the `error.code` clients see (the manual lists them, with
/// their causes, under "Runs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunErrorCode {
    /// The run's message could not be sent when it was triggered.
    EnqueueFailed,
    /// The worker stopped responding on each of its attempts.
    AttemptsExhausted,
    InvalidGraph,
    UnsupportedNode,
    ConnectorNotFound,
    SchemaNotFound,
    StorageError,
    UnsupportedConnector,
    InvalidConnectorConfig,
    InvalidNodeConfig,
    InvalidConfig,
    SourceBlocked,
    SourceError,
    ValidationFailed,
    WriteFailed,
    /// A partition failed, under `errorHandling: fail`, without an error of its own.
    PartitionFailed,
    /// The run outlasted its pipeline's `executionConfig.timeoutSeconds`.
    TimedOut,
}

impl RunErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnqueueFailed => "ENQUEUE_FAILED",
            Self::TimedOut => "TIMED_OUT",
            Self::AttemptsExhausted => "ATTEMPTS_EXHAUSTED",
            Self::InvalidGraph => "INVALID_GRAPH",
            Self::UnsupportedNode => "UNSUPPORTED_NODE",
            Self::ConnectorNotFound => "CONNECTOR_NOT_FOUND",
            Self::SchemaNotFound => "SCHEMA_NOT_FOUND",
            Self::StorageError => "STORAGE_ERROR",
            Self::UnsupportedConnector => "UNSUPPORTED_CONNECTOR",
            Self::InvalidConnectorConfig => "INVALID_CONNECTOR_CONFIG",
            Self::InvalidNodeConfig => "INVALID_NODE_CONFIG",
            Self::InvalidConfig => "INVALID_CONFIG",
            Self::SourceBlocked => "SOURCE_BLOCKED",
            Self::SourceError => "SOURCE_ERROR",
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::WriteFailed => "WRITE_FAILED",
            Self::PartitionFailed => "PARTITION_FAILED",
        }
    }
}

impl std::fmt::Display for RunErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RunErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    pub code: RunErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

impl RunError {
    pub fn new(code: RunErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), node_id: None }
    }

    pub fn at_node(mut self, node_id: &str) -> Self {
        self.node_id = Some(node_id.to_string());
        self
    }
}

/// One line of a run's short log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub stage: String,
    pub message: String,
    pub timestamp: String,
}

impl LogEntry {
    pub fn new(stage: &str, message: impl Into<String>) -> Self {
        Self { stage: stage.into(), message: message.into(), timestamp: super::now() }
    }
}

/// Entries of a run's log kept from its start and from its end; between them, one entry says how
/// many were left out. A run that continues a thousand times keeps a log of bounded size, so its
/// item never nears DynamoDB's 400 KB.
pub const LOG_HEAD: usize = 20;
pub const LOG_TAIL: usize = 30;
/// Longest message kept, in characters.
const LOG_MESSAGE: usize = 500;
const LOG_GAP: &str = "log";

/// The log as a run keeps it: see [`LOG_HEAD`].
pub fn cap_log(entries: Vec<LogEntry>) -> Vec<LogEntry> {
    let gap = |e: &LogEntry| e.stage == LOG_GAP;
    let mut left_out: u64 = entries.iter().filter(|e| gap(e)).filter_map(|e| e.message.split(' ').next()?.parse::<u64>().ok()).sum();
    let mut kept: Vec<LogEntry> = entries.into_iter().filter(|e| !gap(e)).collect();
    if kept.len() > LOG_HEAD + LOG_TAIL {
        let dropped = kept.len() - LOG_HEAD - LOG_TAIL;
        kept.drain(LOG_HEAD..LOG_HEAD + dropped);
        left_out += dropped as u64;
    }
    for entry in &mut kept {
        if let Some((cut, _)) = entry.message.char_indices().nth(LOG_MESSAGE) {
            entry.message.truncate(cut);
            entry.message.push('…');
        }
    }
    if left_out > 0 {
        let at = LOG_HEAD.min(kept.len());
        kept.insert(at, LogEntry::new(LOG_GAP, format!("{left_out} entries left out")));
    }
    kept
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: RunId,
    pub pipeline_id: PipelineId,
    pub status: RunStatus,
    pub trigger: Trigger,
    pub created_at: String,
    /// Attempts started so far (0 while pending).
    #[serde(default)]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<String>,
    /// The pipeline's version when the run was triggered: the graph it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_version: Option<u64>,
    /// The ended run this one runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RunId>,
    /// The backfill this run fills a slot of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_id: Option<super::ids::BackfillId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// Set on a running run that was asked to stop.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_requested: bool,
    /// What the engine reported (row counts, per-node counts, validation errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Value>,
    #[serde(default)]
    pub log: Vec<LogEntry>,
    /// Until when the worker holding the run is presumed alive (internal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<String>,
    /// Where a run that outlasted a worker's time budget resumes (internal): set together with
    /// `continuation`, which lets the next delivery take the run over without using an attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continuation: bool,
    /// Its webhook's delivery attempts, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<super::webhook::DeliveryAttempt>,
    /// Its webhook's first delivery is queued (internal): one chain of attempts per run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook_queued: bool,
    /// A partitioned run: how its partitions stand (absent for a run read by one worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<PartitionCounts>,
    /// Which of the tenant's runs-in-flight counters holds this run (internal; absent on runs
    /// made before the count was sharded, which shard 0 holds): its end gives its place back there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_shard: Option<u32>,
}

/// The run item's part in coordinating partitions: counters only, each moved once per partition
/// event (written, dispatched, finished), never per batch. A run with `lanes` counts dispatches
/// and ends in its lanes' items instead (`store::partitions`), so that no item takes every
/// partition's events; this item then moves only per listing page, on a failure, and at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PartitionCounts {
    /// Partitions written so far; `total` once the listing has ended.
    pub written: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
    /// Partitions sent to the queue (the first `dispatched` of them).
    pub dispatched: u32,
    /// Partitions that ended, whatever their end.
    pub finished: u32,
    /// A partition failed: the others stop, and the run fails.
    pub failed: bool,
    /// Where listing the source resumes, while it has not ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing: Option<String>,
    /// The lanes its partitions are counted in: partition `i` is lane `i % lanes`'s. 0: a run
    /// from before lanes, counted in `dispatched` and `finished` here.
    #[serde(skip_serializing_if = "is_zero")]
    pub lanes: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One part of a partitioned run: some of its source's objects, read by worker invocations of
/// its own, with its own lease, attempts and checkpoint (the same lifecycle as a run's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    pub run_id: RunId,
    pub index: u32,
    pub status: RunStatus,
    #[serde(default)]
    pub attempt: u32,
    pub keys: Vec<String>,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continuation: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// Its run's lanes ([`PartitionCounts::lanes`]): its end is counted in lane `index % lanes`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lanes: u32,
}

impl Partition {
    pub fn new(run_id: RunId, index: u32, lanes: u32, keys: Vec<String>, bytes: u64) -> Self {
        Partition {
            lanes,
            run_id,
            index,
            status: RunStatus::Pending,
            attempt: 0,
            keys,
            bytes,
            lease_until: None,
            checkpoint: None,
            continuation: false,
            stats: None,
            error: None,
        }
    }
}

impl Run {
    pub fn new(pipeline_id: PipelineId, trigger: Trigger, now: &str) -> Self {
        Self {
            id: RunId::generate(),
            pipeline_id,
            status: RunStatus::Pending,
            trigger,
            created_at: now.to_string(),
            attempt: 0,
            scheduled_for: None,
            pipeline_version: None,
            rerun_of: None,
            backfill_id: None,
            deliveries: Vec::new(),
            webhook_queued: false,
            started_at: None,
            completed_at: None,
            duration_ms: None,
            error: None,
            cancel_requested: false,
            stats: None,
            log: vec![],
            lease_until: None,
            checkpoint: None,
            continuation: false,
            partitions: None,
            in_flight_shard: None,
        }
    }

    /// The run as clients see it: its stats flattened in, internals left out.
    pub fn view(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            for internal in ["leaseUntil", "checkpoint", "continuation", "partitions", "webhookQueued", "inFlightShard"] {
                obj.remove(internal);
            }
            if let Some(Value::Object(stats)) = obj.remove("stats") {
                obj.extend(stats);
            }
        }
        v
    }
}

/// Asks the worker to announce a run that ended without one (a pending run cancelled, a run
/// out of attempts): `{"announce": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceMessage {
    pub announce: RunMessage,
}

/// What the run queue carries: just enough to find the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMessage {
    pub tenant_id: String,
    pub pipeline_id: PipelineId,
    pub run_id: RunId,
    /// For one partition of a partitioned run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
}

impl RunMessage {
    pub fn new(tenant: &TenantId, run: &Run) -> Self {
        Self { tenant_id: tenant.to_string(), pipeline_id: run.pipeline_id.clone(), run_id: run.id.clone(), partition: None }
    }

    pub fn for_partition(&self, index: u32) -> Self {
        RunMessage { partition: Some(index), ..self.clone() }
    }
}

/// What a worker sent a run (or one of its partitions) may do with it: the lifecycle rule of a
/// claim, decided from the item as read. Storage then makes the write it implies, conditioned on
/// the item being as read, so two workers never both win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimable {
    /// It has ended: nothing to do.
    Finished(RunStatus),
    /// A checkpointed attempt's follow-up: the same attempt goes on.
    Resume,
    /// Another worker holds a live lease.
    Busy,
    /// Its worker stopped on the last attempt allowed: it fails with `ATTEMPTS_EXHAUSTED`.
    Exhausted,
    /// Its worker's lease ran out: a new attempt takes over.
    TakeOver,
    /// Pending: an attempt starts.
    Start,
}

/// The claim rule: an ended item stays ended; a continuation resumes; a live lease is respected;
/// a lapsed one is taken over while attempts remain, and fails the item when none do.
pub fn claimable(
    status: RunStatus,
    continuation: bool,
    lease_until: Option<&str>,
    attempt: u32,
    now: &str,
    max_attempts: u32,
) -> Claimable {
    let lease_live = lease_until.is_some_and(|until| until > now);
    match status {
        status if status.is_finished() => Claimable::Finished(status),
        RunStatus::Running if continuation => Claimable::Resume,
        RunStatus::Running if lease_live => Claimable::Busy,
        RunStatus::Running if attempt >= max_attempts => Claimable::Exhausted,
        RunStatus::Running => Claimable::TakeOver,
        _ => Claimable::Start,
    }
}

/// The error of an item whose workers kept dying (`partition`: which one, in a partitioned run).
pub fn attempts_exhausted(attempts: u32, partition: Option<u32>) -> RunError {
    let what = partition.map_or(String::new(), |p| format!("partition {p}: "));
    RunError::new(RunErrorCode::AttemptsExhausted, format!("{what}the worker stopped responding on each of {attempts} attempts"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_the_lifecycle_rule() {
        let now = "2026-12-01T12:00:00.000Z";
        let (past, future) = (Some("2026-12-01T11:59:59.000Z"), Some("2026-12-01T12:00:30.000Z"));
        let rule = |status, continuation, lease, attempt| claimable(status, continuation, lease, attempt, now, 3);
        assert_eq!(rule(RunStatus::Pending, false, None, 0), Claimable::Start);
        assert_eq!(rule(RunStatus::Pending, false, None, 2), Claimable::Start, "a re-sent pending run starts");
        assert_eq!(rule(RunStatus::Running, false, future, 1), Claimable::Busy);
        assert_eq!(rule(RunStatus::Running, true, future, 1), Claimable::Resume, "a continuation goes on under its own lease");
        assert_eq!(rule(RunStatus::Running, false, past, 1), Claimable::TakeOver);
        assert_eq!(rule(RunStatus::Running, false, Some(now), 1), Claimable::TakeOver, "a lease ends at its instant");
        assert_eq!(rule(RunStatus::Running, false, past, 3), Claimable::Exhausted);
        assert_eq!(rule(RunStatus::Running, false, future, 3), Claimable::Busy, "the last attempt is never cut short");
        for ended in [RunStatus::Completed, RunStatus::CompletedWithErrors, RunStatus::Failed, RunStatus::Cancelled] {
            assert_eq!(rule(ended, true, past, 9), Claimable::Finished(ended));
        }
        assert_eq!(attempts_exhausted(3, Some(4)).message, "partition 4: the worker stopped responding on each of 3 attempts");
        assert_eq!(attempts_exhausted(2, None).code, RunErrorCode::AttemptsExhausted);
    }

    #[test]
    fn statuses_parse_and_know_when_they_are_final() {
        for s in ["pending", "running", "completed", "completed_with_errors", "failed", "cancelled"] {
            assert_eq!(RunStatus::parse(s).map(RunStatus::as_str), Some(s));
        }
        assert_eq!(RunStatus::parse("done"), None);
        assert!(!RunStatus::Running.is_finished() && RunStatus::Cancelled.is_finished());
    }

    #[test]
    fn the_log_keeps_its_first_and_last_entries_however_long_the_run() {
        let entries = |n: usize| (0..n).map(|i| LogEntry::new("step", format!("entry {i}"))).collect::<Vec<_>>();
        assert_eq!(cap_log(entries(10)).len(), 10);
        let mut log = cap_log(entries(100));
        assert_eq!(log.len(), LOG_HEAD + LOG_TAIL + 1);
        assert_eq!(log[LOG_HEAD].message, "50 entries left out");
        assert_eq!(log.last().unwrap().message, "entry 99");
        // Capped again with more appended, the count adds up and the newest stay.
        for _ in 0..1000 {
            log.extend(entries(3));
            log = cap_log(log);
        }
        assert_eq!(log.len(), LOG_HEAD + LOG_TAIL + 1);
        assert_eq!(log[LOG_HEAD].message, "3050 entries left out");
        assert_eq!(log[0].message, "entry 0");
        let long = cap_log(vec![LogEntry::new("x", "é".repeat(2000))]);
        assert_eq!(long[0].message.chars().count(), 501);
    }

    #[test]
    fn the_view_hides_the_lease_and_flattens_stats() {
        let mut run = Run::new(PipelineId::generate(), Trigger::Manual, "t");
        run.lease_until = Some("x".into());
        run.stats = Some(serde_json::json!({"rowsIn": 3}));
        let v = run.view();
        assert!(v.get("leaseUntil").is_none());
        assert_eq!(v["rowsIn"], 3);
        assert_eq!(v["status"], "pending");
    }
}
