//! The local stack: Pipelines on a laptop, through the same handlers and routes as in AWS.
//!
//! - [`stack`]: SDK clients for DynamoDB Local and moto, and the table and queues of
//!   `template.yaml`, created when missing.
//! - [`gateway`]: an HTTP server that does what API Gateway does: matches the route, runs the
//!   authorizer, builds the API Gateway v2 event and calls the function's handler.
//! - [`runner`]: the SQS event source mapping (queue to worker) and the EventBridge tick
//!   (scheduler), as loops.
//! - [`fixtures`]: the orders pipeline the benchmarks run.
//! - [`fleet`]: many tenants' every-minute schedules, due at once, for the scheduler's scale
//!   test and benchmark.
//! - [`writes`]: DynamoDB writes counted per item, for the hot-item benchmark.
//! - [`requests`]: an SDK request's operation and body, as the interceptors of the tests and of
//!   [`writes`] read it.

pub mod fixtures;
pub mod fleet;
pub mod gateway;
pub mod requests;
pub mod runner;
pub mod stack;
pub mod writes;
