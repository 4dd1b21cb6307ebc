//! The scheduler's tick (EventBridge, every minute): fires due schedules and sweeps runs.
//!
//! ```text
//! EventBridge ── tick ── SendMessageBatch: one shard message per worker ──▶ tick queue
//!                                                                              │
//!  shard worker w of W (one invocation each) ◀─────────────────────────────────┘
//!    read the due entries of its partitions (p ≡ w mod W) ── tenants take turns
//!    ── 16 fires at a time (one transaction each) ── their messages, 10 per SendMessageBatch
//!    ── resend runs left pending, sweep lapsed leases
//! ```
//!
//! - Due pipelines come from the `DUE` index, never a Scan: [`index::SHARDS`] partitions, fixed,
//!   each read by one of [`Fanout::workers`] shard workers. The work is O(due).
//! - Each due slot is claimed by the transaction that creates its run (conditioned on
//!   `nextRunAt` still being that slot), so overlapping ticks, and a shard message delivered
//!   twice, fire it once. The next slot is the first one after *now*: after downtime a pipeline
//!   fires once for all the slots it missed, not once per slot.
//! - Tenants take turns within a worker: each tenant's oldest slot, then each one's second, and
//!   so on, so a tenant with thousands of slots delays only itself. A tenant found at its
//!   runs-in-flight quota has its further slots in that worker skipped without trying again.
//! - A worker stops firing at its budget; what is left is due again at the next tick (late,
//!   still once).
//! - Runs pending for longer than `pending_resend` (their message was lost) are sent again.
//! - Runs whose lease ran out are sent again for a takeover, or failed when no attempt is left;
//!   a checkpointed run whose follow-up message was lost is sent again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::context::Queues;
use crate::domain::pipeline::Pipeline;
use crate::domain::run::{Run, RunMessage};
use crate::domain::stamp;
use crate::domain::tenant::TenantId;
use crate::queue::RunQueue;
use crate::settings::{Fanout, RunSettings};
use crate::store::entity::from_item;
use crate::store::{index, Item, StoreError};
use crate::trigger::{schedule, Slot, TriggerError};

/// At most this many pending or leased runs per partition and kind in one tick; the rest wait
/// for the next.
const PER_SHARD: usize = 200;

/// At most this many due entries read per partition in one tick: 64 of them hold twice the
/// target's slots (`settings::TARGET_SLOTS_PER_MINUTE`), oldest first.
const DUE_PER_PARTITION: usize = 3_200;

/// A shard message older than this is dropped: a later tick has covered its partitions.
const STALE_SECONDS: i64 = 120;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub fired: usize,
    pub skipped: usize,
    pub resent: usize,
    pub failed: usize,
}

impl std::ops::AddAssign for TickReport {
    fn add_assign(&mut self, other: Self) {
        self.fired += other.fired;
        self.skipped += other.skipped;
        self.resent += other.resent;
        self.failed += other.failed;
    }
}

/// One shard worker's share of a tick, on the tick queue: `{"shard": {"worker", "of", "at"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMessage {
    pub shard: ShardTick,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTick {
    pub worker: u32,
    pub of: u32,
    /// When the tick sent it.
    pub at: String,
}

impl ShardTick {
    /// Too old to work: a later tick's message covers the same partitions.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        DateTime::parse_from_rfc3339(&self.at).is_ok_and(|at| (now - at.with_timezone(&Utc)).num_seconds() > STALE_SECONDS)
    }
}

/// The EventBridge tick: one shard message per worker on the tick queue, in `SendMessageBatch`
/// calls. A worker whose message could not be sent is run here, so a tick is never lost.
pub async fn fan_out(app: &impl Queues, ticks: &RunQueue, settings: &RunSettings, now: DateTime<Utc>) -> Result<TickReport, StoreError> {
    let of = settings.fanout.workers.max(1);
    let messages: Vec<ShardMessage> = (0..of).map(|worker| ShardMessage { shard: ShardTick { worker, of, at: stamp(now) } }).collect();
    let unsent = ticks.send_batch(&messages).await;
    if !unsent.is_empty() {
        tracing::warn!(workers = unsent.len(), "shard messages not sent; working them in the tick");
    }
    let mut report = TickReport::default();
    let mut done = futures::stream::iter(unsent).map(|worker| shard(app, settings, worker as u32, of, now)).buffer_unordered(of as usize);
    while let Some(part) = done.try_next().await? {
        report += part;
    }
    Ok(report)
}

/// The whole tick in this process: every shard worker's share at once (the local tests, and
/// what `fan_out` falls back to).
pub async fn tick(app: &impl Queues, settings: &RunSettings, now: DateTime<Utc>) -> Result<TickReport, StoreError> {
    let of = settings.fanout.workers.max(1);
    let parts = futures::future::join_all((0..of).map(|worker| shard(app, settings, worker, of, now))).await;
    let mut report = TickReport::default();
    for part in parts {
        report += part?;
    }
    if report != TickReport::default() {
        tracing::info!(?report, "scheduler tick");
    }
    Ok(report)
}

/// Shard worker `worker` of `of`: fires what is due in its partitions, then sweeps them.
pub async fn shard(app: &impl Queues, settings: &RunSettings, worker: u32, of: u32, now: DateTime<Utc>) -> Result<TickReport, StoreError> {
    let partitions: Vec<u32> = (0..index::SHARDS).filter(|p| p % of.max(1) == worker).collect();
    let mut report = fire_due(app, &settings.fanout, &partitions, now).await?;
    for &p in &partitions {
        resend_pending(app, settings, p, now, &mut report).await?;
        sweep_leases(app, settings, p, now, &mut report).await?;
    }
    if report != TickReport::default() {
        tracing::info!(?report, worker, of, "shard worker done");
    }
    Ok(report)
}

/// What firing one due entry came to.
enum Fired {
    Run(TenantId, Box<Run>),
    Skipped,
    Nothing,
}

/// Fires what is due, in passes: a slot whose fire met a passing storage error (its transaction
/// cancelled by conflicts or throttling past the store's retries) is still due, and the next pass
/// takes it while the budget lasts. The error is reported only if slots are still left so.
async fn fire_due(app: &impl Queues, fanout: &Fanout, partitions: &[u32], now: DateTime<Utc>) -> Result<TickReport, StoreError> {
    let deadline = Instant::now() + fanout.budget;
    let mut report = TickReport::default();
    for pass in 1..=3 {
        let (fired, error) = fire_pass(app, fanout, partitions, now, deadline).await?;
        report += fired;
        match error {
            Some(e) if pass == 3 || Instant::now() >= deadline => return Err(e),
            Some(e) => tracing::warn!(cause = %e, pass, "some fires failed; firing what is still due again"),
            None => break,
        }
    }
    Ok(report)
}

/// One pass over the due entries: what it fired, and the first fire's error, if any.
async fn fire_pass(
    app: &impl Queues,
    fanout: &Fanout,
    partitions: &[u32],
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<(TickReport, Option<StoreError>), StoreError> {
    let upto = stamp(now);
    let reads =
        futures::future::join_all(partitions.iter().map(|&p| app.store().index_upto(index::DUE, p, &upto, DUE_PER_PARTITION))).await;
    let mut due = Vec::new();
    for read in reads {
        due.extend(read?.into_iter().filter_map(decode::<Pipeline>));
    }
    due.sort_by(|a, b| a.1.next_run_at.cmp(&b.1.next_run_at));
    let at_quota = Mutex::new(HashSet::new());

    // Fires run `concurrency` at a time; their messages go out 10 to a call as they come.
    let (outbox, sent) = futures::channel::mpsc::unbounded::<RunMessage>();
    let firing = async {
        let mut report = TickReport::default();
        let mut first_error = None;
        let mut fires = futures::stream::iter(take_turns(due))
            .take_while(|_| futures::future::ready(Instant::now() < deadline))
            .map(|(tenant, pipeline)| fire(app, &at_quota, tenant, pipeline, now))
            .buffer_unordered(fanout.concurrency.max(1));
        while let Some(fired) = fires.next().await {
            match fired {
                Ok(Fired::Run(tenant, run)) => {
                    report.fired += 1;
                    let _ = outbox.unbounded_send(RunMessage::new(&tenant, &run));
                }
                Ok(Fired::Skipped) => report.skipped += 1,
                Ok(Fired::Nothing) => {}
                // The others go on; the tick reports the failure, and the next fires what is left.
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        outbox.close_channel();
        (report, first_error)
    };
    let sending = async move {
        let mut batches = sent.ready_chunks(10);
        while let Some(batch) = batches.next().await {
            for i in app.queue().send_batch(&batch).await {
                tracing::warn!(run_id = %batch[i].run_id, "scheduled run not queued; the sweep will send it");
            }
        }
    };
    Ok(futures::future::join(firing, sending).await.0)
}

async fn fire(
    app: &impl Queues,
    at_quota: &Mutex<HashSet<TenantId>>,
    tenant: TenantId,
    pipeline: Pipeline,
    now: DateTime<Utc>,
) -> Result<Fired, StoreError> {
    let Some(slot) = pipeline.next_run_at.clone() else { return Ok(Fired::Nothing) };
    let next = pipeline.next_slot_after(now);
    let full = at_quota.lock().is_ok_and(|t| t.contains(&tenant));
    let outcome = if full {
        Err(TriggerError::TenantAtQuota(app.quotas().runs_in_flight))
    } else {
        schedule(app, &tenant, &pipeline, Slot { slot: &slot, next }).await
    };
    match outcome {
        Ok(run) => Ok(Fired::Run(tenant, Box::new(run))),
        // Another tick fired it, or it was deleted or rescheduled meanwhile.
        Err(TriggerError::PipelineGone) => Ok(Fired::Nothing),
        // A slot that cannot run now is skipped, as `overlap: skip` asks; one over the
        // tenant's quota too, so a tenant at its quota cannot pile up late slots.
        // A backfill filled this slot while the schedule was behind: it is not run twice.
        Err(why @ (TriggerError::AtCapacity(_) | TriggerError::TenantAtQuota(_) | TriggerError::SlotTaken { .. })) => {
            if matches!(why, TriggerError::TenantAtQuota(_)) {
                if let Ok(mut t) = at_quota.lock() {
                    t.insert(tenant.clone());
                }
            }
            if app.store().advance_schedule(&tenant, &pipeline.id, &slot, next.map(stamp).as_deref()).await? {
                tracing::info!(pipeline_id = %pipeline.id, %slot, reason = %why, "slot skipped");
                return Ok(Fired::Skipped);
            }
            Ok(Fired::Nothing)
        }
        Err(TriggerError::Store(e)) => Err(e),
        // Only manual triggers send at once, or carry an idempotency key.
        Err(TriggerError::NotQueued { .. } | TriggerError::KeyTaken(_)) => Ok(Fired::Nothing),
    }
}

/// `items` (in the order they are due) in turns by tenant: every tenant's first, then every
/// tenant's second, and so on. A tenant's share of a worker's fires is then one in however
/// many tenants are due, whatever its number of slots.
fn take_turns<T>(items: Vec<(TenantId, T)>) -> Vec<(TenantId, T)> {
    let mut queues: HashMap<TenantId, VecDeque<T>> = HashMap::new();
    let mut turns = VecDeque::new();
    let total = items.len();
    for (tenant, item) in items {
        if !queues.contains_key(&tenant) {
            turns.push_back(tenant.clone());
        }
        queues.entry(tenant).or_default().push_back(item);
    }
    let mut out = Vec::with_capacity(total);
    while let Some(tenant) = turns.pop_front() {
        let Some(queue) = queues.get_mut(&tenant) else { continue };
        if let Some(item) = queue.pop_front() {
            if !queue.is_empty() {
                turns.push_back(tenant.clone());
            }
            out.push((tenant, item));
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[test]
    fn tenants_take_turns_in_the_order_they_are_due() {
        let mut due: Vec<(TenantId, u32)> = (0..6).map(|i| (tenant("big"), i)).collect();
        due.insert(2, (tenant("small"), 100));
        due.push((tenant("late"), 200));
        let order: Vec<(String, u32)> = take_turns(due).into_iter().map(|(t, i)| (t.as_str().to_string(), i)).collect();
        let names: Vec<&str> = order.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["big", "small", "late", "big", "big", "big", "big", "big"]);
        // Each tenant's own slots stay oldest first.
        let big: Vec<u32> = order.iter().filter(|(t, _)| t == "big").map(|(_, i)| *i).collect();
        assert_eq!(big, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_big_tenant_waits_on_itself_only() {
        // 100 tenants, one with 5,000 of the 9,950 slots: every small tenant's slots come
        // before the big tenant's 51st.
        let mut due = Vec::new();
        for i in 0..5_000 {
            due.push((tenant("big"), i));
            if i < 4_950 {
                due.push((tenant(&format!("t{}", i % 99)), i));
            }
        }
        let order = take_turns(due);
        assert_eq!(order.len(), 9_950);
        let last_small = order.iter().rposition(|(t, _)| t.as_str() != "big").unwrap();
        let big_before = order[..last_small].iter().filter(|(t, _)| t.as_str() == "big").count();
        assert!(big_before <= 50, "{big_before} of the big tenant's slots went before the last small one");
    }

    #[test]
    fn stale_shard_messages_are_dropped() {
        let now = Utc::now();
        let tick = |at: DateTime<Utc>| ShardTick { worker: 0, of: 1, at: stamp(at) };
        assert!(!tick(now - chrono::Duration::seconds(30)).is_stale(now));
        assert!(tick(now - chrono::Duration::seconds(STALE_SECONDS + 1)).is_stale(now));
    }
}
