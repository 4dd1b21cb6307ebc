//! A backfill's way: made by the API with its first step queued, stepped by the worker until
//! every slot has a run, cancelled as a whole by the API. The model and its rules are
//! [`crate::domain::backfill`].
//!
//! A step reads the backfill at the version its message names, makes the next runs while there
//! is room (the slot markers make each slot's run once), saves the new version with the claim
//! to queue its successor, then queues it (delayed). Only the step whose save wins sends, so
//! duplicate deliveries never fork the chain; a send that fails gives the claim back and fails
//! the message, whose redelivery sends it. A step whose save loses to a cancel cancels the runs
//! it made.

use crate::context::Queues;
use crate::domain::backfill::{Backfill, BackfillMessage, BackfillStatus, BackfillStep};
use crate::domain::ids::{BackfillId, PipelineId, RunId};
use crate::domain::now;
use crate::domain::pipeline::Pipeline;
use crate::domain::tenant::TenantId;
use crate::store::{CancelRun, StoreError};
use crate::trigger::{trigger_backfill, TriggerError};

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stepped {
    /// Runs made and slots skipped this step; `done` when no slot is left.
    Advanced { created: u32, skipped: u32, done: bool },
    /// The backfill ended, is gone, or moved past this step's version.
    Stale,
}

/// The message of the step that follows `backfill` at its current version.
pub fn next_step(tenant: &TenantId, backfill: &Backfill) -> BackfillMessage {
    BackfillMessage {
        backfill: BackfillStep {
            tenant_id: tenant.to_string(),
            pipeline_id: backfill.pipeline_id.clone(),
            backfill_id: backfill.id.clone(),
            at: backfill.version,
        },
    }
}

/// One step of a backfill; the next, when slots remain, waits `delay` in the queue.
pub async fn step(
    app: &dyn Queues,
    tenant: &TenantId,
    message: &BackfillStep,
    delay: std::time::Duration,
) -> Result<Stepped, BackfillError> {
    let store = app.store();
    let Some(read) = store.get_backfill(tenant, &message.pipeline_id, &message.backfill_id).await? else { return Ok(Stepped::Stale) };
    if read.status != BackfillStatus::Running {
        return Ok(Stepped::Stale);
    }
    // This message's step was done and saved, but its successor was never queued (the send
    // failed and gave its claim back): queue it now.
    if read.version == message.at + 1 && read.queued < read.version {
        queue_next(app, tenant, &read, delay).await?;
        return Ok(Stepped::Stale);
    }
    if read.version != message.at {
        return Ok(Stepped::Stale);
    }
    // A deleted pipeline's purge removes the backfill with its runs.
    let Some(pipeline) = store.get::<Pipeline>(tenant, message.pipeline_id.as_str()).await? else { return Ok(Stepped::Stale) };
    let window = Backfill::window(&pipeline);
    let mut next = read.clone();
    let (mut created, mut skipped, mut made) = (0, 0, Vec::new());
    for slot in read.remaining() {
        match trigger_backfill(app, tenant, &pipeline, &read.id, slot, window).await {
            Ok(run) => made.push(run.id),
            // Made by this backfill at a step that crashed before saving: ours all the same.
            Err(TriggerError::SlotTaken { backfill: Some(by), run: Some(run) }) if by == read.id.as_str() => {
                made.extend(RunId::parse(&run))
            }
            Err(TriggerError::SlotTaken { .. }) => skipped += 1,
            // No room now: the next step looks again.
            Err(TriggerError::AtCapacity(_) | TriggerError::TenantAtQuota(_)) => break,
            Err(TriggerError::PipelineGone) => return Ok(Stepped::Stale),
            Err(TriggerError::Store(e)) => return Err(e.into()),
            Err(e @ (TriggerError::KeyTaken(_) | TriggerError::NotQueued { .. })) => {
                return Err(StoreError::Corrupt(format!("a backfill run was refused unexpectedly: {e}")).into())
            }
        }
        next.done += 1;
    }
    created += made.len() as u32;
    next.run_ids.extend(made.iter().cloned());
    next.created += created;
    next.skipped += skipped;
    next.version = read.version + 1;
    // The successor's send is claimed in the save itself: only the step whose save wins sends.
    next.queued = next.version;
    next.updated_at = now();
    let done = next.remaining().is_empty();
    if done {
        next.status = BackfillStatus::Completed;
    }
    if !store.save_backfill(tenant, &next, read.version).await? {
        // Another step or a cancel got there first. A cancel did not know these runs: stop them.
        let now_is = store.get_backfill(tenant, &read.pipeline_id, &read.id).await?;
        if now_is.is_some_and(|b| b.status == BackfillStatus::Cancelled) {
            cancel_runs(app, tenant, &read.pipeline_id, &made).await?;
        }
        return Ok(Stepped::Stale);
    }
    if !done {
        send_next(app, tenant, &next, delay).await?;
    }
    tracing::info!(backfill_id = %read.id, created, skipped, done, "backfill stepped");
    Ok(Stepped::Advanced { created, skipped, done })
}

/// Claims and sends the step at `backfill`'s version.
async fn queue_next(app: &dyn Queues, tenant: &TenantId, backfill: &Backfill, delay: std::time::Duration) -> Result<(), BackfillError> {
    if app.store().claim_step(tenant, backfill, backfill.version).await? {
        send_next(app, tenant, backfill, delay).await?;
    }
    Ok(())
}

/// Sends the claimed step at `backfill`'s version; a failed send gives the claim back (so the
/// redelivered message sends it) and fails the message.
async fn send_next(app: &dyn Queues, tenant: &TenantId, backfill: &Backfill, delay: std::time::Duration) -> Result<(), BackfillError> {
    if let Err(e) = app.queue().send_delayed(&next_step(tenant, backfill), delay.as_secs().min(900) as i32).await {
        app.store().release_step(tenant, backfill, backfill.version).await?;
        return Err(e.into());
    }
    Ok(())
}

/// How a cancel went.
pub enum Cancelled {
    /// Cancelled now, or before.
    Cancelled(Backfill),
    /// It had made every run already.
    Completed(Backfill),
    Missing,
}

/// Cancels a backfill: no more runs are made, its pending runs are cancelled and its running
/// ones asked to stop. Cancelling again sweeps its runs again (a cancel cut short finishes).
pub async fn cancel(app: &dyn Queues, tenant: &TenantId, pipeline: &PipelineId, id: &BackfillId) -> Result<Cancelled, StoreError> {
    let store = app.store();
    for _ in 0..5 {
        let Some(read) = store.get_backfill(tenant, pipeline, id).await? else { return Ok(Cancelled::Missing) };
        let mut next = read.clone();
        match read.status {
            BackfillStatus::Completed => return Ok(Cancelled::Completed(read)),
            BackfillStatus::Cancelled => {}
            BackfillStatus::Running => {
                next.status = BackfillStatus::Cancelled;
                next.version = read.version + 1;
                next.updated_at = now();
                if !store.save_backfill(tenant, &next, read.version).await? {
                    continue;
                }
            }
        }
        // Its saved runs, and any a step made but never saved (a crash): their slot markers
        // name this backfill. Runs a racing step makes after this are cancelled by that step.
        let mut runs = next.run_ids.clone();
        for (run, by) in store.slot_runs(tenant, pipeline, next.unsaved_slots()).await? {
            if by.as_deref() == Some(id.as_str()) && !runs.contains(&run) {
                runs.push(run);
            }
        }
        let stopped = cancel_runs(app, tenant, pipeline, &runs).await?;
        if stopped == 0 {
            return Ok(Cancelled::Cancelled(next));
        }
        let counted = Backfill { cancelled_runs: next.cancelled_runs + stopped, version: next.version + 1, ..next.clone() };
        if store.save_backfill(tenant, &counted, next.version).await? {
            return Ok(Cancelled::Cancelled(counted));
        }
        return Ok(Cancelled::Cancelled(next));
    }
    Err(StoreError::Unavailable { op: "PutItem", detail: "the backfill kept changing; retry".into() })
}

/// Cancels those of `runs` still pending or running (16 at a time): how many it stopped.
async fn cancel_runs(app: &dyn Queues, tenant: &TenantId, pipeline: &PipelineId, runs: &[RunId]) -> Result<u32, StoreError> {
    let at = now();
    let mut stopped = 0;
    for chunk in runs.chunks(16) {
        let results = futures::future::join_all(chunk.iter().map(|run| app.store().cancel_run(tenant, pipeline, run, &at))).await;
        for result in results {
            match result? {
                // Ended here, not by a worker: the worker is asked to announce it.
                CancelRun::Cancelled(run) => {
                    app.queue().announce(tenant, &run).await;
                    stopped += 1;
                }
                CancelRun::Requested(_) => stopped += 1,
                CancelRun::Finished(_) | CancelRun::Missing => {}
            }
        }
    }
    Ok(stopped)
}
