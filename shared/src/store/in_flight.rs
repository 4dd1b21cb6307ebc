//! A tenant's runs in flight (pending or running, its quota), counted over [`SHARDS`] items.
//!
//! One counter would take every trigger and every end of a tenant: a tenant firing thousands of
//! schedules a minute would make it the hottest item in the table, and concurrent triggers
//! would cancel each other's transactions on it. So the count is split: a run takes a place in
//! one shard (the one its id picks, or any with room when that one is full) and records which,
//! and its end gives the place back there. Shard `k` holds `max / used + (k < max % used)`
//! places, so the shards together hold exactly the quota and a trigger is refused only when all
//! are full. Shard 0 is the counter from before the split: runs made before carry no shard and
//! give back to it.
//!
//! A pipeline's `SLOTS` also counts its active runs per shard (`q<k>`), so deleting a pipeline
//! gives each shard back exactly the places its runs held.

use aws_sdk_dynamodb::types::TransactWriteItem;

use super::entity::count_key;
use super::pipelines::ACTIVE;
use super::{index, Item, Store, StoreError};
use crate::domain::ids::RunId;
use crate::domain::tenant::TenantId;

/// How many counters a tenant's runs in flight are split over: a tenant triggering and ending
/// `r` runs a second writes each about `2r / 64` times a second. Few enough concurrent
/// transactions meet on one that they seldom cancel each other (`TransactionConflict`): 16 were
/// too few for one tenant's slots fired 512 at a time.
pub const SHARDS: u32 = 64;

/// The count name of shard `k` (`ACTIVE`, `ACTIVE#1`, ...).
fn name(k: u32) -> String {
    if k == 0 {
        ACTIVE.to_string()
    } else {
        format!("{ACTIVE}#{k}")
    }
}

/// The `SLOTS` attribute counting a pipeline's active runs in shard `k`.
pub(super) fn slots_attribute(k: u32) -> String {
    format!("q{k}")
}

/// How many shards a quota of `max` uses: each has room for at least one run.
fn used(max: u32) -> u32 {
    SHARDS.min(max.max(1))
}

/// Shard `k`'s share of a quota of `max`.
fn cap(max: u32, k: u32) -> u32 {
    let used = used(max);
    max / used + u32::from(k < max % used)
}

/// The shard a run tries first: from its id's random tail, so a busy tenant's runs spread.
pub(super) fn first(run: &RunId, max: u32) -> u32 {
    index::bucket(run.as_str(), used(max))
}

impl Store {
    /// The transaction item that takes a place for one run in shard `k`, refused when it is full.
    pub(super) fn take_in_flight(&self, tenant: &TenantId, k: u32, max: u32) -> Result<TransactWriteItem, StoreError> {
        self.tenant_count(&self.table, tenant, &name(k), 1, Some(cap(max, k)))
    }

    /// The transaction item that gives back `places` (negative) in shard `k` (0 for runs made
    /// before the split).
    pub(super) fn give_in_flight(&self, tenant: &TenantId, k: Option<u32>, places: i64) -> Result<TransactWriteItem, StoreError> {
        self.tenant_count(&self.table, tenant, &name(k.unwrap_or(0)), places, None)
    }

    /// The tenant's runs in flight: the sum of its shards.
    pub async fn runs_in_flight(&self, tenant: &TenantId) -> Result<i64, StoreError> {
        let found = self.batch_get((0..SHARDS).map(|k| count_key(tenant, &name(k))).collect()).await?;
        Ok(found.iter().filter_map(|i| i.get("n")?.as_n().ok()?.parse::<i64>().ok()).sum())
    }

    /// A shard with a free place, if any: one BatchGetItem of the tenant's counters, read when
    /// the run's first shard was full.
    pub(super) async fn in_flight_room(&self, tenant: &TenantId, max: u32) -> Result<Option<u32>, StoreError> {
        let keys: Vec<Item> = (0..used(max)).map(|k| count_key(tenant, &name(k))).collect();
        let found = self.batch_get(keys).await?;
        let held = |k: u32| {
            let sk = format!("COUNT#{}", name(k));
            found
                .iter()
                .find(|i| i.get("SK").and_then(|v| v.as_s().ok()) == Some(&sk))
                .and_then(|i| i.get("n")?.as_n().ok()?.parse::<i64>().ok())
                .unwrap_or(0)
        };
        Ok((0..used(max)).find(|&k| held(k) < cap(max, k) as i64))
    }

    /// The transaction items that give back every place a deleted pipeline's active runs held:
    /// `active` in all, `per_shard` as its `SLOTS` counted them (the rest are older runs, shard 0).
    pub(super) fn give_pipeline_in_flight(
        &self,
        tenant: &TenantId,
        active: i64,
        per_shard: &[(u32, i64)],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let sharded: i64 = per_shard.iter().map(|(_, c)| c).sum();
        let mut places: Vec<(u32, i64)> = per_shard.iter().copied().filter(|(_, c)| *c > 0).collect();
        match places.iter_mut().find(|(k, _)| *k == 0) {
            Some((_, c)) => *c += active - sharded,
            None => places.push((0, active - sharded)),
        }
        places.into_iter().filter(|(_, c)| *c > 0).map(|(k, c)| self.give_in_flight(tenant, Some(k), -c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_hold_exactly_the_quota() {
        for max in [1, 5, 15, 16, 17, 200, 1001] {
            let total: u32 = (0..used(max)).map(|k| cap(max, k)).sum();
            assert_eq!(total, max, "quota {max}");
            assert!((0..used(max)).all(|k| cap(max, k) >= 1));
        }
        assert_eq!(used(5), 5);
        assert_eq!(used(200), SHARDS);
    }

    #[test]
    fn runs_spread_over_the_shards() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4000 {
            let k = first(&RunId::generate(), 200);
            assert!(k < SHARDS);
            seen.insert(k);
        }
        assert_eq!(seen.len(), SHARDS as usize);
        assert!((0..50).all(|_| first(&RunId::generate(), 3) < 3));
    }

    #[test]
    fn shard_zero_keeps_the_old_counter() {
        assert_eq!(name(0), "ACTIVE");
        assert_eq!(name(7), "ACTIVE#7");
    }
}
