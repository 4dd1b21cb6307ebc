//! Partitioned runs: an s3 prefix spread over many worker invocations through the real queue,
//! with counts that add up, one end, cancel and failure across partitions.

use serde_json::{json, Value};
use shared::domain::run::RunMessage;
use shared::worker::{process_message, Outcome};

use crate::engine::{chain, connector, rows, run_to_end, schema, settings};
use crate::support::*;

/// `objects` JSONL objects of `per` rows each under `<folder>in/`, ids numbered from 1 across
/// them; the connector over that prefix.
async fn objects(app: &TestApp, objects: usize, per: usize) -> String {
    for o in 0..objects {
        let body: String = (0..per).map(|r| format!("{{\"id\":{},\"object\":{o}}}\n", o * per + r + 1)).collect();
        app.put_source(&format!("in/{o:03}.jsonl"), body).await;
    }
    connector(app, "s3", json!({"prefix": format!("{}in/", app.folder())})).await
}

/// One partition per object (a group holds at most one byte's worth), `parallelism` at once.
fn per_object(parallelism: u32, more: Value) -> Value {
    let mut config = json!({"partitioning": {"by": "objects", "groupBytes": 1}, "parallelism": parallelism, "batchSize": 7});
    config.as_object_mut().unwrap().extend(more.as_object().cloned().unwrap_or_default());
    config
}

fn fields() -> Value {
    json!([{"name": "id", "type": "integer"}, {"name": "object", "type": "integer"}])
}

/// Lets the worker take the queue's messages until run `rid` ends.
async fn drive(app: &TestApp, pipeline: &str, rid: &str) -> Value {
    let engine = app.engine();
    for _ in 0..200 {
        local::runner::poll_once(&app.app, &engine, &settings(), 1).await.expect("poll");
        let run = app.run(pipeline, rid).await;
        if !matches!(run["status"].as_str(), Some("pending" | "running")) {
            return run;
        }
    }
    panic!("run {rid} did not end");
}

fn message(app: &TestApp, pipeline: &str, run: &str) -> String {
    json!({"tenantId": app.tenant, "pipelineId": pipeline, "runId": run}).to_string()
}

#[tokio::test]
async fn a_prefix_runs_as_one_partition_per_object_and_its_counts_add_up() {
    let app = spawn_app().await;
    let conn = objects(&app, 6, 25).await;
    let schema_id = schema(&app, fields()).await;
    let steps = vec![crate::engine::filter(json!({"field": "id", "op": "lte", "value": 140}))];
    let (pid, ids) = {
        let pid = chain(&app, &conn, &schema_id, steps, per_object(3, json!({"loadMode": "append"}))).await;
        let nodes = app.get(&format!("/pipelines/{pid}")).await.body["nodes"].clone();
        let ids: Vec<String> = nodes.as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_string()).collect();
        (pid, ids)
    };
    let rid = app.trigger(&pid).await;

    // The run message fans out: 6 partitions written, 3 sent (parallelism), the run running.
    let first = app.queued().await;
    assert_eq!(first.len(), 1);
    let outcome = process_message(&app.app, &app.engine(), &settings(), &first[0].to_string()).await.unwrap();
    assert_eq!(outcome, Outcome::FannedOut(6));
    let sent = app.queued().await;
    let mut parts: Vec<u64> = sent.iter().map(|m| m["partition"].as_u64().unwrap()).collect();
    parts.sort();
    assert_eq!(parts, [0, 1, 2], "at most parallelism partitions out at once");
    let run = app.run(&pid, &rid).await;
    assert_eq!(run["status"], "running");
    assert_eq!(run["partitions"]["total"], 6, "{run}");
    assert_eq!(run["partitions"]["pending"], 6, "{run}");

    // Partitions processed in concurrent batches, each ending dispatches the next, the last ends the run.
    let mut running = Vec::new();
    for m in &sent {
        let body = m.to_string();
        let (a, e) = (app.app.clone(), app.engine());
        running.push(tokio::spawn(async move { process_message(&a, &e, &settings(), &body).await.unwrap() }));
    }
    for task in running {
        assert!(matches!(task.await.unwrap(), Outcome::PartitionEnded(_) | Outcome::Ignored(_)));
    }
    let run = drive(&app, &pid, &rid).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!((run["rowsIn"].as_u64(), run["rowsOut"].as_u64(), run["skippedRows"].as_u64()), (Some(150), Some(140), Some(10)), "{run}");
    assert_eq!(run["partitions"], json!({"total": 6, "pending": 0, "running": 0, "completed": 6, "failed": 0, "cancelled": 0}));
    assert_eq!(run["nodeCounts"][&ids[0]], json!({"in": 0, "out": 150}), "source, over every partition: {run}");
    assert_eq!(run["nodeCounts"][&ids[1]], json!({"in": 150, "out": 140}), "filter: {run}");
    assert_eq!(run["progress"]["recordsRead"], 150);
    // Rows of every partition are kept apart: 140 appended rows, none overwritten by another partition's.
    let mut got: Vec<i64> = rows(&app, &schema_id).await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    got.sort();
    assert_eq!(got, (1..=140).collect::<Vec<_>>());
    // Ended once: one finish entry in the log.
    assert_eq!(run["log"].to_string().matches("over 6 partitions").count(), 1, "{run}");
    assert!(app.queued().await.is_empty(), "nothing left to do");
}

#[tokio::test]
async fn small_objects_are_grouped_and_a_single_group_runs_as_one() {
    let app = spawn_app().await;
    let conn = objects(&app, 4, 10).await;
    let schema_id = schema(&app, fields()).await;
    // Objects of ~200 bytes, groups of up to 500: two partitions of two objects.
    let pid = chain(&app, &conn, &schema_id, vec![], json!({"partitioning": {"by": "objects", "groupBytes": 500}, "parallelism": 4})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!((run["status"].as_str(), run["rowsOut"].as_u64()), (Some("completed"), Some(40)), "{run}");
    assert_eq!(run["partitions"]["total"], 2, "{run}");
    // The default group (64 MiB) holds the whole prefix: one worker, no partitions.
    let pid = chain(&app, &conn, &schema_id, vec![], json!({})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!((run["status"].as_str(), run["rowsOut"].as_u64()), (Some("completed"), Some(40)), "{run}");
    assert!(run.get("partitions").is_none(), "{run}");
}

#[tokio::test]
async fn cancel_stops_every_partition_and_the_run_ends_cancelled() {
    let app = spawn_app().await;
    let conn = objects(&app, 5, 10).await;
    let schema_id = schema(&app, fields()).await;
    let pid = chain(&app, &conn, &schema_id, vec![], per_object(1, json!({}))).await;
    let rid = app.trigger(&pid).await;
    let first = app.queued().await;
    process_message(&app.app, &app.engine(), &settings(), &first[0].to_string()).await.unwrap();
    let r = app.post(&format!("/pipelines/{pid}/runs/{rid}/cancel"), &json!({})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let run = drive(&app, &pid, &rid).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    let parts = &run["partitions"];
    assert_eq!(parts["total"], 5, "{run}");
    assert_eq!(parts["cancelled"].as_u64().unwrap() + parts["completed"].as_u64().unwrap(), 5, "{run}");
    assert!(parts["cancelled"].as_u64().unwrap() >= 4, "the pending ones never ran: {run}");
    assert!(rows(&app, &schema_id).await.len() <= 10);
}

#[tokio::test]
async fn a_failed_partition_fails_the_run_under_error_handling_fail() {
    let app = spawn_app().await;
    let conn = objects(&app, 4, 10).await;
    app.put_source("in/001.jsonl", "{\"id\":11,\"object\":1}\n{\"id\":\"not a number\",\"object\":1}\n").await;
    let schema_id = schema(&app, fields()).await;
    let pid = chain(&app, &conn, &schema_id, vec![], per_object(2, json!({"errorHandling": "fail"}))).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["status"], "failed", "{run}");
    let message = run["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("partition 1: row 2 does not fit schema"), "{run}");
    assert!(run["partitions"]["failed"] == 1, "{run}");
}

#[tokio::test]
async fn a_duplicate_or_late_partition_message_changes_nothing() {
    let app = spawn_app().await;
    let conn = objects(&app, 3, 5).await;
    let schema_id = schema(&app, fields()).await;
    let pid = chain(&app, &conn, &schema_id, vec![], per_object(3, json!({}))).await;
    let rid = app.trigger(&pid).await;
    let run = drive(&app, &pid, &rid).await;
    assert_eq!((run["status"].as_str(), run["rowsOut"].as_u64()), (Some("completed"), Some(15)), "{run}");
    // Every message again, the run message and each partition's: acknowledged, nothing moves.
    let again: RunMessage = serde_json::from_str(&message(&app, &pid, &rid)).unwrap();
    for m in [again.clone(), again.for_partition(0), again.for_partition(2), again.for_partition(7)] {
        let body = serde_json::to_string(&m).unwrap();
        assert!(matches!(process_message(&app.app, &app.engine(), &settings(), &body).await.unwrap(), Outcome::Ignored(_)));
    }
    let after = app.run(&pid, &rid).await;
    assert_eq!((after["rowsOut"].as_u64(), after["completedAt"].clone()), (Some(15), run["completedAt"].clone()));
}

#[tokio::test]
async fn lost_partition_messages_are_sent_again_by_the_sweep() {
    let app = spawn_isolated_app().await;
    let conn = objects(&app, 4, 5).await;
    let schema_id = schema(&app, fields()).await;
    let pid = chain(&app, &conn, &schema_id, vec![], per_object(2, json!({}))).await;
    let rid = app.trigger(&pid).await;
    let quick = shared::settings::RunSettings { lease: chrono::Duration::milliseconds(500), ..settings() };
    let first = app.queued().await;
    assert_eq!(process_message(&app.app, &app.engine(), &quick, &first[0].to_string()).await.unwrap(), Outcome::FannedOut(4));
    // Both partition messages are lost.
    let queue = &app.app.queue;
    app.sqs.purge_queue().queue_url(queue.url()).send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    // The run's watchdog has lapsed: the sweep sends the run message, which sends them again.
    let report = shared::scheduler::tick(&app.app, &quick, chrono::Utc::now()).await.unwrap();
    assert_eq!(report.resent, 1, "{report:?}");
    let run = drive(&app, &pid, &rid).await;
    assert_eq!((run["status"].as_str(), run["rowsOut"].as_u64()), (Some("completed"), Some(20)), "{run}");
}

#[tokio::test]
async fn a_partitioned_truncate_shows_every_partitions_rows_at_once_at_the_end() {
    let app = spawn_app().await;
    let schema_id =
        schema(&app, json!([{"name": "id", "type": "integer", "primaryKey": true}, {"name": "object", "type": "integer"}])).await;
    let old = connector(&app, "inline", json!({"records": [{"id": 1000, "object": 9}]})).await;
    let pid = chain(&app, &old, &schema_id, vec![], json!({})).await;
    let rid = app.trigger(&pid).await;
    drive(&app, &pid, &rid).await;
    let conn = objects(&app, 3, 4).await;
    let pid = chain(&app, &conn, &schema_id, vec![], per_object(3, json!({"loadMode": "truncate"}))).await;
    let rid = app.trigger(&pid).await;
    let run = drive(&app, &pid, &rid).await;
    assert_eq!((run["status"].as_str(), run["partitions"]["total"].as_u64()), (Some("completed"), Some(3)), "{run}");
    let mut ids: Vec<i64> = rows(&app, &schema_id).await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
}

#[tokio::test]
async fn deduplicate_holds_across_partitions() {
    let app = spawn_app().await;
    // Three objects, each with ids 1..=4 and one of its own: 4 shared keys, 3 unique.
    for o in 0..3 {
        let body: String = (1..=4).chain([100 + o]).map(|i| format!("{{\"id\":{i},\"object\":{o}}}\n")).collect();
        app.put_source(&format!("in/{o:03}.jsonl"), body).await;
    }
    let conn = connector(&app, "s3", json!({"prefix": format!("{}in/", app.folder())})).await;
    let schema_id = schema(&app, fields()).await;
    let steps = vec![crate::engine::transform(json!({"type": "deduplicate", "keys": ["id"]}))];
    let pid = chain(&app, &conn, &schema_id, steps, per_object(3, json!({"loadMode": "append"}))).await;
    let rid = app.trigger(&pid).await;
    let run = drive(&app, &pid, &rid).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!((run["rowsIn"].as_u64(), run["rowsOut"].as_u64(), run["skippedRows"].as_u64()), (Some(15), Some(7), Some(8)), "{run}");
    let mut got: Vec<i64> = rows(&app, &schema_id).await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    got.sort();
    assert_eq!(got, [1, 2, 3, 4, 100, 101, 102]);
}
