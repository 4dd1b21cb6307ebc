//! DynamoDB single-table storage.
//!
//! # Key design
//!
//! Every key starts with the tenant (`T#<tenant>`); a tenant id cannot contain `#`, so no key of
//! one tenant is a prefix of another's.
//!
//! | item | PK | SK | notes |
//! |---|---|---|---|
//! | pipeline, with its graph | `T#<t>` | `PIPE#<pipelineId>` | `version` for optimistic writes |
//! | connector | `T#<t>` | `CONN#<connectorId>` | `useCount`: pipelines using it |
//! | schema | `T#<t>` | `SCHEMA#<schemaId>` | `useCount`: pipelines using it |
//! | API key (auth table) | `T#<t>` | `KEY#<keyId>` | SHA-256 of the secret, never the secret |
//! | count of a kind | `T#<t>` | `COUNT#<KIND>` | `n`, kept exact by the transactions that create and delete; the keys' count in the auth table |
//! | runs in flight | `T#<t>` | `COUNT#ACTIVE`, `COUNT#ACTIVE#<1..63>` | `n`, split over 64 items ([`in_flight`]) |
//! | run | `T#<t>#P#<pipelineId>` | `RUN#<runId>` | ids are UUIDv7: SK order is creation order |
//! | run slots of a pipeline | `T#<t>#P#<pipelineId>` | `SLOTS` | `active` (pending + running), `running`, `q<k>` (active runs per runs-in-flight shard) |
//! | idempotency record | `T#<t>` | `IDEM#<key>` | first response; `expiresAt` (TTL) |
//! | partition of a run | `T#<t>#P#<pipelineId>` | `PART#<runId>#<index>` | its own lease, attempts, checkpoint |
//! | lane of a partitioned run | `T#<t>#P#<pipelineId>` | `LANE#<runId>#<lane>` | `dispatched`, `finished` of its partitions ([`partitions`]) |
//!
//! One sparse global index, `GSI1` (`GSI1PK`, `GSI1SK`), finds work without a Scan. Its partition
//! keys are sharded (`<KIND>#<0..63>`, the shard from the item's id) so that no partition carries
//! every tenant:
//!
//! | entry | GSI1PK | GSI1SK | present while |
//! |---|---|---|---|
//! | pipeline due | `DUE#<shard>` | `nextRunAt` | active and scheduled |
//! | run waiting | `PENDING#<shard>` | when it was (re)sent | pending |
//! | run's lease | `LEASE#<shard>` | `leaseUntil` | running |
//!
//! # Access patterns
//!
//! - List a tenant's pipelines (connectors, schemas, keys) a page at a time, oldest first: one
//!   Query on `PK = T#<t> AND begins_with(SK, "PIPE#")` from the cursor's id, plus one GetItem of
//!   the count for `total` (run concurrently), plus for pipelines one BatchGetItem resolving the
//!   page's connectors and schemas. Nodes and edges come with each pipeline: they live in its
//!   item. A fixed number of round trips whatever the page size; never a Scan.
//! - Get one pipeline with its graph: one GetItem (plus one BatchGetItem for its references).
//! - Replace a graph: one PutItem conditioned on the `version` read. The graph is embedded in the
//!   pipeline item rather than spread over node and edge items: one item is written atomically,
//!   so no reader ever sees half of an old graph and half of a new one, racing writers cannot
//!   interleave (the loser re-reads and retries), and listing needs no extra queries. The cost is
//!   DynamoDB's 400 KB item limit, which bounds a graph (200 nodes, 1000 edges, checked on input).
//! - Create and delete: one TransactWriteItems that writes the item, adjusts the tenant's count,
//!   and for pipelines adjusts the `useCount` of the connector and schema (whose existence in the
//!   tenant is the transaction's condition: an unknown id cancels it).
//! - Delete a connector or schema: conditioned on `useCount = 0` (409 otherwise).
//! - List a pipeline's runs newest first: Query on the run partition, `ScanIndexForward = false`.
//! - Update a run's status: UpdateItem conditioned on the status it leaves.
//! - Resolve an API key: GetItem by the tenant and key id written in the key.
//! - Delete a pipeline: the transaction above, then its runs are removed with BatchWriteItem.
//! - Claim, heartbeat, finish or cancel a run: conditional writes on its status and `attempt`, in a
//!   transaction with its pipeline's `SLOTS` where the number of active or running runs changes.
//! - Find due schedules, runs left pending, expired leases: Query `GSI1` per shard up to now.

mod api_keys;
mod backfills;
pub(crate) mod batch;
mod catalog;
pub(crate) mod entity;
mod idempotency;
mod in_flight;
pub mod index;
pub mod limits;
mod pager;
mod partitions;
mod pipelines;
pub mod records;
mod runs;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

pub use api_keys::DeleteAdminKey;
pub use catalog::Refs;
pub use entity::{Entity, Home, Page};
pub use idempotency::{IdempotencyRecord, SavedReply};
pub use partitions::{From as PartFrom, PartBeat, PartClaim, PartEnd, Progress};
pub use pipelines::{PipelineConflict, PipelineQuotas};
pub use runs::{CancelRun, Claim, ClaimTerms, CreateRun, Finish};

use crate::domain::tenant::TenantId;
use pager::Pager;

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write's condition did not hold (or a transaction was cancelled by one): the item was
    /// missing, changed, or in use. `reasons` holds each transaction item's cancellation code,
    /// and `old` the item as it stood where the write asked for it
    /// (`ReturnValuesOnConditionCheckFailure`).
    #[error("condition failed")]
    ConditionFailed { reasons: Vec<Option<String>>, old: Vec<Option<Item>> },
    /// DynamoDB refused or failed; the code and request id, never the body (it can hold data).
    #[error("dynamodb {op} failed: {detail}")]
    Dynamo { op: &'static str, detail: String },
    /// DynamoDB could not be reached, timed out, throttled or failed on its side, after the
    /// SDK's retries: passing, so the caller may retry (an API answers 503 with `Retry-After`).
    #[error("dynamodb {op} unavailable: {detail}")]
    Unavailable { op: &'static str, detail: String },
    #[error("item does not decode: {0}")]
    Corrupt(String),
    /// DynamoDB would refuse the item (too large, too deep, a number out of range): the
    /// client's data, refused before the write, naming the field.
    #[error("{field}: {0}", field = .0.field)]
    Limit(limits::ItemLimit),
}

/// DynamoDB's error codes that mean "not now" rather than "not this request".
const PASSING: [&str; 6] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

impl StoreError {
    fn dynamo<E>(op: &'static str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        match &e {
            SdkError::ServiceError(s) => {
                let meta = s.err().meta();
                let code = meta.code().unwrap_or("unknown");
                // A validation message names the expression or index at fault, never item data.
                let message = meta.message().filter(|_| code == "ValidationException").unwrap_or_default();
                let request_id = aws_sdk_dynamodb::operation::RequestId::request_id(meta).unwrap_or("-");
                let detail = format!("{code} {message} (request id {request_id})");
                match PASSING.contains(&code) || s.raw().status().is_server_error() {
                    true => Self::Unavailable { op, detail },
                    false => Self::Dynamo { op, detail },
                }
            }
            SdkError::TimeoutError(_) => Self::Unavailable { op, detail: "timeout".into() },
            SdkError::DispatchFailure(_) => Self::Unavailable { op, detail: "could not reach DynamoDB".into() },
            SdkError::ResponseError(_) => Self::Unavailable { op, detail: "the response was cut short".into() },
            other => Self::Dynamo { op, detail: format!("{other}") },
        }
    }

    /// Whether waiting and retrying may succeed (an API answers 503 with `Retry-After`).
    pub fn is_passing(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The cancellation code of a transaction's item `i`.
    pub fn reason(&self, i: usize) -> Option<&str> {
        match self {
            Self::ConditionFailed { reasons, .. } => reasons.get(i).and_then(|r| r.as_deref()),
            _ => None,
        }
    }

    /// The item `i` of a cancelled transaction as it stood, where that write asked for it.
    pub fn old_item(self, i: usize) -> Option<Item> {
        match self {
            Self::ConditionFailed { mut old, .. } if i < old.len() => old.swap_remove(i),
            _ => None,
        }
    }

    /// A failed condition with nothing more to say (a single write's).
    pub(crate) fn condition_failed() -> Self {
        Self::ConditionFailed { reasons: vec![], old: vec![] }
    }
}

/// The table, through the real SDK; the endpoint comes from the AWS environment
/// (`AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB Local).
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
    /// API keys and request windows ([`entity::Home::Auth`]).
    auth_table: String,
}

/// The auth table's name beside `table` where the deployment does not name it
/// (`AUTH_TABLE_NAME`): the local stack's naming.
pub fn auth_table_beside(table: &str) -> String {
    format!("{table}-auth")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn tenant_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}")
}

/// A conditional write's outcome: its output when it was written, `None` when its condition did
/// not hold (nothing written), and any other failure as a [`StoreError`]. Every conditional
/// PutItem, UpdateItem and DeleteItem of the store reads its answer through this.
pub(crate) fn written<T, E>(op: &'static str, result: Result<T, SdkError<E, HttpResponse>>) -> Result<Option<T>, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("ConditionalCheckFailedException") => Ok(None),
        Err(e) => Err(StoreError::dynamo(op, e)),
    }
}

impl Store {
    /// The store over `table`, with the auth table [`auth_table_beside`] it.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self { client, auth_table: auth_table_beside(&table), table }
    }

    /// The store with the deployment's auth table.
    pub fn with_auth_table(mut self, name: impl Into<String>) -> Self {
        self.auth_table = name.into();
        self
    }

    /// Opens the connection to DynamoDB (DNS, TLS, credentials) before a request needs it: one
    /// GetItem of a key that no item has (keys start with `T#`). A failure is only logged; the
    /// request that follows reports its own.
    pub async fn warm_up(&self) {
        let key = || AttributeValue::S("WARM-UP".into());
        if let Err(e) = self.client.get_item().table_name(&self.table).key("PK", key()).key("SK", key()).send().await {
            tracing::warn!(cause = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "warm-up read failed");
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(pk: String, sk: String) -> Item {
        HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))])
    }

    /// Sends a conditional UpdateItem: `false` when its condition did not hold (nothing written).
    pub(crate) async fn update_if(
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<bool, StoreError> {
        Ok(written("UpdateItem", update.send().await)?.is_some())
    }

    /// Runs a transaction. Cancellations caused only by a concurrent transaction on the same
    /// items (`TransactionConflict`, e.g. two creates bumping one count) or by a throttled item
    /// are retried with backoff, then `Unavailable`; a failed condition is returned with the
    /// items whose condition failed.
    async fn transact(&self, op: &'static str, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        let mut delay = Duration::from_millis(20);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let cancelled = match &err {
                SdkError::ServiceError(se) => match se.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => Some(c.cancellation_reasons()),
                    _ => None,
                },
                _ => None,
            };
            let Some(cancelled) = cancelled else { return Err(StoreError::dynamo(op, err)) };
            let codes: Vec<&str> = cancelled.iter().map(|r| r.code().unwrap_or("None")).collect();
            // Only a failed condition is an answer about the data; `reason(i)` sees nothing else.
            if codes.contains(&"ConditionalCheckFailed") {
                let reasons = codes.iter().map(|c| (*c == "ConditionalCheckFailed").then(|| c.to_string())).collect();
                let old = cancelled.iter().map(|r| r.item().cloned()).collect();
                return Err(StoreError::ConditionFailed { reasons, old });
            }
            // A concurrent transaction on the same items, or an item's partition throttled: not now.
            let passing = ["None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"];
            if let Some(other) = codes.iter().find(|c| !passing.contains(c)) {
                return Err(StoreError::Dynamo { op, detail: format!("transaction cancelled: {other}") });
            }
            if attempt >= 8 {
                return Err(StoreError::Unavailable { op, detail: format!("transaction cancelled: {}", codes.join(", ")) });
            }
            tokio::time::sleep(delay + Duration::from_millis(rand_jitter(delay.as_millis() as u64))).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }
}

/// Up to `max` ms of jitter, from the clock's nanoseconds (good enough to spread retries).
fn rand_jitter(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    nanos % max.max(1)
}
