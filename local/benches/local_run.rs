//! Records per second of a whole local run: a 20,000-line JSONL object in S3 (moto) read by the
//! worker through a five-node graph (rename, filter, mask_pii) into the records table (DynamoDB
//! Local), upserting by primary key. Wall time from trigger to `completed`, median of 3 runs.
//!
//! Needs the local stack: `make bench` starts it.

use shared::context::Stores;
use std::time::{Duration, Instant};

use serde_json::json;
use shared::domain::run::{Run, RunStatus, Trigger};
use shared::domain::tenant::TenantId;
use shared::engine::execute::DataEngine;
use shared::settings::RunSettings;
use shared::trigger::trigger;

const ROWS: usize = 20_000;
const RUNS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), shared::app::Error> {
    let scratch = local::stack::Scratch::new().await?;
    let app = scratch.app(scratch.clients.dynamodb.clone());
    let engine = DataEngine::new(app.records.clone(), scratch.sources());
    let body: String = (0..ROWS).map(|i| local::fixtures::order(i).to_string() + "\n").collect();
    scratch.clients.s3.put_object().bucket(&scratch.name).key("tenants/bench/orders.jsonl").body(body.into_bytes().into()).send().await?;

    let tenant = TenantId::parse("bench")?;
    let source = json!({"name": "orders", "type": "s3", "config": {"bucket": scratch.name, "key": "tenants/bench/orders.jsonl"}});
    let catalog = local::fixtures::create_catalog(&app, &tenant, &source).await?;
    let config = json!({"batchSize": 1000, "parallelism": 4});
    let pipeline = local::fixtures::create_orders_pipeline(&app, &tenant, "bench", &catalog, config).await?;

    let settings = RunSettings { time_budget: Duration::from_secs(3600), ..RunSettings::default() };
    let mut rates = Vec::new();
    for i in 1..=RUNS {
        let started = Instant::now();
        let run: Run = trigger(&app, &tenant, &pipeline, Trigger::Manual, None, None, None).await.map_err(|e| e.to_string())?;
        loop {
            local::runner::poll_once(&app, &engine, &settings, 1).await?;
            let current = app.store().get_run(&tenant, &pipeline.id, &run.id).await?.ok_or("run vanished")?;
            if current.status == RunStatus::Completed {
                break;
            }
            if current.status.is_finished() {
                return Err(format!("run ended {}: {:?}", current.status.as_str(), current.error).into());
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = ROWS as f64 / secs;
        println!("run {i}: {ROWS} records in {secs:.2} s = {rate:.0} records/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("local run: median {:.0} records/s over {RUNS} runs of {ROWS} records (S3 → 5-node graph → DynamoDB Local)", rates[RUNS / 2]);
    Ok(())
}
