//! Black-box tests of the API through the local gateway, against DynamoDB Local and moto.

mod auth;
mod backfills;
mod calls;
mod catalog;
mod chaos;
mod contract;
mod engine;
mod events;
mod faults;
mod grants;
mod lifecycle;
mod metrics;
mod partitions;
mod pipelines;
mod preview;
mod proxy;
mod purges;
mod quotas;
mod runs;
mod scheduling;
mod secrets;
mod support;
mod versions;
mod webhooks;
