//! The system under a failing network: the real SDK, through the fault proxy (`proxy.rs`) in
//! front of DynamoDB Local and moto, which throttles, delays, and loses responses of requests
//! that went through. What must hold:
//! - the API answers 2xx or 503 (with `Retry-After`), never a 500, and a client that retries
//!   with its `Idempotency-Key` gets one pipeline, one run, per key: nothing lost or doubled,
//!   and every count (the tenant's, the use counts, the runs in flight) stays exact;
//! - the worker ends every run exactly once (its slots and the tenant's runs in flight come back
//!   to zero, never below), or a redelivery or the sweep carries it on;
//! - the scheduler fires each slot once, however many ticks fail partway.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::Method;
use serde_json::{json, Value};
use shared::context::{App, Stores};
use shared::settings::RunSettings;

use crate::proxy::{self, Faults, Proxy};
use crate::support::*;

/// `app` again, over the same tables and a fresh queue of short visibility (a failed message
/// comes back in a second, not two minutes), through fault proxies; with its gateway.
struct Faulty {
    app: Arc<App>,
    base: String,
    dynamodb: Proxy,
    sqs: Proxy,
}

impl Faulty {
    async fn new(app: &TestApp, faults: Faults) -> Self {
        let clients = local::stack::clients().await;
        let queue = local::stack::ensure_queue(&clients.sqs, &unique("chaos")).await.expect("queue");
        clients
            .sqs
            .set_queue_attributes()
            .queue_url(&queue)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "1")
            .send()
            .await
            .expect("visibility");
        let dynamodb = proxy::start("http://127.0.0.1:8000", faults).await;
        let sqs = proxy::start("http://127.0.0.1:4566", Faults { seed: faults.seed + 1, ..faults }).await;
        let ddb = aws_sdk_dynamodb::Client::from_conf(clients.dynamodb.config().to_builder().endpoint_url(&dynamodb.url).build());
        let sq = aws_sdk_sqs::Client::from_conf(clients.sqs.config().to_builder().endpoint_url(&sqs.url).build());
        let table = app.app.store().table().to_string();
        let faulty = App::new(ddb, sq, &table, &queue, &local::stack::records_table(&table))
            .with_source_bucket(&app.source_bucket)
            .with_quotas(Quotas { requests_per_second: 100_000, ..Quotas::default() });
        let faulty = Arc::new(faulty);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
        let server = axum::serve(listener, local::gateway::router(faulty.clone()));
        tokio::spawn(async move { server.await });
        Self { app: faulty, base, dynamodb, sqs }
    }

    fn heal(&self) {
        self.dynamodb.heal();
        self.sqs.heal();
    }

    fn faults(&self) -> u64 {
        self.dynamodb.counts.faults() + self.sqs.counts.faults()
    }

    /// Sends until the answer is not a 503, as a client told `Retry-After` does (without the
    /// wait): the final answer, after checking every one was a 2xx or a 503 with `Retry-After`.
    async fn retried(&self, app: &TestApp, method: Method, path: &str, body: Option<&Value>, key: &str) -> Value {
        for _ in 0..40 {
            let mut req = app.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&app.key);
            req = req.header("X-Tenant-Id", &app.tenant).header("Idempotency-Key", key);
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            let retry_after = resp.headers().get("retry-after").is_some();
            let text = resp.text().await.unwrap_or_default();
            match status {
                200..=299 => return serde_json::from_str(&text).expect("json"),
                503 => assert!(retry_after && text.contains("SERVICE_UNAVAILABLE"), "{text}"),
                other => panic!("{method} {path} under faults: {other} {text}"),
            }
        }
        panic!("{method} {path} never got through");
    }
}

fn faults(seed: u64) -> Faults {
    Faults { throttle: 100, lose: 60, delay: 60, delay_for: Duration::from_millis(150), seed }
}

/// The number `n` of an item of the main table (a count), 0 when there is none.
pub(crate) async fn number(app: &TestApp, pk: String, sk: &str, attribute: &str) -> i64 {
    let store = app.app.store();
    let out = store
        .client()
        .get_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S(pk))
        .key("SK", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item.and_then(|i| i.get(attribute).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())).unwrap_or(0)
}

#[tokio::test]
async fn creates_and_triggers_retried_through_faults_make_one_of_each_and_keep_every_count() {
    let app = spawn_isolated_app().await;
    let records: Vec<_> = (1..=40).map(|i| json!({"id": i})).collect();
    let conn = app.post("/connectors", &json!({"name": "inline", "type": "inline", "config": {"records": records}})).await.body;
    let conn = conn["id"].as_str().unwrap().to_string();
    let target = app.post("/schemas", &json!({"name": "t", "fields": [{"name": "id", "type": "integer", "primaryKey": true}]})).await;
    let schema = target.body["id"].as_str().unwrap().to_string();
    let mut body = example_pipeline(&conn, &schema);
    body["nodes"] = json!([{"id": "in", "nodeType": "source", "label": "In"}, {"id": "out", "nodeType": "target", "label": "Out"}]);
    body["edges"] = json!([{"source": "in", "target": "out"}]);
    let faulty = Faulty::new(&app, faults(7)).await;

    let mut pipelines = vec![];
    for i in 0..12 {
        let created = faulty.retried(&app, Method::POST, "/pipelines", Some(&body), &format!("create-{i}")).await;
        pipelines.push(created["id"].as_str().unwrap().to_string());
    }
    for (i, pid) in pipelines.iter().enumerate() {
        faulty.retried(&app, Method::POST, &format!("/pipelines/{pid}/run"), None, &format!("run-{i}")).await;
    }
    assert!(faulty.faults() > 10, "faults were injected: {:?} {:?}", faulty.dynamodb.counts, faulty.sqs.counts);
    println!("api faults: dynamodb {:?}, sqs {:?}", faulty.dynamodb.counts, faulty.sqs.counts);
    faulty.heal();

    let listed = app.get("/pipelines?limit=100").await.body;
    assert_eq!((listed["total"].as_u64(), listed["data"].as_array().map(Vec::len)), (Some(12), Some(12)), "one pipeline per key");
    let tenant_pk = format!("T#{}", app.tenant);
    assert_eq!(number(&app, tenant_pk.clone(), &format!("CONN#{conn}"), "useCount").await, 12, "the connector's use count");
    let (tenant, mut pending) = (app.tenant_id(), 0);
    for pid in &pipelines {
        let id = shared::domain::ids::PipelineId::parse(pid).unwrap();
        let runs = app.app.store().list_runs(&tenant, &id, 10).await.unwrap();
        // A trigger whose message was sent but whose send was reported lost marked its run
        // failed and answered 503; the retry made the run that counts.
        let live: Vec<_> = runs.iter().filter(|r| r.status.as_str() == "pending").collect();
        assert_eq!(live.len(), 1, "{pid}: {runs:?}");
        for r in runs.iter().filter(|r| r.status.as_str() != "pending") {
            assert_eq!(r.error.as_ref().map(|e| e.code.as_str()), Some("ENQUEUE_FAILED"), "{r:?}");
        }
        assert_eq!(number(&app, format!("{tenant_pk}#P#{pid}"), "SLOTS", "active").await, 1, "{pid}");
        pending += live.len() as i64;
    }
    assert_eq!(app.app.store().runs_in_flight(&tenant).await.unwrap(), pending, "the tenant's runs in flight");

    // The worker, under faults again, with short leases and resends so the sweep carries on
    // what a failed invocation left.
    let worker = Faulty::new(&app, Faults { throttle: 40, lose: 30, delay: 40, ..faults(11) }).await;
    let settings = RunSettings {
        lease: chrono::Duration::seconds(2),
        pending_resend: chrono::Duration::seconds(2),
        max_attempts: 10,
        ..RunSettings::default()
    };
    let engine = shared::engine::execute::DataEngine::new(
        worker.app.records.clone(),
        local::stack::sources(&local::stack::clients().await, &app.source_bucket),
    );
    // Each pending run's message goes to the worker's queue too (the first went to the
    // first app's queue, which no worker polls here).
    for pid in &pipelines {
        let id = shared::domain::ids::PipelineId::parse(pid).unwrap();
        for run in app.app.store().list_runs(&tenant, &id, 10).await.unwrap().iter().filter(|r| r.status.as_str() == "pending") {
            app.app
                .queue
                .client()
                .send_message()
                .queue_url(worker.app.queue.url())
                .message_body(json!({"tenantId": app.tenant, "pipelineId": pid, "runId": run.id}).to_string())
                .send()
                .await
                .unwrap();
        }
    }
    let mut open = pipelines.len();
    for _ in 0..120 {
        let _ = local::runner::poll_once(&worker.app, &engine, &settings, 1).await;
        let _ = shared::scheduler::tick(&*worker.app, &settings, chrono::Utc::now() + chrono::Duration::seconds(3)).await;
        open = 0;
        for pid in &pipelines {
            let id = shared::domain::ids::PipelineId::parse(pid).unwrap();
            let runs = app.app.store().list_runs(&tenant, &id, 10).await.unwrap();
            open += runs.iter().filter(|r| matches!(r.status.as_str(), "pending" | "running")).count();
        }
        if open == 0 {
            break;
        }
    }
    assert_eq!(open, 0, "every run ended");
    println!("worker faults: dynamodb {:?}, sqs {:?}", worker.dynamodb.counts, worker.sqs.counts);
    assert!(worker.faults() > 10, "{:?} {:?}", worker.dynamodb.counts, worker.sqs.counts);
    for pid in &pipelines {
        for counter in ["active", "running"] {
            assert_eq!(number(&app, format!("{tenant_pk}#P#{pid}"), "SLOTS", counter).await, 0, "{pid} {counter}: each run ended once");
        }
    }
    assert_eq!(app.app.store().runs_in_flight(&tenant).await.unwrap(), 0, "the tenant's runs in flight are back to zero");
    let rows = app.get(&format!("/schemas/{schema}/records?limit=100")).await.body;
    assert_eq!(rows["total"].as_u64().or(rows["data"].as_array().map(|d| d.len() as u64)), Some(40), "every row, once: {rows}");
}

#[tokio::test]
async fn ticks_failing_partway_fire_each_slot_once() {
    let app = spawn_isolated_app().await;
    let mut body = app.example_body().await;
    body["schedule"] = json!("* * * * *");
    body["status"] = json!("active");
    let mut pipelines = vec![];
    for _ in 0..15 {
        pipelines.push(app.create_pipeline(&body).await["id"].as_str().unwrap().to_string());
    }
    // Heavy enough that the SDK's own retries give up on some calls, and ticks fail partway.
    let faulty = Faulty::new(&app, Faults { throttle: 250, lose: 150, ..faults(3) }).await;
    let slot = chrono::Utc::now() + chrono::Duration::minutes(1);
    let settings = RunSettings::default();
    let mut failed_ticks = 0;
    for _ in 0..4 {
        failed_ticks += shared::scheduler::tick(&*faulty.app, &settings, slot).await.is_err() as u32;
    }
    // A second tick overlapping the first.
    println!("scheduler faults: dynamodb {:?}, sqs {:?}, {failed_ticks} of 4 ticks failed", faulty.dynamodb.counts, faulty.sqs.counts);
    faulty.heal();
    shared::scheduler::tick(&*faulty.app, &settings, slot).await.expect("a healthy tick");
    assert!(faulty.faults() > 5, "{:?} {:?} ({failed_ticks} ticks failed)", faulty.dynamodb.counts, faulty.sqs.counts);
    let tenant = app.tenant_id();
    for pid in &pipelines {
        let id = shared::domain::ids::PipelineId::parse(pid).unwrap();
        let runs = app.app.store().list_runs(&tenant, &id, 10).await.unwrap();
        // A slot whose message was lost stays pending for the sweep to send again: never a
        // second run, never a slot given up.
        assert_eq!(runs.len(), 1, "{pid}: one run for the slot: {runs:?}");
        assert_eq!((runs[0].status.as_str(), runs[0].scheduled_for.is_some()), ("pending", true), "{runs:?}");
    }
}
