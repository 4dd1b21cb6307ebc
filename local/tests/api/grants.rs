//! Least privilege, proven on the real protocol: every function's every DynamoDB and SQS call,
//! recorded at the SDK while the function does its work (each endpoint on its paths, the worker
//! through a run with rows and dead letters, the scheduler through a tick), is an action its
//! grants (`shared::http::grants`) allow on that resource. The template grants exactly those
//! (`contract.rs`), so a call that IAM would refuse in AWS fails here first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use reqwest::Method;
use serde_json::{json, Value};
use shared::context::{App, Stores};
use shared::http::grants::{all_grants, Resource};

use crate::support::*;

/// (resource, IAM action) pairs seen since the last take.
#[derive(Debug, Clone, Default)]
struct Recorder {
    table: String,
    seen: Arc<Mutex<BTreeSet<(Resource, String)>>>,
}

impl Recorder {
    fn take(&self) -> BTreeSet<(Resource, String)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    fn resource(&self, table: &str, call: &Value) -> Resource {
        let pk = call.pointer("/Key/PK/S").or_else(|| call.pointer("/Item/PK/S")).and_then(Value::as_str).unwrap_or_default();
        match table {
            t if t == self.table && call.get("IndexName").is_some() => Resource::TableIndex,
            t if t == self.table => Resource::Table,
            t if t == shared::store::auth_table_beside(&self.table) && pk.contains("#RATE#") => Resource::RequestWindows,
            t if t == shared::store::auth_table_beside(&self.table) => Resource::AuthTable,
            t if t == local::stack::records_table(&self.table) => Resource::RecordsTable,
            other => panic!("a call to an unknown table {other}"),
        }
    }

    /// The IAM actions of one DynamoDB request: a transaction's are those of its items.
    fn dynamodb(&self, operation: &str, body: &Value) -> Vec<(Resource, String)> {
        let table = |v: &Value| v["TableName"].as_str().unwrap_or_default().to_string();
        match operation {
            "TransactWriteItems" => body["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|item| item.as_object().into_iter().flatten())
                .map(|(kind, call)| {
                    let action = if kind == "ConditionCheck" { "ConditionCheckItem".to_string() } else { format!("{kind}Item") };
                    (self.resource(&table(call), call), format!("dynamodb:{action}"))
                })
                .collect(),
            "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, _)| (self.resource(name, &json!({})), format!("dynamodb:{operation}")))
                .collect(),
            _ => vec![(self.resource(&table(body), body), format!("dynamodb:{operation}"))],
        }
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "GrantRecorder"
    }

    fn read_before_attempt(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let local::requests::Request { service, operation, body } = local::requests::Request::read(context);
        let calls = match service.as_str() {
            s if s.starts_with("DynamoDB") => self.dynamodb(&operation, &body),
            "AmazonSQS" => {
                let queue =
                    if body["QueueUrl"].as_str().is_some_and(|u| u.ends_with("-ticks")) { Resource::TickQueue } else { Resource::RunQueue };
                // IAM authorizes a batch send as SendMessage.
                vec![(queue, format!("sqs:{}", operation.trim_end_matches("Batch")))]
            }
            other => panic!("a call to an unknown service {other}"),
        };
        self.seen.lock().unwrap().extend(calls);
        Ok(())
    }
}

/// The app again, over the same tables and queue, through recorded clients, with its gateway.
async fn recorded(app: &TestApp, table: &str) -> (Arc<App>, String, Recorder) {
    let recorder = Recorder { table: table.to_string(), ..Default::default() };
    let clients = local::stack::clients().await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(clients.dynamodb.config().to_builder().interceptor(recorder.clone()).build());
    let sqs = aws_sdk_sqs::Client::from_conf(clients.sqs.config().to_builder().interceptor(recorder.clone()).build());
    let recorded = Arc::new(
        App::new(dynamodb, sqs, table, &app.queue_url, &local::stack::records_table(table))
            .with_source_bucket(&app.source_bucket)
            .with_sources(local::stack::sources(&clients, &app.source_bucket)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
    let server = axum::serve(listener, local::gateway::router(recorded.clone()));
    tokio::spawn(async move { server.await });
    (recorded, base, recorder)
}

/// What `function` did that its grants do not allow.
fn ungranted(function: &str, seen: &BTreeSet<(Resource, String)>) -> Vec<String> {
    let grants = all_grants(function);
    seen.iter()
        .filter(|(resource, action)| !grants.iter().any(|(r, actions)| r == resource && actions.contains(&action.as_str())))
        .map(|(resource, action)| format!("{function}: {action} on {resource:?}"))
        .collect()
}

#[tokio::test]
async fn every_call_of_every_function_is_granted_to_it() {
    let app = spawn_isolated_app().await;
    let table = app.app.store().table().to_string();
    let (recorded, base, recorder) = recorded(&app, &table).await;
    let records = json!([{"id": 1, "email": "a@x"}, {"id": 2}]);
    let conn = app.post("/connectors", &json!({"name": "inline", "type": "inline", "config": {"records": records}})).await.body;
    let conn = conn["id"].as_str().unwrap().to_string();
    let other_conn = app.create_connector().await;
    let fields = json!([{"name": "id", "type": "integer", "primaryKey": true}, {"name": "email", "type": "text", "required": true}]);
    let schema = app.post("/schemas", &json!({"name": "target", "fields": fields})).await.body["id"].as_str().unwrap().to_string();
    let mut body = example_pipeline(&conn, &schema);
    body["executionConfig"] = json!({"errorHandling": "dead_letter"});
    body["nodes"] = json!([{"id": "n1", "nodeType": "source", "label": "In"}, {"id": "n3", "nodeType": "target", "label": "Out"}]);
    body["edges"] = json!([{"source": "n1", "target": "n3"}]);
    let pid = app.create_pipeline(&body).await["id"].as_str().unwrap().to_string();
    let run = app.trigger(&pid).await;
    let viewer = app.post("/api-keys", &json!({"name": "viewer", "role": "viewer"})).await.body["id"].as_str().unwrap().to_string();
    let admin = app.post("/api-keys", &json!({"name": "admin", "role": "admin"})).await.body["id"].as_str().unwrap().to_string();
    let spare_conn = app.create_connector().await;
    let spare_schema = app.create_schema().await;
    // An hourly pipeline with a backfill, for the backfill functions.
    let mut hourly = body.clone();
    hourly["schedule"] = json!("0 * * * *");
    let hourly = app.create_pipeline(&hourly).await["id"].as_str().unwrap().to_string();
    let hours = json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T03:00:00Z"});
    let backfill = app.post(&format!("/pipelines/{hourly}/backfill"), &hours).await.body["id"].as_str().unwrap().to_string();

    let mut renamed = body.clone();
    renamed["id"] = json!(pid);
    renamed["connectorId"] = json!(other_conn);
    renamed["schedule"] = json!("* * * * *");
    renamed["status"] = json!("active");
    let mut back = renamed.clone();
    back["connectorId"] = json!(conn);
    // (function, method, path, body, Idempotency-Key)
    type Case<'a> = (&'a str, Method, String, Option<Value>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("list-pipelines", Method::GET, "/pipelines".into(), None, None),
        ("get-pipeline", Method::GET, format!("/pipelines/{pid}"), None, None),
        ("get-pipeline", Method::GET, format!("/pipelines/{pid}?version=1"), None, None),
        ("list-pipeline-versions", Method::GET, format!("/pipelines/{pid}/versions"), None, None),
        ("create-pipeline", Method::POST, "/pipelines".into(), Some(body.clone()), None),
        ("create-pipeline", Method::POST, "/pipelines".into(), Some(body.clone()), Some("grants-1")),
        ("create-pipeline", Method::POST, "/pipelines".into(), Some(body.clone()), Some("grants-1")),
        ("update-pipeline", Method::PUT, "/pipelines".into(), Some(renamed), None),
        ("update-pipeline", Method::PUT, "/pipelines".into(), Some(back), None),
        ("trigger-run", Method::POST, format!("/pipelines/{pid}/run"), None, None),
        ("trigger-run", Method::POST, format!("/pipelines/{pid}/run"), None, Some("grants-2")),
        ("trigger-run", Method::POST, format!("/pipelines/{pid}/run"), None, Some("grants-2")),
        ("list-runs", Method::GET, format!("/pipelines/{pid}/runs"), None, None),
        ("get-run", Method::GET, format!("/pipelines/{pid}/runs/{run}"), None, None),
        ("cancel-run", Method::POST, format!("/pipelines/{pid}/runs/{run}/cancel"), None, None),
        ("rerun-run", Method::POST, format!("/pipelines/{pid}/runs/{run}/rerun"), None, None),
        ("list-dead-letters", Method::GET, format!("/pipelines/{pid}/runs/{run}/dead-letters"), None, None),
        ("preview-pipeline", Method::POST, format!("/pipelines/{pid}/preview"), Some(json!({"limit": 2})), None),
        ("test-connector", Method::POST, format!("/connectors/{conn}/test"), None, None),
        ("backfill-pipeline", Method::POST, format!("/pipelines/{hourly}/backfill"), Some(hours.clone()), None),
        ("backfill-pipeline", Method::POST, format!("/pipelines/{hourly}/backfill"), Some(hours.clone()), Some("grants-3")),
        ("backfill-pipeline", Method::POST, format!("/pipelines/{hourly}/backfill"), Some(hours.clone()), Some("grants-3")),
        ("get-backfill", Method::GET, format!("/pipelines/{hourly}/backfills/{backfill}"), None, None),
        ("cancel-backfill", Method::POST, format!("/pipelines/{hourly}/backfills/{backfill}/cancel"), None, None),
        ("list-connectors", Method::GET, "/connectors".into(), None, None),
        ("get-connector", Method::GET, format!("/connectors/{conn}"), None, None),
        ("create-connector", Method::POST, "/connectors".into(), Some(json!({"name": "c", "type": "snowflake", "config": {}})), None),
        ("update-connector", Method::PUT, "/connectors".into(), Some(json!({"id": spare_conn, "name": "renamed"})), None),
        ("delete-connector", Method::DELETE, format!("/connectors?id={spare_conn}"), None, None),
        ("list-schemas", Method::GET, "/schemas".into(), None, None),
        ("get-schema", Method::GET, format!("/schemas/{schema}"), None, None),
        ("list-records", Method::GET, format!("/schemas/{schema}/records"), None, None),
        ("create-schema", Method::POST, "/schemas".into(), Some(json!({"name": "s", "fields": [{"name": "a", "type": "text"}]})), None),
        ("update-schema", Method::PUT, "/schemas".into(), Some(json!({"id": spare_schema, "displayName": "Renamed"})), None),
        ("delete-schema", Method::DELETE, format!("/schemas?id={spare_schema}"), None, None),
        ("list-api-keys", Method::GET, "/api-keys".into(), None, None),
        ("create-api-key", Method::POST, "/api-keys".into(), Some(json!({"name": "k", "role": "editor"})), None),
        ("delete-api-key", Method::DELETE, format!("/api-keys?id={viewer}"), None, None),
        ("delete-api-key", Method::DELETE, format!("/api-keys?id={admin}"), None, None),
        ("not-found", Method::GET, "/nothing-here".into(), None, None),
        ("get-openapi", Method::GET, "/openapi.json".into(), None, None),
        ("get-console", Method::GET, "/".into(), None, None),
    ];
    // Refusals take other paths (a refused delete reads what it could not delete, to tell 409
    // from 404): the same functions, answering 4xx.
    let own_key = app.key.split('.').nth(2).unwrap().to_string();
    let refusals: Vec<Case> = vec![
        ("delete-connector", Method::DELETE, format!("/connectors?id={conn}"), None, None),
        ("delete-connector", Method::DELETE, "/connectors?id=conn_019ad0c0a0a07000800000000000c0c1".into(), None, None),
        ("delete-schema", Method::DELETE, format!("/schemas?id={schema}"), None, None),
        ("cancel-run", Method::POST, format!("/pipelines/{pid}/runs/{run}/cancel"), None, None),
        (
            "update-pipeline",
            Method::PUT,
            "/pipelines".into(),
            Some(json!({"id": "pipe_019ad0c0a0a07000800000000000c0c3", "name": "x"})),
            None,
        ),
        ("trigger-run", Method::POST, "/pipelines/pipe_019ad0c0a0a07000800000000000c0c3/run".into(), None, None),
        ("preview-pipeline", Method::POST, "/pipelines/pipe_019ad0c0a0a07000800000000000c0c3/preview".into(), None, None),
        ("backfill-pipeline", Method::POST, format!("/pipelines/{pid}/backfill"), Some(json!({"from": "x", "to": "y"})), None),
        ("delete-api-key", Method::DELETE, format!("/api-keys?id={own_key}"), None, None),
        (
            "update-connector",
            Method::PUT,
            "/connectors".into(),
            Some(json!({"id": "conn_019ad0c0a0a07000800000000000c0c1", "name": "x"})),
            None,
        ),
    ];
    let mut seen: BTreeMap<String, BTreeSet<(Resource, String)>> = BTreeMap::new();
    let expected = cases.len();
    for (i, (function, method, path, body, key)) in cases.into_iter().chain(refusals).enumerate() {
        recorder.take();
        // The console's page is at the root, beside the API.
        let url = match function {
            "get-console" => format!("{}{path}", base.trim_end_matches("/api/v1")),
            _ => format!("{base}{path}"),
        };
        let mut req = app.http.request(method, url).bearer_auth(&app.key).header("X-Tenant-Id", &app.tenant);
        if let Some(body) = &body {
            req = req.json(body);
        }
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let ok = match i < expected && function != "not-found" {
            true => (200..300).contains(&status),
            false => (400..500).contains(&status),
        };
        assert!(ok, "{function} {path}: {status} {}", resp.text().await.unwrap());
        seen.entry(function.to_string()).or_default().extend(recorder.take());
    }

    // The worker runs the pipeline's runs (rows written, one dead letter); the scheduler fires
    // its every-minute slot and sweeps.
    recorder.take();
    let sources = local::stack::sources(&local::stack::clients().await, &app.source_bucket);
    let engine = shared::engine::execute::DataEngine::new(recorded.records.clone(), sources);
    while local::runner::poll_once(&recorded, &engine, &shared::settings::RunSettings::default(), 1).await.expect("poll") > 0 {}
    // The local runner polls as Lambda's event source mapping does, under SAM's policy for it.
    let polled = |(_, action): &(Resource, String)| !matches!(action.as_str(), "sqs:ReceiveMessage" | "sqs:DeleteMessage");
    seen.insert("worker".into(), recorder.take().into_iter().filter(polled).collect());
    // The tick fans out over the tick queue, its shard workers take their messages, and (three
    // minutes on, the slot due) fire the slot.
    let ticks = local::stack::tick_queue(&recorded, &format!("{table}-ticks")).await.expect("tick queue");
    recorder.take();
    let settings = shared::settings::RunSettings::default();
    let report = shared::scheduler::fan_out(&*recorded, &ticks, &settings, chrono::Utc::now()).await.expect("tick");
    assert_eq!(report, Default::default(), "every shard message was sent");
    let mut polled_ticks = 0;
    while polled_ticks < settings.fanout.workers as usize {
        let got = local::runner::poll_ticks_once(&*recorded, &ticks, &settings, 1).await.expect("poll ticks");
        assert!(got > 0, "a shard message for each worker");
        polled_ticks += got;
    }
    let later = chrono::Utc::now() + chrono::Duration::minutes(3);
    for worker in 0..settings.fanout.workers {
        shared::scheduler::shard(&*recorded, &settings, worker, settings.fanout.workers, later).await.expect("shard");
    }
    seen.insert("scheduler".into(), recorder.take().into_iter().filter(polled).collect());
    let runs = recorded.store().list_runs(&app.tenant_id(), &shared::domain::ids::PipelineId::parse(&pid).unwrap(), 10).await.unwrap();
    assert!(runs.iter().any(|r| r.scheduled_for.is_some()), "the shard workers fired the slot: {runs:?}");
    recorder.take();
    let deleted = app.http.delete(format!("{base}/pipelines?id={pid}")).bearer_auth(&app.key).header("X-Tenant-Id", &app.tenant);
    assert_eq!(deleted.send().await.unwrap().status().as_u16(), 204);
    seen.insert("delete-pipeline".into(), recorder.take());

    let missing: Vec<_> = shared::http::ROUTES.iter().map(|r| r.function).filter(|f| !seen.contains_key(*f)).collect();
    assert!(missing.is_empty(), "functions not exercised: {missing:?}");
    let refused: Vec<String> = seen.iter().flat_map(|(function, calls)| ungranted(function, calls)).collect();
    for (function, calls) in &seen {
        println!("{function}: {calls:?}");
    }
    assert!(refused.is_empty(), "calls IAM would refuse:\n{}", refused.join("\n"));
}
