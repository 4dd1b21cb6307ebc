//! The orders pipeline the benchmarks run: source → rename → filter (`status eq paid`, 9 in 10
//! pass) → mask_pii → target, into a schema of four fields keyed by `id`.

use serde_json::{json, Value};

/// `NewSchema` input for the orders schema.
pub fn orders_schema() -> Value {
    json!({"name": "orders", "fields": [
        {"name": "id", "type": "integer", "primaryKey": true}, {"name": "email", "type": "text"},
        {"name": "status", "type": "text"}, {"name": "total", "type": "decimal"}
    ]})
}

/// `NewPipeline` input for the orders pipeline over `connector` into `schema`.
pub fn orders_pipeline(name: &str, connector: &str, schema: &str, execution_config: Value) -> Value {
    json!({
        "name": name, "connectorId": connector, "schemaId": schema, "executionConfig": execution_config,
        "nodes": [
            {"id": "s", "nodeType": "source"},
            {"id": "r", "nodeType": "transform", "config": {"type": "rename", "mappings": {"OrderId": "id", "Email": "email"}}},
            {"id": "f", "nodeType": "filter", "config": {"condition": {"field": "status", "op": "eq", "value": "paid"}}},
            {"id": "m", "nodeType": "transform", "config": {"type": "mask_pii", "fields": ["email"]}},
            {"id": "t", "nodeType": "target"}
        ],
        "edges": [{"source": "s", "target": "r"}, {"source": "r", "target": "f"}, {"source": "f", "target": "m"}, {"source": "m", "target": "t"}]
    })
}

/// Order `i` as the source carries it.
pub fn order(i: usize) -> Value {
    json!({"OrderId": i, "Email": format!("c{i}@example.com"), "status": if i.is_multiple_of(10) { "refunded" } else { "paid" }, "total": format!("{}.50", i % 900)})
}
