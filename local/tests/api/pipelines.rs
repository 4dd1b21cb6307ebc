use shared::context::Stores;
use std::collections::HashSet;

use futures::future::join_all;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn the_reference_example_round_trips() {
    let app = spawn_app().await;
    let body = app.example_body().await;
    let created = app.create_pipeline(&body).await;
    assert!(created["id"].as_str().unwrap().starts_with("pipe_"));
    assert_eq!(created["status"], "active");
    assert_eq!(created["schedule"], "0 2 * * *");
    assert_eq!(created["timezone"], "UTC");
    assert_eq!(created["executionConfig"], json!({"batchSize": 5000, "parallelism": 4}));
    assert_eq!(created["connector"], json!({"id": body["connectorId"], "name": "Production Snowflake", "type": "snowflake"}));
    assert_eq!(created["schema"], json!({"id": body["schemaId"], "name": "customers", "displayName": "Customers"}));
    assert_eq!(created["lastRunAt"], Value::Null);
    let created_at = created["createdAt"].as_str().unwrap();
    assert!(created_at.ends_with('Z') && created_at.len() == 24, "{created_at}");

    // Temporary ids were replaced, and the edges follow them.
    let nodes = created["nodes"].as_array().unwrap();
    let id = |label: &str| nodes.iter().find(|n| n["label"] == label).unwrap()["id"].clone();
    assert!(nodes.iter().all(|n| n["id"].as_str().unwrap().starts_with("node_")));
    let edges = created["edges"].as_array().unwrap();
    assert_eq!((edges[0]["source"].clone(), edges[0]["target"].clone()), (id("Snowflake Source"), id("Rename Fields")));
    assert_eq!((edges[1]["source"].clone(), edges[1]["target"].clone()), (id("Rename Fields"), id("Customer Table")));

    let fetched = app.get(&format!("/pipelines/{}", created["id"].as_str().unwrap())).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, created);
}

#[tokio::test]
async fn pages_have_no_duplicates_or_gaps_and_an_exact_total() {
    let app = spawn_app().await;
    let (connector, schema) = (app.create_connector().await, app.create_schema().await);
    // Created concurrently: the count stays exact under racing transactions.
    let created: Vec<Value> = join_all((0..23).map(|i| {
        let mut body = example_pipeline(&connector, &schema);
        body["name"] = json!(format!("p{i}"));
        let app = &app;
        async move { app.create_pipeline(&body).await }
    }))
    .await;
    let want: HashSet<String> = created.iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();

    let mut seen = Vec::new();
    let mut path = "/pipelines?limit=7".to_string();
    let mut pages = 0;
    loop {
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["total"], 23);
        let data = r.body["data"].as_array().unwrap();
        assert!(data.iter().all(|p| p["nodes"].as_array().unwrap().len() == 3 && p["connector"]["id"] == connector.as_str()));
        seen.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_string()));
        pages += 1;
        if r.body["hasMore"] == false {
            assert!(r.body.get("nextCursor").is_none());
            break;
        }
        assert_eq!(data.len(), 7);
        path = format!("/pipelines?limit=7&cursor={}", urlencode(r.body["nextCursor"].as_str().unwrap()));
    }
    assert_eq!(pages, 4);
    assert_eq!(seen.len(), 23, "duplicates: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), want);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages come in id (creation) order");

    // A client that only knows the last id of a page can build the cursor itself.
    let cursor = shared::http::page::encode_cursor(&seen[9]);
    let r = app.get(&format!("/pipelines?limit=100&cursor={}", urlencode(&cursor))).await;
    let rest: Vec<&str> = r.body["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(rest, seen[10..].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.body["hasMore"], false);

    // Deleting one keeps the total exact.
    assert_eq!(app.delete(&format!("/pipelines?id={}", seen[0])).await.status, 204);
    assert_eq!(app.get("/pipelines?limit=1").await.body["total"], 22);
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn bad_limits_and_cursors_are_400() {
    let app = spawn_app().await;
    for q in ["limit=0", "limit=101", "limit=abc", "limit=-3", "cursor=%%%", "cursor=bm90IGpzb24", "cursor=eyJpZCI6IngifQ"] {
        let r = app.get(&format!("/pipelines?{q}")).await;
        assert_error(&r, 400, "BAD_REQUEST");
        let field = if q.starts_with("limit") { "limit" } else { "cursor" };
        assert_eq!(detail_fields(&r.body), [field], "{q}");
    }
}

#[tokio::test]
async fn every_validation_rule_answers_400_with_the_field() {
    let app = spawn_app().await;
    let base = app.example_body().await;
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(json!({"name": null})), "name"),
        (with(json!({"name": ""})), "name"),
        (with(json!({"name": "   "})), "name"),
        (with(json!({"name": "x".repeat(201)})), "name"),
        (with(json!({"name": 42})), "name"),
        (with(json!({"connectorId": null})), "connectorId"),
        (with(json!({"schemaId": "nope"})), "schemaId"),
        (with(json!({"schedule": "0 2 * *"})), "schedule"),
        (with(json!({"schedule": "99 2 * * *"})), "schedule"),
        (with(json!({"timezone": "Mars/Olympus"})), "timezone"),
        (with(json!({"status": "running"})), "status"),
        (with(json!({"executionConfig": {"batchSize": 0}})), "executionConfig.batchSize"),
        (with(json!({"executionConfig": {"batchSize": 10001}})), "executionConfig.batchSize"),
        (with(json!({"executionConfig": {"parallelism": 65}})), "executionConfig.parallelism"),
        (with(json!({"executionConfig": {"parallelism": 1.5}})), "executionConfig.parallelism"),
        (with(json!({"executionConfig": "fast"})), "executionConfig"),
        (with(json!({"nodes": [{"id": "a", "nodeType": "source"}, {"id": "a", "nodeType": "target"}], "edges": []})), "nodes[1].id"),
        (with(json!({"nodes": [{"id": "a", "nodeType": "source"}], "edges": [{"source": "a", "target": "zz"}]})), "edges[0].target"),
        (
            with(
                json!({"nodes": [{"id": "a", "nodeType": "source"}, {"id": "b", "nodeType": "target"}], "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}]}),
            ),
            "edges",
        ),
        (with(json!({"nodes": [{"id": "a", "nodeType": "wormhole"}]})), "nodes[0].nodeType"),
        (with(json!({"nodes": null, "edges": [{"source": "n1", "target": "n2"}]})), "edges"),
        (with(json!({"nodes": "n1"})), "nodes"),
        (with(json!({"shedule": "0 2 * * *"})), "shedule"),
    ];
    for (body, field) in cases {
        let r = app.post("/pipelines", &body).await;
        assert_error(&r, 400, "BAD_REQUEST");
        assert!(detail_fields(&r.body).contains(&field.to_string()), "{field}: {}", r.body);
    }
    // Nothing was created by any of them.
    assert_eq!(app.get("/pipelines").await.body["total"], 0);
}

#[tokio::test]
async fn malformed_non_object_empty_and_oversized_bodies() {
    let app = spawn_app().await;
    for (raw, what) in [("{bad", "malformed"), ("[1,2]", "JSON object"), ("\"x\"", "JSON object"), ("", "required")] {
        let r = app.send(app.req(reqwest::Method::POST, "/pipelines").header("content-type", "application/json").body(raw)).await;
        assert_error(&r, 400, "BAD_REQUEST");
        assert!(r.body["error"]["message"].as_str().unwrap().contains(what), "{raw}: {}", r.body);
    }
    let mut big = app.example_body().await;
    big["description"] = json!("x".repeat(1024 * 1024));
    let r = app.post("/pipelines", &big).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn unknown_connector_or_schema_is_rejected() {
    let app = spawn_app().await;
    let mut body = app.example_body().await;
    body["connectorId"] = json!(shared::domain::ids::ConnectorId::generate().to_string());
    let r = app.post("/pipelines", &body).await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert_eq!(detail_fields(&r.body), ["connectorId"]);

    let mut body = app.example_body().await;
    body["schemaId"] = json!(shared::domain::ids::SchemaId::generate().to_string());
    assert_eq!(detail_fields(&app.post("/pipelines", &body).await.body), ["schemaId"]);
    assert_eq!(app.get("/pipelines").await.body["total"], 0);
}

#[tokio::test]
async fn put_updates_fields_and_replaces_the_graph() {
    let app = spawn_app().await;
    let created = app.create_pipeline(&app.example_body().await).await;
    let id = created["id"].as_str().unwrap();

    // Fields only: the graph stays; null clears; executionConfig merges key by key.
    let r = app
        .put("/pipelines", &json!({"id": id, "name": "Renamed", "schedule": null, "timezone": "Europe/Paris", "status": "paused", "executionConfig": {"parallelism": 8}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Renamed");
    assert_eq!(r.body["schedule"], Value::Null);
    assert_eq!(r.body["timezone"], "Europe/Paris");
    assert_eq!(r.body["status"], "paused");
    assert_eq!(r.body["executionConfig"], json!({"batchSize": 5000, "parallelism": 8}));
    assert_eq!(r.body["nodes"], created["nodes"]);
    assert_eq!(r.body["edges"], created["edges"]);
    assert_eq!(r.body["createdAt"], created["createdAt"]);

    // New graph: a node sent with its permanent id keeps it; temporary ids get new ones.
    let source_id = created["nodes"][0]["id"].as_str().unwrap();
    let r = app
        .put(
            "/pipelines",
            &json!({"id": id, "nodes": [
                {"id": source_id, "nodeType": "source", "label": "Source"},
                {"id": "new", "nodeType": "filter", "label": "Filter", "config": {"condition": {"field": "x", "op": "exists"}}},
                {"id": "t", "nodeType": "target", "label": "Target", "position": {"x": 10, "y": 20}}
            ], "edges": [{"source": source_id, "target": "new"}, {"source": "new", "target": "t", "label": "kept rows"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let nodes = r.body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["id"], source_id);
    assert!(nodes[1]["id"].as_str().unwrap().starts_with("node_") && nodes[1]["id"] != "new");
    assert_eq!(nodes[2]["position"], json!({"x": 10.0, "y": 20.0}));
    assert_eq!(r.body["edges"][1]["source"], nodes[1]["id"]);
    assert_eq!(r.body["edges"][1]["label"], "kept rows");

    // Nodes without edges leave no edges; edges without nodes are refused.
    let r = app.put("/pipelines", &json!({"id": id, "nodes": [{"id": "only", "nodeType": "source"}]})).await;
    assert_eq!(r.body["edges"], json!([]));
    let r = app.put("/pipelines", &json!({"id": id, "edges": []})).await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert_eq!(detail_fields(&r.body), ["edges"]);

    // Id rules.
    assert_eq!(detail_fields(&app.put("/pipelines", &json!({"name": "x"})).await.body), ["id"]);
    let missing = shared::domain::ids::PipelineId::generate();
    assert_error(&app.put("/pipelines", &json!({"id": missing.as_str(), "name": "x"})).await, 404, "NOT_FOUND");
}

#[tokio::test]
async fn put_moves_connector_use_so_deletes_follow() {
    let app = spawn_app().await;
    let created = app.create_pipeline(&app.example_body().await).await;
    let old = created["connector"]["id"].as_str().unwrap().to_string();
    let new = app.create_connector().await;
    let r = app.put("/pipelines", &json!({"id": created["id"], "connectorId": new})).await;
    assert_eq!(r.body["connector"]["id"], new.as_str());
    assert_eq!(app.delete(&format!("/connectors?id={old}")).await.status, 204);
    assert_error(&app.delete(&format!("/connectors?id={new}")).await, 409, "CONFLICT");
    let unknown = shared::domain::ids::ConnectorId::generate();
    let r = app.put("/pipelines", &json!({"id": created["id"], "connectorId": unknown.as_str()})).await;
    assert_eq!(detail_fields(&r.body), ["connectorId"]);
}

/// Racing PUTs each replace the whole graph; racing readers must only ever see one writer's
/// graph whole, and the final graph is one writer's.
#[tokio::test]
async fn concurrent_graph_replacement_is_never_seen_half_done() {
    let app = spawn_app().await;
    let created = app.create_pipeline(&app.example_body().await).await;
    let id = created["id"].as_str().unwrap().to_string();
    let graph = |w: usize| {
        let nodes: Vec<Value> = (0..6)
            .map(|j| json!({"id": format!("n{j}"), "nodeType": if j == 0 { "source" } else { "transform" }, "label": format!("w{w}-{j}")}))
            .collect();
        let edges: Vec<Value> = (1..6).map(|j| json!({"source": format!("n{}", j - 1), "target": format!("n{j}")})).collect();
        json!({"id": id, "nodes": nodes, "edges": edges})
    };
    let check = |p: &Value| {
        let nodes = p["nodes"].as_array().unwrap();
        let writers: HashSet<&str> =
            nodes.iter().map(|n| n["label"].as_str().unwrap().split_once('-').map_or("initial", |(w, _)| w)).collect();
        let ids: HashSet<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
        let edges = p["edges"].as_array().unwrap();
        assert_eq!(writers.len(), 1, "mixed graph: {p}");
        if nodes.len() == 6 {
            assert_eq!(edges.len(), 5, "{p}");
        }
        assert!(edges.iter().all(|e| ids.contains(e["source"].as_str().unwrap()) && ids.contains(e["target"].as_str().unwrap())), "{p}");
    };
    let writers = join_all((0..6).map(|w| {
        let (app, body) = (&app, graph(w));
        async move { (w, app.put("/pipelines", &body).await) }
    }));
    let readers = join_all((0..6).map(|_| {
        let (app, id) = (&app, id.clone());
        async move {
            for _ in 0..10 {
                let r = app.get(&format!("/pipelines/{id}")).await;
                assert_eq!(r.status, 200);
                check(&r.body);
            }
        }
    }));
    let (written, _) = tokio::join!(writers, readers);
    let winners: Vec<usize> = written.iter().filter(|(_, r)| r.status == 200).map(|(w, _)| *w).collect();
    for (_, r) in &written {
        assert!(r.status == 200 || r.status == 409, "{}", r.body);
    }
    assert!(!winners.is_empty());
    let last = app.get(&format!("/pipelines/{id}")).await.body;
    check(&last);
    let w: usize = last["nodes"][0]["label"].as_str().unwrap()[1..2].parse().unwrap();
    assert!(winners.contains(&w));
    assert_eq!(last["nodes"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn delete_removes_the_pipeline_and_queues_the_purge_of_its_runs() {
    let app = spawn_app().await;
    let created = app.create_pipeline(&app.example_body().await).await;
    let id = created["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(app.post(&format!("/pipelines/{id}/run"), &json!({})).await.status, 201);
    }
    let pid = shared::domain::ids::PipelineId::parse(id).unwrap();
    let tenant = shared::domain::tenant::TenantId::parse(&app.tenant).unwrap();
    assert_eq!(app.app.store().list_runs(&tenant, &pid, 100).await.unwrap().len(), 3);

    assert_eq!(app.delete(&format!("/pipelines?id={id}")).await.status, 204);
    assert_error(&app.get(&format!("/pipelines/{id}")).await, 404, "NOT_FOUND");
    assert_error(&app.delete(&format!("/pipelines?id={id}")).await, 404, "NOT_FOUND");
    // Its runs go in the purge the delete queued (purges.rs follows one through the worker).
    let purge = json!({"purge": {"kind": "runs", "tenantId": app.tenant, "pipelineId": id}});
    assert!(app.queued_after_delay().await.contains(&purge), "the purge is queued");
    // Its connector and schema are free again.
    assert_eq!(app.delete(&format!("/connectors?id={}", created["connector"]["id"].as_str().unwrap())).await.status, 204);
    assert_eq!(app.delete(&format!("/schemas?id={}", created["schema"]["id"].as_str().unwrap())).await.status, 204);

    assert_eq!(detail_fields(&app.delete("/pipelines").await.body), ["id"]);
    // An id that cannot be a pipeline's names nothing: 404, as for one that is not there
    // (issue "hostile input"), and so does an update that names one.
    assert_error(&app.delete("/pipelines?id=junk").await, 404, "NOT_FOUND");
    for (path, kind) in [("/pipelines", "pipeline"), ("/connectors", "connector"), ("/schemas", "schema")] {
        let r = app.put(path, &json!({"id": "nope", "name": "x"})).await;
        assert_error(&r, 404, "NOT_FOUND");
        assert!(r.body["error"]["message"].as_str().unwrap().starts_with(kind), "{}", r.body);
        assert_error(&app.delete(&format!("{path}?id={}", "x".repeat(3000))).await, 404, "NOT_FOUND");
        // An id that is not a string is still the body's fault.
        assert_eq!(detail_fields(&app.put(path, &json!({"id": 7, "name": "x"})).await.body), ["id"]);
    }
}

/// What DynamoDB would refuse is the client's data: a 400 naming the field, never a 500
/// (issue "hostile input": node configs, partitioning and connector configs nested past 32
/// levels; items past 400 KB).
#[tokio::test]
async fn what_dynamodb_would_refuse_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }));
    let mut body = app.example_body().await;
    body["nodes"][0]["config"] = nested(40);
    let r = app.post("/pipelines", &body).await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert!(detail_fields(&r.body)[0].starts_with("nodes[0].config.a.a"), "{}", r.body);

    let mut body = app.example_body().await;
    body["executionConfig"] = json!({ "partitioning": nested(40) });
    assert_error(&app.post("/pipelines", &body).await, 400, "BAD_REQUEST");

    let deep =
        app.post("/connectors", &json!({"name": "deep", "type": "http", "config": {"url": "https://x.io", "extra": nested(40)}})).await;
    assert_error(&deep, 400, "BAD_REQUEST");
    assert!(detail_fields(&deep.body)[0].starts_with("config.extra.a"), "{}", deep.body);
    // Under the 1 MB body limit, over DynamoDB's 400 KB item: the largest field is named.
    let big = app.post("/connectors", &json!({"name": "big", "type": "http", "config": {"blob": "x".repeat(500_000)}})).await;
    assert_error(&big, 400, "BAD_REQUEST");
    assert_eq!(detail_fields(&big.body), ["config"], "{}", big.body);
    // And an update the same way; nothing was written.
    let id = app.create_connector().await;
    let r = app.put("/connectors", &json!({"id": id, "config": {"blob": "x".repeat(500_000)}})).await;
    assert_eq!(detail_fields(&r.body), ["config"], "{}", r.body);
    assert!(app.get(&format!("/connectors/{id}")).await.body["config"].get("blob").is_none());

    // A records cursor that would make an oversized sort key is refused as a cursor.
    let schema = app.create_schema().await;
    let cursor = shared::http::page::encode_cursor(&format!("K#{}", "x".repeat(3000)));
    let r = app
        .get(&format!("/schemas/{schema}/records?cursor={}", form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>()))
        .await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert_eq!(detail_fields(&r.body), ["cursor"]);
}

/// A page ends before it outgrows Lambda's 6 MB response: the 22 pipelines of about
/// 300 KB listed with `limit=100` come in pages under 4 MB, each exactly once.
#[tokio::test]
async fn a_list_of_large_pipelines_pages_by_bytes() {
    let app = spawn_app().await;
    let mut body = app.example_body().await;
    body["nodes"][0]["config"] = json!({ "notes": "n".repeat(300_000) });
    for _ in 0..22 {
        assert_eq!(app.post("/pipelines", &body).await.status, 201);
    }
    let (mut seen, mut cursor, mut pages) = (std::collections::HashSet::new(), None::<String>, 0);
    loop {
        let path = match &cursor {
            None => "/pipelines?limit=100".to_string(),
            Some(c) => format!("/pipelines?limit=100&cursor={}", form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()),
        };
        let resp =
            app.http.get(format!("{}{path}", app.base)).bearer_auth(&app.key).header("X-Tenant-Id", &app.tenant).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let bytes = resp.bytes().await.unwrap();
        assert!(bytes.len() <= shared::http::page::MAX_PAGE_BYTES + 4096, "a page of {} bytes", bytes.len());
        let page: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        pages += 1;
        for p in page["data"].as_array().unwrap() {
            assert!(seen.insert(p["id"].as_str().unwrap().to_string()), "listed twice");
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages > 1), (22, true));
}
