//! API keys, in their tenant's partition.

use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};

use super::entity::{sk, Entity};
use super::{tenant_pk, Store, StoreError};
use crate::domain::api_key::ApiKey;
use crate::domain::ids::ApiKeyId;
use crate::domain::tenant::TenantId;

impl Entity for ApiKey {
    const KIND: &'static str = "KEY";
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
            .table_name(self.table())
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
