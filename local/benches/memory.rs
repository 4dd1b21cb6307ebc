//! The worker's peak memory on a 1 GB source: an `http` source served by a local server that
//! generates the bytes as it sends them (so the benchmark's own memory holds no source), read by
//! the real engine through the five-node graph into a counting sink, once as JSON Lines and once
//! as one JSON array. Prints the process's peak RSS (VmHWM) before and after each.
//!
//! `cargo bench -p local --bench memory` (no emulator needed); `BENCH_MEMORY_MB` sets the size.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use futures::stream;
use serde_json::json;
use shared::domain::ids::{ConnectorId, PipelineId, SchemaId};
use shared::domain::pipeline::NewPipeline;
use shared::domain::run::{Run, Trigger};
use shared::domain::tenant::TenantId;
use shared::domain::{connector::NewConnector, schema::NewSchema};
use shared::engine::execute::{DataEngine, Stats};
use shared::engine::job::{Control, Engine, Job, Stop};
use shared::engine::plan::Plan;
use shared::engine::sink::CountingSink;

/// Lets the engine run to its end.
struct Free;

impl Control for Free {
    fn checkpoint<'a>(&'a self, _stats: &'a Stats) -> futures::future::BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async { Ok(()) })
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

fn line(i: u64) -> String {
    let mut order = local::fixtures::order(i as usize);
    order["note"] = json!("x".repeat(40));
    order.to_string()
}

/// `/jsonl` and `/json`: `total` bytes' worth of records, made chunk by chunk as they are sent.
async fn serve(total: u64) -> String {
    let app = axum::Router::new()
        .route(
            "/jsonl",
            axum::routing::get(move || async move {
                let chunks = stream::unfold((0u64, 0u64), move |(i, sent)| async move {
                    (sent < total).then(|| {
                        let chunk: String = (i..i + 1000).map(|n| line(n) + "\n").collect();
                        let len = chunk.len() as u64;
                        (Ok::<_, Infallible>(Bytes::from(chunk)), (i + 1000, sent + len))
                    })
                });
                ([("content-type", "application/x-ndjson")], Body::from_stream(chunks))
            }),
        )
        .route(
            "/json",
            axum::routing::get(move || async move {
                let chunks = stream::unfold((0u64, 0u64, false), move |(i, sent, done)| async move {
                    if done {
                        return None;
                    }
                    if sent >= total {
                        return Some((Ok::<_, Infallible>(Bytes::from_static(b"]")), (i, sent, true)));
                    }
                    let mut chunk = String::new();
                    for n in i..i + 1000 {
                        chunk.push(if n == 0 { '[' } else { ',' });
                        chunk.push_str(&line(n));
                    }
                    let len = chunk.len() as u64;
                    Some((Ok(Bytes::from(chunk)), (i + 1000, sent + len, false)))
                });
                ([("content-type", "application/json")], Body::from_stream(chunks))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::main]
async fn main() -> Result<(), shared::app::Error> {
    let mb: u64 = std::env::var("BENCH_MEMORY_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let base = serve(mb * 1024 * 1024).await;
    let clients = local::stack::clients().await;
    let sink = Arc::new(CountingSink::default());
    let records = shared::engine::sink::RecordsTable::new(clients.dynamodb.clone(), "unused");
    let engine = DataEngine { sink: Some(sink.clone()), ..DataEngine::new(records, local::stack::sources(&clients, "unused")) };
    let tenant = TenantId::parse("bench")?;
    let now = shared::domain::now();
    let schema = NewSchema::parse(&local::fixtures::orders_schema())?.into_schema(SchemaId::generate(), &now);
    println!("peak RSS at start: {:.1} MB", peak_rss_mb());
    for format in ["jsonl", "json"] {
        let connector = NewConnector::parse(&json!({"name": "orders", "type": "http", "config": {"url": format!("{base}/{format}")}}))?
            .into_connector(ConnectorId::generate(), &now);
        let config = json!({"batchSize": 1000, "parallelism": 4});
        let pipeline = NewPipeline::parse(&local::fixtures::orders_pipeline("memory", connector.id.as_str(), schema.id.as_str(), config))?
            .into_pipeline(PipelineId::generate(), chrono::Utc::now());
        let plan = Plan::build(&pipeline.graph()).map_err(|e| e.message)?;
        let run = Run::new(pipeline.id.clone(), Trigger::Manual, &now);
        let job = Job {
            tenant: &tenant,
            run: &run,
            pipeline: &pipeline,
            connector: &connector,
            schema: &schema,
            plan: &plan,
            checkpoint: None,
            scope: None,
        };
        let before = sink.rows.load(Ordering::Relaxed);
        let started = Instant::now();
        let report = engine.execute(&job, &Free).await.map_err(|e| format!("{e:?}"))?;
        let secs = started.elapsed().as_secs_f64();
        let read = report.stats["rowsIn"].as_u64().unwrap_or(0);
        println!(
            "{format}: {mb} MB, {read} records in {secs:.1} s ({:.0} records/s, {:.0} MB/s), {} write requests; peak RSS {:.1} MB",
            read as f64 / secs,
            mb as f64 / secs,
            sink.rows.load(Ordering::Relaxed) - before,
            peak_rss_mb()
        );
    }
    Ok(())
}
