//! Idempotency records: `T#<t>` / `IDEM#<key>`, expiring through TTL on `expiresAt`.

use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::{n, s, tenant_pk, written, Item, Store, StoreError};
use crate::domain::tenant::TenantId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    // Absent, not NULL, until completed: conditions test `attribute_not_exists(body)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub locked_until: String,
    /// Epoch seconds: DynamoDB's TTL deletes the record some time after.
    pub expires_at: i64,
}

fn key(tenant: &TenantId, key: &str) -> Item {
    Store::key(tenant_pk(tenant), format!("IDEM#{key}"))
}

/// When a new record may replace the one under its key: none there, expired (TTL deletes
/// lazily), or an unfinished request's lapsed lock for the same request.
const TAKEABLE: &str =
    "attribute_not_exists(PK) OR expiresAt < :epoch OR (attribute_not_exists(body) AND lockedUntil < :now AND fingerprint = :fp)";

/// A completed record to write in the same transaction as the write it guards, so that the two
/// commit together or not at all (see [`crate::idempotency`]).
#[derive(Debug, Clone)]
pub struct SavedReply {
    pub key: String,
    pub record: IdempotencyRecord,
    pub now: String,
    pub now_epoch: i64,
}

impl Store {
    /// The transaction item that writes `saved` unless a live record is there; the cancelled
    /// transaction then carries the live one ([`super::StoreError::old_item`]).
    pub(super) fn save_reply(&self, tenant: &TenantId, saved: &SavedReply) -> Result<TransactWriteItem, StoreError> {
        let mut item: Item = serde_dynamo::to_item(&saved.record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        item.extend(key(tenant, &saved.key));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(TAKEABLE)
            .expression_attribute_values(":epoch", n(saved.now_epoch))
            .expression_attribute_values(":now", s(&saved.now))
            .expression_attribute_values(":fp", s(&saved.record.fingerprint))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The live record that cancelled a transaction at item `i` (its [`Self::save_reply`]).
    pub(super) fn taken_key(e: StoreError, i: usize) -> Result<Box<IdempotencyRecord>, StoreError> {
        let old = e.old_item(i).ok_or_else(|| StoreError::Corrupt("a taken idempotency key came back without its record".into()))?;
        Ok(Box::new(super::entity::from_item(old)?))
    }

    /// Removes a saved reply whose request failed after all (its body is still `body`), so that a
    /// retry under the key runs again instead of replaying it.
    pub async fn retract_idempotent(&self, tenant: &TenantId, idem: &str, body: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, idem)))
            .condition_expression("body = :body")
            .expression_attribute_values(":body", s(body))
            .send()
            .await;
        written("DeleteItem", out).map(|_| ())
    }
}
