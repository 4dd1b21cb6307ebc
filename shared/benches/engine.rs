//! Records per second through a realistic five-node graph, in memory (no I/O): source →
//! rename → filter → mask_pii → target (schema checks and coercion of six fields).
//!
//! `cargo bench -p shared --bench engine`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use shared::domain::graph::Graph;
use shared::domain::ids::SchemaId;
use shared::domain::schema::Schema;
use shared::engine::execute::{Processor, Stats};
use shared::engine::plan::Plan;
use shared::engine::record::Record;

const RECORDS: usize = 10_000;

fn graph() -> Graph {
    serde_json::from_value(json!({
        "nodes": [
            {"id": "src", "nodeType": "source", "label": "Orders", "config": {}, "position": null},
            {"id": "ren", "nodeType": "transform", "label": "Rename", "config": {"type": "rename", "mappings": {"OrderId": "id", "Email": "email"}}, "position": null},
            {"id": "flt", "nodeType": "filter", "label": "Paid", "config": {"condition": {"all": [
                {"field": "status", "op": "eq", "value": "paid"}, {"field": "total", "op": "gte", "value": 10}
            ]}}, "position": null},
            {"id": "msk", "nodeType": "transform", "label": "Mask", "config": {"type": "mask_pii", "fields": ["email"]}, "position": null},
            {"id": "dst", "nodeType": "target", "label": "Orders table", "config": {}, "position": null}
        ],
        "edges": [
            {"id": "e1", "source": "src", "target": "ren", "label": null},
            {"id": "e2", "source": "ren", "target": "flt", "label": null},
            {"id": "e3", "source": "flt", "target": "msk", "label": null},
            {"id": "e4", "source": "msk", "target": "dst", "label": null}
        ]
    }))
    .expect("graph")
}

fn schema() -> Schema {
    serde_json::from_value(json!({
        "id": SchemaId::generate(), "name": "orders", "displayName": "Orders", "description": null,
        "fields": [
            {"name": "id", "type": "integer", "required": true, "primaryKey": true},
            {"name": "email", "type": "text", "required": true, "primaryKey": false},
            {"name": "status", "type": "text", "required": false, "primaryKey": false},
            {"name": "total", "type": "decimal", "required": false, "primaryKey": false},
            {"name": "paid_at", "type": "timestamp", "required": false, "primaryKey": false},
            {"name": "gift", "type": "boolean", "required": false, "primaryKey": false}
        ],
        "createdAt": "", "updatedAt": ""
    }))
    .expect("schema")
}

/// CSV-like input: every value a string, as sources deliver them; 9 in 10 pass the filter.
fn records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            let v: Value = json!({
                "OrderId": i.to_string(), "Email": format!("customer{i}@example.com"),
                "status": if i % 10 == 0 { "refunded" } else { "paid" }, "total": format!("{}.{:02}", 10 + i % 500, i % 100),
                "paid_at": "2026-11-29T10:15:00+01:00", "gift": if i % 2 == 0 { "true" } else { "false" }
            });
            v.as_object().cloned().unwrap_or_default()
        })
        .collect()
}

fn engine(c: &mut Criterion) {
    let plan = Plan::build(&graph()).expect("plan");
    let schema = schema();
    let input = records();
    let marks = shared::engine::dedupe::LocalMarks::default();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("five_node_graph_10k_records", |b| {
        b.iter_batched(
            || {
                (
                    Processor::new(&plan, &schema).expect("processor"),
                    input.iter().cloned().enumerate().map(|(i, r)| (i as u64 + 1, r)).collect(),
                )
            },
            |(mut processor, batch)| {
                let mut stats = Stats::default();
                let out = futures::executor::block_on(processor.process(batch, &mut stats, &marks)).expect("processed");
                assert_eq!(out.good.len(), RECORDS * 9 / 10);
                out
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
