//! Records per second through a realistic five-node graph, in memory (no I/O): source →
//! rename → filter → mask_pii → target (schema checks and coercion of six fields).
//!
//! - `five_node_graph_10k_records`: from records already decoded, to conformed rows.
//! - `end_to_end_{csv,jsonl}_10k_records`: from the source's bytes (decoded chunk by chunk, as a
//!   download arrives) through the graph to the encoded DynamoDB write requests (keys, item-limit
//!   checks, `AttributeValue` encoding): everything a worker does but the network.
//! - `stage/*`: that path cut into decode, process and encode, to say where the time goes.
//!
//! `cargo bench -p shared --bench engine`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use shared::domain::graph::Graph;
use shared::domain::ids::RunId;
use shared::domain::ids::SchemaId;
use shared::domain::schema::Schema;
use shared::domain::tenant::TenantId;
use shared::engine::decode::{Decoder, Format, DEFAULT_MAX_RECORD};
use shared::engine::dedupe::LocalMarks;
use shared::engine::execute::{Processor, Stats};
use shared::engine::plan::Plan;
use shared::engine::record::Record;
use shared::engine::sink::{row_overhead, schema_pk, upsert_key, write_requests, Row};
use shared::store::limits;

/// The worker's allocator (`functions/worker`): the engine allocates a lot of small values.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// The same orders as the source's bytes.
fn source_bytes(format: Format) -> Vec<u8> {
    let records = records();
    match format {
        Format::Csv => {
            let mut out = String::from("OrderId,Email,status,total,paid_at,gift\n");
            for r in &records {
                let f = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                out.push_str(&format!("{},{},{},{},{},{}\n", f("OrderId"), f("Email"), f("status"), f("total"), f("paid_at"), f("gift")));
            }
            out.into_bytes()
        }
        _ => records.iter().map(|r| format!("{}\n", Value::Object(r.clone()))).collect::<String>().into_bytes(),
    }
}

/// What the worker does with a source's bytes, but the network: decode, process, key, check and
/// encode; returns the write requests made.
fn bytes_to_requests(plan: &Plan, schema: &Schema, format: Format, bytes: &[u8]) -> usize {
    let mut decoder = Decoder::new(format, None, DEFAULT_MAX_RECORD);
    let mut decoded = Vec::with_capacity(RECORDS);
    for chunk in bytes.chunks(64 * 1024) {
        decoder.feed(chunk, &mut decoded).expect("decodes");
    }
    decoder.finish(&mut decoded).expect("decodes");
    let rows = decoded.into_iter().enumerate().map(|(i, d)| (i as u64 + 1, d.record.expect("a record"))).collect();
    let mut processor = Processor::new(plan, schema).expect("processor");
    let mut stats = Stats::default();
    let marks = LocalMarks::default();
    let processed = futures::executor::block_on(processor.process(rows, &mut stats, &marks)).expect("processed");
    let tenant = TenantId::parse("bench").expect("tenant");
    let run = RunId::generate();
    let pk = schema_pk(&tenant, &schema.id, None);
    let overhead = row_overhead(&pk, &run);
    let mut batch = Vec::with_capacity(processed.good.len());
    for (_, data) in processed.good {
        let key = upsert_key(schema, &data).expect("a key");
        limits::check_row(&data, &key, overhead + key.len()).expect("fits");
        batch.push(Row { key, data });
    }
    write_requests(&pk, &run, batch, "2026-12-01T00:00:00.000Z").expect("encodes").len()
}

fn end_to_end(c: &mut Criterion) {
    let plan = Plan::build(&graph()).expect("plan");
    let schema = schema();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, format) in [("end_to_end_csv_10k_records", Format::Csv), ("end_to_end_jsonl_10k_records", Format::Jsonl)] {
        let bytes = source_bytes(format);
        assert_eq!(bytes_to_requests(&plan, &schema, format, &bytes), RECORDS * 9 / 10);
        group.bench_function(name, |b| b.iter(|| bytes_to_requests(&plan, &schema, format, &bytes)));
    }
    group.finish();
}

/// The end-to-end path cut into its stages, each over the same 10,000 orders, so that where the
/// time goes is a ratio anyone can reproduce: decode (bytes to records), process (the graph and
/// the schema), encode (keys, item checks and the SDK's write requests).
fn stages(c: &mut Criterion) {
    let plan = Plan::build(&graph()).expect("plan");
    let schema = schema();
    let bytes = source_bytes(Format::Csv);
    let decode = |bytes: &[u8]| {
        let mut decoder = Decoder::new(Format::Csv, None, DEFAULT_MAX_RECORD);
        let mut decoded = Vec::with_capacity(RECORDS);
        for chunk in bytes.chunks(64 * 1024) {
            decoder.feed(chunk, &mut decoded).expect("decodes");
        }
        decoder.finish(&mut decoded).expect("decodes");
        decoded
    };
    let rows: Vec<(u64, Record)> =
        decode(&bytes).into_iter().enumerate().map(|(i, d)| (i as u64 + 1, d.record.expect("a record"))).collect();
    let marks = LocalMarks::default();
    let process = |rows: Vec<(u64, Record)>| {
        let mut processor = Processor::new(&plan, &schema).expect("processor");
        futures::executor::block_on(processor.process(rows, &mut Stats::default(), &marks)).expect("processed")
    };
    let good: Vec<Record> = process(rows.clone()).good.into_iter().map(|(_, r)| r).collect();
    let tenant = TenantId::parse("bench").expect("tenant");
    let run = RunId::generate();
    let pk = schema_pk(&tenant, &schema.id, None);
    let overhead = row_overhead(&pk, &run);
    let encode = |good: Vec<Record>| {
        let mut batch = Vec::with_capacity(good.len());
        for data in good {
            let key = upsert_key(&schema, &data).expect("a key");
            limits::check_row(&data, &key, overhead + key.len()).expect("fits");
            batch.push(Row { key, data });
        }
        write_requests(&pk, &run, batch, "2026-12-01T00:00:00.000Z").expect("encodes")
    };
    let mut group = c.benchmark_group("stage");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("decode_csv_10k_records", |b| b.iter(|| decode(&bytes)));
    group.bench_function("process_10k_records", |b| b.iter_batched(|| rows.clone(), process, BatchSize::LargeInput));
    group.bench_function("encode_9k_rows", |b| b.iter_batched(|| good.clone(), encode, BatchSize::LargeInput));
    group.finish();
}

criterion_group!(benches, engine, end_to_end, stages);
criterion_main!(benches);
