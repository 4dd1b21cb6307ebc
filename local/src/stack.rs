//! Clients and resources of the local stack (DynamoDB Local on :8000, moto on :4566).
//!
//! Endpoints come from `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_SQS` / `_S3` / `_STS`
//! when set, else the local ports; credentials and region are dummies unless the environment has real ones. This
//! module is only for the local stack: the functions themselves use the plain AWS environment.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use shared::app::Error;
use shared::context::App;
use shared::domain::source_access::SourceBuckets;
use shared::engine::execute::DataEngine;
use shared::engine::source::SourceContext;

pub const DEFAULT_TABLE: &str = "pipelines";
/// The deployment's source bucket on the local stack (`SOURCE_BUCKET` overrides).
pub const DEFAULT_SOURCE_BUCKET: &str = "pipelines-sources";

pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    pub events: aws_sdk_eventbridge::Client,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

pub async fn clients() -> Clients {
    let region = env_or("AWS_REGION", "us-east-1");
    let credentials =
        Credentials::new(env_or("AWS_ACCESS_KEY_ID", "local"), env_or("AWS_SECRET_ACCESS_KEY", "local"), None, None, "local-stack");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .http_client(shared::context::https_client(std::time::Duration::from_secs(3)))
        .load()
        .await;
    let dynamodb =
        aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(env_or("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")).build();
    let sqs = aws_sdk_sqs::config::Builder::from(&sdk).endpoint_url(env_or("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:4566")).build();
    // moto serves buckets by path, not by virtual host.
    let s3 = aws_sdk_s3::config::Builder::from(&sdk)
        .endpoint_url(env_or("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4566"))
        .force_path_style(true)
        .build();
    let sts = aws_sdk_sts::config::Builder::from(&sdk).endpoint_url(env_or("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566")).build();
    let events = aws_sdk_eventbridge::config::Builder::from(&sdk)
        .endpoint_url(env_or("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:4566"))
        .build();
    Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
        sqs: aws_sdk_sqs::Client::from_conf(sqs),
        s3: aws_sdk_s3::Client::from_conf(s3),
        sts: aws_sdk_sts::Client::from_conf(sts),
        events: aws_sdk_eventbridge::Client::from_conf(events),
    }
}

/// The deployment's source bucket: `SOURCE_BUCKET`, else [`DEFAULT_SOURCE_BUCKET`].
pub fn source_bucket() -> String {
    env_or("SOURCE_BUCKET", DEFAULT_SOURCE_BUCKET)
}

/// Creates the source bucket when missing.
pub async fn ensure_bucket(client: &aws_sdk_s3::Client, name: &str) -> Result<(), Error> {
    match client.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_bucket_already_owned_by_you() || se.is_bucket_already_exists()) => Ok(()),
        Err(e) => Err(format!("creating bucket {name}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)).into()),
    }
}

/// Sources on the local stack: the source bucket `bucket`, and loopback and private addresses
/// allowed (a laptop's own services).
pub fn sources(c: &Clients, bucket: &str) -> SourceContext {
    SourceContext {
        buckets: SourceBuckets { deployment: Some(bucket.to_string()) },
        ..SourceContext::with_clients(c.s3.clone(), c.sts.clone(), true)
    }
}

/// The records table of `template.yaml` beside `table`.
pub fn records_table(table: &str) -> String {
    format!("{table}-records")
}

/// Creates the records table of `template.yaml` if it does not exist.
pub async fn ensure_records_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), Error> {
    create_table(client, name, false).await
}

/// Creates the table of `template.yaml`, with its work index, and the auth table beside it
/// ([`shared::store::auth_table_beside`]), if they do not exist.
pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), Error> {
    create_table(client, name, true).await?;
    create_table(client, &shared::store::auth_table_beside(name), false).await
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, work_index: bool) -> Result<(), Error> {
    if client.describe_table().table_name(name).send().await.is_ok() {
        return Ok(());
    }
    let attr = |n: &str| AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build();
    let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build();
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("PK")?)
        .attribute_definitions(attr("SK")?)
        .key_schema(key("PK", KeyType::Hash)?)
        .key_schema(key("SK", KeyType::Range)?);
    if work_index {
        let (pk, sk) = (shared::store::index::PK, shared::store::index::SK);
        let index = GlobalSecondaryIndex::builder()
            .index_name(shared::store::index::NAME)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()?;
        create = create.attribute_definitions(attr(pk)?).attribute_definitions(attr(sk)?).global_secondary_indexes(index);
    }
    match create.send().await {
        Ok(_) => Ok(()),
        // Another process created it meanwhile.
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_in_use_exception()) => Ok(()),
        Err(e) => Err(format!("creating table {name}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)).into()),
    }
}

/// The bus runs' ends are announced on, beside the queue `queue`.
pub fn event_bus(queue: &str) -> String {
    format!("{queue}-events")
}

/// Creates the event bus `bus` (moto's EventBridge) with a rule that delivers every `Run
/// Finished` event to the queue `<bus>-inbox`, where the local stack keeps them for tests and a
/// curious developer; returns that queue's URL.
pub async fn ensure_event_bus(c: &Clients, bus: &str) -> Result<String, Error> {
    if let Err(e) = c.events.create_event_bus().name(bus).send().await {
        if !e.as_service_error().is_some_and(|se| se.is_resource_already_exists_exception()) {
            return Err(format!("creating event bus {bus}: {}", aws_sdk_eventbridge::error::DisplayErrorContext(&e)).into());
        }
    }
    let inbox = c.sqs.create_queue().queue_name(format!("{bus}-inbox")).send().await?;
    let inbox_url = inbox.queue_url().unwrap_or_default().to_string();
    let arn = queue_arn(&c.sqs, &inbox_url).await?;
    let pattern = serde_json::json!({ "source": [shared::events::SOURCE], "detail-type": [shared::events::RUN_FINISHED] });
    c.events.put_rule().name("run-finished-inbox").event_bus_name(bus).event_pattern(pattern.to_string()).send().await?;
    let target = aws_sdk_eventbridge::types::Target::builder().id("inbox").arn(arn).build()?;
    c.events.put_targets().rule("run-finished-inbox").event_bus_name(bus).targets(target).send().await?;
    Ok(inbox_url)
}

/// The ARN of the queue at `url`.
async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, Error> {
    let out = client.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await?;
    Ok(out.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned()).unwrap_or_default())
}

/// Creates a queue with a dead-letter queue (as in `template.yaml`) and returns its URL.
pub async fn ensure_queue(client: &aws_sdk_sqs::Client, name: &str) -> Result<String, Error> {
    let dlq = client.create_queue().queue_name(format!("{name}-dlq")).send().await?;
    let dlq_arn = queue_arn(client, dlq.queue_url().unwrap_or_default()).await?;
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5" }).to_string();
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "120")
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await?;
    Ok(queue.queue_url().unwrap_or_default().to_string())
}

/// The scheduler's tick queue `name` (created when missing, with a dead-letter queue as in
/// `template.yaml`), through `app`'s SQS client.
pub async fn tick_queue(app: &App, name: &str) -> Result<shared::queue::RunQueue, Error> {
    let client = app.queue.client().clone();
    let url = ensure_queue(&client, name).await?;
    Ok(shared::queue::RunQueue::new(client, url))
}

/// An [`App`] and its data engine on the local stack, with the tables and queue created when
/// missing. Sources may reach loopback and private addresses here (a laptop's own services).
pub async fn app(table: &str, queue: &str) -> Result<(App, DataEngine), Error> {
    let c = clients().await;
    ensure_table(&c.dynamodb, table).await?;
    ensure_records_table(&c.dynamodb, &records_table(table)).await?;
    let queue_url = ensure_queue(&c.sqs, queue).await?;
    let bucket = source_bucket();
    ensure_bucket(&c.s3, &bucket).await?;
    let bus = event_bus(queue);
    ensure_event_bus(&c, &bus).await?;
    let app = App::new(c.dynamodb.clone(), c.sqs.clone(), table, &queue_url, &records_table(table))
        .with_source_bucket(&bucket)
        .with_events(c.events.clone(), &bus)
        .with_sources(sources(&c, &bucket));
    let engine = DataEngine::new(app.records.clone(), app.sources.clone());
    Ok((app, engine))
}

/// A benchmark's own corner of the local stack: a table (with its records and auth tables), a
/// queue and a bucket, all named `bench-<uuid>`, so that no run meets an earlier run's items.
pub struct Scratch {
    pub clients: Clients,
    /// The table's name, also the queue's and the bucket's.
    pub name: String,
    pub queue_url: String,
}

impl Scratch {
    pub async fn new() -> Result<Self, Error> {
        let clients = clients().await;
        let name = format!("bench-{}", uuid::Uuid::new_v4().simple());
        ensure_table(&clients.dynamodb, &name).await?;
        ensure_records_table(&clients.dynamodb, &records_table(&name)).await?;
        let queue_url = ensure_queue(&clients.sqs, &name).await?;
        ensure_bucket(&clients.s3, &name).await?;
        Ok(Self { clients, name, queue_url })
    }

    /// An [`App`] over these resources through `dynamodb`: the stack's client, or one with an
    /// interceptor that counts.
    pub fn app(&self, dynamodb: aws_sdk_dynamodb::Client) -> App {
        App::new(dynamodb, self.clients.sqs.clone(), &self.name, &self.queue_url, &records_table(&self.name)).with_source_bucket(&self.name)
    }

    /// Sources in this bucket.
    pub fn sources(&self) -> SourceContext {
        sources(&self.clients, &self.name)
    }
}
