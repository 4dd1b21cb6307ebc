//! A partitioned run's coordination at scale: 2,000 objects (moto), one partition each, at the
//! largest `parallelism` (64), driven by 16 concurrent pollers as Lambda would run invocations.
//! Every DynamoDB write is counted per item ([`local::writes::WriteCounter`]); the benchmark
//! reports the most writes any one item took in one second, per kind of item (the run, its
//! lanes, its partitions), and checks the run ended once with every partition counted.
//!
//! `make bench` (needs the local stack); `BENCH_PARTITIONS` overrides the 2,000.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use shared::context::{App, Stores};
use shared::domain::ids::{ConnectorId, PipelineId, SchemaId};
use shared::domain::pipeline::NewPipeline;
use shared::domain::run::{RunStatus, Trigger};
use shared::domain::tenant::TenantId;
use shared::domain::{connector::NewConnector, schema::NewSchema};
use shared::engine::execute::DataEngine;
use shared::engine::sink::CountingSink;
use shared::settings::RunSettings;

const POLLERS: usize = 16;

#[tokio::main]
async fn main() -> Result<(), shared::app::Error> {
    let partitions: usize = std::env::var("BENCH_PARTITIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let table = format!("bench-{suffix}");
    let clients = local::stack::clients().await;
    local::stack::ensure_table(&clients.dynamodb, &table).await?;
    local::stack::ensure_records_table(&clients.dynamodb, &local::stack::records_table(&table)).await?;
    let queue = local::stack::ensure_queue(&clients.sqs, &format!("bench-{suffix}")).await?;
    let bucket = format!("bench-{suffix}");
    local::stack::ensure_bucket(&clients.s3, &bucket).await?;
    let counter = local::writes::WriteCounter::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(clients.dynamodb.config().to_builder().interceptor(counter.clone()).build());
    let app =
        Arc::new(App::new(dynamodb, clients.sqs.clone(), &table, &queue, &local::stack::records_table(&table)).with_source_bucket(&bucket));
    let sink = Arc::new(CountingSink::default());
    let engine =
        Arc::new(DataEngine { sink: Some(sink.clone()), ..DataEngine::new(app.records.clone(), local::stack::sources(&clients, &bucket)) });

    let uploads = futures::stream::iter(0..partitions).map(|i| {
        let s3 = clients.s3.clone();
        let bucket = bucket.clone();
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
    let now = shared::domain::now();
    let connector = NewConnector::parse(&json!({"name": "orders", "type": "s3", "config": {"prefix": "tenants/bench/orders/"}}))?
        .into_connector(ConnectorId::generate(), &now);
    let schema = NewSchema::parse(&local::fixtures::orders_schema())?.into_schema(SchemaId::generate(), &now);
    app.store().create(&tenant, &connector).await?;
    app.store().create(&tenant, &schema).await?;
    let config = json!({"batchSize": 1000, "parallelism": 64, "partitioning": {"by": "objects", "groupBytes": 1}});
    let pipeline =
        NewPipeline::parse(&local::fixtures::orders_pipeline("coordination", connector.id.as_str(), schema.id.as_str(), config))?
            .into_pipeline(PipelineId::generate(), chrono::Utc::now());
    let unlimited = shared::store::PipelineQuotas { pipelines: u32::MAX, frequent_schedules: u32::MAX };
    if let Err(e) = app.store().create_pipeline(&tenant, &pipeline, unlimited, None).await? {
        return Err(format!("pipeline not created: {e:?}").into());
    }

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
    for (kind, hot) in counter.hottest_by_kind() {
        println!("  {kind:<8} {:>4}/s ({} in all) {}", hot.per_second, hot.total, hot.sk);
    }
    Ok(())
}
