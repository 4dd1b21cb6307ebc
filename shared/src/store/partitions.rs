//! The partitions of a partitioned run, in its pipeline's partition beside the run:
//! `PART#<runId>#<index>` (5 digits, so they sort by index and never under `RUN#`).
//!
//! Each partition has a run's lifecycle (claim with a lease, heartbeats, continuation, finish),
//! with every step a conditional write on the partition's own item.
//!
//! Dispatches and ends are counted in the run's **lanes**, `LANE#<runId>#<lane>` beside it, one per
//! place of `parallelism`: partition `i` is lane `i % lanes`'s, and a lane sends its partitions in
//! order (`dispatched`), each partition's end counting there (`finished`, in the same transaction
//! as the partition's own end, so a retried end is never counted twice). A partition's end sends
//! the next of its own lane, or of the lane with the most left once its own is done. So each item
//! takes a lane's events, not the run's: a lane's partition ends at most every few tens of ms,
//! whatever the number of partitions. The run item moves only per listing page (`written`,
//! `total`), on a failure (`failed`), and once at the end, when the lanes' consistent read shows
//! every partition ended; the end is conditioned on the run still running, so it happens once.
//! Counts are read from the partitions and written to the run then. (A run from before lanes,
//! `lanes` 0, counts on its own item as it did.)

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ReturnValue, Update, WriteRequest};

use super::entity::from_item;
use super::runs::{run_key, runs_pk, tx_update, value};
use super::{n, s, written, Item, Pager, Store, StoreError};
use crate::domain::ids::{PipelineId, RunId};
use crate::domain::run::{attempts_exhausted, claimable, Claimable, Partition, PartitionCounts, Run, RunError, RunStatus};
use crate::domain::tenant::TenantId;

fn lane_sk(run: &RunId, lane: u32) -> String {
    format!("LANE#{run}#{lane:02}")
}

/// How many of the first `written` partitions are lane `lane`'s.
fn lane_written(written: u32, lanes: u32, lane: u32) -> u32 {
    written.saturating_sub(lane).div_ceil(lanes.max(1))
}

/// How a partitioned run's partitions stand: what was sent and what ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub lanes: u32,
    /// Partitions sent, per lane (one entry, the whole run's, for a run from before lanes).
    pub dispatched: Vec<u32>,
    /// Partitions that ended, whatever their end.
    pub finished: u32,
}

impl Progress {
    /// Whether partition `index` was sent.
    pub fn sent(&self, index: u32) -> bool {
        let (lane, nth) = match self.lanes {
            0 => (0, index),
            lanes => (index % lanes, index / lanes),
        };
        nth < self.dispatched.get(lane as usize).copied().unwrap_or(0)
    }

    /// Partitions sent and not ended.
    pub fn out(&self) -> u32 {
        self.dispatched.iter().sum::<u32>().saturating_sub(self.finished)
    }
}

fn part_sk(run: &RunId, index: u32) -> String {
    format!("PART#{run}#{index:05}")
}

fn part_key(tenant: &TenantId, pipeline: &PipelineId, run: &RunId, index: u32) -> Item {
    Store::key(runs_pk(tenant, pipeline), part_sk(run, index))
}

/// The outcome of a worker's attempt to take a partition.
#[derive(Debug)]
pub enum PartClaim {
    Claimed(Box<Partition>),
    Missing,
    Finished,
    /// Another worker holds a live lease.
    Busy,
    /// Its lease ran out with no attempts left: the partition was failed.
    Exhausted,
}

/// What a partition's heartbeat hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartBeat {
    GoOn,
    /// The run was cancelled, or another partition failed it: stop.
    Stop {
        cancelled: bool,
    },
    /// The partition is no longer this attempt's.
    Lost,
}

impl Store {
    /// Writes partitions `pending` (a listing page's worth; written again after a crash, before
    /// any of them was dispatched, they come out the same).
    pub async fn put_partitions(&self, tenant: &TenantId, pipeline: &PipelineId, parts: &[Partition]) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(parts.len());
        for part in parts {
            let mut item: Item = serde_dynamo::to_item(part).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            item.extend(part_key(tenant, pipeline, &part.run_id, part.index));
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        super::batch::write_all(&self.client, &self.table, requests).await
    }

    /// Records listing progress on a running run: `counts.written` partitions exist (up from
    /// `before`, which must still be the count: two coordinators never both record a page),
    /// `counts.total` once the listing ended, else `counts.listing` where it resumes. The first
    /// page (`before` 0) starts the counts. `watchdog`: when the sweep should look at the run if
    /// nothing moves it before.
    pub async fn record_listing(
        &self,
        tenant: &TenantId,
        run: &Run,
        before: u32,
        counts: &PartitionCounts,
        watchdog: &str,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#p", "partitions")
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":w", s(watchdog));
        update = if before == 0 {
            update
                .update_expression("SET #p = :p, leaseUntil = :w, GSI1SK = :w")
                .condition_expression("#st = :running AND attempt = :attempt AND attribute_not_exists(#p)")
                .expression_attribute_values(":attempt", n(run.attempt as i64))
                .expression_attribute_values(":p", value(counts)?)
        } else {
            let mut set = "SET #p.written = :written, leaseUntil = :w, GSI1SK = :w".to_string();
            update = update.expression_attribute_values(":written", n(counts.written as i64));
            if let Some(total) = counts.total {
                set.push_str(", #p.#total = :total");
                update = update.expression_attribute_names("#total", "total").expression_attribute_values(":total", n(total as i64));
            }
            let expression = match &counts.listing {
                Some(token) => {
                    update = update.expression_attribute_values(":listing", s(token));
                    format!("{set}, #p.listing = :listing")
                }
                None => format!("{set} REMOVE #p.listing"),
            };
            update
                .update_expression(expression)
                .condition_expression("#st = :running AND #p.written = :before")
                .expression_attribute_values(":before", n(before as i64))
        };
        Self::update_if(update).await
    }

    /// How `run`'s partitions stand: its lanes, one consistent Query (its own counts for a run
    /// from before lanes).
    pub async fn partition_progress(&self, tenant: &TenantId, run: &Run) -> Result<Progress, StoreError> {
        let counts = run.partitions.clone().unwrap_or_default();
        if counts.lanes == 0 {
            return Ok(Progress { lanes: 0, dispatched: vec![counts.dispatched], finished: counts.finished });
        }
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :lane)")
            .expression_attribute_values(":pk", s(runs_pk(tenant, &run.pipeline_id)))
            .expression_attribute_values(":lane", s(format!("LANE#{}#", run.id)))
            .consistent_read(true);
        let mut progress = Progress { lanes: counts.lanes, dispatched: vec![0; counts.lanes as usize], finished: 0 };
        let mut pages = Pager::new(query, None);
        while let Some(items) = pages.next(None).await.map_err(|e| StoreError::dynamo("Query", e))? {
            for item in items {
                let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
                let lane = item.get("SK").and_then(|v| v.as_s().ok()).and_then(|sk| sk.rsplit('#').next()?.parse::<usize>().ok());
                if let Some(sent) = lane.and_then(|lane| progress.dispatched.get_mut(lane)) {
                    *sent = number("dispatched");
                }
                progress.finished += number("finished");
            }
        }
        Ok(progress)
    }

    /// Takes the next partition to send, if one is written and not yet sent, and `run` (as last
    /// read) neither cancelled nor failing: its index. From lane `prefer` first, else the lane
    /// with the most left.
    pub async fn dispatch_partition(&self, tenant: &TenantId, run: &Run, prefer: Option<u32>) -> Result<Option<u32>, StoreError> {
        let counts = run.partitions.clone().unwrap_or_default();
        if counts.lanes == 0 {
            return self.dispatch_on_run(tenant, &run.pipeline_id, &run.id).await;
        }
        if run.status != RunStatus::Running || run.cancel_requested || counts.failed {
            return Ok(None);
        }
        let lanes = counts.lanes;
        // Another partition's end may take the lane read first: read again, a few times.
        for _ in 0..4 {
            let progress = self.partition_progress(tenant, run).await?;
            let left = |lane: u32| lane_written(counts.written, lanes, lane).saturating_sub(progress.dispatched[lane as usize]);
            let Some(lane) = (0..lanes).filter(|&l| left(l) > 0).max_by_key(|&l| (Some(l) == prefer, left(l), std::cmp::Reverse(l))) else {
                return Ok(None);
            };
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(runs_pk(tenant, &run.pipeline_id), lane_sk(&run.id, lane))))
                .update_expression("ADD dispatched :one")
                .condition_expression("attribute_not_exists(dispatched) OR dispatched < :written")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":written", n(lane_written(counts.written, lanes, lane) as i64))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            if let Some(out) = written("UpdateItem", out)? {
                let sent = out.attributes.as_ref().and_then(|a| a.get("dispatched")?.as_n().ok()?.parse::<u32>().ok()).unwrap_or(1);
                return Ok(Some(lane + (sent - 1) * lanes));
            }
        }
        Ok(None)
    }

    /// A run from before lanes: the next partition, counted on the run item.
    async fn dispatch_on_run(&self, tenant: &TenantId, pipeline: &PipelineId, run: &RunId) -> Result<Option<u32>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, pipeline, run)))
            .update_expression("SET #p.dispatched = #p.dispatched + :one")
            .condition_expression(
                "#st = :running AND #p.dispatched < #p.written AND #p.failed = :no AND (attribute_not_exists(cancelRequested) OR cancelRequested = :no)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#p", "partitions")
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match written("UpdateItem", out)? {
            Some(out) => {
                let counts: PartitionCounts = out
                    .attributes
                    .and_then(|mut a| a.remove("partitions"))
                    .map(serde_dynamo::from_attribute_value)
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?
                    .unwrap_or_default();
                Ok(counts.dispatched.checked_sub(1))
            }
            None => Ok(None),
        }
    }

    pub async fn get_partition(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        run: &RunId,
        index: u32,
    ) -> Result<Option<Partition>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(part_key(tenant, pipeline, run, index)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.map(from_item).transpose()
    }

    /// Every partition of a run, by index.
    pub async fn list_partitions(&self, tenant: &TenantId, pipeline: &PipelineId, run: &RunId) -> Result<Vec<Partition>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :part)")
            .expression_attribute_values(":pk", s(runs_pk(tenant, pipeline)))
            .expression_attribute_values(":part", s(format!("PART#{run}#")))
            .consistent_read(true);
        let mut pages = Pager::new(query, None);
        let mut parts = Vec::new();
        while let Some(items) = pages.next(None).await.map_err(|e| StoreError::dynamo("Query", e))? {
            for item in items {
                parts.push(from_item(item)?);
            }
        }
        Ok(parts)
    }

    /// Takes a pending partition, one whose lease ran out, or its own continuation.
    pub async fn claim_partition(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        run: &RunId,
        index: u32,
        terms: &super::ClaimTerms<'_>,
    ) -> Result<PartClaim, StoreError> {
        for _ in 0..3 {
            let Some(part) = self.get_partition(tenant, pipeline, run, index).await? else { return Ok(PartClaim::Missing) };
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(part_key(tenant, pipeline, run, index)))
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
                .expression_attribute_values(":attempt", n(part.attempt as i64))
                .expression_attribute_values(":lease", s(terms.lease_until));
            update =
                match claimable(part.status, part.continuation, part.lease_until.as_deref(), part.attempt, terms.now, terms.max_attempts) {
                    Claimable::Finished(_) => return Ok(PartClaim::Finished),
                    Claimable::Resume => update
                        .update_expression("SET leaseUntil = :lease, continuation = :no")
                        .condition_expression("#st = :running AND attempt = :attempt AND continuation = :yes")
                        .expression_attribute_values(":yes", AttributeValue::Bool(true))
                        .expression_attribute_values(":no", AttributeValue::Bool(false)),
                    Claimable::Busy => return Ok(PartClaim::Busy),
                    Claimable::Exhausted => {
                        let error = attempts_exhausted(part.attempt, Some(index));
                        let ended = PartEnd { status: RunStatus::Failed, stats: part.stats.clone(), error: Some(error) };
                        if self.finish_partition(tenant, pipeline, &part, &ended, From::Running).await? {
                            return Ok(PartClaim::Exhausted);
                        }
                        continue;
                    }
                    Claimable::TakeOver => update
                        .update_expression("SET attempt = :next, leaseUntil = :lease")
                        .condition_expression("#st = :running AND attempt = :attempt AND leaseUntil = :old")
                        .expression_attribute_values(":next", n(part.attempt as i64 + 1))
                        .expression_attribute_values(":old", s(part.lease_until.clone().unwrap_or_default())),
                    Claimable::Start => update
                        .update_expression("SET #st = :running, attempt = :next, leaseUntil = :lease")
                        .condition_expression("#st = :pending AND attempt = :attempt")
                        .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
                        .expression_attribute_values(":next", n(part.attempt as i64 + 1)),
                };
            let update = update.build().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(update.key))
                .update_expression(update.update_expression)
                .set_condition_expression(update.condition_expression)
                .set_expression_attribute_names(update.expression_attribute_names)
                .set_expression_attribute_values(update.expression_attribute_values)
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match written("UpdateItem", out)? {
                Some(out) => return Ok(PartClaim::Claimed(Box::new(from_item(out.attributes.unwrap_or_default())?))),
                None => continue,
            }
        }
        Ok(PartClaim::Busy)
    }

    /// Renews the lease of the attempt that holds the partition and shows its counts; then reads
    /// whether the run still wants it to go on.
    pub async fn heartbeat_partition(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        part: &Partition,
        lease_until: &str,
        stats: Option<&serde_json::Value>,
    ) -> Result<PartBeat, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(part_key(tenant, pipeline, &part.run_id, part.index)))
            .condition_expression("#st = :running AND attempt = :attempt")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":attempt", n(part.attempt as i64))
            .expression_attribute_values(":lease", s(lease_until));
        update = match stats {
            Some(stats) => {
                update.update_expression("SET leaseUntil = :lease, stats = :stats").expression_attribute_values(":stats", value(stats)?)
            }
            None => update.update_expression("SET leaseUntil = :lease"),
        };
        if written("UpdateItem", update.send().await)?.is_none() {
            return Ok(PartBeat::Lost);
        }
        let Some(run) = self.get_run(tenant, pipeline, &part.run_id).await? else { return Ok(PartBeat::Stop { cancelled: true }) };
        Ok(match (run.status, run.cancel_requested, run.partitions.is_some_and(|p| p.failed)) {
            (RunStatus::Running, false, false) => PartBeat::GoOn,
            (_, cancelled, _) => PartBeat::Stop { cancelled },
        })
    }

    /// Parks a partition that used its worker's time budget, for its follow-up message.
    pub async fn suspend_partition(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        part: &Partition,
        checkpoint: &serde_json::Value,
        stats: &serde_json::Value,
        now: &str,
    ) -> Result<bool, StoreError> {
        Self::update_if(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(part_key(tenant, pipeline, &part.run_id, part.index)))
                .update_expression("SET checkpoint = :cp, stats = :stats, continuation = :yes, leaseUntil = :now")
                .condition_expression("#st = :running AND attempt = :attempt")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
                .expression_attribute_values(":attempt", n(part.attempt as i64))
                .expression_attribute_values(":cp", value(checkpoint)?)
                .expression_attribute_values(":stats", value(stats)?)
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .expression_attribute_values(":now", s(now)),
        )
        .await
    }

    /// Ends a partition (held by `part.attempt`, or still pending for [`From::Pending`]) and counts
    /// it on its run in the same transaction; a failure marks the run failing, so the other
    /// partitions stop. `false`: the partition was not in that state (nothing written).
    pub async fn finish_partition(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        part: &Partition,
        end: &PartEnd,
        from: From,
    ) -> Result<bool, StoreError> {
        let mut own = Update::builder()
            .table_name(&self.table)
            .set_key(Some(part_key(tenant, pipeline, &part.run_id, part.index)))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":status", s(end.status.as_str()));
        let mut set = "SET #st = :status".to_string();
        own = match from {
            From::Running => own
                .condition_expression("#st = :running AND attempt = :attempt")
                .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
                .expression_attribute_values(":attempt", n(part.attempt as i64)),
            From::Pending => {
                own.condition_expression("#st = :pending").expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            }
        };
        if let Some(stats) = &end.stats {
            set.push_str(", stats = :stats");
            own = own.expression_attribute_values(":stats", value(stats)?);
        }
        if let Some(error) = &end.error {
            set.push_str(", #err = :err");
            own = own.expression_attribute_names("#err", "error").expression_attribute_values(":err", value(error)?);
        }
        let own = own.update_expression(format!("{set} REMOVE leaseUntil"));
        let on_run = Update::builder()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, pipeline, &part.run_id)))
            .condition_expression("attribute_exists(#p)")
            .expression_attribute_names("#p", "partitions");
        let failed = end.status == RunStatus::Failed;
        let yes = AttributeValue::Bool(true);
        let mut items = vec![tx_update(own)?];
        if part.lanes > 0 {
            // Counted in its lane; the run item moves only when the partition failed.
            let lane = Update::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(runs_pk(tenant, pipeline), lane_sk(&part.run_id, part.index % part.lanes))))
                .update_expression("ADD finished :one")
                .expression_attribute_values(":one", n(1));
            items.push(tx_update(lane)?);
            if failed {
                items.push(tx_update(on_run.update_expression("SET #p.failed = :yes").expression_attribute_values(":yes", yes))?);
            }
        } else {
            let counted = on_run.expression_attribute_values(":one", n(1));
            items.push(tx_update(match failed {
                true => counted
                    .update_expression("SET #p.finished = #p.finished + :one, #p.failed = :yes")
                    .expression_attribute_values(":yes", yes),
                false => counted.update_expression("SET #p.finished = #p.finished + :one"),
            })?);
        }
        match self.transact("TransactWriteItems", items).await {
            Ok(()) => Ok(true),
            Err(e) if e.reason(0).is_some() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ends a partitioned run once every partition has ended (for a run with lanes, the caller
    /// has read so): the condition makes it happen once, whichever partition (or sweep) gets
    /// there first. `false`: not yet, or already done.
    pub async fn finish_partitioned_run(&self, tenant: &TenantId, run: &Run, finish: &super::Finish) -> Result<bool, StoreError> {
        let update = self
            .finish_update(tenant, run, finish)?
            // With lanes, the caller read every lane's end (consistently) first.
            .condition_expression("#st = :running AND (attribute_exists(#p.lanes) OR #p.finished = #p.#total)")
            .expression_attribute_names("#p", "partitions")
            .expression_attribute_names("#total", "total");
        self.end_running(tenant, run, update).await
    }

    /// Moves a partitioned run's watchdog: when the sweep looks at it next, if nothing moves it.
    pub async fn watch_run(&self, tenant: &TenantId, run: &Run, until: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
            .update_expression("SET leaseUntil = :w, GSI1SK = :w")
            .condition_expression("#st = :running AND attribute_exists(#p)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#p", "partitions")
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":w", s(until))
            .send()
            .await;
        // Not written: a newer run has taken over the pipeline's last-run fields.
        written("UpdateItem", out).map(|_| ())
    }
}

/// How a partition ends.
pub struct PartEnd {
    pub status: RunStatus,
    pub stats: Option<serde_json::Value>,
    pub error: Option<RunError>,
}

/// The state a partition ends from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Running,
    /// Never started: the run was cancelled or failed first.
    Pending,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lane_holds_every_lanes_th_partition() {
        // 10 partitions over 4 lanes: lanes 0 and 1 hold 3, lanes 2 and 3 hold 2.
        assert_eq!((0..4).map(|l| lane_written(10, 4, l)).collect::<Vec<_>>(), [3, 3, 2, 2]);
        assert_eq!(lane_written(2, 4, 3), 0);
        assert_eq!((0..64).map(|l| lane_written(2_000, 64, l)).sum::<u32>(), 2_000);
    }

    #[test]
    fn progress_knows_what_was_sent_and_what_is_out() {
        let progress = Progress { lanes: 4, dispatched: vec![2, 1, 0, 1], finished: 3 };
        let sent: Vec<u32> = (0..10).filter(|&i| progress.sent(i)).collect();
        assert_eq!(sent, [0, 1, 3, 4]);
        assert_eq!(progress.out(), 1);
        let before_lanes = Progress { lanes: 0, dispatched: vec![5], finished: 5 };
        assert!(before_lanes.sent(4) && !before_lanes.sent(5));
        assert_eq!(before_lanes.out(), 0);
    }
}
