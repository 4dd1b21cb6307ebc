use serde_json::{json, Value};

use crate::support::*;

async fn receive(app: &TestApp) -> Vec<Value> {
    let out =
        app.sqs.receive_message().queue_url(&app.queue_url).max_number_of_messages(10).wait_time_seconds(1).send().await.expect("receive");
    out.messages().iter().map(|m| serde_json::from_str(m.body().unwrap_or_default()).expect("json")).collect()
}

#[tokio::test]
async fn trigger_writes_a_pending_run_and_enqueues_it() {
    let app = spawn_app().await;
    let p = app.create_pipeline(&app.example_body().await).await;
    let pid = p["id"].as_str().unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = app.post(&format!("/pipelines/{pid}/run"), &json!({})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!((r.body["status"].as_str(), r.body["pipelineId"].as_str()), (Some("pending"), Some(pid)));
        assert!(r.body["id"].as_str().unwrap().starts_with("run_"));
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let mut messages = Vec::new();
    while messages.len() < 3 {
        let got = receive(&app).await;
        assert!(!got.is_empty(), "messages missing: {messages:?}");
        messages.extend(got);
    }
    let mut sent: Vec<String> = messages.iter().map(|m| m["runId"].as_str().unwrap().to_string()).collect();
    sent.sort();
    assert_eq!(sent, ids);
    assert!(messages.iter().all(|m| m["tenantId"] == app.tenant.as_str() && m["pipelineId"] == pid));

    // Newest first, and the pipeline follows its latest run.
    let runs = app.get(&format!("/pipelines/{pid}/runs")).await.body;
    let listed: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids.iter().rev().map(String::as_str).collect::<Vec<_>>());
    let p = app.get(&format!("/pipelines/{pid}")).await.body;
    assert_eq!(p["lastRunStatus"], "pending");
    assert_eq!(p["lastRunAt"], runs[0]["createdAt"]);
}

#[tokio::test]
async fn runs_list_holds_the_newest_twenty() {
    let app = spawn_app().await;
    let p = app.create_pipeline(&app.example_body().await).await;
    let pid = p["id"].as_str().unwrap();
    for _ in 0..22 {
        assert_eq!(app.post(&format!("/pipelines/{pid}/run"), &json!({})).await.status, 201);
    }
    let runs = app.get(&format!("/pipelines/{pid}/runs")).await.body;
    let created: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(created.len(), 20);
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted);
}

#[tokio::test]
async fn triggering_a_missing_pipeline_is_404_and_writes_nothing() {
    let app = spawn_app().await;
    let missing = shared::domain::ids::PipelineId::generate();
    assert_error(&app.post(&format!("/pipelines/{missing}/run"), &json!({})).await, 404, "NOT_FOUND");
    assert_error(&app.get(&format!("/pipelines/{missing}/runs")).await, 404, "NOT_FOUND");
    assert_error(&app.post("/pipelines/garbage/run", &json!({})).await, 404, "NOT_FOUND");
    assert!(receive(&app).await.is_empty());
}

/// When the queue cannot take the message, the client hears it (503) and the run is not left
/// `pending` for a worker that will never come.
#[tokio::test]
async fn a_lost_send_fails_the_run_instead_of_stranding_it() {
    let healthy = spawn_app().await;
    let broken_url = format!("{}-gone", healthy.queue_url);
    let app = spawn_app_with_queue(&broken_url).await;
    let p = app.create_pipeline(&app.example_body().await).await;
    let pid = p["id"].as_str().unwrap();
    let r = app.post(&format!("/pipelines/{pid}/run"), &json!({})).await;
    assert_error(&r, 503, "SERVICE_UNAVAILABLE");

    let runs = app.get(&format!("/pipelines/{pid}/runs")).await.body;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["error"]["code"], "ENQUEUE_FAILED");
    assert!(runs[0]["completedAt"].is_string());
    assert_eq!(app.get(&format!("/pipelines/{pid}")).await.body["lastRunStatus"], "failed");
}
