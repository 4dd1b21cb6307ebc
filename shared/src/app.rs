//! The Lambda entrypoints: a function's `main.rs` calls one of them and nothing else. Each builds
//! its context ([`crate::context`]) during Lambda's init phase, which runs with boosted CPU, so
//! the first request pays no setup that could have been done before it.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use lambda_runtime::{service_fn, LambdaEvent};

#[cfg(feature = "engine")]
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

#[cfg(feature = "engine")]
use crate::context::App;
use crate::context::{Context, Queues, SchedulerApi, Stores};
#[cfg(feature = "engine")]
use crate::engine::{execute::DataEngine, job::Engine};
use crate::http::{handle, Function, Reply};
use crate::settings::RunSettings;
#[cfg(feature = "engine")]
use crate::worker::{process_message, WorkerError};
use futures::future::BoxFuture;

pub use crate::context::Error;

/// Structured logs: JSON in Lambda, compact text elsewhere; `RUST_LOG` filters (default info).
pub fn init_tracing() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    // `Targets` reads the usual `RUST_LOG` forms (`info`, `shared=debug,warn`) without the regex
    // engine `EnvFilter` links.
    let filter = std::env::var("RUST_LOG").ok().and_then(|v| v.parse::<Targets>().ok());
    let filter = filter.unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    // Metric lines are not logs: they go out raw, each a line of its own (see `metrics`).
    let logs = filter.with_target(crate::metrics::TARGET, tracing_subscriber::filter::LevelFilter::OFF);
    let _ = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        let metrics = MetricLines::new(|line| println!("{line}")).with_filter(crate::metrics::only());
        let json = tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false).without_time();
        tracing_subscriber::registry().with(metrics).with(json.with_filter(logs)).try_init()
    } else {
        // On a laptop the metric lines would only crowd the logs: no CloudWatch reads them.
        tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().compact().with_filter(logs)).try_init()
    };
}

/// Hands each metric event's message, an EMF line, to its writer as it is (in Lambda, stdout;
/// in tests, a buffer).
pub struct MetricLines<W>(W);

impl<W: Fn(&str) + Send + Sync + 'static> MetricLines<W> {
    pub fn new(write: W) -> Self {
        Self(write)
    }
}

impl<S: tracing::Subscriber, W: Fn(&str) + Send + Sync + 'static> tracing_subscriber::Layer<S> for MetricLines<W> {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        (self.0)(&message.0);
    }
}

/// A single-threaded runtime: a Lambda container serves one request at a time, and this starts
/// faster than a multi-threaded one.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// The AWS configuration of an API function, without aws-config's provider chain (profiles,
/// SSO, web identity, IMDS): Lambda hands a function its credentials and region in the
/// environment, and the chain would cost binary size and init time. API Gateway gives up after
/// 30 s and a function here has 10, so a DynamoDB call gets 1 s to connect, 2 s an attempt and 3
/// attempts within 6 s, then the request answers an error instead of timing out the function.
fn api_sdk() -> aws_config::SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build();
    let region = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).ok().map(aws_config::Region::new);
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(region)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(credentials))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .http_client(crate::context::https_client(Duration::from_secs(1)))
        .build()
}

/// Runs an API function: `function` over its context, built at init.
pub fn serve<C: Context>(function: Function<C>) -> Result<(), Error> {
    let runtime = runtime()?;
    let _entered = runtime.enter();
    init_tracing();
    let app: &'static C = Box::leak(Box::new(C::from_sdk(&api_sdk())?));
    let function: &'static Function<C> = Box::leak(Box::new(function));
    let respond = move |req: lambda_http::Request| -> BoxFuture<'static, Reply> { Box::pin(handle(app, function, req)) };
    let public = function.endpoint.route().is_some_and(|r| r.role.is_none());
    run_api(&runtime, app, !public, Box::leak(Box::new(respond)))
}

/// An API function's request loop. Not generic, and not `async` (whose body would be compiled
/// where it is awaited): lambda_http's runtime is compiled once, here, instead of once in each
/// of the 25 function binaries.
fn run_api(
    runtime: &tokio::runtime::Runtime,
    app: &'static dyn Stores,
    warm_up: bool,
    respond: &'static (dyn Fn(lambda_http::Request) -> BoxFuture<'static, Reply> + Send + Sync),
) -> Result<(), Error> {
    runtime.block_on(async move {
        // The first read opens the connection to DynamoDB (TCP, TLS, the SDK's first-use work)
        // during init, which runs with boosted CPU: a request would pay it at the function's
        // share of a core. Beside the first `/next` instead, it would race the first request
        // and save it nothing (measured: docs/benchmarks.md).
        // A public route reads no table (and may not).
        if warm_up {
            app.store().warm_up().await;
        }
        lambda_http::run(service_fn(move |req| async move { Ok::<_, std::convert::Infallible>(respond(req).await) })).await
    })
}

/// The worker's answer to a batch of run messages: the ids of those to redeliver. Malformed
/// messages are among them, so that SQS moves them to the dead-letter queue after
/// `maxReceiveCount`; so are messages that met a passing storage error.
#[cfg(feature = "engine")]
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
#[cfg(feature = "engine")]
pub fn data_engine(app: &App) -> Result<DataEngine, Error> {
    Ok(DataEngine::new(app.records.clone(), app.sources.clone()))
}

#[cfg(feature = "engine")]
/// Runs the worker function (SQS event source with `ReportBatchItemFailures`).
pub fn serve_worker() -> Result<(), Error> {
    runtime()?.block_on(async {
        init_tracing();
        let sdk = crate::context::load_aws_config().await;
        let app: &'static App = Box::leak(Box::new(App::from_sdk(&sdk)?));
        let engine: &'static DataEngine = Box::leak(Box::new(data_engine(app)?));
        let settings: &'static RunSettings = Box::leak(Box::new(RunSettings::from_env()));
        lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let settings = settings.within_deadline(event.context.deadline, now_ms);
            Ok::<_, Error>(worker_batch(app, engine, &settings, event.payload).await)
        }))
        .await
    })
}

/// Runs the scheduler function: EventBridge's tick every minute, and the tick queue's shard
/// messages (SQS event source with `ReportBatchItemFailures`).
pub fn serve_scheduler() -> Result<(), Error> {
    runtime()?.block_on(async {
        init_tracing();
        let sdk = crate::context::load_aws_config().await;
        let scheduler: &'static SchedulerApi = Box::leak(Box::new(SchedulerApi::from_sdk(&sdk)?));
        let settings: &'static RunSettings = Box::leak(Box::new(RunSettings::from_env()));
        lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
            scheduler_event(scheduler, &scheduler.ticks, settings, event.payload)
        }))
        .await
    })
}

/// One scheduler event: a batch of shard messages (it has `Records`) is worked, each message
/// one shard worker's share; anything else is EventBridge's tick, which fans out.
pub async fn scheduler_event(
    scheduler: &impl Queues,
    ticks: &crate::queue::RunQueue,
    settings: &RunSettings,
    payload: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
    if payload.get("Records").is_none() {
        let report = crate::scheduler::fan_out(scheduler, ticks, settings, chrono::Utc::now()).await?;
        return Ok(
            serde_json::json!({ "fired": report.fired, "skipped": report.skipped, "resent": report.resent, "failed": report.failed }),
        );
    }
    let event: SqsEvent = serde_json::from_value(payload)?;
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.unwrap_or_default();
        let now = chrono::Utc::now();
        match serde_json::from_str::<crate::scheduler::ShardMessage>(record.body.as_deref().unwrap_or_default()) {
            Ok(m) if m.shard.is_stale(now) => tracing::info!(message_id = %id, at = %m.shard.at, "stale shard message dropped"),
            Ok(m) => {
                if let Err(e) = crate::scheduler::shard(scheduler, settings, m.shard.worker, m.shard.of, now).await {
                    // Redelivered: every fire is conditioned on its slot, so a second pass fires only what is left.
                    tracing::warn!(message_id = %id, cause = %e, "shard worker failed; its message will be redelivered");
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
            }
            // Never anything but a shard message: dropped, as it could never succeed.
            Err(e) => tracing::error!(message_id = %id, cause = %e, "not a shard message"),
        }
    }
    Ok(serde_json::to_value(response)?)
}
