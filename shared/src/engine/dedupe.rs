//! `deduplicate` across a whole run: its continuations and its partitions, not only one
//! invocation.
//!
//! A `deduplicate` node first drops what its own invocation has seen (in memory, no I/O). The
//! keys new to the invocation are then claimed for the run, one conditional write each
//! ([`Marks`]): the first row to claim a key keeps it; any other row with that key, in any
//! invocation or partition of the run, is a duplicate. A claim names its row, so a batch read
//! again after a crash (the same rows, from the last checkpoint) finds its own claims and keeps
//! its rows.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;

use crate::domain::run::RunError;

/// Where a run's `deduplicate` nodes claim keys.
pub trait Marks: Send + Sync {
    /// For each `(key, row)` claimed at `node`: whether `row` is the one the run keeps for `key`.
    fn claim<'a>(&'a self, node: &'a str, claims: Vec<(String, u64)>) -> BoxFuture<'a, Result<Vec<bool>, RunError>>;
}

/// Claims held in memory: for a run that one process executes whole (benchmarks, tests of the
/// pure engine).
#[derive(Default)]
pub struct LocalMarks(Mutex<HashMap<(String, String), u64>>);

impl Marks for LocalMarks {
    fn claim<'a>(&'a self, node: &'a str, claims: Vec<(String, u64)>) -> BoxFuture<'a, Result<Vec<bool>, RunError>> {
        Box::pin(async move {
            let mut held = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Ok(claims.into_iter().map(|(key, row)| *held.entry((node.to_string(), key)).or_insert(row) == row).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_row_keeps_a_key_and_a_replay_keeps_its_own() {
        let marks = LocalMarks::default();
        let claims = |v: &[(&str, u64)]| v.iter().map(|(k, r)| (k.to_string(), *r)).collect::<Vec<_>>();
        assert_eq!(marks.claim("n", claims(&[("a", 1), ("b", 2)])).await.unwrap(), [true, true]);
        assert_eq!(marks.claim("n", claims(&[("a", 5), ("b", 2), ("c", 6)])).await.unwrap(), [false, true, true]);
        assert_eq!(marks.claim("other", claims(&[("a", 9)])).await.unwrap(), [true], "each node has its own keys");
    }
}
