//! Runs, in their pipeline's partition, newest first.

use aws_sdk_dynamodb::types::{DeleteRequest, Put, TransactWriteItem, Update, WriteRequest};

use super::entity::{from_item, sk};
use super::{n, s, tenant_pk, Item, Store, StoreError};
use crate::domain::ids::{PipelineId, RunId};
use crate::domain::pipeline::Pipeline;
use crate::domain::run::{Run, RunError, RunStatus};
use crate::domain::tenant::TenantId;

fn runs_pk(tenant: &TenantId, pipeline: &PipelineId) -> String {
    format!("{}#P#{pipeline}", tenant_pk(tenant))
}

fn run_key(tenant: &TenantId, pipeline: &PipelineId, run: &RunId) -> Item {
    Store::key(runs_pk(tenant, pipeline), format!("RUN#{run}"))
}

impl Store {
    /// Writes a new run and marks it as its pipeline's latest, in one transaction conditioned on
    /// the pipeline existing (so no run outlives a concurrent delete). `Ok(false)`: no pipeline.
    pub async fn create_run(&self, tenant: &TenantId, run: &Run) -> Result<bool, StoreError> {
        let mut item: Item = serde_dynamo::to_item(run).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        item.extend(run_key(tenant, &run.pipeline_id, &run.id));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let latest = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<Pipeline>(run.pipeline_id.as_str()))))
            .update_expression("SET lastRunAt = :at, lastRunStatus = :st ADD version :one")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":at", s(&run.created_at))
            .expression_attribute_values(":st", s(run.status.as_str()))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let items = vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(latest).build()];
        match self.transact("TransactWriteItems", items).await {
            Ok(()) => Ok(true),
            Err(e) if e.reason(1).is_some() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The newest `limit` runs of a pipeline.
    pub async fn list_runs(&self, tenant: &TenantId, pipeline: &PipelineId, limit: usize) -> Result<Vec<Run>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :run)")
            .expression_attribute_values(":pk", s(runs_pk(tenant, pipeline)))
            .expression_attribute_values(":run", s("RUN#"))
            .scan_index_forward(false)
            .limit(limit as i32)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        out.items.unwrap_or_default().into_iter().map(from_item).collect()
    }

    /// Fails a run that is still `pending` (its message never reached the queue), and its
    /// pipeline's latest status with it if it is still the latest. `Ok(false)`: not pending.
    pub async fn fail_pending_run(&self, tenant: &TenantId, run: &Run, error: RunError, now: &str) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, &run.pipeline_id, &run.id)))
            .update_expression("SET #st = :failed, completedAt = :now, #err = :err")
            .condition_expression("#st = :pending")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#err", "error")
            .expression_attribute_values(":failed", s(RunStatus::Failed.as_str()))
            .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":err", serde_dynamo::to_attribute_value(&error).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            .send()
            .await;
        match update {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => return Ok(false),
            Err(e) => return Err(StoreError::dynamo("UpdateItem", e)),
        }
        let latest = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<Pipeline>(run.pipeline_id.as_str()))))
            .update_expression("SET lastRunStatus = :failed ADD version :one")
            .condition_expression("lastRunAt = :at")
            .expression_attribute_values(":failed", s(RunStatus::Failed.as_str()))
            .expression_attribute_values(":at", s(&run.created_at))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match latest {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(true),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Removes every run of a pipeline, 25 deletes a request.
    pub(super) async fn delete_runs(&self, tenant: &TenantId, pipeline: &PipelineId) -> Result<(), StoreError> {
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(runs_pk(tenant, pipeline)))
                .projection_expression("PK, SK")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for chunk in page.items.unwrap_or_default().chunks(25) {
                let mut requests: Vec<WriteRequest> = chunk
                    .iter()
                    .map(|key| {
                        let delete =
                            DeleteRequest::builder().set_key(Some(key.clone())).build().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        Ok(WriteRequest::builder().delete_request(delete).build())
                    })
                    .collect::<Result<_, StoreError>>()?;
                for round in 1.. {
                    let out = self
                        .client
                        .batch_write_item()
                        .request_items(&self.table, requests)
                        .send()
                        .await
                        .map_err(|e| StoreError::dynamo("BatchWriteItem", e))?;
                    requests = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                    if requests.is_empty() {
                        break;
                    }
                    if round > 10 {
                        return Err(StoreError::Dynamo { op: "BatchWriteItem", detail: "items left unprocessed".into() });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20 * round)).await;
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(());
            }
        }
    }
}
