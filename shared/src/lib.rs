//! Pipelines: the shared crate every Lambda function uses.
//!
//! - [`domain`]: the model and its rules (values exist only when valid).
//! - [`store`]: DynamoDB single-table storage (key design and access patterns in its docs).
//! - [`queue`]: the run queue (SQS).
//! - [`auth`]: API keys to callers; the authorizer's verdict.
//! - [`http`]: routes, handlers and the one mapping of errors to HTTP.
//! - [`idempotency`]: `Idempotency-Key` replays.
//! - [`trigger`], [`worker`], [`scheduler`]: a run's way from trigger to its end.
//! - [`engine`]: what a run does with records.
//! - [`app`]: what a function needs at start (clients, configuration) and its entrypoints.

pub mod app;
pub mod auth;
pub mod domain;
pub mod engine;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod queue;
pub mod scheduler;
pub mod store;
pub mod trigger;
pub mod worker;
