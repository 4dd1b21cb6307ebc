//! Delivering a run's end to its pipeline's webhook: one POST per message, signed, through the
//! address guard; a failure logs the attempt and queues the next after its backoff, until
//! [`MAX_ATTEMPTS`]. A run whose log already holds a success is not posted again (a duplicate
//! message), so a receiver sees one success per run, and deduplicates retries on `id`.

use std::time::{Duration, Instant};

use super::{App, Outcome, WorkerError};
use crate::context::{Sources, Stores};
use crate::domain::ids::PipelineId;
use crate::domain::pipeline::Pipeline;
use crate::domain::run::Run;
use crate::domain::tenant::TenantId;
use crate::domain::webhook::{backoff, sign, Delivery, DeliveryAttempt, WebhookMessage, MAX_ATTEMPTS, SIGNATURE_HEADER};
use crate::domain::{now, stamp};
use crate::engine::source::{guarded_client, SourceError};
use crate::settings::RunSettings;

/// A receiver gets this long to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The body every delivery of `run` carries: the `Run Finished` event as EventBridge has it.
pub fn payload(tenant: &TenantId, run: &Run) -> serde_json::Value {
    serde_json::json!({
        "id": run.id,
        "source": crate::events::SOURCE,
        "detailType": crate::events::RUN_FINISHED,
        "time": run.completed_at,
        "detail": crate::events::run_finished_detail(tenant, run),
    })
}

/// Queues the first delivery of an ended run when its pipeline has a webhook now (the current
/// pipeline's, not the version the run ran), once: the run's `webhookQueued` is claimed first,
/// so the announces of one end (a redelivered message, a cancel's announce) start one chain.
pub(super) async fn queue_first(app: &App, tenant: &TenantId, pipeline: &PipelineId, run: &Run) -> Result<(), WorkerError> {
    if run.webhook_queued {
        return Ok(());
    }
    let Some(current) = app.store().get::<Pipeline>(tenant, pipeline.as_str()).await? else { return Ok(()) };
    if current.notifications.is_none() || !app.store().claim_webhook(tenant, pipeline, &run.id).await? {
        return Ok(());
    }
    let first = Delivery { tenant_id: tenant.to_string(), pipeline_id: pipeline.clone(), run_id: run.id.clone(), attempt: 1 };
    if let Err(e) = app.queue.send_delayed(&WebhookMessage { webhook: first }, 0).await {
        // Given back, so that the message's redelivery queues it.
        app.store().release_webhook(tenant, pipeline, &run.id).await?;
        return Err(e.into());
    }
    Ok(())
}

pub(super) async fn deliver(app: &App, settings: &RunSettings, delivery: &Delivery) -> Result<Outcome, WorkerError> {
    let tenant = TenantId::parse(&delivery.tenant_id).map_err(WorkerError::Malformed)?;
    let Some(pipeline) = app.store().get::<Pipeline>(&tenant, delivery.pipeline_id.as_str()).await? else {
        return Ok(Outcome::Ignored("pipeline no longer exists"));
    };
    let Some(hook) = &pipeline.notifications else { return Ok(Outcome::Ignored("the pipeline has no webhook now")) };
    let Some(run) = app.store().get_run(&tenant, &pipeline.id, &delivery.run_id).await? else {
        return Ok(Outcome::Ignored("run no longer exists"));
    };
    if !run.status.is_finished() || run.deliveries.iter().any(|d| d.ok) {
        return Ok(Outcome::Ignored("nothing to deliver"));
    }
    let body = payload(&tenant, &run).to_string();
    let started = Instant::now();
    let answer = post(app, &hook.webhook_url, &sign(&hook.secret, chrono::Utc::now().timestamp(), &body), delivery, &body).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    // A refused address stays refused: it is not tried again.
    let retry = !matches!(answer, Err(SourceError::Blocked(_))) && delivery.attempt < MAX_ATTEMPTS;
    let (status, error) = match answer {
        Ok(status) if (200..300).contains(&status) => (Some(status), None),
        Ok(status) => (Some(status), Some(format!("the receiver answered {status}"))),
        Err(e) => (None, Some(e.to_string())),
    };
    let ok = error.is_none();
    let wait = backoff(delivery.attempt + 1, settings.webhook_retry_base);
    let retry_at = (!ok && retry).then(|| stamp(chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()));
    let logged = DeliveryAttempt { attempt: delivery.attempt, at: now(), status, ok, error, duration_ms, retry_at: retry_at.clone() };
    app.store().log_delivery(&tenant, &pipeline.id, &run.id, &logged).await?;
    if retry_at.is_some() {
        let next = Delivery { attempt: delivery.attempt + 1, ..delivery.clone() };
        app.queue.send_delayed(&WebhookMessage { webhook: next }, wait.as_secs().max(1) as i32).await?;
    }
    tracing::info!(run_id = %run.id, attempt = delivery.attempt, ok, ?status, "webhook delivery");
    Ok(Outcome::Delivered { ok, attempt: delivery.attempt })
}

/// The POST; the receiver's status, or why there was none.
async fn post(app: &App, url: &str, signature: &str, delivery: &Delivery, body: &str) -> Result<u16, SourceError> {
    let (client, url) = guarded_client(url, app.sources()).await?;
    let request = client
        .post(url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header("x-pipelines-event-id", delivery.run_id.as_str())
        .header("x-pipelines-attempt", delivery.attempt.to_string())
        .body(body.to_string())
        .timeout(TIMEOUT);
    match request.send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) if e.is_timeout() => Err(SourceError::Failed(format!("the receiver gave no answer within {} s", TIMEOUT.as_secs()))),
        Err(e) if e.is_connect() => Err(SourceError::Failed("the receiver could not be reached".into())),
        Err(_) => Err(SourceError::Failed("the request failed".into())),
    }
}
