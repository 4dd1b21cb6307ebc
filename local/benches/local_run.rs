//! Records per second of a whole local run: a 20,000-line JSONL object in S3 (moto) read by the
//! worker through a five-node graph (rename, filter, mask_pii) into the records table (DynamoDB
//! Local), upserting by primary key. Wall time from trigger to `completed`, median of 3 runs.
//!
//! Needs the local stack: `make bench` starts it.

use shared::context::Stores;
use std::time::{Duration, Instant};

use serde_json::json;
use shared::context::App;
use shared::domain::ids::PipelineId;
use shared::domain::pipeline::NewPipeline;
use shared::domain::run::{Run, RunStatus, Trigger};
use shared::domain::tenant::TenantId;
use shared::domain::{connector::NewConnector, ids::ConnectorId, ids::SchemaId, schema::NewSchema};
use shared::engine::execute::DataEngine;
use shared::settings::RunSettings;
use shared::trigger::trigger;

const ROWS: usize = 20_000;
const RUNS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), shared::app::Error> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let table = format!("bench-{suffix}");
    let clients = local::stack::clients().await;
    local::stack::ensure_table(&clients.dynamodb, &table).await?;
    local::stack::ensure_records_table(&clients.dynamodb, &local::stack::records_table(&table)).await?;
    let queue = local::stack::ensure_queue(&clients.sqs, &format!("bench-{suffix}")).await?;
    let app = App::new(clients.dynamodb.clone(), clients.sqs.clone(), &table, &queue, &local::stack::records_table(&table));
    let bucket = format!("bench-{suffix}");
    let engine = DataEngine::new(app.records.clone(), local::stack::sources(&clients, &bucket));

    clients.s3.create_bucket().bucket(&bucket).send().await?;
    let body: String = (0..ROWS).map(|i| local::fixtures::order(i).to_string() + "\n").collect();
    clients.s3.put_object().bucket(&bucket).key("tenants/bench/orders.jsonl").body(body.into_bytes().into()).send().await?;

    let tenant = TenantId::parse("bench")?;
    let now = shared::domain::now();
    let connector =
        NewConnector::parse(&json!({"name": "orders", "type": "s3", "config": {"bucket": bucket, "key": "tenants/bench/orders.jsonl"}}))?
            .into_connector(ConnectorId::generate(), &now);
    let schema = NewSchema::parse(&local::fixtures::orders_schema())?.into_schema(SchemaId::generate(), &now);
    app.store().create(&tenant, &connector).await?;
    app.store().create(&tenant, &schema).await?;
    let config = json!({"batchSize": 1000, "parallelism": 4});
    let pipeline = NewPipeline::parse(&local::fixtures::orders_pipeline("bench", connector.id.as_str(), schema.id.as_str(), config))?
        .into_pipeline(PipelineId::generate(), chrono::Utc::now());
    if let Err(e) = app
        .store()
        .create_pipeline(&tenant, &pipeline, shared::store::PipelineQuotas { pipelines: u32::MAX, frequent_schedules: u32::MAX }, None)
        .await?
    {
        return Err(format!("pipeline not created: {e:?}").into());
    }

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
