//! Versions and ETags: a new pipeline is version 1, every change a client makes is one more
//! (runs and the schedule moving are not), `GET` gives it as `ETag`, `PUT` and `DELETE` with a
//! stale `If-Match` are 412, past versions are served (the newest 50), and a run records the
//! version it ran and runs that version's graph even if the pipeline changed before it started.

use reqwest::Method;
use serde_json::json;

use crate::engine::{chain, connector, rows, schema, settings};
use crate::support::*;

#[tokio::test]
async fn every_change_is_a_version_with_its_etag_and_stale_writes_are_412() {
    let app = spawn_app().await;
    let created = app.post("/pipelines", &app.example_body().await).await;
    assert_eq!((created.status, created.body["version"].as_u64()), (201, Some(1)));
    assert_eq!(created.headers["etag"], "\"1\"");
    let id = created.body["id"].as_str().unwrap().to_string();

    // A trigger moves the pipeline's lastRunAt, not its version.
    app.trigger(&id).await;
    let read = app.get(&format!("/pipelines/{id}")).await;
    assert_eq!((read.body["version"].as_u64(), read.headers["etag"].to_str().unwrap()), (Some(1), "\"1\""));

    let renamed = app.send(app.req(Method::PUT, "/pipelines").header("If-Match", "\"1\"").json(&json!({"id": id, "name": "v2"}))).await;
    assert_eq!((renamed.status, renamed.body["version"].as_u64()), (200, Some(2)), "{}", renamed.body);
    assert_eq!(renamed.headers["etag"], "\"2\"");
    // The same If-Match again is stale now: 412, nothing written.
    let stale = app.send(app.req(Method::PUT, "/pipelines").header("If-Match", "\"1\"").json(&json!({"id": id, "name": "lost"}))).await;
    assert_error(&stale, 412, "PRECONDITION_FAILED");
    assert!(stale.body["error"]["message"].as_str().unwrap().contains("version 2"), "{}", stale.body);
    assert_eq!(app.get(&format!("/pipelines/{id}")).await.body["name"], "v2");
    // Weak, bare and list forms, and `*`, are ours too; no If-Match writes unconditionally.
    for tag in ["W/\"2\"", "3", "\"1\", \"4\"", "*"] {
        let r = app.send(app.req(Method::PUT, "/pipelines").header("If-Match", tag).json(&json!({"id": id, "description": tag}))).await;
        assert_eq!(r.status, 200, "{tag}: {}", r.body);
    }
    assert_eq!(app.put("/pipelines", &json!({"id": id, "name": "v7"})).await.body["version"], 7);

    // Past versions: each as it was saved, the newest first in the list.
    let v1 = app.get(&format!("/pipelines/{id}?version=1")).await;
    assert_eq!((v1.status, v1.body["name"].as_str(), v1.body["version"].as_u64()), (200, Some("Customer Import"), Some(1)));
    assert_eq!(v1.body["nodes"], created.body["nodes"]);
    let list = app.get(&format!("/pipelines/{id}/versions?limit=3")).await.body;
    let versions: Vec<u64> = list["data"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!((versions, list["hasMore"].as_bool(), list["current"].as_u64()), (vec![7, 6, 5], Some(true), Some(7)));
    let rest = app.get(&format!("/pipelines/{id}/versions?before={}", list["nextBefore"])).await.body;
    let versions: Vec<u64> = rest["data"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!((versions, rest["hasMore"].as_bool()), (vec![4, 3, 2, 1], Some(false)));
    assert_error(&app.get(&format!("/pipelines/{id}?version=99")).await, 404, "NOT_FOUND");
    assert_error(&app.get(&format!("/pipelines/{id}?version=zero")).await, 400, "BAD_REQUEST");

    // A stale DELETE is refused; a current one deletes.
    assert_error(
        &app.send(app.req(Method::DELETE, &format!("/pipelines?id={id}")).header("If-Match", "\"6\"")).await,
        412,
        "PRECONDITION_FAILED",
    );
    assert_eq!(app.send(app.req(Method::DELETE, &format!("/pipelines?id={id}")).header("If-Match", "\"7\"")).await.status, 204);
}

#[tokio::test]
async fn only_the_newest_fifty_versions_are_kept() {
    let app = spawn_app().await;
    let id = app.create_pipeline(&app.example_body().await).await["id"].as_str().unwrap().to_string();
    for i in 2..=53 {
        assert_eq!(app.put("/pipelines", &json!({"id": id, "description": format!("edit {i}")})).await.body["version"], i);
    }
    let all = app.get(&format!("/pipelines/{id}/versions?limit=100")).await.body;
    let versions: Vec<u64> = all["data"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, (4..=53).rev().collect::<Vec<_>>());
    assert_error(&app.get(&format!("/pipelines/{id}?version=3")).await, 404, "NOT_FOUND");
    assert_eq!(app.get(&format!("/pipelines/{id}?version=4")).await.body["description"], "edit 4");
}

#[tokio::test]
async fn a_run_runs_the_version_it_was_triggered_at() {
    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"records": [{"x": 1}, {"x": 2}, {"x": 3}]})).await;
    let target = schema(&app, json!([{"name": "x", "type": "integer", "primaryKey": true}])).await;
    let keep_one = json!({"nodeType": "filter", "label": "x = 1", "config": {"condition": {"field": "x", "op": "eq", "value": 1}}});
    let pid = chain(&app, &conn, &target, vec![keep_one], json!({})).await;
    let rid = app.trigger(&pid).await;
    // The graph changes before a worker takes the run: the filter goes.
    let pipeline = app.get(&format!("/pipelines/{pid}")).await.body;
    let nodes: Vec<_> = pipeline["nodes"].as_array().unwrap().iter().filter(|n| n["nodeType"] != "filter").cloned().collect();
    let (source, sink) = (nodes[0]["id"].clone(), nodes[1]["id"].clone());
    let edited = app.put("/pipelines", &json!({"id": pid, "nodes": nodes, "edges": [{"source": source, "target": sink}]})).await;
    assert_eq!((edited.status, edited.body["version"].as_u64()), (200, Some(2)), "{}", edited.body);

    let engine = app.engine();
    for _ in 0..50 {
        local::runner::poll_once(&app.app, &engine, &settings(), 1).await.expect("poll");
        if app.run(&pid, &rid).await["status"] == "completed" {
            break;
        }
    }
    let run = app.run(&pid, &rid).await;
    assert_eq!(
        (run["status"].as_str(), run["pipelineVersion"].as_u64(), run["rowsOut"].as_u64()),
        (Some("completed"), Some(1), Some(1)),
        "{run}"
    );
    assert_eq!(rows(&app, &target).await.len(), 1, "version 1's filter ran");
    let next = app.trigger(&pid).await;
    assert_eq!(app.run(&pid, &next).await["pipelineVersion"], 2);
}

#[tokio::test]
async fn a_rerun_runs_an_ended_run_again_at_its_version() {
    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"records": [{"x": 1}, {"x": 2}]})).await;
    let target = schema(&app, json!([{"name": "x", "type": "integer"}])).await;
    let pid = chain(&app, &conn, &target, vec![], json!({})).await;
    let first = crate::engine::run_to_end(&app, &pid, &settings()).await;
    let first_id = first["id"].as_str().unwrap();
    assert_eq!(app.put("/pipelines", &json!({"id": pid, "name": "v2"})).await.body["version"], 2);

    let rerun = app.post(&format!("/pipelines/{pid}/runs/{first_id}/rerun"), &json!({})).await;
    assert_eq!(rerun.status, 201, "{}", rerun.body);
    assert_eq!(
        (rerun.body["trigger"].as_str(), rerun.body["rerunOf"].as_str(), rerun.body["pipelineVersion"].as_u64()),
        (Some("rerun"), Some(first_id), Some(1))
    );
    // Only an ended run runs again; a rerun is idempotent under its key.
    let pending = rerun.body["id"].as_str().unwrap().to_string();
    assert_error(&app.post(&format!("/pipelines/{pid}/runs/{pending}/rerun"), &json!({})).await, 409, "CONFLICT");
    let keyed =
        |key: &str| app.req(Method::POST, &format!("/pipelines/{pid}/runs/{first_id}/rerun")).header("Idempotency-Key", key.to_string());
    let (a, b) = (app.send(keyed("rerun-1")).await, app.send(keyed("rerun-1")).await);
    assert_eq!((a.status, b.status, a.body["id"].clone()), (201, 201, b.body["id"].clone()));
    assert_error(
        &app.post(&format!("/pipelines/{pid}/runs/run_019ad0c0a0a07000800000000000c0c5/rerun"), &json!({})).await,
        404,
        "NOT_FOUND",
    );
}
