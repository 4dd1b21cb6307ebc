//! The interface between the worker and an engine.

use futures::future::BoxFuture;
use serde_json::Value;

use super::execute::Stats;
use super::plan::Plan;
use crate::domain::connector::Connector;
use crate::domain::pipeline::Pipeline;
use crate::domain::run::{LogEntry, Run, RunError};
use crate::domain::schema::Schema;
use crate::domain::tenant::TenantId;

/// Everything an engine needs to execute one run.
pub struct Job<'a> {
    pub tenant: &'a TenantId,
    pub run: &'a Run,
    pub pipeline: &'a Pipeline,
    pub connector: &'a Connector,
    pub schema: &'a Schema,
    pub plan: &'a Plan,
}

/// Why an engine must stop at a batch boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A client cancelled the run.
    Cancelled,
    /// Another worker took the run over: this one must write nothing more.
    LeaseLost,
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
}
