//! The run queue (SQS): a trigger's message to the worker, and purges of what deletes leave.

use aws_sdk_sqs::Client;

use crate::domain::purge::{Purge, PurgeMessage, PURGE_DELAY_SECONDS};
use crate::domain::run::RunMessage;

#[derive(Debug, thiserror::Error)]
#[error("could not send to the run queue: {0}")]
pub struct QueueError(String);

#[derive(Clone, Debug)]
pub struct RunQueue {
    client: Client,
    url: String,
}

impl RunQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn send(&self, message: &RunMessage) -> Result<(), QueueError> {
        self.send_body(message, 0).await
    }

    /// Queues a purge, after [`PURGE_DELAY_SECONDS`] (`delayed`) or at once (a purge sending on
    /// its rest).
    pub async fn send_purge(&self, purge: Purge, delayed: bool) -> Result<(), QueueError> {
        self.send_body(&PurgeMessage { purge }, if delayed { PURGE_DELAY_SECONDS } else { 0 }).await
    }

    /// Asks the worker to announce `run`'s end (events, webhook), best effort: a failed send is
    /// logged, and the run's end stands.
    pub async fn announce(&self, tenant: &crate::domain::tenant::TenantId, run: &crate::domain::run::Run) {
        let message = crate::domain::run::AnnounceMessage { announce: RunMessage::new(tenant, run) };
        if let Err(e) = self.send_body(&message, 0).await {
            tracing::warn!(run_id = %run.id, cause = %e, "the run's end was not queued for announcing");
        }
    }

    /// Any message the worker reads (a backfill's next step), invisible for `delay_seconds`.
    pub async fn send_delayed(&self, message: &impl serde::Serialize, delay_seconds: i32) -> Result<(), QueueError> {
        self.send_body(message, delay_seconds).await
    }

    /// Sends `messages` in `SendMessageBatch` calls of 10; returns the positions of those not sent
    /// (an entry refused, or a call that failed), for the caller to leave to a sweep or retry.
    pub async fn send_batch(&self, messages: &[impl serde::Serialize]) -> Vec<usize> {
        let mut unsent = Vec::new();
        for (chunk, batch) in messages.chunks(10).enumerate() {
            let first = chunk * 10;
            let mut entries = Vec::with_capacity(batch.len());
            for (i, message) in batch.iter().enumerate() {
                let entry = serde_json::to_string(message).ok().and_then(|body| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body).build().ok()
                });
                match entry {
                    Some(entry) => entries.push(entry),
                    None => unsent.push(first + i),
                }
            }
            match self.client.send_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await {
                Ok(out) => unsent.extend(out.failed.iter().filter_map(|f| f.id.parse::<usize>().ok()).map(|i| first + i)),
                Err(e) => {
                    tracing::warn!(cause = %e, "a SendMessageBatch call failed");
                    let refused: Vec<usize> = unsent.iter().copied().filter(|i| *i >= first).collect();
                    unsent.extend((first..first + batch.len()).filter(|i| !refused.contains(i)));
                }
            }
        }
        unsent
    }

    async fn send_body(&self, message: &impl serde::Serialize, delay_seconds: i32) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
        let send = self.client.send_message().queue_url(&self.url).message_body(body);
        let send = if delay_seconds > 0 { send.delay_seconds(delay_seconds) } else { send };
        send.send().await.map(|_| ()).map_err(|e| {
            use aws_sdk_sqs::error::ProvideErrorMetadata;
            QueueError(e.code().unwrap_or("unreachable").to_string())
        })
    }
}
