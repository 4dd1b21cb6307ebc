//! The interface between the worker and an engine.

use futures::future::BoxFuture;
use serde_json::Value;

use super::execute::Stats;
use super::plan::Plan;
use super::source::Listing;
use crate::domain::connector::Connector;
use crate::domain::pipeline::Pipeline;
use crate::domain::run::{LogEntry, Run, RunError};
use crate::domain::schema::Schema;
use crate::domain::tenant::TenantId;

/// Everything an engine needs to execute one run, or one partition of it.
pub struct Job<'a> {
    pub tenant: &'a TenantId,
    pub run: &'a Run,
    pub pipeline: &'a Pipeline,
    pub connector: &'a Connector,
    pub schema: &'a Schema,
    pub plan: &'a Plan,
    /// Where this execution resumes (the run's, or its partition's, last checkpoint).
    pub checkpoint: Option<&'a Value>,
    /// A partition's share of the source; `None`: the whole source.
    pub scope: Option<Scope<'a>>,
}

/// One partition's share of a run's source: some of its objects.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub index: u32,
    pub keys: &'a [String],
}

/// Why an engine must stop at a batch boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A client cancelled the run.
    Cancelled,
    /// Another worker took the run over: this one must write nothing more.
    LeaseLost,
    /// Another partition of the run failed: the rest of the run's work is moot.
    Halted,
    /// The run outlasted its `timeoutSeconds`.
    TimedOut,
}

/// What an engine calls between batches: says whether to go on, and hears how far the run got.
pub trait Control: Send + Sync {
    /// At a batch boundary, with the run's counts so far (shown live on the run).
    fn checkpoint<'a>(&'a self, stats: &'a Stats) -> BoxFuture<'a, Result<(), Stop>>;

    /// Whether the worker's time budget is nearly used: the engine should checkpoint and
    /// return [`RunFailure::Suspended`] rather than be killed mid-write.
    fn should_yield(&self) -> bool {
        false
    }
}

/// A finished execution.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Some rows failed (validation): the run ends `completed_with_errors`.
    pub with_errors: bool,
    /// Counts and details shown on the run (`rowsIn`, `rowsOut`, ...).
    pub stats: Value,
    pub log: Vec<LogEntry>,
}

/// How an execution ended, other than with a report.
#[derive(Debug, Clone, PartialEq)]
pub enum RunFailure {
    Failed {
        error: RunError,
        stats: Option<Value>,
        log: Vec<LogEntry>,
    },
    Stopped(Stop),
    /// Out of time: resume from `checkpoint` (e.g. `{"recordsRead": n}`) with `stats` so far.
    Suspended {
        checkpoint: Value,
        stats: Value,
        log: Vec<LogEntry>,
    },
}

impl From<RunError> for RunFailure {
    fn from(error: RunError) -> Self {
        Self::Failed { error, stats: None, log: vec![] }
    }
}

pub trait Engine: Send + Sync {
    fn execute<'a>(&'a self, job: &'a Job<'a>, control: &'a dyn Control) -> BoxFuture<'a, Result<Report, RunFailure>>;

    /// One page of the connector's source in partitions of at most `group_bytes`, after `token`;
    /// `None` when the source does not partition (the default).
    fn list_partitions<'a>(
        &'a self,
        _connector: &'a Connector,
        _tenant: &'a TenantId,
        _group_bytes: u64,
        _token: Option<String>,
    ) -> BoxFuture<'a, Result<Option<Listing>, RunError>> {
        Box::pin(async { Ok(None) })
    }
}
