//! API keys, in the auth table, under their tenant's partition.

use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};

use super::entity::{sk, Entity, Home};
use super::{tenant_pk, Store, StoreError};
use crate::domain::api_key::ApiKey;
use crate::domain::ids::ApiKeyId;
use crate::domain::tenant::TenantId;

impl Entity for ApiKey {
    const KIND: &'static str = "KEY";
    const HOME: Home = Home::Auth;
    fn id(&self) -> &str {
        self.id.as_str()
    }
}

/// The outcome of deleting an admin key.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteAdminKey {
    Deleted,
    /// The key was not there.
    Gone,
    /// The admin key that was to remain was deleted meanwhile.
    LastAdmin,
}

impl Store {
    /// Deletes an admin key on condition that `keeping`, another admin key, still exists: two
    /// concurrent deletes of a tenant's last two admin keys cannot both succeed, because each
    /// transaction checks the key the other deletes.
    pub async fn delete_admin_key(&self, tenant: &TenantId, id: &ApiKeyId, keeping: &ApiKeyId) -> Result<DeleteAdminKey, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(self.home::<ApiKey>())
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<ApiKey>(keeping.as_str()))))
            .condition_expression("attribute_exists(PK)")
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let items = vec![
            self.delete_existing::<ApiKey>(tenant, id.as_str(), None)?,
            self.count_delta::<ApiKey>(tenant, -1)?,
            TransactWriteItem::builder().condition_check(check).build(),
        ];
        match self.transact("TransactWriteItems", items).await {
            Ok(()) => Ok(DeleteAdminKey::Deleted),
            Err(e) if e.reason(0).is_some() => Ok(DeleteAdminKey::Gone),
            Err(e) if e.reason(2).is_some() => Ok(DeleteAdminKey::LastAdmin),
            Err(e) => Err(e),
        }
    }
}

/// A request window: the requests one key made in one second, in the auth table's
/// `T#<tenant>#RATE#<keyId>` partition: apart from the keys, so that IAM can let every function
/// count requests without letting it write a key, and one partition per key, so that no
/// tenant's traffic meets in one partition (and no stranger's guessed key id in a real one's).
fn window_key(tenant: &TenantId, key: &ApiKeyId, second: i64) -> super::Item {
    Store::key(format!("{}#RATE#{key}", tenant_pk(tenant)), second.to_string())
}

/// How long a window outlives its second (DynamoDB's TTL removes it).
const WINDOW_TTL_SECONDS: i64 = 120;

impl Store {
    /// Counts one request of `key` in the second `second` (Unix time): `false` when `limit`
    /// were already counted there (nothing written).
    pub async fn count_request(&self, tenant: &TenantId, key: &ApiKeyId, second: i64, limit: u32) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.auth_table)
            .set_key(Some(window_key(tenant, key, second)))
            .update_expression("ADD n :one SET expiresAt = :expires")
            .condition_expression("attribute_not_exists(n) OR n < :limit")
            .expression_attribute_values(":one", super::n(1))
            .expression_attribute_values(":limit", super::n(limit as i64))
            .expression_attribute_values(":expires", super::n(second + WINDOW_TTL_SECONDS));
        Self::update_if(update).await
    }
}
