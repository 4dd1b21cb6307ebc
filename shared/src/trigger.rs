//! Starting a run, by hand or by the schedule: write it `pending`, then enqueue it.
//!
//! The write comes first: a run that exists but whose message was lost is found by the
//! scheduler's sweep (pending too long) and sent again; a message without a run could not be.
//! If the send of a manual trigger fails outright the run is marked `failed` at once and the
//! client told to retry; a schedule's run stays `pending` for the sweep, as no client retries it.
//!
//! A trigger under an `Idempotency-Key` saves its reply in the run's own transaction
//! ([`crate::idempotency`]): a retry finds it there, and no run is ever made twice.

use crate::context::Queues;
use crate::domain::ids::BackfillId;
use crate::domain::pipeline::{Overlap, Pipeline};
use crate::domain::run::RunErrorCode;
use crate::domain::run::{Run, RunError, RunMessage, Trigger};
use crate::domain::tenant::TenantId;
use crate::domain::{now, stamp};
use crate::idempotency::Claim;
use crate::store::{CreateRun, IdempotencyRecord, SavedReply, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("the pipeline does not exist")]
    PipelineGone,
    #[error("the pipeline already has {0} active runs")]
    AtCapacity(u32),
    #[error("the tenant already has {0} runs pending or running")]
    TenantAtQuota(u32),
    /// A live record held the idempotency key: nothing was written; answer from it.
    #[error("the idempotency key is taken")]
    KeyTaken(Box<IdempotencyRecord>),
    /// The slot already has a run (`backfill`: the backfill that made it, if one did).
    #[error("the slot already has a run")]
    SlotTaken { backfill: Option<String>, run: Option<String> },
    #[error("the run could not be queued: {cause}")]
    NotQueued { run: Box<Run>, cause: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A schedule slot being fired: the pipeline's `nextRunAt` must still be `slot`.
pub struct Slot<'a> {
    pub slot: &'a str,
    pub next: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a manual trigger answers, and a replay of it: 201 and the run.
pub fn created(run: &Run) -> (u16, serde_json::Value) {
    (201, run.view())
}

/// Creates a pending run of `pipeline` and enqueues it; with `rerun_of`, a run of that ended
/// run's pipeline version. With `overlap: skip` and
/// `maxConcurrentRuns` reached, nothing is created (`AtCapacity`). Under `claim`, the reply
/// ([`created`]) is saved with the run.
pub async fn trigger(
    app: &dyn Queues,
    tenant: &TenantId,
    pipeline: &Pipeline,
    how: Trigger,
    slot: Option<Slot<'_>>,
    claim: Option<&Claim>,
    rerun_of: Option<&Run>,
) -> Result<Run, TriggerError> {
    let slot_taken = slot.is_some();
    let (run, saved) = create(app, tenant, pipeline, how, slot, claim, rerun_of).await?;
    if let Err(e) = app.queue().send(&RunMessage::new(tenant, &run)).await {
        // A schedule's slot has no client to retry it: its run stays pending, and the sweep
        // sends it again (`RUN_PENDING_RESEND_SECONDS`), so the slot is neither lost nor doubled.
        if slot_taken {
            tracing::warn!(run_id = %run.id, cause = %e, "scheduled run not queued; the sweep will send it");
            return Ok(run);
        }
        let error = RunError::new(RunErrorCode::EnqueueFailed, "the run could not be queued");
        app.store().fail_pending_run(tenant, &run, error, &now()).await?;
        // The client is told to retry: its retry must trigger again, not replay this failure.
        if let Some(saved) = &saved {
            app.store().retract_idempotent(tenant, &saved.key, saved.record.body.as_deref().unwrap_or_default()).await?;
        }
        return Err(TriggerError::NotQueued { run: Box::new(run), cause: e.to_string() });
    }
    tracing::info!(run_id = %run.id, pipeline_id = %pipeline.id, trigger = ?how, "run queued");
    Ok(run)
}

/// Writes the pending run of a schedule's `slot`, claiming the slot, without sending it: the
/// scheduler sends its runs in batches, and one whose send fails stays pending for the sweep.
pub async fn schedule(app: &dyn Queues, tenant: &TenantId, pipeline: &Pipeline, slot: Slot<'_>) -> Result<Run, TriggerError> {
    create(app, tenant, pipeline, Trigger::Schedule, Some(slot), None, None).await.map(|(run, _)| run)
}

/// Writes the pending run (and the reply under `claim`): [`trigger`] without the send.
async fn create(
    app: &dyn Queues,
    tenant: &TenantId,
    pipeline: &Pipeline,
    how: Trigger,
    slot: Option<Slot<'_>>,
    claim: Option<&Claim>,
    rerun_of: Option<&Run>,
) -> Result<(Run, Option<SavedReply>), TriggerError> {
    let config = &pipeline.execution_config;
    let skip_at = config.max_concurrent_runs.filter(|_| config.overlap() == Overlap::Skip);
    let mut run = pending(pipeline, how);
    if let Some(first) = rerun_of {
        run.rerun_of = Some(first.id.clone());
        run.pipeline_version = first.pipeline_version.or(run.pipeline_version);
    }
    let next = slot.as_ref().map(|s| (s.slot, s.next.map(stamp)));
    run.scheduled_for = next.as_ref().map(|(slot, _)| slot.to_string());
    let schedule = next.as_ref().map(|(slot, next)| (*slot, next.as_deref()));
    let saved = claim.map(|c| {
        let (status, body) = created(&run);
        c.save(status, body.to_string())
    });
    write(app, tenant, &mut run, skip_at, schedule, saved.as_ref()).await?;
    Ok((run, saved))
}

/// A backfill's run of the past slot `slot`, made only while fewer than `window` runs of the
/// pipeline are pending or running, and only if the slot has no run yet. A run whose message
/// cannot be sent stays pending for the sweep, as a scheduled one does.
pub async fn trigger_backfill(
    app: &dyn Queues,
    tenant: &TenantId,
    pipeline: &Pipeline,
    backfill: &BackfillId,
    slot: &str,
    window: u32,
) -> Result<Run, TriggerError> {
    let mut run = pending(pipeline, Trigger::Backfill);
    run.scheduled_for = Some(slot.to_string());
    run.backfill_id = Some(backfill.clone());
    write(app, tenant, &mut run, Some(window), None, None).await?;
    if let Err(e) = app.queue().send(&RunMessage::new(tenant, &run)).await {
        tracing::warn!(run_id = %run.id, cause = %e, "backfill run not queued; the sweep will send it");
    }
    Ok(run)
}

/// A new pending run of the pipeline's current version.
fn pending(pipeline: &Pipeline, how: Trigger) -> Run {
    let mut run = Run::new(pipeline.id.clone(), how, &now());
    run.pipeline_version = Some(pipeline.revision);
    run
}

/// Writes `run` pending: refused with `skip_at` of the pipeline's runs live, at the tenant's
/// runs-in-flight quota, or on a taken slot or key.
async fn write(
    app: &dyn Queues,
    tenant: &TenantId,
    run: &mut Run,
    skip_at: Option<u32>,
    schedule: Option<(&str, Option<&str>)>,
    saved: Option<&SavedReply>,
) -> Result<(), TriggerError> {
    let max_in_flight = app.quotas().runs_in_flight;
    match app.store().create_run(tenant, run, skip_at, max_in_flight, schedule, saved).await? {
        CreateRun::Created => Ok(()),
        CreateRun::PipelineGone => Err(TriggerError::PipelineGone),
        CreateRun::AtCapacity => Err(TriggerError::AtCapacity(skip_at.unwrap_or_default())),
        CreateRun::TenantAtQuota => Err(TriggerError::TenantAtQuota(max_in_flight)),
        CreateRun::KeyTaken(record) => Err(TriggerError::KeyTaken(record)),
        CreateRun::SlotTaken { backfill, run } => Err(TriggerError::SlotTaken { backfill, run }),
    }
}
