//! Pipelines: created, replaced and deleted together with the counts and use counts they move.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::entity::{to_item, Entity};
use super::{index, n, IdempotencyRecord, Item, SavedReply, Store, StoreError};
use crate::domain::connector::Connector;
use crate::domain::pipeline::Pipeline;
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
    /// A live record holds the request's idempotency key (this one): nothing was written.
    KeyTaken(Box<IdempotencyRecord>),
}

impl Store {
    /// Creates a pipeline. Its connector and schema must exist in the tenant: their use counts
    /// are raised in the same transaction, conditioned on their existence. With `saved`, the
    /// request's reply is saved under its idempotency key in the same transaction.
    pub async fn create_pipeline(
        &self,
        tenant: &TenantId,
        p: &Pipeline,
        saved: Option<&SavedReply>,
    ) -> Result<Result<(), PipelineConflict>, StoreError> {
        let mut items = vec![
            self.put_new(tenant, p)?,
            self.count_delta::<Pipeline>(tenant, 1)?,
            self.use_delta::<Connector>(tenant, p.connector_id.as_str(), 1)?,
            self.use_delta::<Schema>(tenant, p.schema_id.as_str(), 1)?,
        ];
        if let Some(saved) = saved {
            items.push(self.save_reply(tenant, saved)?);
        }
        match self.transact("TransactWriteItems", items).await {
            // The key first: a retry of a create that went through replays it.
            Err(e) if e.reason(4).is_some() => Ok(Err(PipelineConflict::KeyTaken(Self::taken_key(e, 4)?))),
            result => Self::conflict(result, 2, [PipelineConflict::UnknownConnector, PipelineConflict::UnknownSchema]),
        }
    }

    /// Replaces `prev` by `next`, if `prev` is still what is stored (its `version`); moves the
    /// use counts when the connector or schema changed.
    pub async fn update_pipeline(
        &self,
        tenant: &TenantId,
        prev: &Pipeline,
        next: &Pipeline,
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
        Self::conflict(self.transact("TransactWriteItems", items).await, 1, moved)
    }

    /// Deletes `p` (if unchanged since read), uncounts it and releases its connector and schema;
    /// then removes its runs.
    pub async fn delete_pipeline(&self, tenant: &TenantId, p: &Pipeline) -> Result<Result<(), PipelineConflict>, StoreError> {
        let items = vec![
            self.delete_existing::<Pipeline>(tenant, p.id.as_str(), Some(("version = :v", ":v", n(p.version as i64))))?,
            self.count_delta::<Pipeline>(tenant, -1)?,
            self.use_delta::<Connector>(tenant, p.connector_id.as_str(), -1)?,
            self.use_delta::<Schema>(tenant, p.schema_id.as_str(), -1)?,
        ];
        if let Err(conflict) = Self::conflict(self.transact("TransactWriteItems", items).await, 2, [])? {
            return Ok(Err(conflict));
        }
        // Runs of a deleted pipeline are unreachable (every run path reads the pipeline first),
        // so a crash before this line leaves only invisible items.
        self.delete_runs(tenant, &p.id).await?;
        Ok(Ok(()))
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
