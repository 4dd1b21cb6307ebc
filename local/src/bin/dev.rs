//! `make dev`: the whole system on a laptop. Creates the table and queue on the local stack,
//! and the source bucket, runs the worker (polling the queue) and the scheduler (every minute),
//! issues an admin key for the `demo` tenant, and serves the API and the console on
//! 127.0.0.1:$PORT (3000).

use shared::context::Stores;
use std::sync::Arc;

use shared::app::{init_tracing, Error};
use shared::domain::api_key::issue;
use shared::domain::tenant::{Role, TenantId};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| local::stack::DEFAULT_TABLE.into());
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3000);
    // A queue per table (`pipelines-runs` for the default): dev servers over other tables (make
    // fuzz, make console-test) never take each other's messages.
    let (app, engine) = local::stack::app(&table, &format!("{table}-runs")).await?;
    let app = Arc::new(app);

    // The worker polls the queue and the scheduler ticks every minute, as in AWS.
    let settings = shared::settings::RunSettings::from_env();
    local::runner::spawn_worker(app.clone(), Arc::new(engine), settings.clone());
    let ticks = local::stack::tick_queue(&app, &format!("{table}-ticks")).await?;
    local::runner::spawn_scheduler(app.clone(), ticks, settings);

    let tenant = TenantId::parse("demo")?;
    let key = issue(&tenant, "make dev".into(), Role::Admin, &shared::domain::now());
    app.store().create(&tenant, &key.stored).await?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://127.0.0.1:{port}");
    println!("\nPipelines is serving {base}/api/v1 (table {table}; Ctrl-C stops everything)\n");
    println!("Console: {base}/ (sign in with tenant 'demo' and the key below)\n");
    let bucket = local::stack::source_bucket();
    println!("Source bucket: {bucket}; tenant 'demo' reads s3://{bucket}/tenants/demo/ (moto on :4566)\n");
    println!("Admin key for tenant 'demo':\n  {}\n", key.key);
    println!("Try:\n  curl -s {base}/api/v1/pipelines -H 'X-Tenant-Id: demo' -H 'Authorization: Bearer {}'\n", key.key);
    axum::serve(listener, local::gateway::router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
