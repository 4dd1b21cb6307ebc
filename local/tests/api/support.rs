//! `spawn_app`: the local gateway on a random port, over DynamoDB Local and moto through the real
//! SDK, with a fresh tenant and an admin key for it. Every test gets its own tenant and queue, so
//! tests run in parallel without seeing each other (which is itself tenant isolation at work).

use shared::context::Stores;
use std::sync::Arc;

use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use shared::context::App;
use shared::domain::api_key::issue;
use shared::domain::tenant::{Role, TenantId};
pub use shared::settings::Quotas;

pub const TABLE: &str = "pipelines-test";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub tenant: String,
    pub key: String,
    pub app: Arc<App>,
    pub queue_url: String,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    /// The deployment's source bucket, as `make dev` has it.
    pub source_bucket: String,
    /// Where the emitted `Run Finished` events land (every test app's, on one bus).
    pub events_inbox: String,
}

pub struct Response {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub async fn spawn_app() -> TestApp {
    spawn(TABLE, None, roomy()).await
}

/// Quotas no test meets unless it means to: tests send requests faster than a client would,
/// and with one key.
fn roomy() -> Quotas {
    Quotas { requests_per_second: 100_000, ..Quotas::default() }
}

/// An app held to `quotas`, in a table of its own (the scheduler sees only its pipelines).
pub async fn spawn_app_with_quotas(quotas: Quotas) -> TestApp {
    spawn(&unique("pipelines-test"), None, quotas).await
}

/// With `queue_url`, the app sends runs there instead of to its own new queue.
pub async fn spawn_app_with_queue(queue_url: &str) -> TestApp {
    spawn(TABLE, Some(queue_url), roomy()).await
}

/// An app with a table of its own: for the scheduler, whose tick sees every tenant of a table.
pub async fn spawn_isolated_app() -> TestApp {
    spawn(&unique("pipelines-test"), None, roomy()).await
}

async fn spawn(table: &str, queue_url: Option<&str>, quotas: Quotas) -> TestApp {
    let clients = local::stack::clients().await;
    local::stack::ensure_table(&clients.dynamodb, table).await.expect("table");
    local::stack::ensure_records_table(&clients.dynamodb, &local::stack::records_table(table)).await.expect("records table");
    let own_queue = local::stack::ensure_queue(&clients.sqs, &unique("runs")).await.expect("queue");
    let queue_url = queue_url.map(str::to_string).unwrap_or(own_queue);
    let source_bucket = local::stack::source_bucket();
    local::stack::ensure_bucket(&clients.s3, &source_bucket).await.expect("source bucket");
    let bus = local::stack::event_bus("pipelines-test");
    let events_inbox = local::stack::ensure_event_bus(&clients, &bus).await.expect("event bus");
    let app = App::new(clients.dynamodb.clone(), clients.sqs.clone(), table, &queue_url, &local::stack::records_table(table))
        .with_source_bucket(&source_bucket)
        .with_quotas(quotas)
        .with_events(clients.events.clone(), &bus)
        .with_sources(local::stack::sources(&clients, &source_bucket));
    let engine_sources = local::stack::sources(&clients, &source_bucket);
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
    let server = axum::serve(listener, local::gateway::router(app.clone()));
    tokio::spawn(async move { server.await });
    let tenant = unique("t");
    let mut test = TestApp {
        base,
        http: {
            shared::engine::source::install_tls();
            reqwest::Client::new()
        },
        tenant: tenant.clone(),
        key: String::new(),
        app,
        queue_url,
        sqs: clients.sqs.clone(),
        s3: clients.s3.clone(),
        sts: engine_sources.sts.clone(),
        source_bucket,
        events_inbox,
    };
    test.key = test.key_for(&tenant, Role::Admin).await;
    test
}

impl TestApp {
    /// Issues a key straight into the table, as `make key` does.
    pub async fn key_for(&self, tenant: &str, role: Role) -> String {
        let tenant = TenantId::parse(tenant).expect("tenant");
        let issued = issue(&tenant, "test".into(), role, &shared::domain::now());
        self.app.store().create(&tenant, &issued.stored).await.expect("key");
        issued.key
    }

    /// A request as this app's admin.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.req_as(&self.key, &self.tenant, method, path)
    }

    pub fn req_as(&self, key: &str, tenant: &str, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(key).header("X-Tenant-Id", tenant)
    }

    pub async fn send(&self, req: RequestBuilder) -> Response {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Response { status, body, headers }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(self.req(Method::POST, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send(self.req(Method::PUT, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(self.req(Method::DELETE, path)).await
    }

    pub async fn create_connector(&self) -> String {
        let r = self.post("/connectors", &json!({"name": "Production Snowflake", "type": "snowflake", "config": {}})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    pub async fn create_schema(&self) -> String {
        let r = self
            .post("/schemas", &json!({"name": "customers", "displayName": "Customers", "fields": [{"name": "id", "type": "integer", "primaryKey": true}]}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// The reference page's example pipeline, on a new connector and schema.
    pub async fn example_body(&self) -> Value {
        let (connector, schema) = (self.create_connector().await, self.create_schema().await);
        example_pipeline(&connector, &schema)
    }

    pub async fn create_pipeline(&self, body: &Value) -> Value {
        let r = self.post("/pipelines", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }
}

pub fn example_pipeline(connector: &str, schema: &str) -> Value {
    json!({
        "name": "Customer Import",
        "connectorId": connector,
        "schemaId": schema,
        "schedule": "0 2 * * *",
        "executionConfig": { "batchSize": 5000, "parallelism": 4 },
        "nodes": [
            { "id": "n1", "nodeType": "source", "label": "Snowflake Source", "config": {} },
            { "id": "n2", "nodeType": "transform", "label": "Rename Fields", "config": { "type": "rename_field" } },
            { "id": "n3", "nodeType": "target", "label": "Customer Table", "config": {} }
        ],
        "edges": [
            { "source": "n1", "target": "n2" },
            { "source": "n2", "target": "n3" }
        ]
    })
}

/// The field names of a 400's details.
pub fn detail_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|e| e["field"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Asserts the product's error format and status.
pub fn assert_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["status"], status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.body);
}

/// An engine for lifecycle tests: `batches` batches of `delay` each, a checkpoint before every
/// batch (as a real engine does), then a report. With `gate`, each batch also waits for a permit.
pub struct BatchEngine {
    pub batches: usize,
    pub delay: std::time::Duration,
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
    pub started: Arc<tokio::sync::Notify>,
}

impl BatchEngine {
    pub fn new(batches: usize, delay_ms: u64) -> Self {
        Self { batches, delay: std::time::Duration::from_millis(delay_ms), gate: None, started: Arc::new(tokio::sync::Notify::new()) }
    }
}

impl shared::engine::job::Engine for BatchEngine {
    fn execute<'a>(
        &'a self,
        _job: &'a shared::engine::job::Job<'a>,
        control: &'a dyn shared::engine::job::Control,
    ) -> futures::future::BoxFuture<'a, Result<shared::engine::job::Report, shared::engine::job::RunFailure>> {
        Box::pin(async move {
            self.started.notify_one();
            for _ in 0..self.batches {
                control.checkpoint(&Default::default()).await.map_err(shared::engine::job::RunFailure::Stopped)?;
                if let Some(gate) = &self.gate {
                    gate.acquire().await.expect("gate").forget();
                }
                tokio::time::sleep(self.delay).await;
            }
            Ok(shared::engine::job::Report { with_errors: false, stats: json!({"rowsIn": self.batches}), log: vec![] })
        })
    }
}

/// An engine that never returns: the worker running it can only be killed.
pub struct HangingEngine(pub Arc<tokio::sync::Notify>);

impl shared::engine::job::Engine for HangingEngine {
    fn execute<'a>(
        &'a self,
        _job: &'a shared::engine::job::Job<'a>,
        _control: &'a dyn shared::engine::job::Control,
    ) -> futures::future::BoxFuture<'a, Result<shared::engine::job::Report, shared::engine::job::RunFailure>> {
        Box::pin(async move {
            self.0.notify_one();
            std::future::pending().await
        })
    }
}

impl TestApp {
    /// The data engine over this app's records table; sources may reach loopback (test servers).
    pub fn engine(&self) -> shared::engine::execute::DataEngine {
        let records = self.app.records.clone();
        let sources = shared::engine::source::SourceContext::with_clients(self.s3.clone(), self.sts.clone(), true);
        let buckets = shared::domain::source_access::SourceBuckets { deployment: Some(self.source_bucket.clone()) };
        shared::engine::execute::DataEngine::new(records, shared::engine::source::SourceContext { buckets, ..sources })
    }

    /// This tenant's folder of the source bucket (`tenants/<tenant>/`).
    pub fn folder(&self) -> String {
        format!("tenants/{}/", self.tenant)
    }

    /// Writes an object into this tenant's folder of the source bucket.
    pub async fn put_source(&self, key: &str, body: impl Into<Vec<u8>>) {
        let key = format!("{}{key}", self.folder());
        self.s3.put_object().bucket(&self.source_bucket).key(key).body(body.into().into()).send().await.expect("put");
    }

    pub fn tenant_id(&self) -> TenantId {
        TenantId::parse(&self.tenant).expect("tenant")
    }

    pub async fn run(&self, pipeline: &str, run: &str) -> Value {
        let r = self.get(&format!("/pipelines/{pipeline}/runs/{run}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    pub async fn trigger(&self, pipeline: &str) -> String {
        let r = self.post(&format!("/pipelines/{pipeline}/run"), &json!({})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// The bodies of the messages waiting in this app's queue (received and left to reappear).
    pub async fn queued(&self) -> Vec<Value> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        out.messages().iter().map(|m| serde_json::from_str(m.body().unwrap_or_default()).expect("json")).collect()
    }

    /// The bodies waiting in this app's queue once delayed messages (purges) are due.
    pub async fn queued_after_delay(&self) -> Vec<Value> {
        let delay = shared::domain::purge::PURGE_DELAY_SECONDS as u64;
        tokio::time::sleep(std::time::Duration::from_secs(delay)).await;
        self.queued().await
    }

    pub async fn send_raw(&self, body: &str) {
        self.sqs.send_message().queue_url(&self.queue_url).message_body(body).send().await.expect("send");
    }
}
