//! One run of the same S3 source as 1 partition and as 8: 2,000,000 JSONL rows in 8 objects
//! (moto), through the five-node graph, into a sink that encodes every write request and counts
//! it (so the emulator's write speed does not hide the engine's). Wall time from trigger to
//! `completed`, driven by 8 concurrent pollers as Lambda would run 8 invocations; the ratio of
//! the two shows what partitions buy on this machine's cores.
//!
//! `make bench` (needs the local stack); `BENCH_ROWS` overrides the row count.

use shared::context::Stores;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use shared::domain::run::{RunStatus, Trigger};
use shared::domain::tenant::TenantId;
use shared::engine::execute::DataEngine;
use shared::engine::sink::CountingSink;
use shared::settings::RunSettings;

const OBJECTS: usize = 8;
const POLLERS: usize = 8;

#[tokio::main]
async fn main() -> Result<(), shared::app::Error> {
    let rows: usize = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000);
    let scratch = local::stack::Scratch::new().await?;
    let app = Arc::new(scratch.app(scratch.clients.dynamodb.clone()));
    let sink = Arc::new(CountingSink::default());
    let engine = Arc::new(DataEngine { sink: Some(sink.clone()), ..DataEngine::new(app.records.clone(), scratch.sources()) });

    let per = rows / OBJECTS;
    let mut bytes = 0;
    for o in 0..OBJECTS {
        let body: String = (o * per..(o + 1) * per).map(|i| local::fixtures::order(i).to_string() + "\n").collect();
        bytes += body.len();
        scratch
            .clients
            .s3
            .put_object()
            .bucket(&scratch.name)
            .key(format!("tenants/bench/orders/{o}.jsonl"))
            .body(body.into_bytes().into())
            .send()
            .await?;
    }
    println!("source: {} rows in {OBJECTS} objects, {:.0} MB", per * OBJECTS, bytes as f64 / 1e6);

    let tenant = TenantId::parse("bench")?;
    let catalog = local::fixtures::create_catalog(
        &app,
        &tenant,
        &json!({"name": "orders", "type": "s3", "config": {"prefix": "tenants/bench/orders/"}}),
    )
    .await?;

    let settings = RunSettings { time_budget: Duration::from_secs(3600), ..RunSettings::default() };
    for i in 0..POLLERS {
        let (app, engine, settings) = (app.clone(), engine.clone(), settings.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = local::runner::poll_once(&app, engine.as_ref(), &settings, 1).await {
                    eprintln!("poller {i}: {e}");
                }
            }
        });
    }
    let mut seconds = Vec::new();
    for (name, partitioning) in [("1 partition", json!("none")), ("8 partitions", json!({"by": "objects", "groupBytes": 1}))] {
        let config = json!({"batchSize": 1000, "parallelism": 8, "partitioning": partitioning});
        let pipeline = local::fixtures::create_orders_pipeline(&app, &tenant, name, &catalog, config).await?;
        let written = sink.rows.load(Ordering::Relaxed);
        let started = Instant::now();
        let run =
            shared::trigger::trigger(&*app, &tenant, &pipeline, Trigger::Manual, None, None, None).await.map_err(|e| e.to_string())?;
        let ended = loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let current = app.store().get_run(&tenant, &pipeline.id, &run.id).await?.ok_or("run vanished")?;
            if current.status.is_finished() {
                break current;
            }
        };
        let secs = started.elapsed().as_secs_f64();
        if ended.status != RunStatus::Completed {
            return Err(format!("run ended {}: {:?}", ended.status.as_str(), ended.error).into());
        }
        let out = sink.rows.load(Ordering::Relaxed) - written;
        println!(
            "{name}: {} rows read, {out} write requests in {secs:.2} s = {:.0} records/s",
            per * OBJECTS,
            (per * OBJECTS) as f64 / secs
        );
        seconds.push(secs);
    }
    println!(
        "partitioned run: 8 partitions took {:.2}× the time of 1 (speed-up {:.2}×) with {POLLERS} pollers on {} cores",
        seconds[1] / seconds[0],
        seconds[0] / seconds[1],
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}
