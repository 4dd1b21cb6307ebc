//! The scheduler's fire path at scale, on the local stack: 10,000 every-minute pipelines over
//! 100 tenants, one of them holding 5,000, all due at one tick. The tick fans out over the tick
//! queue (moto) to its shard workers, one poller each, as the queue's event source mapping would
//! run them; each worker fires through DynamoDB Local's transactions and sends its runs in
//! `SendMessageBatch` calls. Reports fires per second per shard worker, how long after the tick
//! the last slot fired, and the small tenants' lag beside the big tenant's.
//!
//! `make bench` (needs the local stack). `BENCH_PIPELINES` overrides the 10,000;
//! `SCHEDULER_WORKERS` and `SCHEDULER_CONCURRENCY` the fan-out.

use std::sync::Arc;
use std::time::Duration;

use shared::settings::{Quotas, RunSettings};

#[tokio::main]
async fn main() -> Result<(), shared::app::Error> {
    let total: usize = std::env::var("BENCH_PIPELINES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let scratch = local::stack::Scratch::new().await?;
    let app =
        Arc::new(scratch.app(scratch.clients.dynamodb.clone()).with_quotas(Quotas { runs_in_flight: 1_000_000, ..Quotas::default() }));
    let big = total / 2;
    let mut sizes = vec![big];
    sizes.extend((0..99).map(|i| (total - big) / 99 + usize::from(i < (total - big) % 99)));

    let planted = std::time::Instant::now();
    let fleet = local::fleet::plant(&app, "bench", &sizes, chrono::Utc::now()).await?;
    println!("planted {total} pipelines over {} tenants (one holding {big}) in {:.0} s", sizes.len(), planted.elapsed().as_secs_f64());

    let settings = RunSettings::from_env();
    let (workers, concurrency) = (settings.fanout.workers, settings.fanout.concurrency);
    let ticks = local::stack::tick_queue(&app, &format!("{}-ticks", scratch.name)).await?;
    local::runner::spawn_shard_workers(app.clone(), ticks.clone(), settings.clone());
    let _drain = local::fleet::drain(&app);
    let tick = chrono::Utc::now();
    // The budget (40 s by default) may end a worker's firing before all are fired: the next
    // tick takes the rest, as in AWS, a minute later.
    let mut ticked = 1;
    shared::scheduler::fan_out(&*app, &ticks, &settings, tick).await?;
    while !local::fleet::fired(&app, &fleet, Duration::from_secs(60)).await? {
        ticked += 1;
        if ticked > 5 {
            return Err("slots still unfired after 5 ticks".into());
        }
        shared::scheduler::fan_out(&*app, &ticks, &settings, chrono::Utc::now()).await?;
    }
    let runs = local::fleet::runs(&app, &fleet).await?;
    let lags = local::fleet::lags(&runs, tick, sizes.len());
    let last = lags.iter().flatten().copied().fold(0.0, f64::max);
    let mut small: Vec<f64> = lags[1..].iter().flatten().copied().collect();
    small.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!("{} slots fired in {ticked} tick(s) by {workers} shard workers, {concurrency} fires at a time each", runs.len());
    println!("  fires/s overall: {:.0}; per shard worker: {:.1}", runs.len() as f64 / last, runs.len() as f64 / last / workers as f64);
    println!("  lag of the last slot: {last:.1} s");
    println!("  big tenant ({big} slots): median {:.1} s, last {:.1} s", pct(&lags[0], 0.5), pct(&lags[0], 1.0));
    println!(
        "  small tenants ({} slots): median {:.1} s, p99 {:.1} s, last {:.1} s",
        small.len(),
        pct(&small, 0.5),
        pct(&small, 0.99),
        pct(&small, 1.0)
    );
    Ok(())
}
