//! Backfills, in their pipeline's runs partition (`BACKFILL#<id>`), so that deleting the
//! pipeline purges them with its runs. Every write after the first is conditioned on the
//! version it read: a step and a cancel never overwrite each other.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::entity::from_item;
use super::runs::{corrupt, runs_pk};
use super::{n, written, IdempotencyRecord, Item, SavedReply, Store, StoreError};
use crate::domain::backfill::Backfill;
use crate::domain::ids::{BackfillId, PipelineId, RunId};
use crate::domain::tenant::TenantId;

fn backfill_key(tenant: &TenantId, pipeline: &PipelineId, id: &BackfillId) -> Item {
    Store::key(runs_pk(tenant, pipeline), format!("BACKFILL#{id}"))
}

impl Store {
    /// Writes a new backfill, with the request's reply under its idempotency key when `saved`:
    /// `Err(record)` when a live record held the key (nothing written).
    pub async fn put_backfill(
        &self,
        tenant: &TenantId,
        backfill: &Backfill,
        saved: Option<&SavedReply>,
    ) -> Result<Result<(), Box<IdempotencyRecord>>, StoreError> {
        let mut item: Item = serde_dynamo::to_item(backfill).map_err(corrupt)?;
        item.extend(backfill_key(tenant, &backfill.pipeline_id, &backfill.id));
        let put = Put::builder().table_name(&self.table).set_item(Some(item)).condition_expression("attribute_not_exists(PK)");
        let mut items = vec![TransactWriteItem::builder().put(put.build().map_err(corrupt)?).build()];
        if let Some(saved) = saved {
            items.push(self.save_reply(tenant, saved)?);
        }
        match self.transact("TransactWriteItems", items).await {
            Ok(()) => Ok(Ok(())),
            Err(e) if e.reason(1).is_some() => Ok(Err(Self::taken_key(e, 1)?)),
            Err(e) => Err(e),
        }
    }

    pub async fn get_backfill(&self, tenant: &TenantId, pipeline: &PipelineId, id: &BackfillId) -> Result<Option<Backfill>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(backfill_key(tenant, pipeline, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.map(from_item).transpose()
    }

    /// Saves `backfill` over the version `read` (its own `version` is the new one); `false`
    /// when another writer got there first.
    pub async fn save_backfill(&self, tenant: &TenantId, backfill: &Backfill, read: u64) -> Result<bool, StoreError> {
        let mut item: Item = serde_dynamo::to_item(backfill).map_err(corrupt)?;
        item.extend(backfill_key(tenant, &backfill.pipeline_id, &backfill.id));
        let read: AttributeValue = n(read as i64);
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(PK) AND version = :read")
            .expression_attribute_values(":read", read)
            .send()
            .await;
        Ok(written("PutItem", out)?.is_some())
    }

    /// Claims the queueing of the step at `version` (`false`: already claimed, or the backfill
    /// moved on).
    pub async fn claim_step(&self, tenant: &TenantId, backfill: &Backfill, version: u64) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(backfill_key(tenant, &backfill.pipeline_id, &backfill.id)))
            .update_expression("SET queued = :v")
            .condition_expression("version = :v AND (attribute_not_exists(queued) OR queued < :v)")
            .expression_attribute_values(":v", n(version as i64));
        Self::update_if(update).await
    }

    /// Gives back a claim whose send failed, so that the message's redelivery queues it again.
    pub async fn release_step(&self, tenant: &TenantId, backfill: &Backfill, version: u64) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(backfill_key(tenant, &backfill.pipeline_id, &backfill.id)))
            .update_expression("SET queued = :before")
            .condition_expression("version = :v AND queued = :v")
            .expression_attribute_values(":v", n(version as i64))
            .expression_attribute_values(":before", n(version as i64 - 1));
        Self::update_if(update).await
    }

    /// The runs the slot markers of `slots` name, with the backfill that made each (if one did).
    pub async fn slot_runs(
        &self,
        tenant: &TenantId,
        pipeline: &PipelineId,
        slots: &[String],
    ) -> Result<Vec<(RunId, Option<String>)>, StoreError> {
        let mut found = Vec::new();
        for chunk in slots.chunks(100) {
            let keys = chunk.iter().map(|slot| Store::key(runs_pk(tenant, pipeline), format!("SLOT#{slot}"))).collect::<Vec<_>>();
            for item in self.batch_get(keys).await? {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                if let Some(run) = text("runId").as_deref().and_then(RunId::parse) {
                    found.push((run, text("backfillId")));
                }
            }
        }
        Ok(found)
    }

    /// Removes a backfill whose first step could not be queued.
    pub async fn delete_backfill(&self, tenant: &TenantId, backfill: &Backfill) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(backfill_key(tenant, &backfill.pipeline_id, &backfill.id)))
            .send()
            .await;
        written("DeleteItem", out).map(|_| ())
    }
}
