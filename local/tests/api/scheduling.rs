//! The scheduler at scale, on the local stack: 3,000 every-minute pipelines of six tenants, one
//! holding 2,950, all due at one tick. The tick fans out over the tick queue to its shard
//! workers (one poller each, as the queue's event source mapping would run them), and every
//! slot must have its run within 60 s of the tick, each once, with the small tenants' slots
//! fired ahead of the big tenant's.

use std::time::Duration;

use shared::context::Stores;
use shared::settings::{Quotas, RunSettings};

use crate::support::spawn_app_with_quotas;

#[tokio::test]
#[ignore = "scripts/cargo-test.sh (make test) runs it alone: it loads the emulators for a minute"]
async fn three_thousand_schedules_fire_within_the_minute_and_fairly() {
    let quotas = Quotas { runs_in_flight: 10_000, requests_per_second: 100_000, ..Quotas::default() };
    let app = spawn_app_with_quotas(quotas).await;
    let planted = chrono::Utc::now();
    let sizes = [2_950, 10, 10, 10, 10, 10];
    let fleet = local::fleet::plant(&app.app, &format!("fleet{}", &app.tenant[..6]), &sizes, planted).await.expect("fleet");
    println!(
        "planted {} pipelines in {:.1} s",
        sizes.iter().sum::<usize>(),
        (chrono::Utc::now() - planted).num_milliseconds() as f64 / 1e3
    );

    let settings = RunSettings::default();
    let ticks = local::stack::tick_queue(&app.app, &format!("{}-ticks", app.app.store().table())).await.expect("tick queue");
    let workers = local::runner::spawn_shard_workers(app.app.clone(), ticks.clone(), settings.clone());
    let drain = local::fleet::drain(&app.app);
    let tick = chrono::Utc::now();
    let report = shared::scheduler::fan_out(&*app.app, &ticks, &settings, tick).await.expect("tick");
    assert_eq!(report, Default::default(), "every shard message was sent, none worked in the tick");
    let all_fired = local::fleet::fired(&app.app, &fleet, Duration::from_secs(90)).await.expect("counts");
    for task in workers.into_iter().chain([drain]) {
        task.abort();
    }
    let runs = local::fleet::runs(&app.app, &fleet).await.expect("runs");
    assert!(all_fired, "every slot fired within 90 s: {} runs", runs.len());

    assert_eq!(runs.len(), 3_000, "one run per slot");
    let pipelines: std::collections::HashSet<_> = runs.iter().map(|(_, r)| r.pipeline_id.clone()).collect();
    assert_eq!(pipelines.len(), 3_000, "every pipeline's slot, none twice");
    assert!(runs.iter().all(|(_, r)| r.scheduled_for.is_some()), "scheduled runs");
    let lags = local::fleet::lags(&runs, tick, sizes.len());
    let last = lags.iter().flatten().copied().fold(0.0, f64::max);
    let big = &lags[0];
    let small_last = lags[1..].iter().flatten().copied().fold(0.0, f64::max);
    println!(
        "3,000 slots: the last fired {last:.1} s after the tick; big tenant median {:.1} s; small tenants' last {small_last:.1} s",
        big[big.len() / 2]
    );
    assert!(last < 60.0, "every slot fired within 60 s of its tick: the last took {last:.1} s");
    // Fair within each shard worker (they start as their messages arrive, so not all at once):
    // a small tenant's slot starts before the big tenant's (s+1)-th in its worker, s being the
    // small tenants' slots there, as the tenants take turns.
    let workers = settings.fanout.workers;
    for w in 0..workers {
        let in_worker = |(_, r): &&(usize, shared::domain::run::Run)| shared::store::index::shard(r.pipeline_id.as_str()) % workers == w;
        let mut big: Vec<&str> = runs.iter().filter(in_worker).filter(|(i, _)| *i == 0).map(|(_, r)| r.created_at.as_str()).collect();
        big.sort();
        let small: Vec<&str> = runs.iter().filter(in_worker).filter(|(i, _)| *i > 0).map(|(_, r)| r.created_at.as_str()).collect();
        if let Some(bound) = big.get(small.len()) {
            for at in &small {
                assert!(
                    at <= bound,
                    "worker {w}: a small tenant's slot started at {at}, after {} of the big tenant's ({bound})",
                    small.len() + 1
                );
            }
        }
    }
    // Each pipeline moved on to its next slot, once.
    for tenant in &fleet {
        for p in tenant.pipelines.iter().take(20) {
            let pipeline = app.app.store().get::<shared::domain::pipeline::Pipeline>(&tenant.id, p.as_str()).await.unwrap().unwrap();
            assert!(pipeline.next_run_at.as_deref() > Some(shared::domain::stamp(tick).as_str()), "{p}: moved past the tick");
        }
    }
}
