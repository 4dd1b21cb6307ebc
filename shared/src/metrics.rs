//! Metrics in CloudWatch's Embedded Metric Format: each is one JSON log line, which CloudWatch
//! turns into metrics on its own, with no client, no call and no extra dependency at run time.
//!
//! | metric | unit | dimensions | written when |
//! |---|---|---|---|
//! | `RunsStarted` | Count | `Tenant` | a run's first attempt is claimed |
//! | `RunsCompleted`, `RunsFailed`, `RunsCancelled` | Count | `Tenant` | a run ends (`completed_with_errors` counts as completed) |
//! | `RowsIn`, `RowsOut`, `RunDuration` (ms) | Count, Milliseconds | `Tenant` | a run ends |
//! | `Requests`, `Latency` (ms) | Count, Milliseconds | `Route`, `Status` | an API request is answered |
//!
//! The lines go out through `tracing` under the target [`TARGET`]; [`crate::app::init_tracing`]
//! writes those raw to stdout (CloudWatch reads EMF only as a line of its own) and keeps them out
//! of the ordinary logs.

use serde_json::{json, Map, Value};

use crate::domain::run::RunStatus;
use crate::domain::tenant::TenantId;

/// The `tracing` target of metric lines.
pub const TARGET: &str = "emf";

/// The filter that lets only metric lines through (for the layer that writes them).
pub fn only() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::INFO)
}

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Pipelines";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF line: `metrics` (name, unit, value) under the one dimension set `dimensions`, at
/// `timestamp_ms` (Unix milliseconds).
pub fn line(dimensions: &[(&str, &str)], metrics: &[(&str, Unit, f64)], timestamp_ms: i64) -> String {
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let definitions: Vec<Value> = metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() })).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{ "Namespace": NAMESPACE, "Dimensions": [names], "Metrics": definitions }],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).into(), json!(value));
    }
    for (name, _, value) in metrics {
        root.insert((*name).into(), json!(value));
    }
    Value::Object(root).to_string()
}

fn emit(line: String) {
    tracing::info!(target: TARGET, "{line}");
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A run's first attempt began.
pub fn run_started(tenant: &TenantId) {
    emit(line(&[("Tenant", tenant.as_str())], &[("RunsStarted", Unit::Count, 1.0)], now_ms()));
}

/// A run ended so, with its counts.
pub fn run_finished(tenant: &TenantId, status: RunStatus, stats: Option<&Value>, duration_ms: u64) {
    let ended = match status {
        RunStatus::Completed | RunStatus::CompletedWithErrors => "RunsCompleted",
        RunStatus::Failed => "RunsFailed",
        RunStatus::Cancelled => "RunsCancelled",
        // Not an end: nothing to count.
        RunStatus::Pending | RunStatus::Running => return,
    };
    let count = |name: &str| stats.and_then(|s| s.get(name)).and_then(Value::as_f64).unwrap_or(0.0);
    let metrics = [
        (ended, Unit::Count, 1.0),
        ("RowsIn", Unit::Count, count("rowsIn")),
        ("RowsOut", Unit::Count, count("rowsOut")),
        ("RunDuration", Unit::Milliseconds, duration_ms as f64),
    ];
    emit(line(&[("Tenant", tenant.as_str())], &metrics, now_ms()));
}

/// An API request was answered.
pub fn request(route: &str, status: u16, latency_ms: f64) {
    let status = status.to_string();
    let metrics = [("Requests", Unit::Count, 1.0), ("Latency", Unit::Milliseconds, latency_ms)];
    emit(line(&[("Route", route), ("Status", &status)], &metrics, now_ms()));
}

/// Checks a line against the specification's rules (docs.aws.amazon.com, "Embedded metric format specification"):
/// a root `_aws` with an integer `Timestamp` and `CloudWatchMetrics`, each directive with a
/// `Namespace`, `Dimensions` (an array of arrays of at most 30 names, each a string member of
/// the root), and `Metrics` (at most 100, each with a `Name` that is a numeric member of the
/// root, and a valid `Unit`).
pub fn check(text: &str) -> Result<Value, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let aws = root.get("_aws").ok_or("no _aws")?;
    aws.get("Timestamp").and_then(Value::as_i64).ok_or("Timestamp is not an integer")?;
    let directives = aws.get("CloudWatchMetrics").and_then(Value::as_array).ok_or("no CloudWatchMetrics array")?;
    for d in directives {
        let namespace = d.get("Namespace").and_then(Value::as_str).ok_or("no Namespace")?;
        if namespace.is_empty() || namespace.len() > 1024 {
            return Err("bad Namespace".into());
        }
        for set in d.get("Dimensions").and_then(Value::as_array).ok_or("no Dimensions")? {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.len() > 30 {
                return Err("more than 30 dimensions".into());
            }
            for name in set {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                root.get(name).and_then(Value::as_str).ok_or(format!("dimension {name} is not a string member"))?;
            }
        }
        let metrics = d.get("Metrics").and_then(Value::as_array).ok_or("no Metrics")?;
        if metrics.len() > 100 {
            return Err("more than 100 metrics".into());
        }
        for m in metrics {
            let name = m.get("Name").and_then(Value::as_str).ok_or("a metric has no Name")?;
            root.get(name).and_then(Value::as_f64).ok_or(format!("metric {name} is not a number member"))?;
            let unit = m.get("Unit").and_then(Value::as_str).unwrap_or("None");
            if !["Count", "Milliseconds", "Seconds", "Bytes", "None"].contains(&unit) {
                return Err(format!("unit {unit}"));
            }
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let text =
            line(&[("Route", "GET /api/v1/pipelines"), ("Status", "200")], &[("Latency", Unit::Milliseconds, 4.5)], 1_767_571_200_000);
        let root = check(&text).unwrap();
        assert_eq!(root["Latency"], 4.5);
        assert_eq!(root["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Route", "Status"]]));
        assert!(check(
            r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["T"]], "Metrics": [{"Name": "M"}]}]}}"#
        )
        .is_err());
    }
}
