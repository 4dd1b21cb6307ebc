//! DynamoDB round trips per endpoint, authentication included, counted at the SDK.
//!
//! An interceptor on the DynamoDB client sees every attempt start and end. A round trip is
//! sequential when it starts with nothing else in flight: a key check run beside the first read
//! is one round trip, not two. Each endpoint has a budget (issue "lean functions": reads ≤ 2,
//! create/update/trigger ≤ 3, an idempotent trigger ≤ 4); a change that adds a round trip fails
//! here. The table of what each endpoint makes is printed (`--nocapture`) for the docs.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use reqwest::Method;
use serde_json::{json, Value};
use shared::context::App;

use crate::support::{spawn_app, TestApp, TABLE};

#[derive(Debug, Default)]
struct Tally {
    in_flight: usize,
    sequential: usize,
    calls: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Counter(Arc<Mutex<Tally>>);

impl Counter {
    fn take(&self) -> Tally {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "RoundTripCounter"
    }

    fn read_before_attempt(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = local::requests::Request::read(context).operation;
        let mut tally = self.0.lock().unwrap();
        if tally.in_flight == 0 {
            tally.sequential += 1;
        }
        tally.in_flight += 1;
        tally.calls.push(operation);
        Ok(())
    }

    fn read_after_attempt(&self, _: &FinalizerInterceptorContextRef<'_>, _: &RuntimeComponents, _: &mut ConfigBag) -> Result<(), BoxError> {
        let mut tally = self.0.lock().unwrap();
        tally.in_flight = tally.in_flight.saturating_sub(1);
        Ok(())
    }
}

/// The gateway again, over the same table and queue as `app`, through a counted client.
async fn counted_gateway(app: &TestApp) -> (String, Counter) {
    let counter = Counter::default();
    let clients = local::stack::clients().await;
    let config = clients.dynamodb.config().to_builder().interceptor(counter.clone()).build();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(config);
    let counted = App::new(dynamodb, clients.sqs.clone(), TABLE, &app.queue_url, &local::stack::records_table(TABLE));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
    let server = axum::serve(listener, local::gateway::router(Arc::new(counted)));
    tokio::spawn(async move { server.await });
    (base, counter)
}

#[tokio::test]
async fn every_endpoint_keeps_to_its_round_trip_budget() {
    let app = spawn_app().await;
    let body = app.example_body().await;
    let pipeline = app.create_pipeline(&body).await;
    let pid = pipeline["id"].as_str().unwrap().to_string();
    let connector = body["connectorId"].as_str().unwrap().to_string();
    let schema = body["schemaId"].as_str().unwrap().to_string();
    let run = app.trigger(&pid).await;
    let (base, counter) = counted_gateway(&app).await;

    let mut update = body.clone();
    update["id"] = json!(pid);
    update["name"] = json!("Renamed");
    // (name, method, path, body, Idempotency-Key, budget of sequential round trips)
    type Case<'a> = (&'a str, Method, String, Option<Value>, Option<&'a str>, usize);
    let cases: Vec<Case> = vec![
        ("list pipelines", Method::GET, "/pipelines".into(), None, None, 2),
        ("get pipeline", Method::GET, format!("/pipelines/{pid}"), None, None, 2),
        ("list runs", Method::GET, format!("/pipelines/{pid}/runs"), None, None, 2),
        ("get run", Method::GET, format!("/pipelines/{pid}/runs/{run}"), None, None, 2),
        ("list dead letters", Method::GET, format!("/pipelines/{pid}/runs/{run}/dead-letters"), None, None, 2),
        ("list connectors", Method::GET, "/connectors".into(), None, None, 2),
        ("get connector", Method::GET, format!("/connectors/{connector}"), None, None, 2),
        ("list schemas", Method::GET, "/schemas".into(), None, None, 2),
        ("get schema", Method::GET, format!("/schemas/{schema}"), None, None, 2),
        ("list records", Method::GET, format!("/schemas/{schema}/records"), None, None, 2),
        ("create pipeline", Method::POST, "/pipelines".into(), Some(body.clone()), None, 3),
        ("update pipeline", Method::PUT, "/pipelines".into(), Some(update), None, 3),
        ("trigger", Method::POST, format!("/pipelines/{pid}/run"), None, None, 3),
        // The key's record is saved in the run's transaction: no round trip of its own (goal 4).
        ("trigger with Idempotency-Key", Method::POST, format!("/pipelines/{pid}/run"), None, Some("calls-1"), 3),
        ("trigger replayed", Method::POST, format!("/pipelines/{pid}/run"), None, Some("calls-1"), 3),
        // The reply is rendered before the write, so the names it shows are read first.
        ("create pipeline with Idempotency-Key", Method::POST, "/pipelines".into(), Some(body.clone()), Some("calls-2"), 3),
    ];
    let mut table = String::from("| request | sequential | calls |\n|---|---|---|\n");
    let mut over = Vec::new();
    for (name, method, path, body, idempotency, budget) in cases {
        counter.take();
        let mut req = app.http.request(method, format!("{base}{path}")).bearer_auth(&app.key).header("X-Tenant-Id", &app.tenant);
        if let Some(body) = &body {
            req = req.json(body);
        }
        if let Some(key) = idempotency {
            req = req.header("Idempotency-Key", key);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        assert!((200..300).contains(&status), "{name}: {status} {}", resp.text().await.unwrap_or_default());
        let tally = counter.take();
        table.push_str(&format!("| {name} | {} | {} |\n", tally.sequential, tally.calls.join(", ")));
        if tally.sequential > budget {
            over.push(format!("{name}: {} sequential round trips ({}), budget {budget}", tally.sequential, tally.calls.join(", ")));
        }
    }
    println!("{table}");
    assert!(over.is_empty(), "over budget:\n{}\n{table}", over.join("\n"));
}

#[tokio::test]
async fn a_failed_key_check_drops_the_read_made_beside_it() {
    let app = spawn_app().await;
    let pipeline = app.create_pipeline(&app.example_body().await).await;
    let (base, counter) = counted_gateway(&app).await;
    let path = format!("{base}/pipelines/{}", pipeline["id"].as_str().unwrap());
    let forged = format!("{}x", &app.key[..app.key.len() - 1]);
    counter.take();
    let resp = app.http.get(&path).bearer_auth(forged).header("X-Tenant-Id", &app.tenant).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{body}");
    assert!(body.get("id").is_none() && !body.to_string().contains("Customer Import"), "nothing of the read leaks: {body}");
    let tally = counter.take();
    // How far the read got before the refusal depends on which answer came first; what holds is
    // that nothing starts once the key check has failed.
    assert_eq!(tally.sequential, 1, "no round trip after the refusal: {:?}", tally.calls);
    assert!(tally.calls.len() <= 4, "{:?}", tally.calls);
}
