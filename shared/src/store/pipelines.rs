//! Pipelines: created, replaced and deleted together with the counts and use counts they move.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::entity::{to_item, Entity};
use super::runs::runs_pk;
use super::{index, n, s, IdempotencyRecord, Item, SavedReply, Store, StoreError};
use crate::domain::connector::Connector;
use crate::domain::ids::PipelineId;
use crate::domain::pipeline::{Pipeline, PipelineVersion, VERSIONS_KEPT};
use crate::domain::schema::Schema;
use crate::domain::tenant::TenantId;

impl Entity for Pipeline {
    const KIND: &'static str = "PIPE";
    fn id(&self) -> &str {
        self.id.as_str()
    }
    /// An active, scheduled pipeline sits in the due index at its next slot (sparse: others don't).
    fn index_attributes(&self) -> Item {
        match &self.next_run_at {
            Some(next) => index::entry(index::DUE, self.id.as_str(), next),
            None => Item::new(),
        }
    }
}

/// Which item of a pipeline transaction failed its condition.
#[derive(Debug, PartialEq, Eq)]
pub enum PipelineConflict {
    /// The pipeline is gone, or another writer changed it since it was read.
    Changed,
    UnknownConnector,
    UnknownSchema,
    /// The tenant holds its quota of pipelines.
    PipelineQuota,
    /// The tenant holds its quota of frequent schedules.
    FrequentQuota,
    /// A live record holds the request's idempotency key (this one): nothing was written.
    KeyTaken(Box<IdempotencyRecord>),
}

/// The count of a tenant's pipelines whose schedule is frequent.
const FREQUENT: &str = "FREQUENT";

/// The count of a tenant's runs pending or running.
pub(super) const ACTIVE: &str = "ACTIVE";

/// The quotas a pipeline write is held to.
#[derive(Debug, Clone, Copy)]
pub struct PipelineQuotas {
    pub pipelines: u32,
    pub frequent_schedules: u32,
}

/// A saved version: beside its pipeline's runs (`T#<t>#P#<pipelineId>`), so the purge of a
/// deleted pipeline's runs removes its versions too; zero-padded, so versions sort by number.
fn version_key(tenant: &TenantId, pipeline: &PipelineId, version: u64) -> Item {
    Store::key(runs_pk(tenant, pipeline), format!("VER#{version:010}"))
}

impl Store {
    /// The transaction items that save `p` as its version `p.revision`, and drop the version
    /// that falls out of the newest [`VERSIONS_KEPT`].
    fn save_version(&self, tenant: &TenantId, p: &Pipeline) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut item: Item = serde_dynamo::to_item(PipelineVersion::of(p)).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        item.extend(version_key(tenant, &p.id, p.revision));
        let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if p.revision > VERSIONS_KEPT {
            let old = version_key(tenant, &p.id, p.revision - VERSIONS_KEPT);
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.table)
                .set_key(Some(old))
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        Ok(items)
    }

    /// A saved version of a pipeline, if it is among the newest kept.
    pub async fn pipeline_version(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        version: u64,
    ) -> Result<Option<PipelineVersion>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(version_key(tenant, pipeline, version)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.map(super::entity::from_item).transpose()
    }

    /// A page of a pipeline's saved versions, newest first, below version `before`.
    pub async fn pipeline_versions(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        limit: usize,
        before: Option<u64>,
    ) -> Result<(Vec<PipelineVersion>, bool), StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :ver)")
            .expression_attribute_values(":pk", s(runs_pk(tenant, pipeline)))
            .expression_attribute_values(":ver", s("VER#"))
            .scan_index_forward(false)
            .consistent_read(true);
        let mut pages = super::Pager::new(query, before.map(|v| version_key(tenant, pipeline, v)));
        let mut out = Vec::with_capacity(limit + 1);
        while out.len() <= limit {
            let Some(items) = pages.next(Some(limit + 1 - out.len())).await.map_err(|e| StoreError::dynamo("Query", e))? else { break };
            for item in items {
                out.push(super::entity::from_item(item)?);
            }
        }
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    fn frequent_delta(&self, tenant: &TenantId, delta: i64, max: u32) -> Result<TransactWriteItem, StoreError> {
        self.tenant_count(&self.table, tenant, FREQUENT, delta, (delta > 0).then_some(max))
    }

    /// Creates a pipeline. Its connector and schema must exist in the tenant: their use counts
    /// are raised in the same transaction, conditioned on their existence, as are the tenant's
    /// counts, conditioned on its quotas. With `saved`, the request's reply is saved under its
    /// idempotency key in the same transaction.
    pub async fn create_pipeline(
        &self,
        tenant: &TenantId,
        p: &Pipeline,
        quotas: PipelineQuotas,
        saved: Option<&SavedReply>,
    ) -> Result<Result<(), PipelineConflict>, StoreError> {
        let mut items = vec![
            self.put_new(tenant, p)?,
            self.count_within::<Pipeline>(tenant, quotas.pipelines)?,
            self.use_delta::<Connector>(tenant, p.connector_id.as_str(), 1)?,
            self.use_delta::<Schema>(tenant, p.schema_id.as_str(), 1)?,
        ];
        let mut rest = vec![PipelineConflict::PipelineQuota, PipelineConflict::UnknownConnector, PipelineConflict::UnknownSchema];
        if p.is_frequent() {
            items.push(self.frequent_delta(tenant, 1, quotas.frequent_schedules)?);
            rest.push(PipelineConflict::FrequentQuota);
        }
        items.extend(self.save_version(tenant, p)?);
        let key_at = items.len();
        if let Some(saved) = saved {
            items.push(self.save_reply(tenant, saved)?);
        }
        match self.transact("TransactWriteItems", items).await {
            // The key first: a retry of a create that went through replays it.
            Err(e) if e.reason(key_at).is_some() => Ok(Err(PipelineConflict::KeyTaken(Self::taken_key(e, key_at)?))),
            result => Self::conflict(result, 1, rest),
        }
    }

    /// Replaces `prev` by `next`, if `prev` is still what is stored (its `version`); moves the
    /// use counts when the connector or schema changed, and the count of frequent schedules
    /// (within `max_frequent`) when that changed.
    pub async fn update_pipeline(
        &self,
        tenant: &TenantId,
        prev: &Pipeline,
        next: &Pipeline,
        max_frequent: u32,
    ) -> Result<Result<(), PipelineConflict>, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(tenant, next)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(prev.version as i64))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        let mut moved = vec![];
        if prev.connector_id != next.connector_id {
            items.push(self.use_delta::<Connector>(tenant, next.connector_id.as_str(), 1)?);
            items.push(self.use_delta::<Connector>(tenant, prev.connector_id.as_str(), -1)?);
            moved.extend([PipelineConflict::UnknownConnector, PipelineConflict::Changed]);
        }
        if prev.schema_id != next.schema_id {
            items.push(self.use_delta::<Schema>(tenant, next.schema_id.as_str(), 1)?);
            items.push(self.use_delta::<Schema>(tenant, prev.schema_id.as_str(), -1)?);
            moved.extend([PipelineConflict::UnknownSchema, PipelineConflict::Changed]);
        }
        match (prev.is_frequent(), next.is_frequent()) {
            (false, true) => items.push(self.frequent_delta(tenant, 1, max_frequent)?),
            (true, false) => items.push(self.frequent_delta(tenant, -1, max_frequent)?),
            _ => {}
        }
        moved.push(PipelineConflict::FrequentQuota);
        if next.revision != prev.revision {
            items.extend(self.save_version(tenant, next)?);
        }
        Self::conflict(self.transact("TransactWriteItems", items).await, 1, moved)
    }

    /// Deletes `p` (if unchanged since read), uncounts it, releases its connector and schema,
    /// and gives back its active runs' place in the tenant's runs in flight (its `SLOTS` go in
    /// the same transaction, so no run's end can count them back again). Its runs stay for the
    /// purge that the caller queued first.
    pub async fn delete_pipeline(&self, tenant: &TenantId, p: &Pipeline) -> Result<Result<(), PipelineConflict>, StoreError> {
        for _ in 0..3 {
            let (active, per_shard) = self.active_runs(tenant, &p.id).await?;
            let mut items = vec![
                self.delete_existing::<Pipeline>(tenant, p.id.as_str(), Some(("version = :v", ":v", n(p.version as i64))))?,
                self.count_delta::<Pipeline>(tenant, -1)?,
                self.use_delta::<Connector>(tenant, p.connector_id.as_str(), -1)?,
                self.use_delta::<Schema>(tenant, p.schema_id.as_str(), -1)?,
                self.drop_slots(tenant, &p.id, active)?,
            ];
            items.extend(self.give_pipeline_in_flight(tenant, active, &per_shard)?);
            if p.is_frequent() {
                items.push(self.frequent_delta(tenant, -1, 0)?);
            }
            match self.transact("TransactWriteItems", items).await {
                // A run started or ended since `active` was read: read it again.
                Err(e) if e.reason(4).is_some() && e.reason(0).is_none() => continue,
                result => {
                    if let Err(conflict) = Self::conflict(result, 2, [])? {
                        return Ok(Err(conflict));
                    }
                }
            }
            // Its runs are unreachable now (every run path reads the pipeline first); a queued
            // purge removes them (`domain::purge`).
            return Ok(Ok(()));
        }
        Err(StoreError::Unavailable { op: "TransactWriteItems", detail: "the pipeline's runs kept changing".into() })
    }

    /// Maps a cancelled transaction to the conflict of its first failed item: item 0 is always
    /// the pipeline, items `offset..` are described by `rest`.
    fn conflict(
        result: Result<(), StoreError>,
        offset: usize,
        rest: impl IntoIterator<Item = PipelineConflict>,
    ) -> Result<Result<(), PipelineConflict>, StoreError> {
        let err = match result {
            Ok(()) => return Ok(Ok(())),
            Err(e @ StoreError::ConditionFailed { .. }) => e,
            Err(e) => return Err(e),
        };
        if err.reason(0).is_some() {
            return Ok(Err(PipelineConflict::Changed));
        }
        for (i, conflict) in rest.into_iter().enumerate() {
            if err.reason(i + offset).is_some() {
                return Ok(Err(conflict));
            }
        }
        Ok(Err(PipelineConflict::Changed))
    }
}
