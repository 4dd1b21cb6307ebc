//! What a function needs at start, built once per container, and the entrypoints that wire a
//! handler to the Lambda runtime (a function's `main.rs` calls one of them and nothing else).

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request};
use lambda_runtime::{service_fn, LambdaEvent};

use crate::auth::{authorize, Verdict};
use crate::http::{handle, Endpoint};
use crate::queue::RunQueue;
use crate::store::Store;

pub type Error = lambda_runtime::Error;

/// The clients and configuration shared by every request of a container.
#[derive(Clone, Debug)]
pub struct App {
    pub store: Store,
    /// The run queue, for the functions that enqueue (`QUEUE_URL`).
    pub queue: Option<RunQueue>,
}

impl App {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, sqs: aws_sdk_sqs::Client, table: &str, queue_url: Option<&str>) -> Self {
        Self { store: Store::new(dynamodb, table), queue: queue_url.map(|url| RunQueue::new(sqs, url)) }
    }

    /// From the environment: `TABLE_NAME`, optional `QUEUE_URL`, and the usual AWS variables
    /// (`AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_SQS` point at the local stack).
    pub async fn from_env() -> Result<Self, Error> {
        let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
        let sdk = aws_config::load_from_env().await;
        let queue_url = std::env::var("QUEUE_URL").ok();
        Ok(Self::new(aws_sdk_dynamodb::Client::new(&sdk), aws_sdk_sqs::Client::new(&sdk), &table, queue_url.as_deref()))
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
