//! Counts DynamoDB writes per item, as the service would meter them: an SDK interceptor that
//! reads each write request's keys (PutItem, UpdateItem, DeleteItem, every item of a
//! TransactWriteItems or BatchWriteItem) with when it was sent. The hot-item benchmark asks it
//! which item took the most writes in any one second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use serde_json::Value;

/// Attach with `client.config().to_builder().interceptor(counter.clone())`.
#[derive(Debug, Clone)]
pub struct WriteCounter {
    started: Instant,
    /// Per item (`PK|SK`), when each write was sent, in ms since `started`.
    writes: Arc<Mutex<HashMap<String, Vec<u64>>>>,
}

impl Default for WriteCounter {
    fn default() -> Self {
        Self { started: Instant::now(), writes: Arc::default() }
    }
}

/// The item that took the most writes in one second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hottest {
    pub pk: String,
    pub sk: String,
    pub per_second: usize,
    pub total: usize,
}

impl WriteCounter {
    /// For each kind of item (its sort key up to the first `#`), the one with the most writes in
    /// any sliding second, hottest kind first.
    pub fn hottest_by_kind(&self) -> Vec<(String, Hottest)> {
        let writes = self.writes.lock().map(|w| w.clone()).unwrap_or_default();
        let mut best: HashMap<String, Hottest> = HashMap::new();
        for (key, mut at) in writes {
            at.sort_unstable();
            let (pk, sk) = key.split_once('|').unwrap_or((&key, ""));
            let kind = sk.split('#').next().unwrap_or_default().to_string();
            let hot = Hottest { pk: pk.to_string(), sk: sk.to_string(), per_second: busiest_second(&at), total: at.len() };
            if best.get(&kind).is_none_or(|b| (b.per_second, b.total) < (hot.per_second, hot.total)) {
                best.insert(kind, hot);
            }
        }
        let mut out: Vec<(String, Hottest)> = best.into_iter().collect();
        out.sort_by(|a, b| b.1.per_second.cmp(&a.1.per_second).then_with(|| a.0.cmp(&b.0)));
        out
    }

    fn record(&self, keys: impl IntoIterator<Item = String>) {
        let at = self.started.elapsed().as_millis() as u64;
        if let Ok(mut writes) = self.writes.lock() {
            for key in keys {
                writes.entry(key).or_default().push(at);
            }
        }
    }
}

/// The most entries of sorted `at` (ms) within any 1,000 ms.
fn busiest_second(at: &[u64]) -> usize {
    let (mut best, mut start) = (0, 0);
    for end in 0..at.len() {
        while at[end] - at[start] >= 1_000 {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// `PK|SK` of an item or key in the JSON protocol.
fn key(item: &Value) -> Option<String> {
    Some(format!("{}|{}", item["PK"]["S"].as_str()?, item["SK"]["S"].as_str()?))
}

/// The items a write request writes.
fn written(operation: &str, body: &Value) -> Vec<String> {
    let each = |v: &Value| v.as_array().cloned().unwrap_or_default();
    match operation {
        "PutItem" => key(&body["Item"]).into_iter().collect(),
        "UpdateItem" | "DeleteItem" => key(&body["Key"]).into_iter().collect(),
        "TransactWriteItems" => each(&body["TransactItems"])
            .iter()
            .filter_map(|t| key(&t["Put"]["Item"]).or_else(|| key(&t["Update"]["Key"])).or_else(|| key(&t["Delete"]["Key"])))
            .collect(),
        "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.values())
            .flat_map(each)
            .filter_map(|r| key(&r["PutRequest"]["Item"]).or_else(|| key(&r["DeleteRequest"]["Key"])))
            .collect(),
        _ => Vec::new(),
    }
}

impl Intercept for WriteCounter {
    fn name(&self) -> &'static str {
        "WriteCounter"
    }

    fn read_before_attempt(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = crate::requests::Request::read(context);
        self.record(written(&request.operation, &request.body));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_busiest_second_slides() {
        assert_eq!(busiest_second(&[]), 0);
        assert_eq!(busiest_second(&[0, 10, 999, 1000, 1500, 1999]), 3);
        assert_eq!(busiest_second(&[0, 10, 20, 999]), 4);
        assert_eq!(busiest_second(&[0, 2000, 4000]), 1);
    }

    #[test]
    fn every_item_of_a_transaction_and_a_batch_counts() {
        let k = |pk: &str, sk: &str| json!({"PK": {"S": pk}, "SK": {"S": sk}});
        let tx = json!({"TransactItems": [{"Put": {"Item": k("a", "RUN#1")}}, {"Update": {"Key": k("a", "LANE#1#00")}}, {"ConditionCheck": {"Key": k("a", "X")}}]});
        assert_eq!(written("TransactWriteItems", &tx), ["a|RUN#1", "a|LANE#1#00"]);
        let batch =
            json!({"RequestItems": {"t": [{"PutRequest": {"Item": k("b", "PART#1#00001")}}, {"DeleteRequest": {"Key": k("b", "Y")}}]}});
        assert_eq!(written("BatchWriteItem", &batch), ["b|PART#1#00001", "b|Y"]);
        assert!(written("GetItem", &json!({"Key": k("a", "RUN#1")})).is_empty());
    }
}
