//! Batch writes shared by the main table and the records table: requests of 25, a few at once,
//! what DynamoDB leaves unprocessed retried with exponential backoff (the SDK itself retries
//! throttled requests).

use std::time::Duration;

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::{s, Pager, StoreError};

/// Requests in flight at once.
const IN_FLIGHT: usize = 4;
const RETRY_ROUNDS: u32 = 8;

/// Writes every request; a key must appear at most once among them (DynamoDB refuses a request
/// that names a key twice).
pub async fn write_all(client: &Client, table: &str, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
    let mut chunks = Vec::with_capacity(requests.len().div_ceil(25));
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        chunks.push(requests.by_ref().take(25).collect::<Vec<_>>());
    }
    stream::iter(chunks.into_iter().map(|chunk| write_25(client, table, chunk)))
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn write_25(client: &Client, table: &str, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
    for round in 0..=RETRY_ROUNDS {
        if requests.is_empty() {
            return Ok(());
        }
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(25 << round.min(6))).await;
        }
        let out =
            client.batch_write_item().request_items(table, requests).send().await.map_err(|e| StoreError::dynamo("BatchWriteItem", e))?;
        requests = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
    }
    if requests.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Unavailable { op: "BatchWriteItem", detail: format!("{} items stayed unprocessed (throttled)", requests.len()) })
    }
}

/// Deletes every item of a partition; returns how many.
pub async fn clear_partition(client: &Client, table: &str, pk: &str) -> Result<u64, StoreError> {
    let mut deleted = 0;
    loop {
        let (n, done) = clear_partition_upto(client, table, pk, 10_000).await?;
        deleted += n;
        if done {
            return Ok(deleted);
        }
    }
}

/// Deletes up to `max` items of partition `pk`: how many, and whether the partition is empty.
pub async fn clear_partition_upto(client: &Client, table: &str, pk: &str, max: u64) -> Result<(u64, bool), StoreError> {
    let keys = partition_keys(client, table, pk, max).await?;
    let (n, done) = (keys.len() as u64, (keys.len() as u64) < max);
    delete_keys(client, table, keys).await?;
    Ok((n, done))
}

/// The keys of up to `max` items of partition `pk`, in sort-key order.
pub async fn partition_keys(client: &Client, table: &str, pk: &str, max: u64) -> Result<Vec<super::Item>, StoreError> {
    let query = client
        .query()
        .table_name(table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", s(pk))
        .projection_expression("PK, SK");
    let mut pages = Pager::new(query, None);
    let mut keys = Vec::new();
    while (keys.len() as u64) < max {
        let want = usize::try_from(max - keys.len() as u64).unwrap_or(usize::MAX);
        let Some(page) = pages.next(Some(want)).await.map_err(|e| StoreError::dynamo("Query", e))? else { break };
        keys.extend(page);
    }
    Ok(keys)
}

/// Deletes the items of `keys`.
pub async fn delete_keys(client: &Client, table: &str, keys: Vec<super::Item>) -> Result<(), StoreError> {
    let requests = keys
        .into_iter()
        .map(|key| {
            let delete = DeleteRequest::builder().set_key(Some(key)).build().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(WriteRequest::builder().delete_request(delete).build())
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    write_all(client, table, requests).await
}
