//! `Run Finished` events (issue 10): a run's end goes to the EventBridge bus (moto's, which a
//! rule copies into an inbox queue), with the run's summary and its id to deduplicate on; a
//! redelivered message for an ended run emits it again (at least once, never lost).

use serde_json::{json, Value};

use crate::engine::{chain, connector, run_to_end, schema, settings};
use crate::support::*;

/// The `Run Finished` events of `run` that reached the inbox, reading (and removing) what is
/// there: only this test reads the inbox every test app's bus fills.
async fn events_of(app: &TestApp, run: &str, want: usize) -> Vec<Value> {
    let mut found = vec![];
    for _ in 0..20 {
        let out =
            app.sqs.receive_message().queue_url(&app.events_inbox).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
        for m in out.messages() {
            let event: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap();
            if event["detail"]["runId"] == run {
                found.push(event);
            }
            app.sqs.delete_message().queue_url(&app.events_inbox).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
        if found.len() >= want {
            break;
        }
    }
    found
}

#[tokio::test]
async fn a_runs_end_is_announced_at_least_once_with_an_id_to_deduplicate_on() {
    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"records": [{"x": 1}, {"x": 2}]})).await;
    let target = schema(&app, json!([{"name": "x", "type": "integer"}])).await;
    let pid = chain(&app, &conn, &target, vec![], json!({})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    let rid = run["id"].as_str().unwrap().to_string();

    let events = events_of(&app, &rid, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!((event["source"].as_str(), event["detail-type"].as_str()), (Some("pipelines"), Some("Run Finished")));
    let detail = &event["detail"];
    assert_eq!(
        (detail["id"].as_str(), detail["status"].as_str(), detail["tenantId"].as_str(), detail["rowsOut"].as_u64()),
        (Some(rid.as_str()), Some("completed"), Some(app.tenant.as_str()), Some(2))
    );
    assert_eq!((detail["pipelineId"].as_str(), detail["pipelineVersion"].as_u64()), (Some(pid.as_str()), Some(1)));

    // The same message again (SQS delivers at least once): the run is not run again, and its
    // end is announced again under the same id.
    app.send_raw(&json!({"tenantId": app.tenant, "pipelineId": pid, "runId": rid}).to_string()).await;
    local::runner::poll_once(&app.app, &app.engine(), &settings(), 1).await.unwrap();
    let again = events_of(&app, &rid, 1).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["detail"]["id"], rid);
    assert_eq!(app.run(&pid, &rid).await["attempt"], 1, "announced again, not run again");

    // Cancelled while pending, a run ends without a worker: the API hands it to the worker,
    // which announces it.
    let pending = app.trigger(&pid).await;
    let cancelled = app.post(&format!("/pipelines/{pid}/runs/{pending}/cancel"), &json!({})).await;
    assert_eq!((cancelled.status, cancelled.body["status"].as_str()), (200, Some("cancelled")));
    while local::runner::poll_once(&app.app, &app.engine(), &settings(), 1).await.unwrap() > 0 {}
    // Its trigger's message, arriving after, finds it ended and announces it again: at least
    // once, under the run's id.
    let events = events_of(&app, &pending, 2).await;
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!((e["detail"]["id"].as_str(), e["detail"]["status"].as_str()), (Some(pending.as_str()), Some("cancelled")), "{e}");
    }
}
