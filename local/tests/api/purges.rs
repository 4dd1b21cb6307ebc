//! Nothing left behind: a deleted pipeline's runs (with their dead letters) and a deleted schema's
//! rows go in a purge the delete queues first, which the worker carries out, in messages of a
//! bounded size, and which does nothing when its delete did not happen.

use serde_json::json;
use shared::context::Stores;
use shared::domain::ids::{PipelineId, SchemaId};
use shared::settings::RunSettings;
use shared::worker::Outcome;

use crate::engine::{chain, connector, rows, run_to_end, schema, settings};
use crate::support::*;

/// Polls the worker until `done` holds (purges wait a few seconds in the queue).
async fn poll_until(app: &TestApp, settings: &RunSettings, mut done: impl AsyncFnMut() -> bool) {
    let engine = app.engine();
    for _ in 0..30 {
        if done().await {
            return;
        }
        local::runner::poll_once(&app.app, &engine, settings, 1).await.expect("poll");
    }
    panic!("the purge did not happen");
}

#[tokio::test]
async fn a_deleted_pipelines_runs_and_a_deleted_schemas_rows_are_purged() {
    let app = spawn_app().await;
    let mut records: Vec<_> = (1..=60).map(|i| json!({"id": i})).collect();
    records.push(json!({"id": "not a number"}));
    let conn = connector(&app, "inline", json!({"records": records})).await;
    let target = schema(&app, json!([{"name": "id", "type": "integer", "primaryKey": true}])).await;
    let pid = chain(&app, &conn, &target, vec![], json!({"errorHandling": "dead_letter"})).await;
    let runs = [run_to_end(&app, &pid, &settings()).await, run_to_end(&app, &pid, &settings()).await];
    let (tenant, pipeline) = (app.tenant_id(), PipelineId::parse(&pid).unwrap());
    assert_eq!(app.app.store().list_runs(&tenant, &pipeline, 10).await.unwrap().len(), 2);
    assert_eq!(rows(&app, &target).await.len(), 60);
    let letters: Vec<String> = runs.iter().map(|r| format!("T#{}#R#{}", app.tenant, r["id"].as_str().unwrap())).collect();
    for pk in &letters {
        assert_eq!(crate::engine::stored_records(&app, pk).await.len(), 1, "a dead letter per run");
    }

    // In use, the schema is not deleted; the purge its request queued finds it and does nothing.
    assert_error(&app.delete(&format!("/schemas?id={target}")).await, 409, "CONFLICT");
    assert_eq!(app.delete(&format!("/pipelines?id={pid}")).await.status, 204);
    poll_until(&app, &settings(), async || app.app.store().list_runs(&tenant, &pipeline, 10).await.unwrap().is_empty()).await;
    assert_eq!(rows(&app, &target).await.len(), 60, "the refused delete's purge kept the rows");
    for pk in &letters {
        assert!(crate::engine::stored_records(&app, pk).await.is_empty(), "the runs' dead letters went with them");
    }

    // Small purge messages, to see one send the rest on.
    let small = RunSettings { purge_batch: 25, ..settings() };
    let schema_id = SchemaId::parse(&target).unwrap();
    assert_eq!(app.delete(&format!("/schemas?id={target}")).await.status, 204);
    let pk = format!("T#{}#S#{schema_id}", app.tenant);
    poll_until(&app, &small, async || crate::engine::stored_records(&app, &pk).await.is_empty()).await;
}

#[tokio::test]
async fn a_purge_for_a_pipeline_that_exists_changes_nothing() {
    let app = spawn_app().await;
    let pipeline = app.create_pipeline(&app.example_body().await).await;
    let pid = pipeline["id"].as_str().unwrap();
    let rid = app.trigger(pid).await;
    let body = json!({"purge": {"kind": "runs", "tenantId": app.tenant, "pipelineId": pid}}).to_string();
    let outcome = shared::worker::process_message(&app.app, &BatchEngine::new(1, 0), &settings(), &body).await.unwrap();
    assert_eq!(outcome, Outcome::Ignored("the pipeline to purge still exists"));
    assert_eq!(app.run(pid, &rid).await["status"], "pending");
    // Another tenant's purge names its own tenant: it cannot reach this one's runs.
    let theirs = json!({"purge": {"kind": "runs", "tenantId": unique("t"), "pipelineId": pid}}).to_string();
    let outcome = shared::worker::process_message(&app.app, &BatchEngine::new(1, 0), &settings(), &theirs).await.unwrap();
    assert_eq!(outcome, Outcome::Purged { deleted: 0, done: true });
    assert_eq!(app.run(pid, &rid).await["status"], "pending");
}
