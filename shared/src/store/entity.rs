//! What pipelines, connectors, schemas and API keys have in common in the table: items in the
//! tenant's partition under a kind prefix, a count per kind, pages through a cursor.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{n, s, tenant_pk, Item, Pager, Store, StoreError};
use crate::domain::tenant::TenantId;

/// The table that holds an entity's items and its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// The main table: pipelines, connectors, schemas, runs.
    Main,
    /// The auth table: API keys and request windows, writable only by the functions that
    /// manage keys (least privilege: no other function can mint one).
    Auth,
}

pub trait Entity: Serialize + DeserializeOwned + Send + Sync {
    /// The sort-key prefix and count name: `PIPE`, `CONN`, `SCHEMA`, `KEY`.
    const KIND: &'static str;
    const HOME: Home = Home::Main;
    fn id(&self) -> &str;
    /// Index attributes derived from the entity (a scheduled pipeline's place in the due index).
    fn index_attributes(&self) -> Item {
        Item::new()
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub has_more: bool,
}

pub(super) fn sk<E: Entity>(id: &str) -> String {
    format!("{}#{id}", E::KIND)
}

pub(super) fn count_key(tenant: &TenantId, kind: &str) -> Item {
    Store::key(tenant_pk(tenant), format!("COUNT#{kind}"))
}

/// What the key and index attributes of an entity's item may take, on top of the entity.
const KEY_BYTES: usize = 512;

/// The entity's attributes, if DynamoDB would take them: an API write's data comes from a
/// client, so depth, numbers and size are checked here, where the item is made, naming the field.
fn encode<E: Entity>(e: &E) -> Result<Item, StoreError> {
    let json = serde_json::to_value(e).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    if let Some(fields) = json.as_object() {
        super::limits::check_item(fields, KEY_BYTES).map_err(StoreError::Limit)?;
    }
    serde_dynamo::to_item(e).map_err(|err| StoreError::Corrupt(err.to_string()))
}

pub(super) fn to_item<E: Entity>(tenant: &TenantId, e: &E) -> Result<Item, StoreError> {
    let mut item = encode(e)?;
    item.extend(Store::key(tenant_pk(tenant), sk::<E>(e.id())));
    item.extend(e.index_attributes());
    Ok(item)
}

pub(crate) fn from_item<E: DeserializeOwned>(item: Item) -> Result<E, StoreError> {
    serde_dynamo::from_item(item).map_err(|err| StoreError::Corrupt(err.to_string()))
}

impl Store {
    /// The name of the table holding `E`.
    pub(super) fn home<E: Entity>(&self) -> &str {
        match E::HOME {
            Home::Main => &self.table,
            Home::Auth => &self.auth_table,
        }
    }

    pub async fn get<E: Entity>(&self, tenant: &TenantId, id: &str) -> Result<Option<E>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.home::<E>())
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<E>(id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.map(from_item).transpose()
    }

    /// A page of `limit` items after the item `after` (exclusive), in id order, with the exact
    /// total and whether more follow.
    pub async fn list<E: Entity>(&self, tenant: &TenantId, limit: usize, after: Option<&str>) -> Result<Page<E>, StoreError> {
        let (items, total) = tokio::join!(self.query_kind::<E>(tenant, limit + 1, after), self.count::<E>(tenant));
        let mut items = items?;
        let has_more = items.len() > limit;
        items.truncate(limit);
        Ok(Page { items, total: total?, has_more })
    }

    /// Up to `want` items of a kind. Usually one Query; more only when items are so large that
    /// DynamoDB's 1 MB page holds fewer than `want`.
    async fn query_kind<E: Entity>(&self, tenant: &TenantId, want: usize, after: Option<&str>) -> Result<Vec<E>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.home::<E>())
            .key_condition_expression("PK = :pk AND begins_with(SK, :kind)")
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":kind", s(format!("{}#", E::KIND)))
            .consistent_read(true);
        let mut pages = Pager::new(query, after.map(|id| Self::key(tenant_pk(tenant), sk::<E>(id))));
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            let Some(items) = pages.next(Some(want - out.len())).await.map_err(|e| StoreError::dynamo("Query", e))? else { break };
            for item in items {
                out.push(from_item(item)?);
            }
        }
        Ok(out)
    }

    /// The exact number of items of a kind in the tenant.
    pub async fn count<E: Entity>(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.home::<E>())
            .set_key(Some(count_key(tenant, E::KIND)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let n = out.item.as_ref().and_then(|i| i.get("n")).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    pub(super) fn count_delta<E: Entity>(&self, tenant: &TenantId, delta: i64) -> Result<TransactWriteItem, StoreError> {
        self.tenant_count(self.home::<E>(), tenant, E::KIND, delta, None)
    }

    /// The transaction item that counts one more `E`, refused once `max` are counted (a quota).
    pub(super) fn count_within<E: Entity>(&self, tenant: &TenantId, max: u32) -> Result<TransactWriteItem, StoreError> {
        self.tenant_count(self.home::<E>(), tenant, E::KIND, 1, Some(max))
    }

    /// The transaction item that moves the tenant's count `name` in `table` by `delta`; with
    /// `max`, refused when that would pass it.
    pub(super) fn tenant_count(
        &self,
        table: &str,
        tenant: &TenantId,
        name: &str,
        delta: i64,
        max: Option<u32>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(table)
            .set_key(Some(count_key(tenant, name)))
            .update_expression("ADD n :d")
            .expression_attribute_values(":d", n(delta));
        if let Some(max) = max {
            update = update
                .condition_expression("attribute_not_exists(n) OR n <= :room")
                .expression_attribute_values(":room", n(max as i64 - delta));
        }
        Ok(TransactWriteItem::builder().update(update.build().map_err(|e| StoreError::Corrupt(e.to_string()))?).build())
    }

    /// The transaction item that writes a new entity (failing if its id exists).
    pub(super) fn put_new<E: Entity>(&self, tenant: &TenantId, e: &E) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.home::<E>())
            .set_item(Some(to_item(tenant, e)?))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The transaction item that deletes an entity, if it exists and `extra` holds.
    pub(super) fn delete_existing<E: Entity>(
        &self,
        tenant: &TenantId,
        id: &str,
        extra: Option<(&str, &str, AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut delete = Delete::builder().table_name(self.home::<E>()).set_key(Some(Self::key(tenant_pk(tenant), sk::<E>(id))));
        delete = match extra {
            None => delete.condition_expression("attribute_exists(PK)"),
            Some((condition, name, value)) => {
                delete.condition_expression(format!("attribute_exists(PK) AND ({condition})")).expression_attribute_values(name, value)
            }
        };
        Ok(TransactWriteItem::builder().delete(delete.build().map_err(|e| StoreError::Corrupt(e.to_string()))?).build())
    }

    /// Creates an entity and counts it.
    pub async fn create<E: Entity>(&self, tenant: &TenantId, e: &E) -> Result<(), StoreError> {
        self.transact("TransactWriteItems", vec![self.put_new(tenant, e)?, self.count_delta::<E>(tenant, 1)?]).await
    }

    /// Creates an entity and counts it, unless the tenant already has `max` of its kind:
    /// `false`, nothing written.
    pub async fn create_within<E: Entity>(&self, tenant: &TenantId, e: &E, max: u32) -> Result<bool, StoreError> {
        match self.transact("TransactWriteItems", vec![self.put_new(tenant, e)?, self.count_within::<E>(tenant, max)?]).await {
            Ok(()) => Ok(true),
            Err(e) if e.reason(1).is_some() && e.reason(0).is_none() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Overwrites an existing entity's attributes, last writer wins. An UpdateItem, not a
    /// PutItem: attributes the entity does not carry (a connector's `useCount`) are kept.
    pub async fn replace<E: Entity>(&self, tenant: &TenantId, e: &E) -> Result<(), StoreError> {
        let item = encode(e)?;
        let mut update = self
            .client
            .update_item()
            .table_name(self.home::<E>())
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<E>(e.id()))))
            .condition_expression("attribute_exists(PK)");
        let mut sets = Vec::with_capacity(item.len());
        for (i, (name, value)) in item.into_iter().enumerate() {
            sets.push(format!("#a{i} = :v{i}"));
            update = update.expression_attribute_names(format!("#a{i}"), name).expression_attribute_values(format!(":v{i}"), value);
        }
        update.update_expression(format!("SET {}", sets.join(", "))).send().await.map(|_| ()).map_err(|err| match err.as_service_error() {
            Some(se) if se.is_conditional_check_failed_exception() => StoreError::condition_failed(),
            _ => StoreError::dynamo("UpdateItem", err),
        })
    }

    /// Deletes an entity and uncounts it; `ConditionFailed` when it does not exist.
    pub async fn delete<E: Entity>(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        self.transact("TransactWriteItems", vec![self.delete_existing::<E>(tenant, id, None)?, self.count_delta::<E>(tenant, -1)?]).await
    }
}
