//! The domain: values that exist only when valid (built through `parse`), and the rules that
//! decide what a request may change.

pub mod api_key;
pub mod backfill;
pub mod connector;
pub mod graph;
pub mod ids;
pub mod input;
pub mod pipeline;
pub mod preview;
pub mod purge;
pub mod report;
pub mod run;
pub mod schedule;
pub mod schema;
pub mod secrets;
pub mod source_access;
pub mod tenant;
pub mod webhook;

/// Now, as the product writes timestamps: RFC 3339, UTC, milliseconds (`2026-01-15T09:00:00.000Z`).
/// Fixed width, so that stored timestamps sort as strings (sort keys, lease comparisons).
pub fn now() -> String {
    stamp(chrono::Utc::now())
}

pub fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
