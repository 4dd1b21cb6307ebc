//! The sparse, sharded work index `GSI1` (see the table in the module docs above).

use aws_sdk_dynamodb::types::AttributeValue;

use super::{s, Item, Pager, Store, StoreError};
use crate::domain::tenant::TenantId;

pub const NAME: &str = "GSI1";
pub const PK: &str = "GSI1PK";
pub const SK: &str = "GSI1SK";
/// The index's partitions per kind: fixed, so an entry never moves when the number of shard
/// workers changes (each worker takes every `workers`-th). 64 partitions take 64,000 writes a
/// second between them; 100,000 fires a minute make about 1,700 (docs/scale.md). Entries written
/// when there were 8 sit in partitions 0 to 7, which are read as before.
pub const SHARDS: u32 = 64;

pub const DUE: &str = "DUE";
pub const PENDING: &str = "PENDING";
pub const LEASE: &str = "LEASE";

/// The shard of an id: its last two hex digits (random bits of a UUIDv7) modulo [`SHARDS`].
pub fn shard(id: &str) -> u32 {
    bucket(id, SHARDS)
}

/// One of `of` buckets for an id, from its last two hex digits (random bits of a UUIDv7).
pub fn bucket(id: &str, of: u32) -> u32 {
    let tail = id.get(id.len().saturating_sub(2)..).unwrap_or_default();
    u32::from_str_radix(tail, 16).unwrap_or(0) % of.max(1)
}

pub fn partition(kind: &str, id: &str) -> String {
    format!("{kind}#{}", shard(id))
}

/// The index attributes placing an item with `id` under `kind` at `at`.
pub fn entry(kind: &str, id: &str, at: &str) -> Item {
    Item::from([(PK.to_string(), s(partition(kind, id))), (SK.to_string(), s(at))])
}

/// The tenant an item's partition key names (`T#<tenant>` or `T#<tenant>#P#...`).
pub fn tenant_of(item: &Item) -> Option<TenantId> {
    let pk = item.get("PK")?.as_s().ok()?;
    TenantId::parse(pk.strip_prefix("T#")?.split('#').next()?).ok()
}

impl Store {
    /// Every entry of `kind` in one shard with a sort key up to `upto`, oldest first, at most `max`.
    pub async fn index_upto(&self, kind: &str, shard: u32, upto: &str, max: usize) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(NAME)
            .key_condition_expression("GSI1PK = :pk AND GSI1SK <= :upto")
            .expression_attribute_values(":pk", s(format!("{kind}#{shard}")))
            .expression_attribute_values(":upto", AttributeValue::S(upto.to_string()));
        let mut pages = Pager::new(query, None);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(items) = pages.next(Some((max - out.len()).min(100))).await.map_err(|e| StoreError::dynamo("Query", e))? else {
                break;
            };
            out.extend(items);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_and_stay_in_range() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let s = shard(crate::domain::ids::PipelineId::generate().as_str());
            assert!(s < SHARDS);
            seen.insert(s);
        }
        assert_eq!(seen.len(), SHARDS as usize);
    }

    #[test]
    fn tenants_come_from_either_partition_key() {
        let item = |pk: &str| Item::from([("PK".to_string(), s(pk))]);
        assert_eq!(tenant_of(&item("T#acme")).unwrap().as_str(), "acme");
        assert_eq!(tenant_of(&item("T#acme#P#pipe_1")).unwrap().as_str(), "acme");
        assert!(tenant_of(&item("X#acme")).is_none());
    }
}
