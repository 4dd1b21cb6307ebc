//! What each function may do in AWS: the IAM actions its policy in `template.yaml` grants, per
//! resource, and nothing else (least privilege). Kept beside the route table; two tests hold it
//! to the truth: the template grants exactly this (`local/tests/api/contract.rs`), and every
//! call a function makes on the local stack is granted here (`local/tests/api/grants.rs`).

/// A resource of the template, as its policies name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// The main table: pipelines, connectors, schemas, runs, counts, idempotency records.
    Table,
    /// Its work index (due schedules, pending runs, leases).
    TableIndex,
    /// The auth table: API keys and their counts.
    AuthTable,
    /// The auth table's request windows only (`T#<tenant>#RATE#<keyId>` partitions): the IAM condition
    /// `dynamodb:LeadingKeys` keeps a function that counts requests away from the keys.
    RequestWindows,
    /// Rows and dead letters.
    RecordsTable,
    RunQueue,
    /// The scheduler's shard messages.
    TickQueue,
    /// Objects of the deployment's source bucket.
    SourceObjects,
    /// The source bucket itself (listing a folder).
    SourceBucket,
    /// Roles in other accounts that a connector names.
    ExternalRoles,
    /// The bus runs' ends are announced on.
    EventBus,
}

impl Resource {
    /// How `template.yaml` writes the resource: `!GetAtt Table.Arn`, `!Sub ${Table.Arn}/index/*`.
    pub fn in_template(self) -> &'static str {
        match self {
            Self::Table => "Table.Arn",
            Self::TableIndex => "${Table.Arn}/index/*",
            Self::AuthTable | Self::RequestWindows => "AuthTable.Arn",
            Self::RecordsTable => "RecordsTable.Arn",
            Self::RunQueue => "RunQueue.Arn",
            Self::TickQueue => "TickQueue.Arn",
            Self::SourceObjects => "${SourceBucket.Arn}/*",
            Self::SourceBucket => "SourceBucket.Arn",
            Self::ExternalRoles => "arn:${AWS::Partition}:iam::*:role/*",
            Self::EventBus => "RunEventBus.Arn",
        }
    }
}

pub type Grant = (Resource, &'static [&'static str]);

use Resource::*;

/// What every API function needs to authenticate a request and count it.
const AUTHENTICATE: [Grant; 2] = [(AuthTable, &["dynamodb:GetItem"]), (RequestWindows, &["dynamodb:UpdateItem"])];

const READ: &[&str] = &["dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"];
const GET: &[&str] = &["dynamodb:GetItem"];

/// The grants of `function` beyond [`AUTHENTICATE`]'s, or `None` for a function not in the
/// template.
pub fn grants(function: &str) -> Option<&'static [Grant]> {
    let grants: &'static [Grant] = match function {
        "not-found" | "get-openapi" | "get-console" => &[],
        "list-pipelines"
        | "get-pipeline"
        | "list-pipeline-versions"
        | "list-runs"
        | "get-run"
        | "list-connectors"
        | "get-connector"
        | "list-schemas"
        | "get-schema" => &[(Table, READ)],
        "list-dead-letters" | "list-records" => &[(Table, GET), (RecordsTable, &["dynamodb:Query"])],
        "create-pipeline" => &[(Table, &["dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"])],
        "update-pipeline" => &[(Table, &["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"])],
        // The runs and rows a delete leaves go in a queued purge (`domain::purge`).
        "delete-pipeline" => {
            &[(Table, &["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]), (RunQueue, &["sqs:SendMessage"])]
        }
        "delete-schema" => {
            &[(Table, &["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]), (RunQueue, &["sqs:SendMessage"])]
        }
        "create-connector" | "create-schema" => &[(Table, &["dynamodb:PutItem", "dynamodb:UpdateItem"])],
        "update-connector" | "update-schema" => &[(Table, &["dynamodb:GetItem", "dynamodb:UpdateItem"])],
        // GetItem: a refused delete reads the connector to tell 409 (in use) from 404.
        "delete-connector" => &[(Table, &["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"])],
        // DeleteItem: a trigger whose message could not be queued deletes its idempotency record.
        // BatchGetItem: the tenant's runs-in-flight shards, read when the run's first is full.
        "trigger-run" | "rerun-run" => &[
            (Table, &["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]),
            (RunQueue, &["sqs:SendMessage"]),
        ],
        // Tenants' sources, as the worker reads them; nothing written.
        "preview-pipeline" | "test-connector" => {
            &[(Table, GET), (SourceObjects, &["s3:GetObject"]), (SourceBucket, &["s3:ListBucket"]), (ExternalRoles, &["sts:AssumeRole"])]
        }
        // DeleteItem: a backfill whose first step could not be queued is removed, with its
        // idempotency record.
        "backfill-pipeline" => {
            &[(Table, &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]), (RunQueue, &["sqs:SendMessage"])]
        }
        "get-backfill" => &[(Table, GET)],
        // PutItem: the backfill, saved over the version read; UpdateItem: its runs cancelled.
        // SendMessage: a pending run cancelled is handed to the worker to announce.
        // BatchGetItem: the slot markers of runs a step made but never saved.
        "cancel-backfill" => &[
            (Table, &["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]),
            (RunQueue, &["sqs:SendMessage"]),
        ],
        "cancel-run" => &[(Table, &["dynamodb:GetItem", "dynamodb:UpdateItem"]), (RunQueue, &["sqs:SendMessage"])],
        "list-api-keys" => &[(AuthTable, &["dynamodb:Query"])],
        "create-api-key" => &[(AuthTable, &["dynamodb:PutItem", "dynamodb:UpdateItem"])],
        "delete-api-key" => {
            &[(AuthTable, &["dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"])]
        }
        // Polling the queue (ReceiveMessage, DeleteMessage) is the event source mapping's, whose
        // policy SAM adds for the SQS event.
        // BatchGetItem: a backfill's runs-in-flight shards, read when a run's first is full.
        "worker" => &[
            (
                Table,
                &[
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:Query",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:BatchWriteItem",
                ],
            ),
            (
                RecordsTable,
                &[
                    "dynamodb:GetItem",
                    "dynamodb:Query",
                    "dynamodb:BatchGetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:BatchWriteItem",
                ],
            ),
            (RunQueue, &["sqs:SendMessage"]),
            (SourceObjects, &["s3:GetObject"]),
            (SourceBucket, &["s3:ListBucket"]),
            (ExternalRoles, &["sts:AssumeRole"]),
            (EventBus, &["events:PutEvents"]),
        ],
        // The tick sends one shard message per worker; polling the tick queue is its event
        // source mapping's. SendMessage also grants SendMessageBatch.
        "scheduler" => &[
            (Table, &["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]),
            (TableIndex, &["dynamodb:Query"]),
            (RunQueue, &["sqs:SendMessage"]),
            (TickQueue, &["sqs:SendMessage"]),
        ],
        _ => return None,
    };
    Some(grants)
}

/// Whether `function` serves requests, and so needs [`AUTHENTICATE`]'s grants.
pub fn authenticates(function: &str) -> bool {
    !matches!(function, "worker" | "scheduler" | "not-found" | "get-openapi" | "get-console")
}

/// Every grant of `function`, authentication's included.
pub fn all_grants(function: &str) -> Vec<Grant> {
    let mut all: Vec<Grant> = grants(function).unwrap_or_default().to_vec();
    if authenticates(function) {
        all.extend(AUTHENTICATE);
    }
    all
}
