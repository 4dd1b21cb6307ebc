//! A failing dependency is a 503 with `Retry-After`, in the product's error format, never a 500:
//! DynamoDB unreachable, and DynamoDB throttling (its real error response, played back to the
//! real SDK by an interceptor, since DynamoDB Local never throttles).

use std::sync::Arc;

use aws_sdk_dynamodb::config::interceptors::{BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use reqwest::Method;
use serde_json::{json, Value};
use shared::context::App;

use crate::support::{spawn_app, TestApp, TABLE};

/// Marks an operation the interceptor lets through.
#[derive(Debug, Clone)]
struct Spared;

impl Storable for Spared {
    type Storer = StoreReplace<Self>;
}

/// Answers DynamoDB calls as a throttled table does: every call, or all but the key check's
/// GetItem (so that the handlers' own reads and writes meet the throttling).
#[derive(Debug)]
struct Throttled {
    spare_get_item: bool,
}

impl Intercept for Throttled {
    fn name(&self) -> &'static str {
        "Throttled"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.spare_get_item && local::requests::Request::read(context).operation == "GetItem" {
            cfg.interceptor_state().store_put(Spared);
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Spared>().is_some() {
            return Ok(());
        }
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#;
        let response = context.response_mut();
        *response.status_mut() = 400.try_into()?;
        response.headers_mut().insert("content-type", "application/x-amz-json-1.0");
        *response.body_mut() = SdkBody::from(body);
        Ok(())
    }
}

/// The local gateway over a DynamoDB client changed by `change` (two quick attempts, so that
/// the SDK's retries run without slowing the suite).
async fn gateway(app: &TestApp, change: impl FnOnce(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder) -> String {
    let clients = local::stack::clients().await;
    let retries = RetryConfig::standard().with_max_attempts(2).with_initial_backoff(std::time::Duration::from_millis(10));
    let config = change(clients.dynamodb.config().to_builder().retry_config(retries)).build();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(config);
    let faulty = App::new(dynamodb, clients.sqs.clone(), TABLE, &app.queue_url, &local::stack::records_table(TABLE));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
    let server = axum::serve(listener, local::gateway::router(Arc::new(faulty)));
    tokio::spawn(async move { server.await });
    base
}

/// Reads and writes of every kind answer 503, `Retry-After`, `SERVICE_UNAVAILABLE`, and say
/// nothing of the cause.
async fn every_call_is_unavailable(app: &TestApp, base: &str) {
    let body = app.example_body().await;
    let cases = [
        (Method::GET, "/pipelines".to_string(), None),
        (Method::GET, "/connectors".to_string(), None),
        (Method::POST, "/pipelines".to_string(), Some(body.clone())),
        (Method::POST, "/schemas".to_string(), Some(json!({"name": "s", "fields": [{"name": "id", "type": "text"}]}))),
    ];
    for (method, path, body) in cases {
        let mut req = app.http.request(method.clone(), format!("{base}{path}")).bearer_auth(&app.key).header("X-Tenant-Id", &app.tenant);
        if let Some(body) = &body {
            req = req.json(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, 503, "{method} {path}: {text}");
        assert!(
            retry_after.as_deref().is_some_and(|s| s.parse::<u32>().is_ok_and(|n| n >= 1)),
            "{method} {path}: Retry-After {retry_after:?}"
        );
        let body: Value = serde_json::from_str(&text).expect("the product's error format");
        assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE", "{text}");
        assert_eq!(body["error"]["status"], 503, "{text}");
        for leak in ["Throughput", "dispatch", "127.0.0.1", "GetItem", "request id"] {
            assert!(!text.contains(leak), "{method} {path} leaks {leak}: {text}");
        }
    }
}

#[tokio::test]
async fn an_unreachable_table_is_a_503_with_retry_after() {
    let app = spawn_app().await;
    let base = gateway(&app, |c| c.endpoint_url("http://127.0.0.1:9")).await;
    every_call_is_unavailable(&app, &base).await;
}

#[tokio::test]
async fn a_throttled_table_is_a_503_with_retry_after() {
    let app = spawn_app().await;
    // At the key check, then past it, in the handlers' own queries and transactions.
    for spare_get_item in [false, true] {
        let base = gateway(&app, |c| c.interceptor(Throttled { spare_get_item })).await;
        every_call_is_unavailable(&app, &base).await;
    }
}
