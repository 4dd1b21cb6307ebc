//! A connector's credentials are write-only: no response shows them, to any role, and no log
//! line of the requests and runs that use them, and a config read and sent back keeps them
//! (issue "hostile input"). A run through the connector proves the stored values are intact:
//! the source answers only with all three credentials.

use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::json;
use shared::domain::tenant::Role;

use crate::engine::{chain, run_to_end, schema, settings};
use crate::support::*;

const SECRETS: [&str; 5] = ["pw-user-3", "tok-query-2", "key-header-1", "whsec-secret-4-abcdef", "hook-token-5"];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

/// Every log line this thread writes while the guard lives, as the functions write them in AWS
/// (JSON, with their spans), at debug for our crate: more than production logs (info).
fn capture_logs() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    use tracing_subscriber::prelude::*;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let writer = move || Sink(sink.clone());
    let filter = tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO).with_target("shared", tracing::Level::DEBUG);
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().json().with_current_span(true).with_writer(writer));
    (tracing::subscriber::set_default(subscriber), lines)
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn source() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let orders = |headers: HeaderMap, Query(query): Query<std::collections::HashMap<String, String>>| async move {
        // `alice:pw-user-3`, as reqwest sends a URL's user info.
        let basic = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Basic YWxpY2U6cHctdXNlci0z");
        let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some("key-header-1");
        let token = query.get("access_token").map(String::as_str) == Some("tok-query-2");
        match basic && key && token {
            true => (StatusCode::OK, "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": \"b\"}\n"),
            false => (StatusCode::UNAUTHORIZED, ""),
        }
    };
    let server = axum::Router::new().route("/orders", axum::routing::get(orders));
    tokio::spawn(async move { axum::serve(listener, server).await });
    format!("http://alice:pw-user-3@127.0.0.1:{port}/orders?access_token=tok-query-2")
}

#[tokio::test]
async fn connector_credentials_are_write_only() {
    let (_logging, logs) = capture_logs();
    let app = spawn_app().await;
    let config =
        json!({"url": source().await, "format": "jsonl", "headers": {"X-Api-Key": "key-header-1", "Accept": "application/x-ndjson"}});
    let created = app.post("/connectors", &json!({"name": "Orders API", "type": "http", "config": config})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_no_secret("create", &created.body.to_string());
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["config"]["headers"]["X-Api-Key"], "********");
    assert_eq!(created.body["config"]["headers"]["Accept"], "application/x-ndjson");

    // Every role reads the mask, never the value.
    let viewer = app.key_for(&app.tenant, Role::Viewer).await;
    for (who, key) in [("admin", app.key.clone()), ("viewer", viewer)] {
        for path in [format!("/connectors/{id}"), "/connectors".to_string()] {
            let r = app.send(app.req_as(&key, &app.tenant, Method::GET, &path)).await;
            assert_eq!(r.status, 200, "{who} {path}: {}", r.body);
            assert_no_secret(&format!("{who} GET {path}"), &r.body.to_string());
        }
    }

    // Read, change the name, send it all back: the credentials stay as stored.
    let mut read = app.get(&format!("/connectors/{id}")).await.body;
    read["name"] = json!("Orders API v2");
    let body = json!({"id": id, "name": read["name"], "config": read["config"]});
    let updated = app.put("/connectors", &body).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_no_secret("update", &updated.body.to_string());

    // The run can only succeed with all three credentials intact.
    let schema_id = schema(&app, json!([{"name": "id", "type": "integer", "primaryKey": true}, {"name": "name", "type": "text"}])).await;
    let pid = chain(&app, &id, &schema_id, vec![], json!({})).await;
    // A webhook with a secret and a token in its URL (nothing listens there: its failure is logged).
    let hook = json!({"webhookUrl": "http://127.0.0.1:9/hook?token=hook-token-5", "secret": "whsec-secret-4-abcdef"});
    let hooked = app.put("/pipelines", &json!({"id": pid, "notifications": hook})).await;
    assert_eq!(hooked.status, 200, "{}", hooked.body);
    assert_no_secret("the webhook's pipeline", &hooked.body.to_string());
    // A preview and a connector test read the source with its credentials, and show none.
    let preview = app.post(&format!("/pipelines/{pid}/preview"), &json!({})).await;
    assert_eq!((preview.status, preview.body["recordsRead"].as_u64()), (200, Some(2)), "{}", preview.body);
    assert_no_secret("preview", &preview.body.to_string());
    assert_no_secret("connector test", &app.post(&format!("/connectors/{id}/test"), &json!({})).await.body.to_string());
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!((run["status"].as_str(), run["rowsOut"].as_u64()), (Some("completed"), Some(2)), "{run}");
    let rid = run["id"].as_str().unwrap();
    // The webhook's attempt is made (and fails) before the runs are read.
    for _ in 0..3 {
        local::runner::poll_once(&app.app, &app.engine(), &settings(), 1).await.unwrap();
    }
    let attempts = app.run(&pid, rid).await["deliveries"].clone();
    assert_eq!(attempts[0]["ok"], false, "{attempts}");
    for path in [format!("/pipelines/{pid}"), format!("/pipelines/{pid}/runs"), format!("/pipelines/{pid}/runs/{rid}")] {
        assert_no_secret(&path, &app.get(&path).await.body.to_string());
    }

    // A failing run names the source without its credentials: its log and error included; so do a
    // preview and a connector test of the failing source.
    let mut broken = read["config"].clone();
    broken["url"] = json!(source().await.replace("/orders", "/missing"));
    assert_eq!(app.put("/connectors", &json!({"id": id, "config": broken})).await.status, 200);
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_no_secret("failed run", &run.to_string());
    let preview = app.post(&format!("/pipelines/{pid}/preview"), &json!({})).await.body;
    assert!(preview["error"].is_object(), "{preview}");
    assert_no_secret("failing preview", &preview.to_string());
    assert_no_secret("failing connector test", &app.post(&format!("/connectors/{id}/test"), &json!({})).await.body.to_string());

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(logs.contains("\"message\":\"handled\"") && logs.contains("run queued"), "the requests and runs were logged: {logs}");
    assert_no_secret("the logs", &logs);
}
