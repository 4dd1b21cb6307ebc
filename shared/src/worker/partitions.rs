//! Partitioned runs: one run over many worker invocations, with Lambda and SQS as the engine.
//!
//! ```text
//! run message ── claim ── list a page ── write its partitions ── dispatch ≤ parallelism
//!                              ▲                │ (time budget used: the run message again
//!                              └────────────────┘  lists on from the saved token)
//! partition message ── claim its partition ── execute its objects ── finish it + count it ─┐
//!        ▲   (follow-up: its own checkpoint)                                               │
//!        └──────────── dispatch the next partition ◀───────────────────────────────────────┘
//!                      the last to finish ends the run, once
//! ```
//!
//! - Each partition is its own message, lease, attempts and checkpoint (`store::partitions`).
//! - At most `parallelism` partitions are out at once: a partition's end dispatches the next.
//! - No item takes every partition's events: dispatches and ends are counted in the run's lanes
//!   (one per place of `parallelism`, `store::partitions`), and a partition's end sends the next
//!   of its own lane. The run item moves per listing page, on a failure, and at the end.
//! - The run ends once: a partition's end and its count in its lane are one transaction, the
//!   run ends when a consistent read of its lanes counts every partition ended, and that end is
//!   conditioned on the run still running. Its counts are the sum of its partitions', read once
//!   at the end.
//! - Cancel stops running partitions at their next heartbeat and pending ones at the next
//!   partition end or sweep. A failed partition fails the run and halts the others.
//! - Lost messages: a partitioned run keeps a watchdog in its lease; when nothing moves it, the
//!   scheduler's sweep sends the run message again, and [`coordinate`] resends what was lost and
//!   ends the run if it is due.

use chrono::Utc;

use super::lease::{Held, Lease};
use super::{release_slot, Outcome, RunSettings, WorkerError};
use crate::context::{App, Stores};
use crate::domain::connector::Connector;
use crate::domain::pipeline::{Partitioning, Pipeline};
use crate::domain::report::totals;
use crate::domain::run::RunErrorCode;
use crate::domain::run::{cap_log, LogEntry, Partition, PartitionCounts, Run, RunError, RunMessage, RunStatus};
use crate::domain::stamp;
use crate::domain::tenant::TenantId;
use crate::engine::job::{Engine, Job, RunFailure, Scope, Stop};
use crate::engine::source::Listing;
use crate::store::{ClaimTerms, Finish, PartClaim, PartEnd, PartFrom, StoreError};

/// When the sweep should look at a partitioned run that nothing else moved.
fn watchdog(settings: &RunSettings) -> String {
    stamp(Utc::now() + settings.lease)
}

/// A claimed run's first attempt: if its source partitions into more than one partition, sends
/// it out to them (`Some`); else the run is executed as one (`None`).
pub(super) async fn fan_out(
    app: &App,
    engine: &dyn Engine,
    settings: &RunSettings,
    tenant: &TenantId,
    pipeline: &Pipeline,
    run: &Run,
    message: &RunMessage,
) -> Result<Option<Outcome>, WorkerError> {
    let Partitioning::Objects { group_bytes } = pipeline.execution_config.partitioning() else { return Ok(None) };
    let Some(connector) = app.store().get::<Connector>(tenant, pipeline.connector_id.as_str()).await? else { return Ok(None) };
    // A source that cannot be listed fails when the run opens it, with the same error.
    let Ok(Some(listing)) = engine.list_partitions(&connector, tenant, group_bytes, None).await else { return Ok(None) };
    if listing.next.is_none() && listing.groups.len() <= 1 {
        return Ok(None);
    }
    // One lane per place of `parallelism`: each lane's item takes only its own partitions' events.
    let counts = PartitionCounts { lanes: pipeline.execution_config.parallelism.max(1), ..PartitionCounts::default() };
    list_on(app, engine, settings, tenant, pipeline, run, &connector, counts, listing, message).await.map(Some)
}

/// Writes the partitions of `listing`, dispatches what `parallelism` allows, and lists on
/// until the listing ends or the time budget is used (then the run message continues it).
#[allow(clippy::too_many_arguments)]
async fn list_on(
    app: &App,
    engine: &dyn Engine,
    settings: &RunSettings,
    tenant: &TenantId,
    pipeline: &Pipeline,
    run: &Run,
    connector: &Connector,
    mut counts: PartitionCounts,
    mut listing: Listing,
    message: &RunMessage,
) -> Result<Outcome, WorkerError> {
    let Partitioning::Objects { group_bytes } = pipeline.execution_config.partitioning() else { return Ok(Outcome::Coordinated) };
    let deadline = std::time::Instant::now() + settings.time_budget;
    loop {
        let before = counts.written;
        let parts: Vec<Partition> = listing
            .groups
            .into_iter()
            .enumerate()
            .map(|(i, (keys, bytes))| Partition::new(run.id.clone(), before + i as u32, counts.lanes, keys, bytes))
            .collect();
        app.store().put_partitions(tenant, &pipeline.id, &parts).await?;
        counts.written += parts.len() as u32;
        counts.listing = listing.next.take();
        counts.total = counts.listing.is_none().then_some(counts.written);
        if !app.store().record_listing(tenant, run, before, &counts, &watchdog(settings)).await? {
            return Ok(Outcome::Ignored("another worker is listing the run's partitions"));
        }
        if let Some(latest) = app.store().get_run(tenant, &pipeline.id, &run.id).await? {
            dispatch(app, tenant, pipeline, &latest, message).await?;
        }
        let Some(token) = counts.listing.clone() else { break };
        if std::time::Instant::now() >= deadline {
            // The run message lists on from the saved token; if it is lost, the sweep sends it.
            send(app, message).await;
            return Ok(Outcome::FannedOut(counts.written));
        }
        listing = match engine.list_partitions(connector, tenant, group_bytes, Some(token)).await {
            Ok(Some(listing)) => listing,
            Ok(None) => Listing::default(),
            Err(error) => {
                // The partitions written so far are halted; the run fails with the listing's error.
                return fail_listing(app, settings, tenant, pipeline, run, error).await;
            }
        };
    }
    Ok(Outcome::FannedOut(counts.written))
}

/// Sends partitions until `parallelism` are out (or none is left to send).
async fn dispatch(app: &App, tenant: &TenantId, pipeline: &Pipeline, run: &Run, message: &RunMessage) -> Result<(), StoreError> {
    let parallelism = pipeline.execution_config.parallelism.max(1);
    let mut out = app.store().partition_progress(tenant, run).await?.out();
    while out < parallelism {
        let Some(index) = app.store().dispatch_partition(tenant, run, None).await? else { break };
        send(app, &message.for_partition(index)).await;
        out += 1;
    }
    Ok(())
}

/// A lost send is found again: the run's watchdog brings it to [`coordinate`].
async fn send(app: &App, message: &RunMessage) {
    if let Err(e) = app.queue.send(message).await {
        tracing::warn!(cause = %e, partition = ?message.partition, "message not sent; the sweep will send it again");
    }
}

async fn fail_listing(
    app: &App,
    settings: &RunSettings,
    tenant: &TenantId,
    pipeline: &Pipeline,
    run: &Run,
    error: RunError,
) -> Result<Outcome, WorkerError> {
    // Recorded as the failure of a partition of its own, so that the run ends the one way.
    let counts = app.store().get_run(tenant, &pipeline.id, &run.id).await?.and_then(|r| r.partitions).unwrap_or_default();
    let failed = Partition { status: RunStatus::Running, ..Partition::new(run.id.clone(), counts.written, counts.lanes, Vec::new(), 0) };
    app.store().put_partitions(tenant, &pipeline.id, std::slice::from_ref(&failed)).await?;
    let mut done = counts.clone();
    done.written += 1;
    done.total = Some(done.written);
    done.listing = None;
    if app.store().record_listing(tenant, run, counts.written, &done, &watchdog(settings)).await? {
        let end = PartEnd { status: RunStatus::Failed, stats: None, error: Some(error) };
        app.store().finish_partition(tenant, &pipeline.id, &failed, &end, PartFrom::Running).await?;
    }
    settle(app, tenant, pipeline, &run.id).await?;
    Ok(Outcome::Coordinated)
}

/// A run message for a run already out with its partitions: lists on if the listing has not
/// ended; else resends what was lost, stops what should stop, and ends the run if it is due.
pub(super) async fn coordinate(
    app: &App,
    engine: &dyn Engine,
    settings: &RunSettings,
    tenant: &TenantId,
    pipeline: &Pipeline,
    run: &Run,
    message: &RunMessage,
) -> Result<Outcome, WorkerError> {
    let counts = run.partitions.clone().unwrap_or_default();
    if let (Some(token), Partitioning::Objects { group_bytes }) = (counts.listing.clone(), pipeline.execution_config.partitioning()) {
        let Some(connector) = app.store().get::<Connector>(tenant, pipeline.connector_id.as_str()).await? else {
            return Ok(Outcome::Ignored("connector no longer exists"));
        };
        let listing = match engine.list_partitions(&connector, tenant, group_bytes, Some(token)).await {
            Ok(listing) => listing.unwrap_or_default(),
            Err(error) => return fail_listing(app, settings, tenant, pipeline, run, error).await,
        };
        return list_on(app, engine, settings, tenant, pipeline, run, &connector, counts, listing, message).await;
    }
    app.store().watch_run(tenant, run, &watchdog(settings)).await?;
    let parts = app.store().list_partitions(tenant, &pipeline.id, &run.id).await?;
    let progress = app.store().partition_progress(tenant, run).await?;
    let now = stamp(Utc::now());
    for part in &parts {
        let sent = progress.sent(part.index);
        let lapsed = part.status == RunStatus::Running && part.lease_until.as_deref().is_some_and(|l| l <= now.as_str());
        // Sent but never taken (a lost message), or held by a worker that died: send it again.
        if sent && (part.status == RunStatus::Pending || lapsed) && !counts.failed && !run.cancel_requested {
            send(app, &message.for_partition(part.index)).await;
        }
    }
    dispatch(app, tenant, pipeline, run, message).await?;
    settle(app, tenant, pipeline, &run.id).await?;
    Ok(Outcome::Coordinated)
}

/// One partition's message: claims the partition, executes its objects, ends it and counts it,
/// then dispatches the next and ends the run if this was the last.
pub(super) async fn run_partition(
    app: &App,
    engine: &dyn Engine,
    settings: &RunSettings,
    tenant: &TenantId,
    pipeline: &Pipeline,
    message: &RunMessage,
    index: u32,
) -> Result<Outcome, WorkerError> {
    let Some(run) = app.store().get_run(tenant, &pipeline.id, &message.run_id).await? else {
        return Ok(Outcome::Ignored("run no longer exists"));
    };
    if run.status.is_finished() {
        return Ok(Outcome::Ignored("run already ended"));
    }
    let now = Utc::now();
    let (now_stamp, lease_until) = (stamp(now), stamp(now + settings.lease));
    let terms = ClaimTerms { now: &now_stamp, lease_until: &lease_until, max_attempts: settings.max_attempts, max_running: None };
    let part = match app.store().claim_partition(tenant, &pipeline.id, &run.id, index, &terms).await? {
        PartClaim::Claimed(part) => *part,
        PartClaim::Missing => return Ok(Outcome::Ignored("partition does not exist")),
        PartClaim::Finished => return Ok(Outcome::Ignored("partition already ended")),
        PartClaim::Busy => return Ok(Outcome::Ignored("partition is held by a live worker")),
        PartClaim::Exhausted => {
            after_end(app, tenant, pipeline, message).await?;
            return Ok(Outcome::PartitionEnded(RunStatus::Failed));
        }
    };
    let timeout = super::lease::timeout_at(&run, pipeline.execution_config.timeout_seconds);
    let lease =
        Lease::hold(app, tenant, Held::Partition { pipeline: pipeline.id.clone(), part: Box::new(part.clone()) }, settings, timeout);
    let result = execute(app, engine, tenant, pipeline, &run, &part, &lease).await;
    let end = match result {
        Ok(report) => {
            let status = if report.with_errors { RunStatus::CompletedWithErrors } else { RunStatus::Completed };
            PartEnd { status, stats: Some(report.stats), error: None }
        }
        Err(RunFailure::Failed { error, stats, .. }) => PartEnd { status: RunStatus::Failed, stats, error: Some(error) },
        Err(RunFailure::Stopped(Stop::Cancelled | Stop::Halted)) => {
            PartEnd { status: RunStatus::Cancelled, stats: lease.last_stats(), error: None }
        }
        Err(RunFailure::Stopped(Stop::LeaseLost)) => return Ok(Outcome::Ignored("lease lost to another attempt")),
        Err(RunFailure::Stopped(Stop::TimedOut)) => {
            PartEnd { status: RunStatus::Failed, stats: lease.last_stats(), error: Some(super::timed_out(pipeline)) }
        }
        Err(RunFailure::Suspended { checkpoint, stats, .. }) => {
            if !app.store().suspend_partition(tenant, &pipeline.id, &part, &checkpoint, &stats, &crate::domain::now()).await? {
                return Ok(Outcome::Ignored("lease lost to another attempt"));
            }
            // If this send is lost, SQS or the sweep brings the partition back.
            send(app, message).await;
            return Ok(Outcome::Suspended);
        }
    };
    drop(lease);
    if !app.store().finish_partition(tenant, &pipeline.id, &part, &end, PartFrom::Running).await? {
        return Ok(Outcome::Ignored("lease lost to another attempt"));
    }
    after_end(app, tenant, pipeline, message).await?;
    Ok(Outcome::PartitionEnded(end.status))
}

async fn execute(
    app: &App,
    engine: &dyn Engine,
    tenant: &TenantId,
    pipeline: &Pipeline,
    run: &Run,
    part: &Partition,
    lease: &Lease,
) -> Result<crate::engine::job::Report, RunFailure> {
    let (plan, connector, schema) = super::load(app, tenant, pipeline).await?;
    let scope = Some(Scope { index: part.index, keys: &part.keys });
    let job =
        Job { tenant, run, pipeline, connector: &connector, schema: &schema, plan: &plan, checkpoint: part.checkpoint.as_ref(), scope };
    engine.execute(&job, lease).await
}

/// After a partition ended: the next one goes out, and the run ends if this was its last.
async fn after_end(app: &App, tenant: &TenantId, pipeline: &Pipeline, message: &RunMessage) -> Result<(), WorkerError> {
    let Some(run) = app.store().get_run(tenant, &pipeline.id, &message.run_id).await? else { return Ok(()) };
    // The next of this partition's own lane, so that lanes go on side by side.
    let lanes = run.partitions.as_ref().map_or(0, |p| p.lanes);
    let lane = message.partition.filter(|_| lanes > 0).map(|index| index % lanes);
    if let Some(index) = app.store().dispatch_partition(tenant, &run, lane).await? {
        send(app, &message.for_partition(index)).await;
    }
    settle(app, tenant, pipeline, &message.run_id).await?;
    Ok(())
}

/// Ends what is due: a cancelled or failing run's pending partitions (they will never run), then
/// the run itself once every partition has ended.
async fn settle(app: &App, tenant: &TenantId, pipeline: &Pipeline, run_id: &crate::domain::ids::RunId) -> Result<(), WorkerError> {
    let Some(run) = app.store().get_run(tenant, &pipeline.id, run_id).await? else { return Ok(()) };
    let Some(counts) = run.partitions.clone().filter(|_| run.status == RunStatus::Running) else { return Ok(()) };
    if run.cancel_requested || counts.failed {
        let parts = app.store().list_partitions(tenant, &pipeline.id, run_id).await?;
        for part in parts.iter().filter(|p| p.status == RunStatus::Pending) {
            let end = PartEnd { status: RunStatus::Cancelled, stats: None, error: None };
            app.store().finish_partition(tenant, &pipeline.id, part, &end, PartFrom::Pending).await?;
        }
    }
    let latest = app.store().get_run(tenant, &pipeline.id, run_id).await?.unwrap_or(run);
    let total = latest.partitions.as_ref().and_then(|p| p.total);
    if total.is_some() && total == Some(app.store().partition_progress(tenant, &latest).await?.finished) {
        finish_run(app, tenant, pipeline, &latest).await?;
    }
    Ok(())
}

/// The run's end, from its partitions' ends: failed if one failed, cancelled if it was
/// cancelled, else completed (with errors if rows failed). Happens once (see the store).
async fn finish_run(app: &App, tenant: &TenantId, pipeline: &Pipeline, run: &Run) -> Result<(), WorkerError> {
    let parts = app.store().list_partitions(tenant, &pipeline.id, &run.id).await?;
    let (stats, summary) = totals(&parts);
    let failed = parts.iter().find(|p| p.status == RunStatus::Failed);
    let status = match (failed, run.cancel_requested) {
        (Some(_), _) => RunStatus::Failed,
        (None, true) => RunStatus::Cancelled,
        (None, false) if stats.failed_rows > 0 => RunStatus::CompletedWithErrors,
        (None, false) => RunStatus::Completed,
    };
    let error = failed.map(|p| {
        let e = p.error.clone().unwrap_or_else(|| RunError::new(RunErrorCode::PartitionFailed, "a partition failed"));
        RunError { message: format!("partition {}: {}", p.index, e.message), ..e }
    });
    let now = Utc::now();
    let started = run.started_at.as_deref().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc));
    let duration_ms = started.map_or(0, |t| (now - t).num_milliseconds().max(0) as u64);
    let mut stats_value = serde_json::to_value(&stats).unwrap_or_default();
    if let Some(obj) = stats_value.as_object_mut() {
        obj.insert("partitions".into(), serde_json::to_value(summary).unwrap_or_default());
    }
    let mut log = run.log.clone();
    log.push(LogEntry::new(
        "finish",
        format!(
            "{} after {duration_ms} ms over {} partitions: {} rows in, {} written, {} failed, {} skipped",
            status.as_str(),
            parts.len(),
            stats.rows_in,
            stats.rows_out,
            stats.failed_rows,
            stats.skipped_rows
        ),
    ));
    let shown = super::generations::show(app, tenant, pipeline, &run.id, status).await?;
    let finish = Finish { status, error, stats: Some(stats_value), log: cap_log(log), now: stamp(now), duration_ms };
    if app.store().finish_partitioned_run(tenant, run, &finish).await? {
        crate::metrics::run_finished(tenant, status, finish.stats.as_ref(), duration_ms);
        app.store().set_latest_status(tenant, &pipeline.id, &run.id, status).await?;
        release_slot(app, tenant, pipeline).await;
        super::generations::tidy(app, tenant, pipeline, &run.id, status, shown).await;
        super::announce(app, tenant, pipeline, &run.id).await?;
    }
    Ok(())
}
