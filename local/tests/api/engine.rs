//! Pipelines that move data: sources through every transform and filter into schemas of every
//! field type, through the real worker, queue and tables.

use serde_json::{json, Value};
use shared::context::Stores;
use shared::settings::RunSettings;

use crate::support::*;

/// Triggers a run, lets the worker take it (following continuations) and returns the run.
pub(crate) async fn run_to_end(app: &TestApp, pipeline: &str, settings: &RunSettings) -> Value {
    let rid = app.trigger(pipeline).await;
    let engine = app.engine();
    for _ in 0..200 {
        local::runner::poll_once(&app.app, &engine, settings, 1).await.expect("poll");
        let run = app.run(pipeline, &rid).await;
        if !matches!(run["status"].as_str(), Some("pending" | "running")) {
            return run;
        }
    }
    panic!("run {rid} did not end");
}

pub(crate) fn settings() -> RunSettings {
    RunSettings::default()
}

pub(crate) async fn connector(app: &TestApp, kind: &str, config: Value) -> String {
    let r = app.post("/connectors", &json!({"name": format!("{kind} source"), "type": kind, "config": config})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

pub(crate) async fn schema(app: &TestApp, fields: Value) -> String {
    let r = app.post("/schemas", &json!({"name": "target", "fields": fields})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// A chain source → steps… → target; returns the pipeline id.
pub(crate) async fn chain(app: &TestApp, connector: &str, schema: &str, steps: Vec<Value>, config: Value) -> String {
    chain_with_ids(app, connector, schema, steps, config).await.0
}

/// Also the permanent node ids, in chain order (source first, target last).
async fn chain_with_ids(app: &TestApp, connector: &str, schema: &str, steps: Vec<Value>, config: Value) -> (String, Vec<String>) {
    let mut nodes = vec![json!({"id": "src", "nodeType": "source", "label": "Source"})];
    let mut edges = vec![];
    let mut prev = "src".to_string();
    for (i, step) in steps.into_iter().enumerate() {
        let id = format!("s{i}");
        let mut node = step;
        node["id"] = json!(id);
        nodes.push(node);
        edges.push(json!({"source": prev, "target": id}));
        prev = id;
    }
    nodes.push(json!({"id": "dst", "nodeType": "target", "label": "Target"}));
    edges.push(json!({"source": prev, "target": "dst"}));
    let body =
        json!({"name": "data", "connectorId": connector, "schemaId": schema, "executionConfig": config, "nodes": nodes, "edges": edges});
    let created = app.create_pipeline(&body).await;
    let ids = created["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_string()).collect();
    (created["id"].as_str().unwrap().to_string(), ids)
}

pub(crate) fn transform(config: Value) -> Value {
    json!({"nodeType": "transform", "label": config["type"], "config": config})
}

pub(crate) fn filter(condition: Value) -> Value {
    json!({"nodeType": "filter", "label": "Filter", "config": {"condition": condition}})
}

/// The records table's items under `pk`, as stored (one page: tests write few).
pub(crate) async fn stored_records(app: &TestApp, pk: &str) -> Vec<shared::store::Item> {
    let out = app
        .app
        .store()
        .client()
        .query()
        .table_name(app.app.records.table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.to_string()))
        .send()
        .await
        .unwrap();
    out.items.unwrap_or_default()
}

pub(crate) async fn rows(app: &TestApp, schema: &str) -> Vec<Value> {
    let mut out = vec![];
    let mut path = format!("/schemas/{schema}/records?limit=100");
    loop {
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        out.extend(r.body["data"].as_array().unwrap().iter().cloned());
        match r.body["nextCursor"].as_str() {
            Some(c) => {
                path = format!(
                    "/schemas/{schema}/records?limit=100&cursor={}",
                    form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
                )
            }
            None => return out,
        }
    }
}

fn every_type() -> Value {
    json!([
        {"name": "id", "type": "integer", "primaryKey": true},
        {"name": "email", "type": "text", "required": true},
        {"name": "name", "type": "text"},
        {"name": "card", "type": "text"},
        {"name": "country", "type": "text"},
        {"name": "amount", "type": "decimal"},
        {"name": "active", "type": "boolean"},
        {"name": "signup", "type": "date"},
        {"name": "seen", "type": "timestamp"},
        {"name": "meta", "type": "json"},
        {"name": "source", "type": "text"}
    ])
}

fn customer(id: &str, email: &str, country: &str, amount: &str) -> Value {
    json!({"ID": id, "Email": email, "name": "  Alice ", "card": "4111111111111111", "country": country, "amount": amount,
           "active": "yes", "signup": "2026-01-15", "seen": "2026-01-15T10:00:00+01:00", "meta": {"tier": 1}, "junk": "x"})
}

#[tokio::test]
async fn inline_records_through_every_transform_and_filter_into_every_field_type() {
    let app = spawn_app().await;
    let records = json!([
        customer("1", " Alice@Example.com ", "fr", "12.50"),
        customer("1", "dup@example.com", "fr", "99"),
        customer("2", "cheap@example.com", "fr", "5"),
        customer("3", "far@example.com", "us", "50"),
        customer("x", "bad@example.com", "de", "20"),
        customer("4", "bob@example.org", "de", "10")
    ]);
    let conn = connector(&app, "inline", json!({"records": records})).await;
    let schema_id = schema(&app, every_type()).await;
    let steps = vec![
        transform(json!({"type": "rename_field", "mappings": {"ID": "id", "Email": "email"}})),
        transform(json!({"type": "drop", "fields": ["junk"]})),
        transform(json!({"type": "trim", "fields": ["email", "name"]})),
        transform(json!({"type": "lowercase", "fields": ["email"]})),
        transform(json!({"type": "uppercase", "fields": ["country"]})),
        transform(json!({"type": "map_values", "field": "country", "mapping": {"FR": "France", "DE": "Germany"}, "default": "Other"})),
        transform(json!({"type": "add_field", "field": "source", "value": "crm"})),
        transform(json!({"type": "cast", "fields": {"amount": "decimal"}})),
        transform(json!({"type": "deduplicate", "keys": ["id"]})),
        filter(json!({"all": [
            {"field": "amount", "op": "gte", "value": 10},
            {"field": "country", "op": "in", "value": ["France", "Germany"]},
            {"not": {"field": "email", "op": "contains", "value": "spam"}},
            {"any": [{"field": "email", "op": "starts_with", "value": "a"}, {"field": "signup", "op": "exists"}]}
        ]})),
        transform(json!({"type": "hash", "fields": ["name"]})),
        transform(json!({"type": "mask_pii", "fields": ["email", "card"]})),
        transform(
            json!({"type": "select", "fields": ["id", "email", "name", "card", "country", "amount", "active", "signup", "seen", "meta", "source"]}),
        ),
    ];
    let (pid, ids) = chain_with_ids(&app, &conn, &schema_id, steps, json!({"batchSize": 2})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["status"], "completed_with_errors", "{run}");
    assert_eq!(
        (run["rowsIn"].as_u64(), run["rowsOut"].as_u64(), run["failedRows"].as_u64(), run["skippedRows"].as_u64()),
        (Some(6), Some(2), Some(1), Some(3)),
        "{run}"
    );
    assert_eq!(run["validationErrors"][0]["row"], 5);
    assert_eq!(run["validationErrors"][0]["field"], "id");
    assert_eq!(run["nodeCounts"][&ids[0]], json!({"in": 0, "out": 6}), "source");
    assert_eq!(run["nodeCounts"][&ids[9]], json!({"in": 6, "out": 5}), "deduplicate");
    assert_eq!(run["nodeCounts"][&ids[10]], json!({"in": 5, "out": 3}), "filter");
    assert_eq!(run["nodeCounts"][&ids[14]], json!({"in": 3, "out": 2}), "target");
    let stages: Vec<&str> = run["log"].as_array().unwrap().iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert!(stages.contains(&"source") && stages.contains(&"target"), "{stages:?}");

    let mut got = rows(&app, &schema_id).await;
    got.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(got.len(), 2, "{got:?}");
    let first = &got[0];
    assert_eq!(first["id"], 1);
    assert_eq!(first["email"], "a****@example.com");
    assert_eq!(first["name"], "3bc51062973c458d5a6f2d8d64a023246354ad7e064b1e4e009ec8a0699a3043", "sha256 hex of the trimmed name");
    assert_eq!(first["card"], "************1111");
    assert_eq!(first["country"], "France");
    assert_eq!(first["amount"], 12.5);
    assert_eq!(first["active"], true);
    assert_eq!(first["signup"], "2026-01-15");
    assert_eq!(first["seen"], "2026-01-15T09:00:00.000Z");
    assert_eq!(first["meta"], json!({"tier": 1}));
    assert_eq!(first["source"], "crm");
    assert_eq!(
        (got[1]["id"].as_i64(), got[1]["country"].as_str(), got[1]["email"].as_str()),
        (Some(4), Some("Germany"), Some("b**@example.org"))
    );
}

#[tokio::test]
async fn every_filter_operator_compares_numbers_and_strings() {
    let app = spawn_app().await;
    let records: Vec<Value> = (1..=6).map(|i| json!({"n": i.to_string(), "tag": format!("t{i}"), "list": [i]})).collect();
    let conn = connector(&app, "inline", json!({"records": records})).await;
    let schema_id = schema(&app, json!([{"name": "n", "type": "integer", "primaryKey": true}])).await;
    let cases = [
        (json!({"field": "n", "op": "eq", "value": 3}), vec![3]),
        (json!({"field": "n", "op": "ne", "value": "3"}), vec![1, 2, 4, 5, 6]),
        (json!({"field": "n", "op": "gt", "value": 4}), vec![5, 6]),
        (json!({"field": "n", "op": "gte", "value": "4"}), vec![4, 5, 6]),
        (json!({"field": "n", "op": "lt", "value": 2}), vec![1]),
        (json!({"field": "n", "op": "lte", "value": 2}), vec![1, 2]),
        (json!({"field": "n", "op": "in", "value": [2, "5"]}), vec![2, 5]),
        (json!({"field": "n", "op": "not_in", "value": [1, 2, 3]}), vec![4, 5, 6]),
        (json!({"field": "list", "op": "contains", "value": 6}), vec![6]),
        (json!({"field": "tag", "op": "starts_with", "value": "t1"}), vec![1]),
        (json!({"field": "tag", "op": "exists"}), vec![1, 2, 3, 4, 5, 6]),
        (json!({"field": "missing", "op": "not_exists"}), vec![1, 2, 3, 4, 5, 6]),
        (json!({"field": "tag", "op": "gt", "value": 3}), vec![]),
        (json!({"any": [{"field": "n", "op": "eq", "value": 1}, {"not": {"field": "n", "op": "lt", "value": 6}}]}), vec![1, 6]),
    ];
    for (condition, want) in cases {
        let pid = chain(&app, &conn, &schema_id, vec![filter(condition.clone())], json!({"loadMode": "truncate"})).await;
        let run = run_to_end(&app, &pid, &settings()).await;
        assert_eq!(run["status"], "completed", "{condition}: {run}");
        let mut got: Vec<i64> = rows(&app, &schema_id).await.iter().map(|r| r["n"].as_i64().unwrap()).collect();
        got.sort();
        assert_eq!(got, want, "{condition}");
        assert_eq!(run["skippedRows"].as_u64(), Some(6 - want.len() as u64));
    }
}

#[tokio::test]
async fn error_handling_skip_fail_and_dead_letter() {
    let app = spawn_app().await;
    let records = json!([{"id": 1, "email": "a@x"}, {"id": 2}, {"id": "three", "email": "c@x"}, {"id": 4, "email": "d@x"}]);
    let conn = connector(&app, "inline", json!({"records": records})).await;
    let fields = json!([{"name": "id", "type": "integer", "primaryKey": true}, {"name": "email", "type": "text", "required": true}]);

    let fail_schema = schema(&app, fields.clone()).await;
    let (pid, ids) = chain_with_ids(&app, &conn, &fail_schema, vec![], json!({"errorHandling": "fail", "batchSize": 1})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(
        (run["status"].as_str(), run["error"]["code"].as_str(), run["error"]["nodeId"].as_str()),
        (Some("failed"), Some("VALIDATION_FAILED"), ids.last().map(String::as_str)),
        "{run}"
    );
    assert!(run["error"]["message"].as_str().unwrap().contains("row 2"), "{run}");
    assert_eq!(rows(&app, &fail_schema).await.len(), 1, "rows before the bad one were written");

    let dl_schema = schema(&app, fields).await;
    let pid = chain(&app, &conn, &dl_schema, vec![], json!({"errorHandling": "dead_letter"})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(
        (run["status"].as_str(), run["failedRows"].as_u64(), run["deadLetters"].as_u64()),
        (Some("completed_with_errors"), Some(2), Some(2))
    );
    let letters = app.get(&format!("/pipelines/{pid}/runs/{}/dead-letters", run["id"].as_str().unwrap())).await.body;
    let letters = letters["data"].as_array().unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!((letters[0]["row"].as_u64(), letters[0]["errors"][0]["field"].as_str()), (Some(2), Some("email")));
    assert_eq!(letters[1]["record"], json!({"id": "three", "email": "c@x"}));
    assert_eq!(rows(&app, &dl_schema).await.len(), 2);

    // Letters expire through the records table's TTL, a pipeline's runs being deletable without them.
    let run_id = shared::domain::ids::RunId::parse(run["id"].as_str().unwrap()).unwrap();
    let in_30_days = (chrono::Utc::now() + chrono::Duration::days(shared::engine::sink::DEAD_LETTER_DAYS)).timestamp();
    let items = stored_records(&app, &format!("T#{}#R#{run_id}", app.tenant)).await;
    assert_eq!(items.len(), 2);
    for item in items {
        let expires: i64 = item["expiresAt"].as_n().unwrap().parse().unwrap();
        assert!((in_30_days - 120..=in_30_days).contains(&expires), "{expires} vs {in_30_days}");
    }
}

#[tokio::test]
async fn reruns_upsert_by_primary_key_and_append_without_one() {
    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"data": "id,name\n1,a\n2,b\n", "format": "csv"})).await;
    let keyed = schema(&app, json!([{"name": "id", "type": "integer", "primaryKey": true}, {"name": "name", "type": "text"}])).await;
    let pid = chain(&app, &conn, &keyed, vec![], json!({})).await;
    run_to_end(&app, &pid, &settings()).await;
    app.put("/connectors", &json!({"id": conn, "config": {"data": "id,name\n2,B\n3,c\n3,C\n", "format": "csv"}})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["status"], "completed");
    let mut got: Vec<(i64, String)> =
        rows(&app, &keyed).await.iter().map(|r| (r["id"].as_i64().unwrap(), r["name"].as_str().unwrap().to_string())).collect();
    got.sort();
    // A key twice in one batch: the later row wins.
    assert_eq!(got, [(1, "a".into()), (2, "B".into()), (3, "C".into())]);

    let unkeyed = schema(&app, json!([{"name": "id", "type": "integer"}, {"name": "name", "type": "text"}])).await;
    let pid = chain(&app, &conn, &unkeyed, vec![], json!({})).await;
    run_to_end(&app, &pid, &settings()).await;
    run_to_end(&app, &pid, &settings()).await;
    assert_eq!(rows(&app, &unkeyed).await.len(), 6, "append keeps both runs' rows");

    let pid = chain(&app, &conn, &unkeyed, vec![], json!({"loadMode": "upsert"})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["error"]["code"], "INVALID_CONFIG");
}

/// A run that outlasts the worker's time budget checkpoints and continues in a follow-up
/// message: same attempt, every row written once.
#[tokio::test]
async fn a_run_over_its_time_budget_continues_from_its_checkpoint() {
    let app = spawn_app().await;
    let data: String =
        std::iter::once("id,v".to_string()).chain((1..=25).map(|i| format!("{i},{}", i * 10))).collect::<Vec<_>>().join("\n");
    let conn = connector(&app, "inline", json!({"data": data, "format": "csv"})).await;
    let schema_id = schema(&app, json!([{"name": "id", "type": "integer", "primaryKey": true}, {"name": "v", "type": "integer"}])).await;
    let pid = chain(
        &app,
        &conn,
        &schema_id,
        vec![transform(json!({"type": "deduplicate", "keys": ["id"]}))],
        json!({"batchSize": 4, "parallelism": 2}),
    )
    .await;
    let budget = RunSettings { time_budget: std::time::Duration::ZERO, ..RunSettings::default() };
    let run = run_to_end(&app, &pid, &budget).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!((run["rowsIn"].as_u64(), run["rowsOut"].as_u64(), run["attempt"].as_u64()), (Some(25), Some(25), Some(1)));
    let log = run["log"].to_string();
    assert!(log.contains("checkpoint") && log.contains("resume"), "{log}");
    assert_eq!(rows(&app, &schema_id).await.len(), 25);
}

#[tokio::test]
async fn bad_node_configs_fail_naming_the_node_and_the_reference_example_runs() {
    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"records": [{"id": 1}]})).await;
    let schema_id = schema(&app, json!([{"name": "id", "type": "integer", "primaryKey": true}])).await;
    let (pid, ids) = chain_with_ids(&app, &conn, &schema_id, vec![transform(json!({"type": "teleport"}))], json!({})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!((run["error"]["code"].as_str(), run["error"]["nodeId"].as_str()), (Some("INVALID_NODE_CONFIG"), Some(ids[1].as_str())));
    assert!(run["error"]["message"].as_str().unwrap().contains("teleport"));
    let pid = chain(&app, &conn, &schema_id, vec![json!({"nodeType": "transform", "label": "No type", "config": {}})], json!({})).await;
    assert!(run_to_end(&app, &pid, &settings()).await["error"]["message"].as_str().unwrap().contains("No type"));

    // The reference page's graph: a rename_field without mappings passes records through.
    let pid = app.create_pipeline(&example_pipeline(&conn, &schema_id)).await["id"].as_str().unwrap().to_string();
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!((run["status"].as_str(), run["rowsOut"].as_u64()), (Some("completed"), Some(1)), "{run}");

    let other = connector(&app, "snowflake", json!({})).await;
    let pid = chain(&app, &other, &schema_id, vec![], json!({})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["error"]["code"], "UNSUPPORTED_CONNECTOR");
    assert!(run["error"]["message"].as_str().unwrap().contains("'snowflake'"));
}

#[tokio::test]
async fn s3_and_http_sources_run_end_to_end() {
    let app = spawn_app().await;
    for (key, body) in [("in/a.csv", "id,name\n1,a\n2,b\n"), ("in/b.jsonl", "{\"id\": 3, \"name\": \"c\"}\n")] {
        app.put_source(key, body).await;
    }
    let fields = json!([{"name": "id", "type": "integer", "primaryKey": true}, {"name": "name", "type": "text"}]);
    let conn = connector(&app, "s3", json!({"prefix": format!("{}in/", app.folder())})).await;
    let schema_id = schema(&app, fields.clone()).await;
    let run = run_to_end(&app, &chain(&app, &conn, &schema_id, vec![], json!({})).await, &settings()).await;
    assert_eq!((run["status"].as_str(), run["rowsOut"].as_u64()), (Some("completed"), Some(3)), "{run}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/orders", listener.local_addr().unwrap());
    let server = axum::Router::new().route(
        "/orders",
        axum::routing::get(|| async {
            ([("content-type", "application/x-ndjson")], "{\"id\": 7, \"name\": \"g\"}\n{\"id\": 8, \"name\": \"h\"}\n")
        }),
    );
    tokio::spawn(async move { axum::serve(listener, server).await });
    let conn = connector(&app, "http", json!({"url": url})).await;
    let schema_id = schema(&app, fields).await;
    let run = run_to_end(&app, &chain(&app, &conn, &schema_id, vec![], json!({})).await, &settings()).await;
    assert_eq!((run["status"].as_str(), run["rowsOut"].as_u64()), (Some("completed"), Some(2)), "{run}");
}

/// A graph of `nodes` (temporary ids) and `edges` (pairs of them) between the connector and the
/// schema; returns the pipeline id and the permanent node ids by temporary id.
pub(crate) async fn dag(
    app: &TestApp,
    connector: &str,
    schema: &str,
    nodes: Vec<(&str, Value)>,
    edges: &[(&str, &str)],
    config: Value,
) -> (String, std::collections::HashMap<String, String>) {
    let temp: Vec<&str> = nodes.iter().map(|(id, _)| *id).collect();
    let nodes: Vec<Value> = nodes
        .into_iter()
        .map(|(id, mut node)| {
            node["id"] = json!(id);
            node
        })
        .collect();
    let edges: Vec<Value> = edges.iter().map(|(s, t)| json!({"source": s, "target": t})).collect();
    let body =
        json!({"name": "dag", "connectorId": connector, "schemaId": schema, "executionConfig": config, "nodes": nodes, "edges": edges});
    let created = app.create_pipeline(&body).await;
    let ids = created["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .zip(temp)
        .map(|(n, t)| (t.to_string(), n["id"].as_str().unwrap().to_string()))
        .collect();
    (created["id"].as_str().unwrap().to_string(), ids)
}

pub(crate) fn end(node_type: &str) -> Value {
    json!({"nodeType": node_type, "label": node_type})
}

#[tokio::test]
async fn a_branching_graph_writes_the_union_of_its_branches() {
    // The example: source → x = 1 → target and source → x = 2 → target over x = 1, 2, 3.
    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"records": [{"x": 1}, {"x": 2}, {"x": 3}]})).await;
    let schema_id = schema(&app, json!([{"name": "x", "type": "integer", "primaryKey": true}])).await;
    let nodes = vec![
        ("s", end("source")),
        ("one", filter(json!({"field": "x", "op": "eq", "value": 1}))),
        ("two", filter(json!({"field": "x", "op": "eq", "value": 2}))),
        ("t", end("target")),
    ];
    let (pid, ids) = dag(&app, &conn, &schema_id, nodes, &[("s", "one"), ("s", "two"), ("one", "t"), ("two", "t")], json!({})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!((run["rowsIn"].as_u64(), run["rowsOut"].as_u64(), run["skippedRows"].as_u64()), (Some(3), Some(2), Some(1)), "{run}");
    assert_eq!(run["nodeCounts"][&ids["one"]], json!({"in": 3, "out": 1}));
    assert_eq!(run["nodeCounts"][&ids["two"]], json!({"in": 3, "out": 1}));
    assert_eq!(run["nodeCounts"][&ids["t"]], json!({"in": 2, "out": 2}));
    let mut xs: Vec<Value> = rows(&app, &schema_id).await.iter().map(|r| r["x"].clone()).collect();
    xs.sort_by_key(|v| v.as_i64());
    assert_eq!(xs, [json!(1), json!(2)]);
}

#[tokio::test]
async fn a_diamond_over_append_writes_a_row_once_per_path() {
    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"records": [{"x": "007"}, {"x": "8"}]})).await;
    let schema_id = schema(&app, json!([{"name": "x", "type": "integer"}, {"name": "via", "type": "text"}])).await;
    let tag = |v: &str| transform(json!({"type": "add_field", "field": "via", "value": v}));
    let nodes = vec![("s", end("source")), ("a", tag("a")), ("b", tag("b")), ("t", end("target"))];
    let edges = [("s", "a"), ("s", "b"), ("a", "t"), ("b", "t")];
    let (pid, ids) = dag(&app, &conn, &schema_id, nodes, &edges, json!({"loadMode": "append"})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!((run["rowsIn"].as_u64(), run["rowsOut"].as_u64()), (Some(2), Some(4)), "{run}");
    assert_eq!(run["nodeCounts"][&ids["t"]], json!({"in": 4, "out": 4}));
    let mut got: Vec<(i64, String)> =
        rows(&app, &schema_id).await.iter().map(|r| (r["x"].as_i64().unwrap(), r["via"].as_str().unwrap().to_string())).collect();
    got.sort();
    // "007" became 7: zero-padded numbers are numbers to an integer field.
    assert_eq!(got, [(7, "a".into()), (7, "b".into()), (8, "a".into()), (8, "b".into())]);
}

#[tokio::test]
async fn graphs_that_cannot_run_are_refused_when_written_naming_the_node_or_edge() {
    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"records": []})).await;
    let schema_id = schema(&app, json!([{"name": "x", "type": "integer"}])).await;
    let body =
        |nodes: Value, edges: Value| json!({"name": "bad", "connectorId": conn, "schemaId": schema_id, "nodes": nodes, "edges": edges});
    let three =
        json!([{"id": "s", "nodeType": "source"}, {"id": "f", "nodeType": "filter", "label": "Lonely"}, {"id": "t", "nodeType": "target"}]);
    let cases = [
        (json!([{"source": "s", "target": "t"}, {"source": "s", "target": "t"}]), "edges[1]"),
        (json!([{"source": "s", "target": "t"}]), "nodes[1]"),
        (json!([{"source": "s", "target": "f"}, {"source": "f", "target": "f"}, {"source": "s", "target": "t"}]), "edges"),
        (json!([{"source": "s", "target": "f"}, {"source": "f", "target": "t"}, {"source": "s", "target": "ghost"}]), "edges[2].target"),
    ];
    for (edges, field) in cases {
        let r = app.post("/pipelines", &body(three.clone(), edges.clone())).await;
        assert_error(&r, 400, "BAD_REQUEST");
        assert!(detail_fields(&r.body).contains(&field.to_string()), "{edges} → {}", r.body);
    }
    // The same holds for PUT.
    let ok = app.post("/pipelines", &body(three.clone(), json!([{"source": "s", "target": "f"}, {"source": "f", "target": "t"}]))).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let id = ok.body["id"].as_str().unwrap();
    let r = app.put("/pipelines", &json!({"id": id, "nodes": three, "edges": [{"source": "s", "target": "t"}]})).await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert_eq!(detail_fields(&r.body), ["nodes[1]"]);
}

#[tokio::test]
async fn rows_dynamodb_would_refuse_fail_alone_and_the_run_goes_on() {
    let app = spawn_app().await;
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "d": deep });
    }
    let records = json!([
        {"id": "ok1", "note": "fine", "meta": {"a": 1}},
        {"id": "big", "note": "x".repeat(420 * 1024)},
        {"id": "deep", "meta": deep},
        {"id": "huge-number", "amount": "1e200"},
        {"id": "k".repeat(1100)},
        {"id": "ok2", "amount": "2.5"}
    ]);
    // From an object: a connector's config could not hold such rows.
    let lines: String = records.as_array().unwrap().iter().map(|r| format!("{r}\n")).collect();
    app.put_source("rows.jsonl", lines).await;
    let conn = connector(&app, "s3", json!({"key": format!("{}rows.jsonl", app.folder())})).await;
    let fields = json!([
        {"name": "id", "type": "text", "primaryKey": true},
        {"name": "note", "type": "text"},
        {"name": "meta", "type": "json"},
        {"name": "amount", "type": "decimal"}
    ]);
    let schema_id = schema(&app, fields).await;
    let pid = chain(&app, &conn, &schema_id, vec![], json!({"errorHandling": "dead_letter", "batchSize": 3})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["status"], "completed_with_errors", "{run}");
    assert_eq!((run["rowsIn"].as_u64(), run["rowsOut"].as_u64(), run["failedRows"].as_u64()), (Some(6), Some(2), Some(4)), "{run}");
    let errors = run["validationErrors"].as_array().unwrap();
    let by_row = |row: u64| errors.iter().find(|e| e["row"] == row).unwrap_or_else(|| panic!("row {row}: {run}"));
    assert!(by_row(2)["message"].as_str().unwrap().contains("as a DynamoDB item; the limit is 409600"), "{run}");
    assert!(by_row(3)["message"].as_str().unwrap().contains("deeper than 32 levels"), "{run}");
    assert!(by_row(3)["field"].as_str().unwrap().starts_with("meta.d.d"), "{run}");
    assert_eq!(by_row(4)["field"], "amount");
    assert!(by_row(5)["message"].as_str().unwrap().contains("key is"), "{run}");
    let mut ids: Vec<String> = rows(&app, &schema_id).await.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["ok1", "ok2"]);
    let rid = run["id"].as_str().unwrap();
    let letters = app.get(&format!("/pipelines/{pid}/runs/{rid}/dead-letters")).await;
    assert_eq!(letters.body["data"].as_array().map(Vec::len), Some(4), "{}", letters.body);
}

#[tokio::test]
async fn records_larger_than_the_connectors_limit_are_failed_rows_naming_their_line() {
    let app = spawn_app().await;
    let data = format!("{{\"id\":1}}\n{{\"id\":2,\"blob\":\"{}\"}}\n{{\"id\":3}}\n", "z".repeat(500));
    let conn = connector(&app, "inline", json!({"data": data, "format": "jsonl", "maxRecordBytes": 200})).await;
    let schema_id = schema(&app, json!([{"name": "id", "type": "integer", "primaryKey": true}])).await;
    let pid = chain(&app, &conn, &schema_id, vec![], json!({})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["status"], "completed_with_errors", "{run}");
    assert_eq!((run["rowsIn"].as_u64(), run["rowsOut"].as_u64(), run["failedRows"].as_u64()), (Some(3), Some(2), Some(1)), "{run}");
    assert_eq!(run["validationErrors"][0]["row"], 2);
    assert_eq!(run["validationErrors"][0]["message"], "line 2 is larger than the limit of 200 bytes");

    // Under errorHandling: fail, the same row fails the run, naming it.
    let pid = chain(&app, &conn, &schema_id, vec![], json!({"errorHandling": "fail"})).await;
    let run = run_to_end(&app, &pid, &settings()).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"]["message"].as_str().unwrap().contains("row 2"), "{run}");
}

#[tokio::test]
async fn an_s3_run_continues_by_range_and_shows_its_progress() {
    let app = spawn_app().await;
    let mut total = 0;
    for (key, body) in [
        ("in/1.csv", (1..=5).fold("id\n".to_string(), |s, i| s + &format!("{i}\n"))),
        ("in/2.jsonl", (6..=9).map(|i| format!("{{\"id\":{i}}}\n")).collect::<String>()),
        ("in/3.json", format!("[{}]", (10..=12).map(|i| format!("{{\"id\":{i}}}")).collect::<Vec<_>>().join(","))),
    ] {
        total += body.len() as u64;
        app.put_source(key, body).await;
    }
    let conn = connector(&app, "s3", json!({"prefix": format!("{}in/", app.folder())})).await;
    let schema_id = schema(&app, json!([{"name": "id", "type": "integer", "primaryKey": true}])).await;
    let pid = chain(&app, &conn, &schema_id, vec![], json!({"batchSize": 2})).await;
    // A zero budget: every invocation does one batch, then checkpoints and continues.
    let budget = RunSettings { time_budget: std::time::Duration::ZERO, ..RunSettings::default() };
    let run = run_to_end(&app, &pid, &budget).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!((run["rowsIn"].as_u64(), run["rowsOut"].as_u64()), (Some(12), Some(12)), "{run}");
    assert_eq!(run["progress"]["recordsRead"], 12, "{run}");
    assert!(run["progress"]["bytesRead"].as_u64().unwrap() >= total, "{run}");
    assert!(run["log"].to_string().contains("continued from"), "{run}");
    let mut ids: Vec<i64> = rows(&app, &schema_id).await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
}

#[tokio::test]
async fn s3_connectors_outside_the_tenants_reach_are_refused_when_written() {
    let app = spawn_app().await;
    let mine = format!("{}in/", app.folder());
    let role = "arn:aws:iam::123456789012:role/reader";
    let cases = [
        (json!({"prefix": "tenants/someone-else/"}), "config.prefix"),
        (json!({"key": "tenants/someone-else/a.csv"}), "config.key"),
        (json!({"prefix": format!("tenants/{}", app.tenant)}), "config.prefix"),
        (json!({"bucket": "any-bucket-the-worker-can-read", "prefix": mine}), "config.bucket"),
        (json!({"bucket": "their-bucket", "roleArn": "not-an-arn"}), "config.roleArn"),
        (json!({"bucket": app.source_bucket, "roleArn": role}), "config.roleArn"),
    ];
    for (config, field) in cases {
        let r = app.post("/connectors", &json!({"name": "s3", "type": "s3", "config": config})).await;
        assert_error(&r, 400, "BAD_REQUEST");
        assert_eq!(detail_fields(&r.body), [field], "{config}: {}", r.body);
    }
    // What is allowed is accepted, and an s3 connector shows the external id for its role.
    let r = app.post("/connectors", &json!({"name": "mine", "type": "s3", "config": {"prefix": mine}})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app.post("/connectors", &json!({"name": "theirs", "type": "s3", "config": {"bucket": "their-bucket", "roleArn": role}})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let external_id = r.body["externalId"].as_str().unwrap().to_string();
    assert_eq!(external_id, shared::domain::source_access::external_id(&app.tenant_id()));
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/connectors/{id}")).await.body["externalId"], external_id.as_str());
    // An update cannot move it into another tenant's folder either.
    let r = app.put("/connectors", &json!({"id": id, "config": {"prefix": "tenants/someone-else/"}})).await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert_eq!(detail_fields(&r.body), ["config.prefix"]);
}

/// Lets the worker take one message at a time until run `rid` ends, calling `between` after each.
async fn step_until_end(app: &TestApp, pipeline: &str, rid: &str, settings: &RunSettings, mut between: impl FnMut(Value)) -> Value {
    let engine = app.engine();
    for _ in 0..200 {
        local::runner::poll_once(&app.app, &engine, settings, 1).await.expect("poll");
        let run = app.run(pipeline, rid).await;
        if !matches!(run["status"].as_str(), Some("pending" | "running")) {
            return run;
        }
        between(run);
    }
    panic!("run {rid} did not end");
}

#[tokio::test]
async fn truncate_replaces_the_rows_only_when_its_run_completes() {
    let app = spawn_app().await;
    let fields = json!([{"name": "id", "type": "integer", "primaryKey": true}, {"name": "v", "type": "text"}]);
    let schema_id = schema(&app, fields).await;
    let old = connector(&app, "inline", json!({"records": [{"id": 1, "v": "old"}, {"id": 2, "v": "old"}, {"id": 3, "v": "old"}]})).await;
    let run = run_to_end(&app, &chain(&app, &old, &schema_id, vec![], json!({})).await, &settings()).await;
    assert_eq!(run["status"], "completed");

    let new: Vec<Value> = (10..20).map(|i| json!({"id": i, "v": "new"})).collect();
    let conn = connector(&app, "inline", json!({"records": new})).await;
    let pid = chain(&app, &conn, &schema_id, vec![], json!({"loadMode": "truncate", "batchSize": 2})).await;
    let rid = app.trigger(&pid).await;
    // One batch per invocation: between them, readers still see the old table, whole.
    let budget = RunSettings { time_budget: std::time::Duration::ZERO, ..settings() };
    let mut seen = Vec::new();
    let run = step_until_end(&app, &pid, &rid, &budget, |run| seen.push(run["rowsOut"].as_u64().unwrap_or(0))).await;
    assert!(seen.iter().any(|&n| n > 0), "the run was seen midway: {seen:?}");
    assert_eq!(run["status"], "completed", "{run}");
    let mut ids: Vec<i64> = rows(&app, &schema_id).await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (10..20).collect::<Vec<_>>(), "only the new rows, and no old one");
}

#[tokio::test]
async fn truncate_midway_shows_the_old_rows_and_a_failed_run_keeps_them() {
    let app = spawn_app().await;
    let fields = json!([{"name": "id", "type": "integer", "primaryKey": true}]);
    let schema_id = schema(&app, fields).await;
    let old = connector(&app, "inline", json!({"records": [{"id": 1}, {"id": 2}]})).await;
    run_to_end(&app, &chain(&app, &old, &schema_id, vec![], json!({})).await, &settings()).await;

    let records: Vec<Value> = (10..20).map(|i| json!({"id": i})).chain([json!({"id": "bad"})]).collect();
    let conn = connector(&app, "inline", json!({"records": records})).await;
    let pid = chain(&app, &conn, &schema_id, vec![], json!({"loadMode": "truncate", "batchSize": 3, "errorHandling": "fail"})).await;
    let rid = app.trigger(&pid).await;
    let budget = RunSettings { time_budget: std::time::Duration::ZERO, ..settings() };
    let engine = app.engine();
    let mut midway = Vec::new();
    for _ in 0..200 {
        local::runner::poll_once(&app.app, &engine, &budget, 1).await.expect("poll");
        let run = app.run(&pid, &rid).await;
        if !matches!(run["status"].as_str(), Some("pending" | "running")) {
            break;
        }
        midway.push(rows(&app, &schema_id).await.len());
    }
    assert!(!midway.is_empty() && midway.iter().all(|&n| n == 2), "readers saw the old table whole: {midway:?}");
    let run = app.run(&pid, &rid).await;
    assert_eq!(run["status"], "failed", "{run}");
    let mut ids: Vec<i64> = rows(&app, &schema_id).await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [1, 2], "a failed truncate leaves the previous rows as they were");
    // Its own rows are gone from the table too, not just hidden.
    assert_eq!(stored_records(&app, &format!("T#{}#S#{schema_id}#G#{rid}", app.tenant)).await.len(), 0);
}

#[tokio::test]
async fn deduplicate_holds_across_continuations() {
    let app = spawn_app().await;
    let ids = [1, 2, 1, 3, 2, 4, 1, 5, 5];
    let records: Vec<Value> = ids.iter().map(|i| json!({"id": i})).collect();
    let conn = connector(&app, "inline", json!({"records": records})).await;
    let schema_id = schema(&app, json!([{"name": "id", "type": "integer"}])).await;
    let steps = vec![transform(json!({"type": "deduplicate", "keys": ["id"]}))];
    let pid = chain(&app, &conn, &schema_id, steps, json!({"batchSize": 2, "loadMode": "append"})).await;
    // One batch per invocation: a duplicate of a key seen in an earlier invocation is still one.
    let budget = RunSettings { time_budget: std::time::Duration::ZERO, ..settings() };
    let run = run_to_end(&app, &pid, &budget).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert!(run["log"].to_string().contains("continued from"), "{run}");
    assert_eq!((run["rowsOut"].as_u64(), run["skippedRows"].as_u64()), (Some(5), Some(4)), "{run}");
    let mut got: Vec<i64> = rows(&app, &schema_id).await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    got.sort();
    assert_eq!(got, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn deduplicate_claims_are_kept_by_the_row_that_made_them_even_when_replayed() {
    use shared::engine::dedupe::Marks;
    let app = spawn_app().await;
    let run = shared::domain::ids::RunId::generate();
    let marks = app.app.records.marks(&app.tenant_id(), &run, Some(2));
    let claims = |v: &[(&str, u64)]| v.iter().map(|(k, r)| (k.to_string(), *r)).collect::<Vec<_>>();
    assert_eq!(marks.claim("n", claims(&[("a", 1), ("b", 2), ("big".repeat(500).as_str(), 3)])).await.unwrap(), [true, true, true]);
    // The same rows again (a batch replayed after a crash) keep their keys; other rows do not.
    assert_eq!(marks.claim("n", claims(&[("a", 1), ("b", 7)])).await.unwrap(), [true, false]);
    // Another partition's row 1 is another row.
    let other = app.app.records.marks(&app.tenant_id(), &run, Some(3));
    assert_eq!(other.claim("n", claims(&[("a", 1)])).await.unwrap(), [false]);
}
