//! Pipelines: the shared crate every Lambda function uses.
//!
//! - [`domain`]: the model and its rules (values exist only when valid).
//! - [`store`]: DynamoDB single-table storage (key design and access patterns in its docs).
//! - [`queue`]: the run queue (SQS).
//! - [`auth`]: API keys to callers.
//! - [`context`]: what each kind of function holds (clients, configuration), built at init.
//! - [`http`]: routes, one handler per endpoint, and the one mapping of errors to HTTP.
//! - [`idempotency`]: `Idempotency-Key` replays.
//! - [`trigger`], [`scheduler`], `worker`: a run's way from trigger to its end.
//! - `engine`: what a run does with records.
//! - [`app`]: the Lambda entrypoints.
//!
//! `engine` and `worker` exist only with the `engine` feature, which the worker, the two API
//! functions that read sources (`preview-pipeline`, `test-connector`) and the local stack turn
//! on. Every other function's `main` reaches none of it, so its binary links none of it.

pub mod app;
pub mod auth;
pub mod backfill;
pub mod context;
pub mod domain;
#[cfg(feature = "engine")]
pub mod engine;
pub mod error;
#[cfg(feature = "engine")]
pub mod events;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod queue;
pub mod scheduler;
pub mod settings;
pub mod store;
pub mod trigger;
#[cfg(feature = "engine")]
pub mod worker;
