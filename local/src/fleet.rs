//! A fleet of every-minute schedules over many tenants, all due at once: what the scheduler's
//! scale test and benchmark fire. Pipelines are created through the store's own transaction
//! (counts and all): four at a time per tenant (they share its counters), the tenants side by
//! side.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use shared::context::{App, Stores};
use shared::domain::ids::PipelineId;
use shared::domain::pipeline::{NewPipeline, Pipeline};
use shared::domain::run::Run;
use shared::domain::stamp;
use shared::domain::tenant::TenantId;

use shared::app::Error;

/// One tenant's share of the fleet.
pub struct Tenant {
    pub id: TenantId,
    pub pipelines: Vec<PipelineId>,
}

/// Creates, for each size in `sizes`, a tenant (`<prefix>-<i>`) with that many active
/// every-minute pipelines whose next slot is `due`.
pub async fn plant(app: &App, prefix: &str, sizes: &[usize], due: DateTime<Utc>) -> Result<Vec<Tenant>, Error> {
    let planting = sizes.iter().enumerate().map(|(i, &size)| async move {
        let id = TenantId::parse(&format!("{prefix}-{i}"))?;
        let records = json!({"name": "orders", "type": "inline", "config": {"records": [{"x": 1}]}});
        let crate::fixtures::Catalog { connector, schema } = crate::fixtures::create_catalog(app, &id, &records).await?;
        // Four at a time: the tenant's counters take them (a conflict is retried by the store).
        let (id, connector, schema) = (&id, &connector, &schema);
        let streams = (0..4).map(|stream| async move {
            let mut made = Vec::new();
            for n in (stream..size).step_by(4) {
                let mut body =
                    crate::fixtures::orders_pipeline(&format!("every minute {n}"), connector.id.as_str(), schema.id.as_str(), json!({}));
                body["schedule"] = json!("* * * * *");
                let mut pipeline: Pipeline = NewPipeline::parse(&body)?.into_pipeline(PipelineId::generate(), Utc::now());
                pipeline.next_run_at = Some(stamp(due));
                crate::fixtures::create_pipeline(app, id, &pipeline).await?;
                made.push(pipeline.id);
            }
            Ok::<_, Error>(made)
        });
        let pipelines: Vec<PipelineId> = futures::future::try_join_all(streams).await?.into_iter().flatten().collect();
        let id = id.clone();
        Ok::<_, Error>(Tenant { id, pipelines })
    });
    futures::future::try_join_all(planting).await
}

/// Empties the run queue as the runs come, where a worker would take them: the fire path is
/// what is measured, not the runs. moto's every send and receive scans the whole queue (it
/// recounts its messages for the queue's attributes), so a queue left to fill, or drained by
/// receives that fall behind, makes each call slower than the last; SQS's cost does not grow so.
/// A purge is one call whatever the queue holds (`scripts/local-stack.sh` starts moto allowing a
/// purge at any rate); on a moto that refuses it, messages are received and deleted instead.
pub fn drain(app: &App) -> tokio::task::JoinHandle<()> {
    let queue = app.queue.clone();
    tokio::spawn(async move {
        loop {
            if queue.client().purge_queue().queue_url(queue.url()).send().await.is_err() {
                // Taken as the worker's event source mapping takes them, and handled by no one.
                let nobody = |_| async { Ok(aws_lambda_events::sqs::SqsBatchResponse::default()) };
                let _ = crate::runner::deliver(&queue, 10, 0, nobody).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Waits until every pipeline of the fleet has its run, at most `within`: whether they did. It
/// reads each tenant's runs-in-flight count (one BatchGetItem each; nothing ends them here), so
/// waiting does not load the table it measures. A run whose message was not sent counts: its
/// slot was fired, and the sweep sends it.
pub async fn fired(app: &App, fleet: &[Tenant], within: Duration) -> Result<bool, Error> {
    let total: usize = fleet.iter().map(|t| t.pipelines.len()).sum();
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut made = 0;
        for tenant in fleet {
            made += app.store().runs_in_flight(&tenant.id).await?.max(0) as usize;
        }
        if made >= total {
            return Ok(true);
        }
        if std::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every run of the fleet's pipelines, with its tenant's position in the fleet.
pub async fn runs(app: &App, fleet: &[Tenant]) -> Result<Vec<(usize, Run)>, Error> {
    let mut found = Vec::new();
    for (i, tenant) in fleet.iter().enumerate() {
        for chunk in tenant.pipelines.chunks(64) {
            let reads = chunk.iter().map(|p| app.store().list_runs(&tenant.id, p, 2));
            for runs in futures::future::try_join_all(reads).await? {
                found.extend(runs.into_iter().map(|r| (i, r)));
            }
        }
    }
    Ok(found)
}

/// How long after `from` each run was made, in seconds, per tenant of the fleet.
pub fn lags(runs: &[(usize, Run)], from: DateTime<Utc>, tenants: usize) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::new(); tenants];
    for (i, run) in runs {
        if let Ok(at) = DateTime::parse_from_rfc3339(&run.created_at) {
            out[*i].push((at.with_timezone(&Utc) - from).num_milliseconds() as f64 / 1000.0);
        }
    }
    for lags in &mut out {
        lags.sort_by(f64::total_cmp);
    }
    out
}
