//! Webhooks: a run's end is posted to its pipeline's `notifications.webhookUrl`, signed with its
//! secret (HMAC-SHA256 over the timestamp and the body), retried with backoff when the receiver
//! fails, every attempt logged on the run; the address guard keeps it off the metadata address.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use shared::settings::RunSettings;

use crate::engine::{chain, connector, run_to_end, schema};
use crate::support::*;

const SECRET: &str = "whsec_test_0123456789";

/// A receiver that answers the statuses of `script` in turn (then 200) and keeps what it got.
async fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<(HeaderMap, String)>>>) {
    let got: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let (kept, script) = (got.clone(), Arc::new(Mutex::new(script.into_iter())));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (kept, script) = (kept.clone(), script.clone());
            async move {
                kept.lock().unwrap().push((headers, body));
                let status = script.lock().unwrap().next().unwrap_or(200);
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

fn quick() -> RunSettings {
    RunSettings { webhook_retry_base: std::time::Duration::from_secs(1), ..RunSettings::default() }
}

async fn hooked(app: &TestApp, url: &str) -> String {
    let conn = connector(app, "inline", json!({"records": [{"x": 1}, {"x": 2}]})).await;
    let target = schema(app, json!([{"name": "x", "type": "integer"}])).await;
    let pid = chain(app, &conn, &target, vec![], json!({})).await;
    let r = app.put("/pipelines", &json!({"id": pid, "notifications": {"webhookUrl": url, "secret": SECRET}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["notifications"], json!({"webhookUrl": url, "secret": "********"}), "the secret is write-only");
    pid
}

/// Lets the worker take messages until the run's log has `attempts` entries.
async fn deliveries(app: &TestApp, pid: &str, rid: &str, attempts: usize) -> Vec<Value> {
    let engine = app.engine();
    for _ in 0..30 {
        let log = app.run(pid, rid).await["deliveries"].as_array().cloned().unwrap_or_default();
        if log.len() >= attempts {
            return log;
        }
        local::runner::poll_once(&app.app, &engine, &quick(), 1).await.expect("poll");
    }
    panic!("run {rid}: fewer than {attempts} delivery attempts");
}

#[tokio::test]
async fn a_runs_end_is_posted_signed_and_retried_until_the_receiver_takes_it() {
    let app = spawn_app().await;
    let (url, got) = receiver(vec![503]).await;
    let pid = hooked(&app, &url).await;
    let run = run_to_end(&app, &pid, &quick()).await;
    let rid = run["id"].as_str().unwrap().to_string();

    let log = deliveries(&app, &pid, &rid, 2).await;
    assert_eq!(
        (log[0]["ok"].as_bool(), log[0]["status"].as_u64(), log[0]["retryAt"].is_string()),
        (Some(false), Some(503), true),
        "{log:?}"
    );
    assert_eq!(
        (log[1]["ok"].as_bool(), log[1]["status"].as_u64(), log[1]["attempt"].as_u64()),
        (Some(true), Some(200), Some(2)),
        "{log:?}"
    );

    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let (headers, body) = &got[1];
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!((payload["id"].as_str(), payload["detailType"].as_str()), (Some(rid.as_str()), Some("Run Finished")));
    assert_eq!((payload["detail"]["status"].as_str(), payload["detail"]["rowsOut"].as_u64()), (Some("completed"), Some(2)));
    assert_eq!(headers["x-pipelines-event-id"], rid.as_str());
    // The receiver's check: t and v1 from the header, the HMAC recomputed over "<t>.<body>".
    let signature = headers["x-pipelines-signature"].to_str().unwrap();
    let t: i64 = signature.split(',').next().unwrap().strip_prefix("t=").unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - t).abs() < 60, "{signature}");
    assert_eq!(signature, shared::domain::webhook::sign(SECRET, t, body));
    assert_ne!(signature, shared::domain::webhook::sign("another secret!!", t, body));

    // A redelivered message of the ended run posts no second success.
    let engine = app.engine();
    app.send_raw(&json!({"webhook": {"tenantId": app.tenant, "pipelineId": pid, "runId": rid, "attempt": 1}}).to_string()).await;
    local::runner::poll_once(&app.app, &engine, &quick(), 1).await.expect("poll");
    assert_eq!(app.run(&pid, &rid).await["deliveries"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_webhook_gives_up_after_its_attempts_and_never_reaches_the_metadata_address() {
    let app = spawn_app().await;
    let (url, got) = receiver(vec![500; 10]).await;
    let pid = hooked(&app, &url).await;
    // Attempts 1 and 2 fail; the last attempt is tried with nothing after it.
    let rid = run_to_end(&app, &pid, &quick()).await["id"].as_str().unwrap().to_string();
    deliveries(&app, &pid, &rid, 2).await;
    let last = shared::domain::webhook::MAX_ATTEMPTS;
    app.send_raw(&json!({"webhook": {"tenantId": app.tenant, "pipelineId": pid, "runId": rid, "attempt": last}}).to_string()).await;
    let log = deliveries(&app, &pid, &rid, 3).await;
    let final_attempt = log.iter().find(|a| a["attempt"] == last).expect("the last attempt");
    assert_eq!((final_attempt["ok"].as_bool(), final_attempt.get("retryAt")), (Some(false), None), "{log:?}");
    assert!(got.lock().unwrap().len() >= 3);

    let blocked = hooked(&app, "http://169.254.169.254/latest/meta-data/").await;
    let rid = run_to_end(&app, &blocked, &quick()).await["id"].as_str().unwrap().to_string();
    let log = deliveries(&app, &blocked, &rid, 1).await;
    assert_eq!((log[0]["ok"].as_bool(), log[0].get("status"), log[0].get("retryAt")), (Some(false), None, None), "{log:?}");
    assert!(log[0]["error"].as_str().unwrap().contains("169.254.169.254"), "{log:?}");

    // A webhook needs its secret, and clients cannot read it back.
    assert_error(&app.put("/pipelines", &json!({"id": pid, "notifications": {"webhookUrl": url}})).await, 400, "BAD_REQUEST");
    let read = app.get(&format!("/pipelines/{pid}")).await.body;
    assert!(!read.to_string().contains(SECRET), "{read}");
    assert_eq!(app.put("/pipelines", &json!({"id": pid, "notifications": null})).await.body["notifications"], Value::Null);
}
