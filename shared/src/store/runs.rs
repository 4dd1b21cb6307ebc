//! Runs, in their pipeline's partition, newest first, and their lifecycle: every status change is
//! a conditional write on the state it leaves, so duplicates and races change nothing twice.

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};

use super::entity::{from_item, sk};
use super::in_flight;
use super::{index, n, s, tenant_pk, written, IdempotencyRecord, Item, Pager, SavedReply, Store, StoreError};
use crate::domain::backfill::SLOT_MEMORY_DAYS;
use crate::domain::ids::{PipelineId, RunId};
use crate::domain::pipeline::Pipeline;
use crate::domain::run::{attempts_exhausted, claimable, Claimable, LogEntry, Run, RunError, RunStatus};
use crate::domain::tenant::TenantId;

pub(super) fn runs_pk(tenant: &TenantId, pipeline: &PipelineId) -> String {
    format!("{}#P#{pipeline}", tenant_pk(tenant))
}

pub(super) fn run_key(tenant: &TenantId, pipeline: &PipelineId, run: &RunId) -> Item {
    Store::key(runs_pk(tenant, pipeline), format!("RUN#{run}"))
}

fn slots_key(tenant: &TenantId, pipeline: &PipelineId) -> Item {
    Store::key(runs_pk(tenant, pipeline), "SLOTS".into())
}

fn checkpoint_records(run: &Run) -> u64 {
    run.checkpoint.as_ref().and_then(|c| c.get("recordsRead")).and_then(|v| v.as_u64()).unwrap_or(0)
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(super) fn value<T: serde::Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(v).map_err(corrupt)
}

pub(super) fn tx_update(u: aws_sdk_dynamodb::types::builders::UpdateBuilder) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder().update(u.build().map_err(corrupt)?).build())
}

/// The outcome of writing a new run.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateRun {
    Created,
    /// The pipeline does not exist (or its schedule slot was already claimed).
    PipelineGone,
    /// `maxConcurrentRuns` runs are active and the pipeline's overlap policy is `skip`.
    AtCapacity,
    /// The tenant has its quota of runs in flight.
    TenantAtQuota,
    /// A live record holds the idempotency key (this one): nothing was written.
    KeyTaken(Box<IdempotencyRecord>),
    /// The run's `scheduledFor` slot already has a run (made by the backfill named, if any).
    SlotTaken {
        backfill: Option<String>,
        run: Option<String>,
    },
}

/// The marker that a schedule slot of a pipeline has its run (`SLOT#<scheduledFor>`), kept
/// [`SLOT_MEMORY_DAYS`] past the slot or now, whichever is later.
fn slot_marker(table: &str, tenant: &TenantId, run: &Run, slot: &str) -> Result<TransactWriteItem, StoreError> {
    let mut item = Store::key(runs_pk(tenant, &run.pipeline_id), format!("SLOT#{slot}"));
    item.insert("runId".into(), s(run.id.as_str()));
    if let Some(backfill) = &run.backfill_id {
        item.insert("backfillId".into(), s(backfill.as_str()));
    }
    // From now, not from the slot: a backfill of a slot years back must remember it too.
    let slot_at = chrono::DateTime::parse_from_rfc3339(slot).map(|t| t.timestamp()).unwrap_or_default();
    item.insert("expiresAt".into(), n(slot_at.max(chrono::Utc::now().timestamp()) + SLOT_MEMORY_DAYS * 86_400));
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(PK)")
        .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld);
    Ok(TransactWriteItem::builder().put(put.build().map_err(corrupt)?).build())
}

/// The outcome of a worker's attempt to take a run.
#[derive(Debug)]
pub enum Claim {
    /// The run is this worker's, at `run.attempt`, until its lease runs out.
    Claimed(Box<Run>),
    Missing,
    Finished(RunStatus),
    /// Another worker holds a live lease.
    Busy,
    /// The pipeline's running runs are at `maxConcurrentRuns`: the run waits.
    AtCapacity,
    /// The lease ran out with no attempts left: the run was failed.
    Exhausted,
}

/// On what terms a worker takes a run.
#[derive(Debug, Clone, Copy)]
pub struct ClaimTerms<'a> {
    pub now: &'a str,
    /// Until when the claim holds without a heartbeat.
    pub lease_until: &'a str,
    /// A run whose lease expired after this many attempts fails instead.
    pub max_attempts: u32,
    /// The pipeline's `maxConcurrentRuns`: a pending run waits while this many are running.
    pub max_running: Option<u32>,
}

/// How a run ends.
pub struct Finish {
    pub status: RunStatus,
    pub error: Option<RunError>,
    pub stats: Option<serde_json::Value>,
    pub log: Vec<LogEntry>,
    pub now: String,
    pub duration_ms: u64,
}

#[derive(Debug)]
pub enum CancelRun {
    /// A pending run: cancelled at once.
    Cancelled(Run),
    /// A running run: asked to stop at its next batch boundary.
    Requested(Run),
    Finished(RunStatus),
    Missing,
}

/// How ending a pending run went.
#[derive(Debug, PartialEq, Eq)]
enum PendingEnd {
    Ended,
    /// It was not pending any more.
    Changed,
    PipelineGone,
}

impl Store {
    /// The transaction items that release slots of a pipeline's `SLOTS` (`active` and
    /// `running` are negative or zero) and, for `active`, the tenant's runs in flight. Refused
    /// when `SLOTS` is gone: the pipeline was deleted, and its deletion gave its runs back.
    pub(super) fn slots_delta(
        &self,
        tenant: &TenantId,
        run: &Run,
        active: i64,
        running: i64,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(slots_key(tenant, &run.pipeline_id)))
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":a", n(active))
            .expression_attribute_values(":r", n(running));
        update = match run.in_flight_shard.filter(|_| active != 0) {
            Some(k) => {
                update.update_expression("ADD active :a, running :r, #q :a").expression_attribute_names("#q", in_flight::slots_attribute(k))
            }
            None => update.update_expression("ADD active :a, running :r"),
        };
        let mut items = vec![tx_update(update)?];
        if active != 0 {
            items.push(self.give_in_flight(tenant, run.in_flight_shard, active)?);
        }
        Ok(items)
    }

    /// How many runs of the pipeline are pending or running (its `SLOTS`), and how many of them
    /// each runs-in-flight shard holds.
    pub(super) async fn active_runs(&self, tenant: &TenantId, pipeline: &PipelineId) -> Result<(i64, Vec<(u32, i64)>), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(slots_key(tenant, pipeline)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let item = out.item.unwrap_or_default();
        let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let per_shard = (0..in_flight::SHARDS).map(|k| (k, number(&in_flight::slots_attribute(k)))).filter(|(_, c)| *c != 0).collect();
        Ok((number("active"), per_shard))
    }

    /// The transaction item that deletes a pipeline's `SLOTS`, if `active` runs are still
    /// counted there.
    pub(super) fn drop_slots(&self, tenant: &TenantId, pipeline: &PipelineId, active: i64) -> Result<TransactWriteItem, StoreError> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(slots_key(tenant, pipeline)))
            .condition_expression("attribute_not_exists(PK) OR attribute_not_exists(active) OR active = :a")
            .expression_attribute_values(":a", n(active))
            .build()
            .map_err(corrupt)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// The transaction item that counts one more run in a pipeline's `SLOTS` (`counter` is
    /// `active` or `running`), refused once `max` are counted. A run writes its pipeline's
    /// `SLOTS` (`active`); taking a `running` slot needs it still there, so a claim made after
    /// its pipeline was deleted cannot bring back the `SLOTS` the delete gave back.
    /// With `shard`, also counts the run in that runs-in-flight shard's `q<k>`.
    fn take_slot(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        counter: &str,
        max: Option<u32>,
        shard: Option<u32>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut slots =
            Update::builder().table_name(&self.table).set_key(Some(slots_key(tenant, pipeline))).expression_attribute_values(":one", n(1));
        slots = match shard {
            Some(k) => slots
                .update_expression(format!("ADD {counter} :one, #q :one"))
                .expression_attribute_names("#q", in_flight::slots_attribute(k)),
            None => slots.update_expression(format!("ADD {counter} :one")),
        };
        if let Some(max) = max {
            slots = slots.expression_attribute_values(":max", n(max as i64));
        }
        let within = max.map(|_| format!("(attribute_not_exists({counter}) OR {counter} < :max)"));
        let condition = match (counter, within) {
            ("running", Some(within)) => Some(format!("attribute_exists(PK) AND {within}")),
            ("running", None) => Some("attribute_exists(PK)".to_string()),
            (_, within) => within,
        };
        if let Some(condition) = condition {
            slots = slots.condition_expression(condition);
        }
        tx_update(slots)
    }

    /// Writes a new pending run and marks it as its pipeline's latest, in one transaction
    /// conditioned on the pipeline existing (no run outlives a concurrent delete). With `skip_at`,
    /// refused when that many runs are active; refused too when the tenant has `max_in_flight` runs
    /// pending or running. With `slot`, also claims the schedule slot `slot.0`
    /// (the pipeline's `nextRunAt` must still be it) and moves the schedule to `slot.1`. With
    /// `saved`, also saves the reply under its idempotency key, in the same transaction.
    ///
    /// The run takes its place in one of the tenant's runs-in-flight shards ([`in_flight`]),
    /// recorded on it: the one its id picks, or, when that one is full, one with room.
    pub async fn create_run(
        &self,
        tenant: &TenantId,
        run: &mut Run,
        skip_at: Option<u32>,
        max_in_flight: u32,
        slot: Option<(&str, Option<&str>)>,
        saved: Option<&SavedReply>,
    ) -> Result<CreateRun, StoreError> {
        run.in_flight_shard = Some(in_flight::first(&run.id, max_in_flight));
        // A shard read with room may be taken before this run gets there: look again. Each miss
        // means another run took a place, so at most one look per shard is ever needed before
        // the shards are full or this run has its place: the quota is exact, never a false 429.
        for _ in 0..=in_flight::SHARDS {
            match self.create_run_in(tenant, run, skip_at, max_in_flight, slot, saved).await? {
                CreateRun::TenantAtQuota => match self.in_flight_room(tenant, max_in_flight).await? {
                    Some(k) => run.in_flight_shard = Some(k),
                    None => return Ok(CreateRun::TenantAtQuota),
                },
                created => return Ok(created),
            }
        }
        Ok(CreateRun::TenantAtQuota)
    }

    async fn create_run_in(
        &self,
        tenant: &TenantId,
        run: &Run,
        skip_at: Option<u32>,
        max_in_flight: u32,
        slot: Option<(&str, Option<&str>)>,
        saved: Option<&SavedReply>,
    ) -> Result<CreateRun, StoreError> {
        let mut item: Item = serde_dynamo::to_item(run).map_err(corrupt)?;
        item.extend(run_key(tenant, &run.pipeline_id, &run.id));
        item.extend(index::entry(index::PENDING, run.id.as_str(), &run.created_at));
        let put = Put::builder().table_name(&self.table).set_item(Some(item)).condition_expression("attribute_not_exists(PK)");
        let put = TransactWriteItem::builder().put(put.build().map_err(corrupt)?).build();

        let mut latest = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<Pipeline>(run.pipeline_id.as_str()))))
            .expression_attribute_values(":at", s(&run.created_at))
            .expression_attribute_values(":st", s(run.status.as_str()))
            .expression_attribute_values(":rid", s(run.id.as_str()))
            .expression_attribute_values(":one", n(1));
        let set = "SET lastRunAt = :at, lastRunStatus = :st, lastRunId = :rid";
        latest = match slot {
            None => latest.update_expression(format!("{set} ADD version :one")).condition_expression("attribute_exists(PK)"),
            Some((claimed, next)) => {
                let moved = match next {
                    Some(next) => {
                        latest = latest.expression_attribute_values(":next", s(next));
                        format!("{set}, nextRunAt = :next, GSI1SK = :next ADD version :one")
                    }
                    None => format!("{set} REMOVE nextRunAt, GSI1PK, GSI1SK ADD version :one"),
                };
                latest.update_expression(moved).condition_expression("nextRunAt = :slot").expression_attribute_values(":slot", s(claimed))
            }
        };
        let shard = run.in_flight_shard.unwrap_or_default();
        let slots = self.take_slot(tenant, &run.pipeline_id, "active", skip_at, Some(shard))?;
        let in_flight = self.take_in_flight(tenant, shard, max_in_flight)?;
        let mut items = vec![put, tx_update(latest)?, slots, in_flight];
        if let Some(saved) = saved {
            items.push(self.save_reply(tenant, saved)?);
        }
        // A slot's run is claimed with it: the schedule and backfills never make a second.
        let marker =
            run.scheduled_for.as_deref().map(|slot| slot_marker(&self.table, tenant, run, slot).map(|m| (items.len(), m))).transpose()?;
        let marker_at = marker.as_ref().map(|(i, _)| *i);
        items.extend(marker.map(|(_, m)| m));
        match self.transact("TransactWriteItems", items).await {
            Ok(()) => Ok(CreateRun::Created),
            Err(e) if marker_at.is_some_and(|i| e.reason(i).is_some()) => {
                let old = marker_at.and_then(|i| e.old_item(i)).unwrap_or_default();
                let text = |name: &str| old.get(name).and_then(|v| v.as_s().ok()).cloned();
                Ok(CreateRun::SlotTaken { backfill: text("backfillId"), run: text("runId") })
            }
            // The key before the pipeline's state: a retry of a trigger that went through must
            // replay it, whatever the pipeline's state since. (A slot's run has no key.)
            Err(e) if e.reason(4).is_some() => Ok(CreateRun::KeyTaken(Self::taken_key(e, 4)?)),
            Err(e) if e.reason(1).is_some() => Ok(CreateRun::PipelineGone),
            Err(e) if e.reason(2).is_some() => Ok(CreateRun::AtCapacity),
            Err(e) if e.reason(3).is_some() => Ok(CreateRun::TenantAtQuota),
            Err(e) => Err(e),
        }
    }

    /// Moves a schedule from the slot `slot` to `next` without a run (a skipped slot). `false`:
    /// another tick moved it first.
    pub async fn advance_schedule(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        slot: &str,
        next: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<Pipeline>(pipeline.as_str()))))
            .condition_expression("nextRunAt = :slot")
            .expression_attribute_values(":slot", s(slot))
            .expression_attribute_values(":one", n(1));
        update = match next {
            Some(next) => update
                .update_expression("SET nextRunAt = :next, GSI1SK = :next ADD version :one")
                .expression_attribute_values(":next", s(next)),
            None => update.update_expression("REMOVE nextRunAt, GSI1PK, GSI1SK ADD version :one"),
        };
        Self::update_if(update).await
    }

    pub async fn get_run(&self, tenant: &TenantId, pipeline: &PipelineId, run: &RunId) -> Result<Option<Run>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, pipeline, run)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.map(from_item).transpose()
    }

    /// Takes a pending run, or one whose worker's lease ran out, for a new attempt.
    pub async fn claim_run(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        run_id: &RunId,
        terms: &ClaimTerms<'_>,
    ) -> Result<Claim, StoreError> {
        let ClaimTerms { now, lease_until, max_attempts, max_running } = *terms;
        for _ in 0..3 {
            let Some(run) = self.get_run(tenant, pipeline, run_id).await? else { return Ok(Claim::Missing) };
            let rule = claimable(run.status, run.continuation, run.lease_until.as_deref(), run.attempt, now, max_attempts);
            let (takeover, entry) = match rule {
                Claimable::Finished(status) => return Ok(Claim::Finished(status)),
                Claimable::Resume => match self.resume_run(tenant, &run, lease_until).await? {
                    Some(resumed) => return Ok(Claim::Claimed(Box::new(resumed))),
                    None => continue,
                },
                Claimable::Busy => return Ok(Claim::Busy),
                Claimable::Exhausted => {
                    if self.fail_running(tenant, &run, attempts_exhausted(run.attempt, None), now).await? {
                        return Ok(Claim::Exhausted);
                    }
                    continue;
                }
                Claimable::TakeOver => {
                    (true, LogEntry::new("start", format!("attempt {} took over after the lease expired", run.attempt + 1)))
                }
                Claimable::Start => (false, LogEntry::new("start", format!("attempt {} started", run.attempt + 1))),
            };
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(run_key(tenant, pipeline, run_id)))
                .update_expression(
                    "SET #st = :running, attempt = :attempt, startedAt = if_not_exists(startedAt, :now), leaseUntil = :lease, \
                     GSI1PK = :gpk, GSI1SK = :lease, #log = list_append(if_not_exists(#log, :empty), :entry)",
                )
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#log", "log")
                .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
                .expression_attribute_values(":attempt", n(run.attempt as i64 + 1))
                .expression_attribute_values(":prev", n(run.attempt as i64))
                .expression_attribute_values(":now", s(now))
                .expression_attribute_values(":lease", s(lease_until))
                .expression_attribute_values(":gpk", s(index::partition(index::LEASE, run_id.as_str())))
                .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                .expression_attribute_values(":entry", AttributeValue::L(vec![value(&entry)?]));
            let mut items = vec![];
            if takeover {
                update = update
                    .condition_expression("#st = :running AND attempt = :prev AND leaseUntil = :old")
                    .expression_attribute_values(":old", s(run.lease_until.clone().unwrap_or_default()));
                items.push(tx_update(update)?);
            } else {
                update = update
                    .condition_expression("#st = :pending AND attempt = :prev")
                    .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()));
                items.push(tx_update(update)?);
                items.push(self.take_slot(tenant, pipeline, "running", max_running, None)?);
            }
            match self.transact("TransactWriteItems", items).await {
                Ok(()) => {
                    let claimed = self.get_run(tenant, pipeline, run_id).await?;
                    return Ok(claimed.map_or(Claim::Missing, |run| Claim::Claimed(Box::new(run))));
                }
                Err(e) if e.reason(1).is_some() && e.reason(0).is_none() => return Ok(Claim::AtCapacity),
                Err(e @ StoreError::ConditionFailed { .. }) => {
                    tracing::debug!(cause = %e, "run changed while being claimed; reading it again");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Claim::Busy)
    }

    /// Takes over a checkpointed run for its continuation, keeping its attempt. `None`: another
    /// delivery resumed it first.
    async fn resume_run(&self, tenant: &TenantId, run: &Run, lease_until: &str) -> Result<Option<Run>, StoreError> {
        let entry = LogEntry::new("resume", format!("continued from {} records read", checkpoint_records(run)));
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
            .update_expression(
                "SET leaseUntil = :lease, GSI1SK = :lease, continuation = :no, #log = list_append(if_not_exists(#log, :empty), :entry)",
            )
            .condition_expression("#st = :running AND attempt = :attempt AND continuation = :yes")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#log", "log")
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":attempt", n(run.attempt as i64))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":lease", s(lease_until))
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":entry", AttributeValue::L(vec![value(&entry)?]))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match written("UpdateItem", out)? {
            Some(out) => Ok(Some(from_item(out.attributes.unwrap_or_default())?)),
            None => Ok(None),
        }
    }

    /// Parks a running run that used its time budget: its checkpoint, stats and log are saved,
    /// its lease lapses at once, and `continuation` lets the follow-up message take it over
    /// without spending an attempt. `false`: this attempt no longer held it.
    pub async fn suspend_run(
        &self,
        tenant: &TenantId,
        run: &Run,
        checkpoint: &serde_json::Value,
        stats: &serde_json::Value,
        log: &[LogEntry],
        now: &str,
    ) -> Result<bool, StoreError> {
        Self::update_if(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
                .update_expression(
                    "SET checkpoint = :cp, stats = :stats, continuation = :yes, leaseUntil = :now, GSI1SK = :now, #log = :entries",
                )
                .condition_expression("#st = :running AND attempt = :attempt")
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#log", "log")
                .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
                .expression_attribute_values(":attempt", n(run.attempt as i64))
                .expression_attribute_values(":cp", value(checkpoint)?)
                .expression_attribute_values(":stats", value(stats)?)
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .expression_attribute_values(":now", s(now))
                .expression_attribute_values(":entries", value(&log)?),
        )
        .await
    }

    /// Extends the lease of the attempt that holds the run, showing `stats` (its counts so far)
    /// when given. `Ok(None)`: the run is no longer this attempt's (taken over or finished);
    /// `Ok(Some(cancel_requested))` otherwise.
    pub async fn heartbeat(
        &self,
        tenant: &TenantId,
        run: &Run,
        lease_until: &str,
        stats: Option<&serde_json::Value>,
    ) -> Result<Option<bool>, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
            .condition_expression("#st = :running AND attempt = :attempt")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":attempt", n(run.attempt as i64))
            .expression_attribute_values(":lease", s(lease_until))
            .return_values(ReturnValue::AllNew);
        update = match stats {
            Some(stats) => update
                .update_expression("SET leaseUntil = :lease, GSI1SK = :lease, stats = :stats")
                .expression_attribute_values(":stats", value(stats)?),
            None => update.update_expression("SET leaseUntil = :lease, GSI1SK = :lease"),
        };
        match written("UpdateItem", update.send().await)? {
            Some(out) => {
                Ok(Some(out.attributes.and_then(|a| a.get("cancelRequested").and_then(|v| v.as_bool().ok().copied())).unwrap_or(false)))
            }
            None => Ok(None),
        }
    }

    /// Ends the attempt that holds the run, with its whole log (the worker caps it).
    pub async fn finish_run(&self, tenant: &TenantId, run: &Run, finish: &Finish) -> Result<bool, StoreError> {
        let update = self
            .finish_update(tenant, run, finish)?
            .condition_expression("#st = :running AND attempt = :attempt")
            .expression_attribute_values(":attempt", n(run.attempt as i64));
        self.end_running(tenant, run, update).await
    }

    /// The update that ends a running run as `finish` says (its condition is the caller's).
    pub(super) fn finish_update(
        &self,
        tenant: &TenantId,
        run: &Run,
        finish: &Finish,
    ) -> Result<aws_sdk_dynamodb::types::builders::UpdateBuilder, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#log", "log")
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":status", s(finish.status.as_str()))
            .expression_attribute_values(":now", s(&finish.now))
            .expression_attribute_values(":ms", n(finish.duration_ms as i64))
            .expression_attribute_values(":entries", value(&finish.log)?);
        let mut set = "SET #st = :status, completedAt = :now, durationMs = :ms, #log = :entries".to_string();
        if let Some(error) = &finish.error {
            set.push_str(", #err = :err");
            update = update.expression_attribute_names("#err", "error").expression_attribute_values(":err", value(error)?);
        }
        if let Some(stats) = &finish.stats {
            set.push_str(", stats = :stats");
            update = update.expression_attribute_values(":stats", value(stats)?);
        }
        Ok(update.update_expression(format!("{set} REMOVE leaseUntil, GSI1PK, GSI1SK")))
    }

    /// Applies a run's ending `update` with the release of its slots. `false`: its condition
    /// failed (nothing written).
    pub(super) async fn end_running(
        &self,
        tenant: &TenantId,
        run: &Run,
        update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    ) -> Result<bool, StoreError> {
        let mut items = vec![tx_update(update)?];
        items.extend(self.slots_delta(tenant, run, -1, -1)?);
        match self.transact("TransactWriteItems", items).await {
            Ok(()) => Ok(true),
            // The run changed, or its pipeline was deleted (its `SLOTS` with it).
            Err(e) if e.reason(0).is_some() || e.reason(1).is_some() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Fails a running run whose lease ran out with no attempts left.
    async fn fail_running(&self, tenant: &TenantId, run: &Run, error: RunError, now: &str) -> Result<bool, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
            .update_expression("SET #st = :failed, completedAt = :now, #err = :err, #log = list_append(if_not_exists(#log, :empty), :entries) REMOVE leaseUntil, GSI1PK, GSI1SK")
            .condition_expression("#st = :running AND attempt = :attempt AND leaseUntil = :old")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#err", "error")
            .expression_attribute_names("#log", "log")
            .expression_attribute_values(":failed", s(RunStatus::Failed.as_str()))
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":attempt", n(run.attempt as i64))
            .expression_attribute_values(":old", s(run.lease_until.clone().unwrap_or_default()))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":err", value(&error)?)
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":entries", value(&vec![LogEntry::new("failed", error.message.clone())])?);
        let mut items = vec![tx_update(update)?];
        items.extend(self.slots_delta(tenant, run, -1, -1)?);
        match self.transact("TransactWriteItems", items).await {
            Ok(()) => {
                self.set_latest_status(tenant, &run.pipeline_id, &run.id, RunStatus::Failed).await?;
                Ok(true)
            }
            // The run changed, or its pipeline was deleted (its `SLOTS` with it).
            Err(e) if e.reason(0).is_some() || e.reason(1).is_some() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Fails a run that is still `pending` (its message never reached the queue). `false`: it
    /// was not pending any more.
    pub async fn fail_pending_run(&self, tenant: &TenantId, run: &Run, error: RunError, now: &str) -> Result<bool, StoreError> {
        Ok(self.end_pending(tenant, run, RunStatus::Failed, Some(error), now).await? == PendingEnd::Ended)
    }

    async fn end_pending(
        &self,
        tenant: &TenantId,
        run: &Run,
        status: RunStatus,
        error: Option<RunError>,
        now: &str,
    ) -> Result<PendingEnd, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
            .condition_expression("#st = :pending")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", s(now));
        let mut set = "SET #st = :status, completedAt = :now".to_string();
        if let Some(error) = &error {
            set.push_str(", #err = :err");
            update = update.expression_attribute_names("#err", "error").expression_attribute_values(":err", value(error)?);
        }
        let update = update.update_expression(format!("{set} REMOVE GSI1PK, GSI1SK"));
        let mut items = vec![tx_update(update)?];
        items.extend(self.slots_delta(tenant, run, -1, 0)?);
        match self.transact("TransactWriteItems", items).await {
            Ok(()) => {
                self.set_latest_status(tenant, &run.pipeline_id, &run.id, status).await?;
                Ok(PendingEnd::Ended)
            }
            Err(e) if e.reason(0).is_some() => Ok(PendingEnd::Changed),
            // Its pipeline was deleted (its `SLOTS` with it): the run is going with it.
            Err(e) if e.reason(1).is_some() => Ok(PendingEnd::PipelineGone),
            Err(e) => Err(e),
        }
    }

    /// Cancels a pending run at once, or asks a running one to stop.
    pub async fn cancel_run(&self, tenant: &TenantId, pipeline: &PipelineId, run_id: &RunId, now: &str) -> Result<CancelRun, StoreError> {
        for _ in 0..3 {
            let Some(run) = self.get_run(tenant, pipeline, run_id).await? else { return Ok(CancelRun::Missing) };
            match run.status {
                RunStatus::Pending => match self.end_pending(tenant, &run, RunStatus::Cancelled, None, now).await? {
                    PendingEnd::Ended => {
                        let run = self.get_run(tenant, pipeline, run_id).await?;
                        return Ok(run.map_or(CancelRun::Missing, CancelRun::Cancelled));
                    }
                    PendingEnd::PipelineGone => return Ok(CancelRun::Missing),
                    PendingEnd::Changed => {}
                },
                RunStatus::Running => {
                    let out = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .set_key(Some(run_key(tenant, pipeline, run_id)))
                        .update_expression("SET cancelRequested = :yes")
                        .condition_expression("#st = :running")
                        .expression_attribute_names("#st", "status")
                        .expression_attribute_values(":yes", AttributeValue::Bool(true))
                        .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
                        .return_values(ReturnValue::AllNew)
                        .send()
                        .await;
                    if let Some(out) = written("UpdateItem", out)? {
                        return Ok(CancelRun::Requested(from_item(out.attributes.unwrap_or_default())?));
                    }
                }
                finished => return Ok(CancelRun::Finished(finished)),
            }
        }
        Err(StoreError::Dynamo { op: "UpdateItem", detail: "run kept changing while being cancelled".into() })
    }

    /// The pipeline's `lastRunStatus` follows its latest run: written only while `run` is it.
    pub async fn set_latest_status(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        run: &RunId,
        status: RunStatus,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<Pipeline>(pipeline.as_str()))))
            .update_expression("SET lastRunStatus = :st ADD version :one")
            .condition_expression("lastRunId = :rid")
            .expression_attribute_values(":st", s(status.as_str()))
            .expression_attribute_values(":rid", s(run.as_str()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        // Not written: a newer run has taken over the pipeline's last-run fields.
        written("UpdateItem", out).map(|_| ())
    }

    /// A page of a pipeline's runs, newest first, after the run `after`, optionally of one status.
    /// Returns the runs and the id to continue after when more may follow.
    pub async fn list_runs_page(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        limit: usize,
        after: Option<&str>,
        status: Option<RunStatus>,
    ) -> Result<(Vec<Run>, Option<String>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :run)")
            .expression_attribute_values(":pk", s(runs_pk(tenant, pipeline)))
            .expression_attribute_values(":run", s("RUN#"))
            .scan_index_forward(false)
            .consistent_read(true);
        if let Some(status) = status {
            query = query
                .filter_expression("#st = :st")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":st", s(status.as_str()));
        }
        let mut pages = Pager::new(query, after.map(|id| Self::key(runs_pk(tenant, pipeline), format!("RUN#{id}"))));
        let mut runs: Vec<Run> = Vec::new();
        // A status filter may discard most of a page: read on, but a bounded number of pages.
        for _ in 0..8 {
            let want = (limit + 1 - runs.len()).max(if status.is_some() { 100 } else { 1 });
            let Some(items) = pages.next(Some(want)).await.map_err(|e| StoreError::dynamo("Query", e))? else {
                return Ok((runs, None));
            };
            for item in items {
                runs.push(from_item(item)?);
            }
            if runs.len() > limit {
                runs.truncate(limit);
                let next = runs.last().map(|r| r.id.to_string());
                return Ok((runs, next));
            }
        }
        // Stopped reading with more to read: continue after the last run examined.
        let next = pages.resume_key().and_then(|k| k.get("SK")?.as_s().ok()?.strip_prefix("RUN#").map(str::to_string));
        Ok((runs, next))
    }

    /// The newest `limit` runs of a pipeline.
    pub async fn list_runs(&self, tenant: &TenantId, pipeline: &PipelineId, limit: usize) -> Result<Vec<Run>, StoreError> {
        Ok(self.list_runs_page(tenant, pipeline, limit, None, None).await?.0)
    }

    /// The oldest pending run of a pipeline, if any (the next to take a freed slot).
    pub async fn oldest_pending(&self, tenant: &TenantId, pipeline: &PipelineId) -> Result<Option<Run>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :run)")
            .filter_expression("#st = :pending")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":pk", s(runs_pk(tenant, pipeline)))
            .expression_attribute_values(":run", s("RUN#"))
            .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            .consistent_read(true);
        let mut pages = Pager::new(query, None);
        for _ in 0..5 {
            let Some(items) = pages.next(Some(100)).await.map_err(|e| StoreError::dynamo("Query", e))? else { break };
            if let Some(item) = items.into_iter().next() {
                return Ok(Some(from_item(item)?));
            }
        }
        Ok(None)
    }

    /// Moves a run's entry in the work index to `at` (it was just re-sent), if it is still in
    /// the state `status` with `lease` (for running runs).
    pub async fn reindex_run(&self, tenant: &TenantId, run: &Run, at: &str) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
            .update_expression("SET GSI1SK = :at")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":st", s(run.status.as_str()));
        update = match &run.lease_until {
            Some(lease) => update.condition_expression("#st = :st AND leaseUntil = :lease").expression_attribute_values(":lease", s(lease)),
            None => update.condition_expression("#st = :st"),
        };
        Self::update_if(update).await
    }

    /// Fails a running run found with an expired lease and no attempts left (the sweep's part).
    pub async fn fail_exhausted(&self, tenant: &TenantId, run: &Run, now: &str) -> Result<bool, StoreError> {
        self.fail_running(tenant, run, attempts_exhausted(run.attempt, None), now).await
    }

    /// Claims the queueing of a run's first webhook delivery (`false`: claimed before).
    pub async fn claim_webhook(&self, tenant: &TenantId, pipeline: &PipelineId, run: &RunId) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, pipeline, run)))
            .update_expression("SET webhookQueued = :yes")
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(webhookQueued)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true));
        Self::update_if(update).await
    }

    /// Gives back a claim whose send failed.
    pub async fn release_webhook(&self, tenant: &TenantId, pipeline: &PipelineId, run: &RunId) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, pipeline, run)))
            .update_expression("REMOVE webhookQueued")
            .condition_expression("attribute_exists(PK)");
        Self::update_if(update).await.map(|_| ())
    }

    /// Adds one webhook delivery attempt to a run's log.
    pub async fn log_delivery(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        run: &RunId,
        attempt: &crate::domain::webhook::DeliveryAttempt,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, pipeline, run)))
            .update_expression("SET deliveries = list_append(if_not_exists(deliveries, :none), :one)")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":none", AttributeValue::L(vec![]))
            .expression_attribute_values(":one", AttributeValue::L(vec![value(attempt)?]));
        Self::update_if(update).await.map(|_| ())
    }

    /// Removes every run of a pipeline (and its partitions and slots).
    pub async fn delete_runs(&self, tenant: &TenantId, pipeline: &PipelineId) -> Result<(), StoreError> {
        super::batch::clear_partition(&self.client, &self.table, &runs_pk(tenant, pipeline)).await.map(|_| ())
    }

    /// The keys of up to `max` items of a pipeline's runs (its runs, their partitions, its
    /// `SLOTS`), with the ids of the runs among them.
    pub async fn run_items(&self, tenant: &TenantId, pipeline: &PipelineId, max: u64) -> Result<(Vec<Item>, Vec<RunId>), StoreError> {
        let keys = super::batch::partition_keys(&self.client, &self.table, &runs_pk(tenant, pipeline), max).await?;
        let runs = keys
            .iter()
            .filter_map(|k| k.get("SK")?.as_s().ok()?.strip_prefix("RUN#"))
            .filter(|rest| !rest.contains('#'))
            .filter_map(RunId::parse)
            .collect();
        Ok((keys, runs))
    }

    /// Deletes the items of `keys` (from [`Store::run_items`]).
    pub async fn delete_items(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        super::batch::delete_keys(&self.client, &self.table, keys).await
    }
}
