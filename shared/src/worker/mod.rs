//! The worker: takes a run from the queue through its lifecycle (see [`crate::domain::run`]).
//!
//! SQS delivers at least once and a worker can die at any line, so every step is a conditional
//! write that a duplicate, a late redelivery or a second worker cannot apply twice:
//! - a message whose run or pipeline is gone, or whose run already ended or is held by a live
//!   worker, is acknowledged and changes nothing (but a gone pipeline's leftover runs, which a
//!   delete cut short may leave, are removed);
//! - a purge message removes what a deleted pipeline or schema left (see `purge`);
//! - the run is claimed with a lease that a background task renews (see `lease`); a worker that dies
//!   stops renewing it, and a redelivery (or the scheduler's sweep) takes the run over with the
//!   next attempt, up to `max_attempts`, after which the run fails;
//! - only the attempt that holds the run may finish it;
//! - a run over a source that partitions goes out to its partitions, each run like a run of its
//!   own, and ends once, when its last partition does (see `partitions`).

mod generations;
mod lease;
mod partitions;
mod purge;
pub mod webhook;

pub use crate::domain::report::{totals, Summary};

use std::time::Instant;

use chrono::Utc;
use tracing::Instrument;

use crate::context::{App, Stores};
use crate::domain::backfill::BackfillMessage;
use crate::domain::connector::Connector;
use crate::domain::ids::PipelineId;
use crate::domain::pipeline::Pipeline;
use crate::domain::purge::PurgeMessage;
use crate::domain::run::RunErrorCode;
use crate::domain::run::{cap_log, AnnounceMessage, LogEntry, Run, RunError, RunMessage, RunStatus};
use crate::domain::schema::Schema;
use crate::domain::stamp;
use crate::domain::tenant::TenantId;
use crate::domain::webhook::WebhookMessage;
use crate::engine::job::{Engine, Job, Report, RunFailure, Stop};
use crate::engine::plan::Plan;
use crate::store::{Claim, ClaimTerms, Finish, StoreError};
use lease::{Held, Lease};

pub use crate::settings::RunSettings;

impl RunSettings {
    /// These settings for an invocation that must end by `deadline_ms` (epoch milliseconds, as
    /// Lambda gives it): the time budget shrinks to leave [`DEADLINE_MARGIN`] for the last batch,
    /// the checkpoint and the follow-up message.
    pub fn within_deadline(&self, deadline_ms: u64, now_ms: u64) -> RunSettings {
        let remaining = std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(DEADLINE_MARGIN);
        RunSettings { time_budget: self.time_budget.min(remaining), ..self.clone() }
    }
}

/// What a worker keeps of its invocation's time after its budget.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(20);

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This worker ran the run to this end.
    Finished(RunStatus),
    /// Nothing to do (acknowledged); the reason is logged.
    Ignored(&'static str),
    /// At `maxConcurrentRuns`: the run stays pending until a slot frees (acknowledged).
    Waiting,
    /// Out of time budget: checkpointed, and a follow-up message continues it.
    Suspended,
    /// The run went out to its partitions (this many so far).
    FannedOut(u32),
    /// A partition of a run ended so; the run ends when its last partition does.
    PartitionEnded(RunStatus),
    /// A partitioned run was looked over: lost messages sent again, the end made if due.
    Coordinated,
    /// A purge deleted this many items; when not `done`, a new message goes on with the rest.
    Purged { deleted: u64, done: bool },
    /// A backfill's step.
    Backfilled(crate::backfill::Stepped),
    /// A webhook delivery's attempt.
    Delivered { ok: bool, attempt: u32 },
    /// A run that ended without a worker was announced.
    Announced,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Never processable: left to SQS, which moves it to the dead-letter queue.
    #[error("malformed run message: {0}")]
    Malformed(String),
    /// Worth retrying: the message is redelivered.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Worth retrying too.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    #[error(transparent)]
    Event(#[from] crate::events::EventError),
}

/// Handles one message body from the run queue.
pub async fn process_message(app: &App, engine: &dyn Engine, settings: &RunSettings, body: &str) -> Result<Outcome, WorkerError> {
    if let Ok(PurgeMessage { purge: what }) = serde_json::from_str::<PurgeMessage>(body) {
        return purge::purge(app, settings, &what).await;
    }
    if let Ok(AnnounceMessage { announce: ended }) = serde_json::from_str::<AnnounceMessage>(body) {
        let tenant = TenantId::parse(&ended.tenant_id).map_err(WorkerError::Malformed)?;
        let Some(pipeline) = app.store().get::<Pipeline>(&tenant, ended.pipeline_id.as_str()).await? else {
            return Ok(Outcome::Ignored("pipeline no longer exists"));
        };
        announce(app, &tenant, &pipeline, &ended.run_id).await?;
        return Ok(Outcome::Announced);
    }
    if let Ok(WebhookMessage { webhook }) = serde_json::from_str::<WebhookMessage>(body) {
        return webhook::deliver(app, settings, &webhook).await;
    }
    if let Ok(BackfillMessage { backfill: step }) = serde_json::from_str::<BackfillMessage>(body) {
        let tenant = TenantId::parse(&step.tenant_id).map_err(WorkerError::Malformed)?;
        return match crate::backfill::step(app, &tenant, &step, settings.backfill_step_delay).await {
            Ok(stepped) => Ok(Outcome::Backfilled(stepped)),
            Err(crate::backfill::BackfillError::Store(e)) => Err(e.into()),
            Err(crate::backfill::BackfillError::Queue(e)) => Err(e.into()),
        };
    }
    let message: RunMessage = serde_json::from_str(body).map_err(|e| WorkerError::Malformed(e.to_string()))?;
    let tenant = TenantId::parse(&message.tenant_id).map_err(WorkerError::Malformed)?;
    let span = tracing::info_span!("run", tenant = %tenant, run_id = %message.run_id);
    let outcome = process(app, engine, settings, &tenant, &message).instrument(span).await?;
    tracing::info!(?outcome, "run message handled");
    Ok(outcome)
}

async fn process(
    app: &App,
    engine: &dyn Engine,
    settings: &RunSettings,
    tenant: &TenantId,
    message: &RunMessage,
) -> Result<Outcome, WorkerError> {
    let Some(pipeline) = app.store().get::<Pipeline>(tenant, message.pipeline_id.as_str()).await? else {
        // A delete cut short leaves runs that the sweep would send again forever: whatever is
        // left under a pipeline that is gone (read consistently) is removed here.
        app.store().delete_runs(tenant, &message.pipeline_id).await?;
        return Ok(Outcome::Ignored("pipeline no longer exists"));
    };
    let run = app.store().get_run(tenant, &pipeline.id, &message.run_id).await?;
    // A run runs the version it was triggered at, even if the pipeline changed since.
    let pipeline = match run.as_ref().and_then(|r| r.pipeline_version) {
        Some(v) if v != pipeline.revision => match app.store().pipeline_version(tenant, &pipeline.id, v).await? {
            Some(saved) => saved.pipeline,
            None => pipeline,
        },
        _ => pipeline,
    };
    if let Some(index) = message.partition {
        return partitions::run_partition(app, engine, settings, tenant, &pipeline, message, index).await;
    }
    // A run out with its partitions is coordinated, never claimed again.
    if let Some(run) = run {
        if run.partitions.is_some() && run.status == RunStatus::Running {
            return partitions::coordinate(app, engine, settings, tenant, &pipeline, &run, message).await;
        }
    }
    let now = Utc::now();
    let max_running = pipeline.execution_config.max_concurrent_runs;
    let (now_stamp, lease_until) = (stamp(now), stamp(now + settings.lease));
    let terms = ClaimTerms { now: &now_stamp, lease_until: &lease_until, max_attempts: settings.max_attempts, max_running };
    let claim = app.store().claim_run(tenant, &pipeline.id, &message.run_id, &terms).await?;
    let run = match claim {
        Claim::Claimed(run) => {
            if run.attempt == 1 && run.checkpoint.is_none() {
                crate::metrics::run_started(tenant);
            }
            run
        }
        Claim::Missing => return Ok(Outcome::Ignored("run no longer exists")),
        Claim::Finished(_) => {
            // Its end may not have been announced (the message comes back when the emit failed).
            announce(app, tenant, &pipeline, &message.run_id).await?;
            return Ok(Outcome::Ignored("run already ended"));
        }
        Claim::Busy => return Ok(Outcome::Ignored("run is held by a live worker")),
        Claim::AtCapacity => return Ok(Outcome::Waiting),
        Claim::Exhausted => {
            release_slot(app, tenant, &pipeline).await;
            return Ok(Outcome::Finished(RunStatus::Failed));
        }
    };
    // Cosmetic for the pipeline view: a failure here must not cost the run its attempt.
    if let Err(e) = app.store().set_latest_status(tenant, &pipeline.id, &run.id, RunStatus::Running).await {
        tracing::warn!(cause = %e, "could not mark the pipeline's latest run running");
    }
    // A first attempt over a source that partitions sends it out to its partitions.
    if run.checkpoint.is_none() {
        if let Some(outcome) = partitions::fan_out(app, engine, settings, tenant, &pipeline, &run, message).await? {
            return Ok(outcome);
        }
    }
    let started = Instant::now();
    let result = execute(app, engine, settings, tenant, &pipeline, &run).await;
    let (status, error, stats, mut log) = match result {
        Ok(report) => {
            let status = if report.with_errors { RunStatus::CompletedWithErrors } else { RunStatus::Completed };
            (status, None, Some(report.stats), report.log)
        }
        Err(RunFailure::Failed { error, stats, log }) => (RunStatus::Failed, Some(error), stats, log),
        Err(RunFailure::Stopped(Stop::Cancelled | Stop::Halted)) => (RunStatus::Cancelled, None, None, vec![]),
        Err(RunFailure::Stopped(Stop::LeaseLost)) => return Ok(Outcome::Ignored("lease lost to another attempt")),
        Err(RunFailure::Stopped(Stop::TimedOut)) => (RunStatus::Failed, Some(timed_out(&pipeline)), None, vec![]),
        Err(RunFailure::Suspended { checkpoint, stats, mut log }) => {
            log.push(LogEntry::new(
                "checkpoint",
                format!("time budget used after {} ms; continuing in a follow-up", started.elapsed().as_millis()),
            ));
            let log = cap_log(run.log.iter().cloned().chain(log).collect());
            if !app.store().suspend_run(tenant, &run, &checkpoint, &stats, &log, &crate::domain::now()).await? {
                return Ok(Outcome::Ignored("lease lost to another attempt"));
            }
            // If this send is lost, the lapsed lease brings the run back through the sweep.
            if let Err(e) = app.queue.send(message).await {
                tracing::warn!(cause = %e, "follow-up not sent; the sweep will resume the run");
            }
            return Ok(Outcome::Suspended);
        }
    };
    let shown = generations::show(app, tenant, &pipeline, &run.id, status).await?;
    let duration_ms = started.elapsed().as_millis() as u64;
    log.push(match &error {
        Some(e) => LogEntry::new("finish", format!("failed after {duration_ms} ms: {}", e.message)),
        None => LogEntry::new("finish", format!("{} after {duration_ms} ms", status.as_str())),
    });
    let log = cap_log(run.log.iter().cloned().chain(log).collect());
    let finish = Finish { status, error, stats, log, now: crate::domain::now(), duration_ms };
    if !app.store().finish_run(tenant, &run, &finish).await? {
        return Ok(Outcome::Ignored("lease lost to another attempt"));
    }
    crate::metrics::run_finished(tenant, status, finish.stats.as_ref(), duration_ms);
    app.store().set_latest_status(tenant, &pipeline.id, &run.id, status).await?;
    release_slot(app, tenant, &pipeline).await;
    generations::tidy(app, tenant, &pipeline, &run.id, status, shown).await;
    announce(app, tenant, &pipeline, &run.id).await?;
    Ok(Outcome::Finished(status))
}

/// Emits the `Run Finished` event of a run that has ended (`events`), and queues its webhook's
/// first delivery. A failure fails the message, which comes back, finds the run ended, and
/// does both again: at least once.
pub(super) async fn announce(
    app: &App,
    tenant: &TenantId,
    pipeline: &Pipeline,
    run: &crate::domain::ids::RunId,
) -> Result<(), WorkerError> {
    let Some(run) = app.store().get_run(tenant, &pipeline.id, run).await? else { return Ok(()) };
    if !run.status.is_finished() {
        return Ok(());
    }
    if let Some(events) = &app.events {
        events.run_finished(tenant, &run).await?;
    }
    webhook::queue_first(app, tenant, &pipeline.id, &run).await
}

/// The error of a run that outlasted its pipeline's `timeoutSeconds`.
pub(super) fn timed_out(pipeline: &Pipeline) -> RunError {
    let seconds = pipeline.execution_config.timeout_seconds.unwrap_or_default();
    RunError::new(RunErrorCode::TimedOut, format!("the run took longer than its timeoutSeconds ({seconds} s)"))
}

/// What a run (or a partition) executes: its graph checked into a plan, and the connector and
/// schema it is bound to.
pub(super) async fn load(app: &App, tenant: &TenantId, pipeline: &Pipeline) -> Result<(Plan, Connector, Schema), RunFailure> {
    let plan = Plan::build(&pipeline.graph())?;
    let store_error = |e: StoreError| RunFailure::from(RunError::new(RunErrorCode::StorageError, e.to_string()));
    let connector = app.store().get::<Connector>(tenant, pipeline.connector_id.as_str()).await.map_err(store_error)?;
    let connector = connector
        .ok_or_else(|| RunError::new(RunErrorCode::ConnectorNotFound, format!("connector {} no longer exists", pipeline.connector_id)))?;
    let schema = app.store().get::<Schema>(tenant, pipeline.schema_id.as_str()).await.map_err(store_error)?;
    let schema =
        schema.ok_or_else(|| RunError::new(RunErrorCode::SchemaNotFound, format!("schema {} no longer exists", pipeline.schema_id)))?;
    Ok((plan, connector, schema))
}

/// Loads what the run executes and runs the engine.
async fn execute(
    app: &App,
    engine: &dyn Engine,
    settings: &RunSettings,
    tenant: &TenantId,
    pipeline: &Pipeline,
    run: &Run,
) -> Result<Report, RunFailure> {
    let (plan, connector, schema) = load(app, tenant, pipeline).await?;
    let job = Job {
        tenant,
        run,
        pipeline,
        connector: &connector,
        schema: &schema,
        plan: &plan,
        checkpoint: run.checkpoint.as_ref(),
        scope: None,
    };
    let lease = Lease::hold(
        app,
        tenant,
        Held::Run(Box::new(run.clone())),
        settings,
        lease::timeout_at(run, pipeline.execution_config.timeout_seconds),
    );
    engine.execute(&job, &lease).await
}

/// A slot freed: with a concurrency limit, the oldest waiting run is sent again to take it.
pub(super) async fn release_slot(app: &App, tenant: &TenantId, pipeline: &Pipeline) {
    if pipeline.execution_config.max_concurrent_runs.is_none() {
        return;
    }
    if let Err(e) = resend_oldest_pending(app, tenant, &pipeline.id).await {
        tracing::warn!(cause = %e, "could not wake the next waiting run; the sweep will");
    }
}

async fn resend_oldest_pending(
    app: &App,
    tenant: &TenantId,
    pipeline: &PipelineId,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Some(run) = app.store().oldest_pending(tenant, pipeline).await? else {
        return Ok(());
    };
    app.queue.send(&RunMessage::new(tenant, &run)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_shrinks_to_fit_the_invocation_deadline() {
        let settings = RunSettings::default();
        let now = 1_000_000;
        assert_eq!(settings.within_deadline(now + 300_000, now).time_budget, settings.time_budget, "a far deadline keeps the budget");
        assert_eq!(settings.within_deadline(now + 50_000, now).time_budget, std::time::Duration::from_secs(30));
        assert_eq!(settings.within_deadline(now + 5_000, now).time_budget, std::time::Duration::ZERO);
        assert_eq!(settings.within_deadline(now - 1, now).time_budget, std::time::Duration::ZERO);
    }
}
