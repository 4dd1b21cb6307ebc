use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn connectors_crud_and_in_use_conflict() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/connectors",
            &json!({"name": "Orders API", "type": "http", "description": "feed", "config": {"url": "https://example.com/o.json"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["config"]["url"], "https://example.com/o.json");

    let r = app.put("/connectors", &json!({"id": id, "name": "Orders v2", "description": null})).await;
    assert_eq!((r.status, r.body["name"].as_str(), r.body["type"].as_str()), (200, Some("Orders v2"), Some("http")));
    assert!(r.body["description"].is_null());
    assert_eq!(app.get(&format!("/connectors/{id}")).await.body["name"], "Orders v2");

    // In use by a pipeline: 409, and the rename shows in the pipeline.
    let schema = app.create_schema().await;
    let p = app.create_pipeline(&example_pipeline(&id, &schema)).await;
    assert_eq!(p["connector"], json!({"id": id, "name": "Orders v2", "type": "http"}));
    assert_error(&app.delete(&format!("/connectors?id={id}")).await, 409, "CONFLICT");
    assert_error(&app.delete(&format!("/schemas?id={schema}")).await, 409, "CONFLICT");
    assert_eq!(app.delete(&format!("/pipelines?id={}", p["id"].as_str().unwrap())).await.status, 204);
    assert_eq!(app.delete(&format!("/connectors?id={id}")).await.status, 204);
    assert_error(&app.get(&format!("/connectors/{id}")).await, 404, "NOT_FOUND");
    assert_error(&app.delete(&format!("/connectors?id={id}")).await, 404, "NOT_FOUND");
    assert_eq!(app.get("/connectors").await.body["total"], 0);

    for (body, field) in [
        (json!({"type": "http"}), "name"),
        (json!({"name": "x", "type": "HTTP Thing"}), "type"),
        (json!({"name": "x", "type": "http", "config": [1]}), "config"),
        (json!({"name": "x"}), "type"),
    ] {
        let r = app.post("/connectors", &body).await;
        assert_error(&r, 400, "BAD_REQUEST");
        assert_eq!(detail_fields(&r.body), [field]);
    }
}

#[tokio::test]
async fn schemas_crud_and_field_rules() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/schemas",
            &json!({"name": "orders", "fields": [
                {"name": "id", "type": "integer", "primaryKey": true}, {"name": "total", "type": "decimal", "required": true},
                {"name": "paid", "type": "boolean"}, {"name": "day", "type": "date"}, {"name": "at", "type": "timestamp"},
                {"name": "meta", "type": "json"}, {"name": "note", "type": "text"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["displayName"], "orders");
    assert_eq!(r.body["fields"][0], json!({"name": "id", "type": "integer", "required": true, "primaryKey": true}));
    let id = r.body["id"].as_str().unwrap();

    let r = app.put("/schemas", &json!({"id": id, "displayName": "All orders"})).await;
    assert_eq!((r.status, r.body["displayName"].as_str(), r.body["fields"].as_array().map(Vec::len)), (200, Some("All orders"), Some(7)));

    let r = app.post("/schemas", &json!({"name": "t", "fields": [{"name": "a", "type": "varchar"}, {"name": "a", "type": "text"}]})).await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert_eq!(detail_fields(&r.body), ["fields[0].type", "fields[1].name"]);
    assert_eq!(detail_fields(&app.post("/schemas", &json!({"name": "t"})).await.body), ["fields"]);

    // Pages like pipelines.
    for i in 0..3 {
        app.post("/schemas", &json!({"name": format!("s{i}"), "fields": [{"name": "a", "type": "text"}]})).await;
    }
    let r = app.get("/schemas?limit=3").await;
    assert_eq!((r.body["total"].as_u64(), r.body["hasMore"].as_bool()), (Some(4), Some(true)));
    let r = app.get(&format!("/schemas?limit=3&cursor={}", r.body["nextCursor"].as_str().unwrap())).await;
    assert_eq!((r.body["data"].as_array().map(Vec::len), r.body["hasMore"].as_bool()), (Some(1), Some(false)));
}
