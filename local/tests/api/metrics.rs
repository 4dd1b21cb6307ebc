//! Metrics as CloudWatch's Embedded Metric Format (issue 10): every line the real layer writes
//! (`shared::app::MetricLines`, as in Lambda) passes the specification's checks, and a run and a
//! request produce the metrics the docs list, with their dimensions.

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};
use tracing_subscriber::prelude::*;

use crate::engine::{chain, connector, run_to_end, schema, settings};
use crate::support::*;

/// Every metric line of this test binary. A process-wide subscriber, not a thread's: tracing
/// caches whether a call site is wanted, and a site first reached on a thread without this one
/// would then stay silent here.
fn metric_lines() -> Arc<Mutex<Vec<String>>> {
    static LINES: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            let layer = shared::app::MetricLines::new(move |line| sink.lock().unwrap().push(line.to_string()));
            let _ =
                tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer.with_filter(shared::metrics::only())));
            lines
        })
        .clone()
}

#[tokio::test]
async fn a_run_and_its_requests_write_emf_lines() {
    let lines = metric_lines();

    let app = spawn_app().await;
    let conn = connector(&app, "inline", json!({"records": [{"x": 1}, {"x": 2}, {"x": 3}]})).await;
    let target = schema(&app, json!([{"name": "x", "type": "integer"}])).await;
    let pid = chain(&app, &conn, &target, vec![], json!({})).await;
    run_to_end(&app, &pid, &settings()).await;
    assert_error(&app.get("/pipelines/pipe_019ad0c0a0a07000800000000000c0c3").await, 404, "NOT_FOUND");

    let lines = lines.lock().unwrap().clone();
    let parsed: Vec<Value> = lines.iter().map(|l| shared::metrics::check(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let mine = |metric: &str| parsed.iter().find(|v| v.get(metric).is_some() && v["Tenant"] == app.tenant.as_str()).cloned();
    assert_eq!(mine("RunsStarted").map(|v| v["RunsStarted"].clone()), Some(json!(1.0)), "{lines:?}");
    let finished = mine("RunsCompleted").unwrap_or_else(|| panic!("no RunsCompleted: {lines:?}"));
    assert_eq!((finished["RowsIn"].as_f64(), finished["RowsOut"].as_f64()), (Some(3.0), Some(3.0)));
    assert!(finished["RunDuration"].as_f64().is_some_and(|d| d >= 0.0));
    assert_eq!(finished["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Pipelines");
    let request = |route: &str, status: &str| parsed.iter().any(|v| v["Route"] == route && v["Status"] == status && v["Requests"] == 1.0);
    assert!(request("POST /api/v1/pipelines/{id}/run", "201"), "{lines:?}");
    assert!(request("GET /api/v1/pipelines/{id}", "404"), "{lines:?}");
}
