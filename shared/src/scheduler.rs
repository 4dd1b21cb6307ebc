//! The scheduler's tick (EventBridge, every minute): fires due schedules and sweeps runs.
//!
//! - Due pipelines come from the sharded `DUE` index, never a Scan. Each due slot is claimed by
//!   the transaction that creates its run (conditioned on `nextRunAt` still being that slot), so
//!   two overlapping ticks fire it once. The next slot is the first one after *now*: after
//!   downtime a pipeline fires once for all the slots it missed, not once per slot.
//! - Runs pending for longer than `pending_resend` (their message was lost) are sent again.
//! - Runs whose lease ran out are sent again for a takeover, or failed when no attempt is left;
//!   a checkpointed run whose follow-up message was lost is sent again.

use chrono::{DateTime, Utc};

use crate::context::Queues;
use crate::domain::pipeline::Pipeline;
use crate::domain::run::{Run, RunMessage, Trigger};
use crate::domain::stamp;
use crate::settings::RunSettings;
use crate::store::entity::from_item;
use crate::store::{index, Item, StoreError};
use crate::trigger::{trigger, Slot, TriggerError};

/// At most this many entries per shard and kind in one tick; the rest wait for the next.
const PER_SHARD: usize = 200;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub fired: usize,
    pub skipped: usize,
    pub resent: usize,
    pub failed: usize,
}

pub async fn tick(app: &impl Queues, settings: &RunSettings, now: DateTime<Utc>) -> Result<TickReport, StoreError> {
    let mut report = TickReport::default();
    for shard in 0..index::SHARDS {
        fire_due(app, shard, now, &mut report).await?;
        resend_pending(app, settings, shard, now, &mut report).await?;
        sweep_leases(app, settings, shard, now, &mut report).await?;
    }
    if report != TickReport::default() {
        tracing::info!(?report, "scheduler tick");
    }
    Ok(report)
}

async fn fire_due(app: &impl Queues, shard: u32, now: DateTime<Utc>, report: &mut TickReport) -> Result<(), StoreError> {
    for item in app.store().index_upto(index::DUE, shard, &stamp(now), PER_SHARD).await? {
        let Some((tenant, pipeline)) = decode::<Pipeline>(item) else { continue };
        let Some(slot) = pipeline.next_run_at.clone() else { continue };
        let next = pipeline.next_slot_after(now);
        match trigger(app, &tenant, &pipeline, Trigger::Schedule, Some(Slot { slot: &slot, next }), None, None).await {
            Ok(_) => report.fired += 1,
            // Another tick fired it, or it was deleted or rescheduled meanwhile.
            Err(TriggerError::PipelineGone) => {}
            // A slot that cannot run now is skipped, as `overlap: skip` asks; one over the
            // tenant's quota too, so a tenant at its quota cannot pile up late slots.
            // A backfill filled this slot while the schedule was behind: it is not run twice.
            Err(why @ (TriggerError::AtCapacity(_) | TriggerError::TenantAtQuota(_) | TriggerError::SlotTaken { .. })) => {
                if app.store().advance_schedule(&tenant, &pipeline.id, &slot, next.map(stamp).as_deref()).await? {
                    tracing::info!(pipeline_id = %pipeline.id, %slot, reason = %why, "slot skipped");
                    report.skipped += 1;
                }
            }
            Err(TriggerError::NotQueued { run, cause }) => {
                tracing::error!(run_id = %run.id, %cause, "scheduled run could not be queued; marked failed");
                report.fired += 1;
            }
            Err(TriggerError::Store(e)) => return Err(e),
            // Schedules trigger without an idempotency key.
            Err(TriggerError::KeyTaken(_)) => {}
        }
    }
    Ok(())
}

async fn resend_pending(
    app: &impl Queues,
    settings: &RunSettings,
    shard: u32,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    for item in app.store().index_upto(index::PENDING, shard, &stamp(now - settings.pending_resend), PER_SHARD).await? {
        let Some((tenant, run)) = decode::<Run>(item) else { continue };
        // Moved first, so that a send that fails again is retried a period later, not every tick.
        if app.store().reindex_run(&tenant, &run, &stamp(now)).await? && send(app, &tenant, &run).await {
            report.resent += 1;
        }
    }
    Ok(())
}

async fn sweep_leases(
    app: &impl Queues,
    settings: &RunSettings,
    shard: u32,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    for item in app.store().index_upto(index::LEASE, shard, &stamp(now), PER_SHARD).await? {
        let Some((tenant, run)) = decode::<Run>(item) else { continue };
        // A checkpointed run waits for its follow-up, not for a new attempt, and a partitioned
        // run's lapsed watchdog asks for coordination: always resend those.
        if run.attempt >= settings.max_attempts && !run.continuation && run.partitions.is_none() {
            if app.store().fail_exhausted(&tenant, &run, &stamp(now)).await? {
                app.queue().announce(&tenant, &run).await;
                report.failed += 1;
            }
        } else if app.store().reindex_run(&tenant, &run, &stamp(now + settings.lease)).await? && send(app, &tenant, &run).await {
            report.resent += 1;
        }
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(item: Item) -> Option<(crate::domain::tenant::TenantId, T)> {
    let tenant = index::tenant_of(&item)?;
    match from_item(item) {
        Ok(v) => Some((tenant, v)),
        Err(e) => {
            tracing::error!(cause = %e, "index entry does not decode");
            None
        }
    }
}

async fn send(app: &impl Queues, tenant: &crate::domain::tenant::TenantId, run: &Run) -> bool {
    match app.queue().send(&RunMessage::new(tenant, run)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(run_id = %run.id, cause = %e, "resend failed; retried next period");
            false
        }
    }
}
