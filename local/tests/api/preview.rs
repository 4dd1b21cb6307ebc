//! Looking before running: a preview runs the graph (branches, merges, a draft) over the first
//! records and writes nothing; a connector test opens the source and reads one record. Both go
//! through the address guard and answer failures in their body.

use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::tenant::Role;

use crate::engine::{chain, connector, dag, end, filter, rows, schema, transform};
use crate::support::*;

fn node<'a>(preview: &'a Value, id: &str) -> &'a Value {
    preview["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap_or_else(|| panic!("no node {id} in {preview}"))
}

#[tokio::test]
async fn a_preview_runs_branches_and_merges_on_the_first_records_and_writes_nothing() {
    let app = spawn_app().await;
    let records: Vec<Value> = (1..=30).map(|x| json!({"x": x, "name": format!(" n{x} ")})).collect();
    let conn = connector(&app, "inline", json!({"records": records})).await;
    let target = schema(&app, json!([{"name": "x", "type": "integer", "primaryKey": true}, {"name": "name", "type": "text"}])).await;
    let nodes = vec![
        ("s", end("source")),
        ("small", filter(json!({"field": "x", "op": "lte", "value": 2}))),
        ("trim", transform(json!({"type": "trim", "fields": ["name"]}))),
        ("t", end("target")),
    ];
    let (pid, ids) = dag(&app, &conn, &target, nodes, &[("s", "small"), ("s", "trim"), ("small", "t"), ("trim", "t")], json!({})).await;

    let seen = app.post(&format!("/pipelines/{pid}/preview"), &json!({"limit": 4})).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    let p = &seen.body;
    assert_eq!((p["recordsRead"].as_u64(), p["error"].is_null(), p["truncated"].as_bool()), (Some(4), true, Some(false)), "{p}");
    assert_eq!((node(p, &ids["s"])["out"].as_u64(), node(p, &ids["s"])["sample"].as_array().unwrap().len()), (Some(4), 4));
    assert_eq!(node(p, &ids["small"])["sample"], json!([{"x": 1, "name": " n1 "}, {"x": 2, "name": " n2 "}]));
    assert_eq!((node(p, &ids["trim"])["in"].as_u64(), node(p, &ids["trim"])["sample"][0]["name"].as_str()), (Some(4), Some("n1")));
    // The target got both branches: 2 + 4 arrivals, upserted to 4 rows.
    assert_eq!((node(p, &ids["t"])["in"].as_u64(), node(p, &ids["t"])["type"].as_str()), (Some(6), Some("target")), "{p}");
    // Nothing written: no row, no run.
    assert!(rows(&app, &target).await.is_empty());
    assert_eq!(app.get(&format!("/pipelines/{pid}/runs")).await.body, json!([]));

    // An empty body previews 20 records; the most is 500, and strangers are refused.
    let default = app.send(app.req(Method::POST, &format!("/pipelines/{pid}/preview"))).await;
    assert_eq!((default.status, default.body["recordsRead"].as_u64()), (200, Some(20)), "{}", default.body);
    for bad in [json!({"limit": 501}), json!({"limit": 0}), json!({"rows": 5})] {
        assert_error(&app.post(&format!("/pipelines/{pid}/preview"), &bad).await, 400, "BAD_REQUEST");
    }
}

#[tokio::test]
async fn a_preview_shows_the_rows_the_target_would_refuse_and_where_a_run_would_fail() {
    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"records": [{"x": 1}, {"x": "two"}, {"x": 3}]})).await;
    let target = schema(&app, json!([{"name": "x", "type": "integer", "required": true}])).await;
    let pid = chain(&app, &conn, &target, vec![], json!({})).await;
    let p = app.post(&format!("/pipelines/{pid}/preview"), &json!({})).await.body;
    assert_eq!((p["rowsOut"].as_u64(), p["failedRows"].as_u64()), (Some(2), Some(1)), "{p}");
    assert_eq!((p["validationErrors"][0]["row"].as_u64(), p["validationErrors"][0]["field"].as_str()), (Some(2), Some("x")), "{p}");

    // A draft the client has not saved: its own ids come back, and a bad node config is the
    // answer's error at that node, as the run would fail.
    let draft = json!({"nodes": [
        {"id": "a", "nodeType": "source"},
        {"id": "b", "nodeType": "transform", "config": {"type": "no_such_transform"}},
        {"id": "c", "nodeType": "target"}
    ], "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]});
    let p = app.post(&format!("/pipelines/{pid}/preview"), &draft).await.body;
    assert_eq!((p["error"]["code"].as_str(), p["error"]["nodeId"].as_str()), (Some("INVALID_NODE_CONFIG"), Some("b")), "{p}");
    assert_eq!(p["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect::<Vec<_>>(), ["a", "b", "c"]);
    // The saved pipeline is untouched.
    assert_eq!(app.get(&format!("/pipelines/{pid}")).await.body["version"], 1);
}

#[tokio::test]
async fn previews_and_tests_go_through_the_address_guard_and_report_unreachable_sources() {
    let app = spawn_app().await;
    let target = schema(&app, json!([{"name": "x", "type": "integer"}])).await;
    // The metadata address is never reachable, whatever the deployment allows.
    let metadata = connector(&app, "http", json!({"url": "http://169.254.169.254/latest/meta-data/"})).await;
    let pid = chain(&app, &metadata, &target, vec![], json!({})).await;
    let p = app.post(&format!("/pipelines/{pid}/preview"), &json!({})).await;
    assert_eq!((p.status, p.body["error"]["code"].as_str()), (200, Some("SOURCE_BLOCKED")), "{}", p.body);
    let t = app.post(&format!("/connectors/{metadata}/test"), &json!({})).await;
    assert_eq!(
        (t.status, t.body["ok"].as_bool(), t.body["error"]["code"].as_str()),
        (200, Some(false), Some("SOURCE_BLOCKED")),
        "{}",
        t.body
    );

    // Nothing listens on port 9: the test says so instead of failing the request.
    let closed = connector(&app, "http", json!({"url": "http://127.0.0.1:9/data.json"})).await;
    let t = app.post(&format!("/connectors/{closed}/test"), &json!({})).await.body;
    assert_eq!(
        (t["ok"].as_bool(), t["error"]["code"].as_str(), t["sampleFields"].as_array().map(Vec::len)),
        (Some(false), Some("SOURCE_ERROR"), Some(0)),
        "{t}"
    );
}

#[tokio::test]
async fn a_connector_test_reads_one_record_of_the_tenants_source() {
    let app = spawn_app().await;
    let inline = connector(&app, "inline", json!({"records": [{"id": 1, "email": "a@x"}, {"id": 2}]})).await;
    let t = app.post(&format!("/connectors/{inline}/test"), &json!({})).await.body;
    assert_eq!(t, json!({"ok": true, "sampleFields": ["email", "id"], "records": 1, "error": null}));
    let empty = connector(&app, "inline", json!({"records": []})).await;
    assert_eq!(app.post(&format!("/connectors/{empty}/test"), &json!({})).await.body["records"], 0);

    // An object in the tenant's folder of the source bucket.
    app.put_source("people.csv", "id,name\n1,Ada\n2,Grace\n").await;
    let s3 = connector(&app, "s3", json!({"key": format!("{}people.csv", app.folder())})).await;
    let t = app.post(&format!("/connectors/{s3}/test"), &json!({})).await.body;
    assert_eq!((t["ok"].as_bool(), t["sampleFields"].clone()), (Some(true), json!(["id", "name"])), "{t}");

    // Viewers may not reach out to sources; other tenants' connectors are not found.
    let viewer = app.key_for(&app.tenant, Role::Viewer).await;
    let r = app.send(app.req_as(&viewer, &app.tenant, Method::POST, &format!("/connectors/{inline}/test"))).await;
    assert_error(&r, 403, "FORBIDDEN");
    let other = spawn_app().await;
    assert_error(&other.post(&format!("/connectors/{inline}/test"), &json!({})).await, 404, "NOT_FOUND");
    assert_error(&app.post("/connectors/conn_nope/test", &json!({})).await, 404, "NOT_FOUND");
}
