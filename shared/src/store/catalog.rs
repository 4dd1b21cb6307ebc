//! Connectors and schemas: entities that pipelines use, counted by `useCount`, deletable only
//! while unused.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{KeysAndAttributes, TransactWriteItem, Update};

use super::entity::{from_item, sk, Entity};
use super::{n, tenant_pk, written, Item, Store, StoreError};
use crate::domain::connector::Connector;
use crate::domain::ids::{ConnectorId, SchemaId};
use crate::domain::schema::Schema;
use crate::domain::tenant::TenantId;

impl Entity for Connector {
    const KIND: &'static str = "CONN";
    fn id(&self) -> &str {
        self.id.as_str()
    }
}

impl Entity for Schema {
    const KIND: &'static str = "SCHEMA";
    fn id(&self) -> &str {
        self.id.as_str()
    }
}

/// What a pipeline shows of its connector and schema.
#[derive(Debug, Clone, Default)]
pub struct Refs {
    pub connectors: HashMap<ConnectorId, Connector>,
    pub schemas: HashMap<SchemaId, Schema>,
}

impl Store {
    /// The transaction item that adds `delta` to the use count of an entity, which must exist.
    pub(super) fn use_delta<E: Entity>(&self, tenant: &TenantId, id: &str, delta: i64) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<E>(id))))
            .update_expression("ADD useCount :d")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":d", n(delta))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Deletes a connector or schema that no pipeline uses. `ConditionFailed` when it is missing
    /// or in use (the caller tells which by reading it).
    pub async fn delete_unused<E: Entity>(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        let delete = self.delete_existing::<E>(tenant, id, Some(("attribute_not_exists(useCount) OR useCount <= :zero", ":zero", n(0))))?;
        self.transact("TransactWriteItems", vec![delete, self.count_delta::<E>(tenant, -1)?]).await
    }

    /// The connectors and schemas with these ids, in one BatchGetItem (more only past 100 keys
    /// or when DynamoDB leaves keys unprocessed).
    pub async fn refs(&self, tenant: &TenantId, connectors: &[&ConnectorId], schemas: &[&SchemaId]) -> Result<Refs, StoreError> {
        let mut keys: Vec<Item> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for k in connectors.iter().map(|c| sk::<Connector>(c.as_str())).chain(schemas.iter().map(|s| sk::<Schema>(s.as_str()))) {
            if seen.insert(k.clone()) {
                keys.push(Self::key(tenant_pk(tenant), k));
            }
        }
        let mut refs = Refs::default();
        for item in self.batch_get(keys).await? {
            let kind = item.get("SK").and_then(|v| v.as_s().ok()).map(|s| s.split('#').next().unwrap_or_default().to_string());
            match kind.as_deref() {
                Some(Connector::KIND) => {
                    let c: Connector = from_item(item)?;
                    refs.connectors.insert(c.id.clone(), c);
                }
                Some(Schema::KIND) => {
                    let s: Schema = from_item(item)?;
                    refs.schemas.insert(s.id.clone(), s);
                }
                _ => {}
            }
        }
        Ok(refs)
    }

    /// The items of `keys` that exist (consistent reads, 100 keys a call; unprocessed keys are
    /// asked again with backoff, then `Unavailable`).
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        let mut pending: Vec<Item> = keys;
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            let batch: Vec<Item> = pending.drain(..pending.len().min(100)).collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(batch))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
            found.extend(out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default());
            if let Some(left) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                if rounds > 10 {
                    return Err(StoreError::Unavailable { op: "BatchGetItem", detail: "keys left unprocessed (throttled)".into() });
                }
                tokio::time::sleep(std::time::Duration::from_millis(20 * rounds)).await;
                pending.extend(left.keys);
            }
        }
        Ok(found)
    }
}

impl Store {
    /// Switches a schema's readers to the rows of `generation`; the generation they saw before.
    pub async fn switch_generation(&self, tenant: &TenantId, schema: &SchemaId, generation: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_pk(tenant), sk::<Schema>(schema.as_str()))))
            .update_expression("SET generation = :g")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":g", super::s(generation))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await;
        match written("UpdateItem", out)? {
            Some(out) => Ok(out.attributes.and_then(|a| a.get("generation").and_then(|v| v.as_s().ok()).cloned())),
            None => Err(StoreError::condition_failed()),
        }
    }
}
