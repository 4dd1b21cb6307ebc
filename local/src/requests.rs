//! What an AWS SDK request asks, as an interceptor sees it before it is sent: the service and
//! operation the JSON protocol names in `X-Amz-Target` (`DynamoDB_20120810.PutItem`,
//! `AmazonSQS.SendMessageBatch`), and the JSON body. The tests that count round trips, record
//! grants or throttle a table, and the write counter, all read requests through this.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `DynamoDB_20120810`, `AmazonSQS`; empty for a protocol without the header (S3).
    pub service: String,
    pub operation: String,
    /// The body as JSON; `Null` when it is not JSON or is streamed.
    pub body: Value,
}

impl Request {
    pub fn read(context: &BeforeTransmitInterceptorContextRef<'_>) -> Self {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let (service, operation) = target.split_once('.').unwrap_or(("", target));
        let body = request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
        Self { service: service.to_string(), operation: operation.to_string(), body }
    }
}
