//! What AWS does around the worker and the scheduler, locally: an SQS event source mapping that
//! polls the run queue into the worker (deleting what it handled, leaving what it reported as
//! failed to be redelivered), and an EventBridge rule that ticks the scheduler every minute, with
//! the tick queue's mapping running its shard workers.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::app::worker_batch;
use shared::context::{App, Queues};
use shared::engine::job::Engine;
use shared::queue::RunQueue;
use shared::settings::RunSettings;

/// Receives up to 10 messages (long poll), runs them through the worker as one batch, and
/// deletes those that did not fail. Returns how many messages were received.
pub async fn poll_once(app: &App, engine: &dyn Engine, settings: &RunSettings, wait_seconds: i32) -> Result<usize, shared::app::Error> {
    deliver(&app.queue, 10, wait_seconds, |event| async move { Ok(worker_batch(app, engine, settings, event).await) }).await
}

/// One poll of `queue` as an SQS event source mapping does it: up to `batch` messages into `handle`
/// as one event, then the deletion of every message it did not report failed. Returns how many
/// messages were received.
pub(crate) async fn deliver<F, Fut>(queue: &RunQueue, batch: i32, wait_seconds: i32, handle: F) -> Result<usize, shared::app::Error>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = Result<SqsBatchResponse, shared::app::Error>>,
{
    let sqs = queue.client();
    let out = sqs.receive_message().queue_url(queue.url()).max_number_of_messages(batch).wait_time_seconds(wait_seconds).send().await?;
    let messages = out.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    for m in &messages {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        event.records.push(record);
    }
    let response = handle(event).await?;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    for m in &messages {
        if !failed.contains(&m.message_id().unwrap_or_default()) {
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message().queue_url(queue.url()).receipt_handle(handle).send().await?;
            }
        }
    }
    Ok(messages.len())
}

/// One poll of the tick queue into the scheduler, as its event source mapping would (one shard
/// message per invocation, so shard workers run side by side).
pub async fn poll_ticks_once<A: Queues>(
    app: &A,
    ticks: &RunQueue,
    settings: &RunSettings,
    wait_seconds: i32,
) -> Result<usize, shared::app::Error> {
    deliver(ticks, 1, wait_seconds, |event| async move {
        let value = serde_json::to_value(event)?;
        Ok(serde_json::from_value(shared::app::scheduler_event(app, ticks, settings, value).await?)?)
    })
    .await
}

/// The worker, forever: as Lambda's event source mapping would drive it.
pub fn spawn_worker(app: Arc<App>, engine: Arc<dyn Engine>, settings: RunSettings) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = poll_once(&app, engine.as_ref(), &settings, 5).await {
                tracing::warn!(cause = %e, "polling the run queue failed");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    });
}

/// The scheduler, as in AWS: a tick at the start of every minute, as the `rate(1 minute)` rule
/// would, fanning out over the tick queue, with its shard workers ([`spawn_shard_workers`]).
pub fn spawn_scheduler(app: Arc<App>, ticks: RunQueue, settings: RunSettings) {
    spawn_shard_workers(app.clone(), ticks.clone(), settings.clone());
    tokio::spawn(async move {
        loop {
            let now = chrono::Utc::now();
            let into_minute = now.timestamp_millis().rem_euclid(60_000) as u64;
            tokio::time::sleep(Duration::from_millis(60_000 - into_minute + 50)).await;
            if let Err(e) = shared::scheduler::fan_out(&*app, &ticks, &settings, chrono::Utc::now()).await {
                tracing::warn!(cause = %e, "scheduler tick failed");
            }
        }
    });
}

/// One poller per shard worker on the tick queue, as its event source mapping would run that
/// many invocations at once. They poll short and rest a second when the queue is empty: moto
/// serves a long poll by looping, and dozens of them would take its CPU from the fire path.
pub fn spawn_shard_workers(app: Arc<App>, ticks: RunQueue, settings: RunSettings) -> Vec<tokio::task::JoinHandle<()>> {
    (0..settings.fanout.workers)
        .map(|_| {
            let (app, ticks, settings) = (app.clone(), ticks.clone(), settings.clone());
            tokio::spawn(async move {
                loop {
                    match poll_ticks_once(&*app, &ticks, &settings, 0).await {
                        Ok(0) => tokio::time::sleep(Duration::from_secs(1)).await,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(cause = %e, "polling the tick queue failed");
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                    }
                }
            })
        })
        .collect()
}
