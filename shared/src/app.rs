//! What a function needs at start, built once per container, and the entrypoints that wire a
//! handler to the Lambda runtime (a function's `main.rs` calls one of them and nothing else).

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};

use crate::auth::{authorize, Verdict};
use crate::domain::source_access::SourceBuckets;
use crate::engine::execute::DataEngine;
use crate::engine::job::Engine;
use crate::engine::sink::RecordsTable;
use crate::engine::source::SourceContext;
use crate::http::{handle, Endpoint};
use crate::queue::RunQueue;
use crate::store::Store;
use crate::worker::{process_message, RunSettings, WorkerError};

pub type Error = lambda_runtime::Error;

/// The clients and configuration shared by every request of a container.
#[derive(Clone, Debug)]
pub struct App {
    pub store: Store,
    /// The run queue, for the functions that enqueue (`QUEUE_URL`).
    pub queue: Option<RunQueue>,
    /// The records table, for the functions that read or write rows (`RECORDS_TABLE_NAME`).
    pub records: Option<RecordsTable>,
    /// Where `s3` connectors may read (`SOURCE_BUCKET`), checked when connectors are written.
    pub source_buckets: SourceBuckets,
}

impl App {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, sqs: aws_sdk_sqs::Client, table: &str, queue_url: Option<&str>) -> Self {
        Self {
            store: Store::new(dynamodb, table),
            queue: queue_url.map(|url| RunQueue::new(sqs, url)),
            records: None,
            source_buckets: SourceBuckets::default(),
        }
    }

    pub fn with_source_bucket(mut self, bucket: &str) -> Self {
        self.source_buckets = SourceBuckets { deployment: Some(bucket.to_string()) };
        self
    }

    pub fn with_records(mut self, records_table: &str) -> Self {
        self.records = Some(RecordsTable::new(self.store.client().clone(), records_table));
        self
    }

    /// From the environment: `TABLE_NAME`, optional `QUEUE_URL` and `RECORDS_TABLE_NAME`, and the
    /// usual AWS variables (`AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_SQS` point at the
    /// local stack).
    pub async fn from_env() -> Result<Self, Error> {
        Self::from_sdk(&aws_config::load_from_env().await)
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
        let queue_url = std::env::var("QUEUE_URL").ok();
        let mut app = Self::new(aws_sdk_dynamodb::Client::new(sdk), aws_sdk_sqs::Client::new(sdk), &table, queue_url.as_deref());
        app.source_buckets = SourceBuckets::from_env();
        Ok(match std::env::var("RECORDS_TABLE_NAME") {
            Ok(records) => app.with_records(&records),
            Err(_) => app,
        })
    }
}

/// Structured logs: JSON in Lambda, compact text elsewhere; `RUST_LOG` filters (default info).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        builder.json().with_current_span(true).with_span_list(false).without_time().try_init()
    } else {
        builder.compact().try_init()
    };
}

/// A single-threaded runtime: a Lambda container serves one request at a time, and this starts
/// faster than a multi-threaded one.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Runs the function serving `endpoint`.
pub fn serve(endpoint: Endpoint) -> Result<(), Error> {
    runtime()?.block_on(async {
        init_tracing();
        let app: &'static App = Box::leak(Box::new(App::from_env().await?));
        lambda_http::run(service_fn(move |req| async move { Ok::<_, std::convert::Infallible>(handle(app, endpoint, req).await) })).await
    })
}

/// The authorizer's answer: always allow, with the verdict in the context (see [`crate::auth`]).
pub async fn authorizer_response(app: &App, event: &ApiGatewayV2CustomAuthorizerV2Request) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
    let header = |name: &str| event.headers.get(name).and_then(|v| v.to_str().ok());
    let verdict = authorize(&app.store, header("authorization"), header("x-tenant-id")).await;
    if let Verdict::Denied(e) = &verdict {
        tracing::info!(status = e.status(), route = event.route_key.as_deref().unwrap_or(""), "authorizer denied");
    }
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    response.is_authorized = true;
    response.context = serde_json::to_value(verdict.to_context()).unwrap_or_default();
    response
}

/// Runs the HTTP API's authorizer function.
pub fn serve_authorizer() -> Result<(), Error> {
    runtime()?.block_on(async {
        init_tracing();
        let app: &'static App = Box::leak(Box::new(App::from_env().await?));
        lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            Ok::<_, Error>(authorizer_response(app, &event.payload).await)
        }))
        .await
    })
}

/// The worker's answer to a batch of run messages: the ids of those to redeliver. Malformed
/// messages are among them, so that SQS moves them to the dead-letter queue after
/// `maxReceiveCount`; so are messages that met a passing storage error.
pub async fn worker_batch(app: &App, engine: &dyn Engine, settings: &RunSettings, event: SqsEvent) -> SqsBatchResponse {
    let work = event.records.into_iter().map(|record| async move {
        let id = record.message_id.unwrap_or_default();
        match process_message(app, engine, settings, record.body.as_deref().unwrap_or_default()).await {
            Ok(_) => None,
            Err(e @ WorkerError::Malformed(_)) => {
                tracing::error!(message_id = %id, cause = %e, "poison message");
                Some(id)
            }
            Err(e) => {
                tracing::warn!(message_id = %id, cause = %e, "run message will be redelivered");
                Some(id)
            }
        }
    });
    let mut response = SqsBatchResponse::default();
    for id in futures::future::join_all(work).await.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// The engine of a deployment: sources through the AWS environment, rows into the records
/// table. `SOURCES_ALLOW_PRIVATE=1` lets `http` sources reach private and loopback addresses.
pub fn data_engine(app: &App, sdk: &aws_config::SdkConfig) -> Result<DataEngine, Error> {
    let records = app.records.clone().ok_or("RECORDS_TABLE_NAME is not set")?;
    Ok(DataEngine::new(records, SourceContext::from_env(sdk)))
}

/// Runs the worker function (SQS event source with `ReportBatchItemFailures`).
pub fn serve_worker() -> Result<(), Error> {
    runtime()?.block_on(async {
        init_tracing();
        let sdk = aws_config::load_from_env().await;
        let app: &'static App = Box::leak(Box::new(App::from_sdk(&sdk)?));
        let engine: &'static DataEngine = Box::leak(Box::new(data_engine(app, &sdk)?));
        let settings: &'static RunSettings = Box::leak(Box::new(RunSettings::from_env()));
        lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let settings = settings.within_deadline(event.context.deadline, now_ms);
            Ok::<_, Error>(worker_batch(app, engine, &settings, event.payload).await)
        }))
        .await
    })
}

/// Runs the scheduler function (EventBridge rule, every minute).
pub fn serve_scheduler() -> Result<(), Error> {
    runtime()?.block_on(async {
        init_tracing();
        let app: &'static App = Box::leak(Box::new(App::from_env().await?));
        let settings: &'static RunSettings = Box::leak(Box::new(RunSettings::from_env()));
        lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
            let report = crate::scheduler::tick(app, settings, chrono::Utc::now()).await?;
            Ok::<_, Error>(
                serde_json::json!({ "fired": report.fired, "skipped": report.skipped, "resent": report.resent, "failed": report.failed }),
            )
        }))
        .await
    })
}
