//! Starting a run, by hand or by the schedule: write it `pending`, then enqueue it.
//!
//! The write comes first: a run that exists but whose message was lost is found by the
//! scheduler's sweep (pending too long) and sent again; a message without a run could not be.
//! If the send fails outright the run is marked `failed` at once, never left `pending`.

use crate::context::Queues;
use crate::domain::pipeline::{Overlap, Pipeline};
use crate::domain::run::RunErrorCode;
use crate::domain::run::{Run, RunError, RunMessage, Trigger};
use crate::domain::tenant::TenantId;
use crate::domain::{now, stamp};
use crate::store::{CreateRun, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("the pipeline does not exist")]
    PipelineGone,
    #[error("the pipeline already has {0} active runs")]
    AtCapacity(u32),
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

/// Creates a pending run of `pipeline` and enqueues it. With `overlap: skip` and
/// `maxConcurrentRuns` reached, nothing is created (`AtCapacity`).
pub async fn trigger(
    app: &dyn Queues,
    tenant: &TenantId,
    pipeline: &Pipeline,
    how: Trigger,
    slot: Option<Slot<'_>>,
) -> Result<Run, TriggerError> {
    let config = &pipeline.execution_config;
    let skip_at = config.max_concurrent_runs.filter(|_| config.overlap() == Overlap::Skip);
    let mut run = Run::new(pipeline.id.clone(), how, &now());
    let next = slot.as_ref().map(|s| (s.slot, s.next.map(stamp)));
    run.scheduled_for = next.as_ref().map(|(slot, _)| slot.to_string());
    let claim = next.as_ref().map(|(slot, next)| (*slot, next.as_deref()));
    match app.store().create_run(tenant, &run, skip_at, claim).await? {
        CreateRun::Created => {}
        CreateRun::PipelineGone => return Err(TriggerError::PipelineGone),
        CreateRun::AtCapacity => return Err(TriggerError::AtCapacity(skip_at.unwrap_or_default())),
    }
    if let Err(e) = app.queue().send(&RunMessage::new(tenant, &run)).await {
        let error = RunError::new(RunErrorCode::EnqueueFailed, "the run could not be queued");
        app.store().fail_pending_run(tenant, &run, error, &now()).await?;
        return Err(TriggerError::NotQueued { run: Box::new(run), cause: e.to_string() });
    }
    tracing::info!(run_id = %run.id, pipeline_id = %pipeline.id, trigger = ?how, "run queued");
    Ok(run)
}
