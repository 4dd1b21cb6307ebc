//! A partitioned run's coordination at scale: 2,000 objects (moto), one partition each, at the
//! largest `parallelism` (64), driven by 16 concurrent pollers as Lambda would run invocations.
//! Every DynamoDB write is counted per item ([`local::writes::WriteCounter`]); the benchmark
//! reports the most writes any one item took in one second, per kind of item (the run, its
//! lanes, its partitions), and checks the run ended once with every partition counted. The
//! scheduler ticks beside it, as in AWS: a partition message that moto drops (a send timed out
//! under load) is found by the run's watchdog and sent again, as it would be there.
//!
//! `make bench` (needs the local stack); `BENCH_PARTITIONS` overrides the 2,000.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use shared::context::Stores;
use shared::domain::run::{RunStatus, Trigger};
use shared::domain::tenant::TenantId;
use shared::engine::execute::DataEngine;
use shared::engine::sink::CountingSink;
use shared::settings::RunSettings;

const POLLERS: usize = 16;

/// The most writes a second any one item may take (docs/scale.md): a tenth of what DynamoDB
/// gives one partition key, and far from where a hot item throttles.
const STATED_RATE: usize = 100;

#[tokio::main]
async fn main() -> Result<(), shared::app::Error> {
    // Warnings only: a lost send says so; the info lines would be thousands.
    tracing_subscriber::fmt().compact().with_max_level(tracing::Level::WARN).init();
    let partitions: usize = std::env::var("BENCH_PARTITIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let scratch = local::stack::Scratch::new().await?;
    let counter = local::writes::WriteCounter::default();
    let dynamodb = scratch.clients.dynamodb.config().to_builder().interceptor(counter.clone()).build();
    let app = Arc::new(scratch.app(aws_sdk_dynamodb::Client::from_conf(dynamodb)));
    let sink = Arc::new(CountingSink::default());
    let engine = Arc::new(DataEngine { sink: Some(sink.clone()), ..DataEngine::new(app.records.clone(), scratch.sources()) });

    let uploads = futures::stream::iter(0..partitions).map(|i| {
        let (s3, bucket) = (scratch.clients.s3.clone(), scratch.name.clone());
        async move {
            let body = local::fixtures::order(i).to_string() + "\n";
            s3.put_object().bucket(&bucket).key(format!("tenants/bench/orders/{i:05}.jsonl")).body(body.into_bytes().into()).send().await
        }
    });
    use futures::StreamExt;
    for put in uploads.buffer_unordered(16).collect::<Vec<_>>().await {
        put?;
    }

    let tenant = TenantId::parse("bench")?;
    let catalog = local::fixtures::create_catalog(
        &app,
        &tenant,
        &json!({"name": "orders", "type": "s3", "config": {"prefix": "tenants/bench/orders/"}}),
    )
    .await?;
    let config = json!({"batchSize": 1000, "parallelism": 64, "partitioning": {"by": "objects", "groupBytes": 1}});
    let pipeline = local::fixtures::create_orders_pipeline(&app, &tenant, "coordination", &catalog, config).await?;

    let settings = RunSettings { time_budget: Duration::from_secs(3600), ..RunSettings::default() };
    for i in 0..POLLERS {
        let (app, engine, settings) = (app.clone(), engine.clone(), settings.clone());
        tokio::spawn(async move {
            // Short polls, resting when empty: moto serves a long poll by looping, and 16 of
            // them would take its CPU from the run.
            loop {
                match local::runner::poll_once(&app, engine.as_ref(), &settings, 0).await {
                    Ok(0) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Ok(_) => {}
                    Err(e) => eprintln!("poller {i}: {e}"),
                }
            }
        });
    }
    let ticks = local::stack::tick_queue(&app, &format!("{}-ticks", scratch.name)).await?;
    local::runner::spawn_scheduler(app.clone(), ticks, RunSettings::from_env());
    let started = Instant::now();
    let run = shared::trigger::trigger(&*app, &tenant, &pipeline, Trigger::Manual, None, None, None).await.map_err(|e| e.to_string())?;
    let ended = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let current = app.store().get_run(&tenant, &pipeline.id, &run.id).await?.ok_or("run vanished")?;
        if current.status.is_finished() {
            break current;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err("the run did not end within 30 minutes".into());
        }
    };
    let secs = started.elapsed().as_secs_f64();
    if ended.status != RunStatus::Completed {
        return Err(format!("run ended {}: {:?}", ended.status.as_str(), ended.error).into());
    }
    let parts = app.store().list_partitions(&tenant, &pipeline.id, &run.id).await?;
    let progress = app.store().partition_progress(&tenant, &ended).await?;
    println!(
        "{} partitions ({} ended, counted in {} lanes) in {secs:.1} s: {:.0} partitions/s, {} rows",
        parts.len(),
        progress.finished,
        progress.lanes,
        parts.len() as f64 / secs,
        sink.rows.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!("most writes one item took in one second, by kind of item:");
    let hottest = counter.hottest_by_kind();
    for (kind, hot) in &hottest {
        println!("  {kind:<8} {:>4}/s ({} in all) {}", hot.per_second, hot.total, hot.sk);
    }
    if progress.finished as usize != partitions || parts.len() != partitions {
        return Err(format!("{} of {partitions} partitions counted ended", progress.finished).into());
    }
    match hottest.first() {
        Some((kind, hot)) if hot.per_second > STATED_RATE => {
            Err(format!("a {kind} item took {}/s, above the stated {STATED_RATE}/s", hot.per_second).into())
        }
        _ => {
            println!("no item above the stated {STATED_RATE} writes/s");
            Ok(())
        }
    }
}
