//! The run queue (SQS): a trigger's message to the worker.

use aws_sdk_sqs::Client;

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
        let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
        self.client.send_message().queue_url(&self.url).message_body(body).send().await.map(|_| ()).map_err(|e| {
            use aws_sdk_sqs::error::ProvideErrorMetadata;
            QueueError(e.code().unwrap_or("unreachable").to_string())
        })
    }
}
