//! Runs through the worker and the scheduler, over the real queue and table.

use shared::context::Stores;
use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use shared::domain::ids::{PipelineId, RunId};
use shared::domain::run::RunMessage;
use shared::scheduler::tick;
use shared::worker::{process_message, Outcome, RunSettings};

use crate::support::*;

fn settings(lease_ms: i64, max_attempts: u32) -> RunSettings {
    RunSettings { lease: Duration::milliseconds(lease_ms), max_attempts, ..RunSettings::default() }
}

fn message(app: &TestApp, pipeline: &str, run: &str) -> String {
    json!({"tenantId": app.tenant, "pipelineId": pipeline, "runId": run}).to_string()
}

async fn pipeline(app: &TestApp, config: Value) -> String {
    let mut body = app.example_body().await;
    body["executionConfig"] = config;
    app.create_pipeline(&body).await["id"].as_str().unwrap().to_string()
}

async fn poll(app: &TestApp, engine: &dyn shared::engine::job::Engine, settings: &RunSettings) -> usize {
    local::runner::poll_once(&app.app, engine, settings, 1).await.expect("poll")
}

#[tokio::test]
async fn a_run_goes_pending_running_completed_and_duplicates_change_nothing() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({})).await;
    let rid = app.trigger(&pid).await;
    let s = settings(5_000, 3);
    assert_eq!(poll(&app, &BatchEngine::new(2, 10), &s).await, 1);

    let run = app.run(&pid, &rid).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!((run["attempt"].as_u64(), run["trigger"].as_str(), run["rowsIn"].as_u64()), (Some(1), Some("manual"), Some(2)));
    assert!(run["startedAt"].is_string() && run["completedAt"].is_string() && run["durationMs"].is_u64(), "{run}");
    assert!(run.get("leaseUntil").is_none());
    let stages: Vec<&str> = run["log"].as_array().unwrap().iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["start", "finish"]);
    let p = app.get(&format!("/pipelines/{pid}")).await.body;
    assert_eq!((p["lastRunStatus"].as_str(), p["lastRunAt"].clone()), (Some("completed"), run["createdAt"].clone()));

    // The queue is drained; a duplicate delivery (at least once) finds the run ended.
    assert!(app.queued().await.is_empty());
    app.send_raw(&message(&app, &pid, &rid)).await;
    assert_eq!(poll(&app, &BatchEngine::new(2, 10), &s).await, 1);
    assert_eq!(app.run(&pid, &rid).await, run);
    assert!(app.queued().await.is_empty(), "the duplicate was acknowledged");
}

#[tokio::test]
async fn out_of_order_missing_and_malformed_messages() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({})).await;
    let s = settings(5_000, 3);
    let engine = BatchEngine::new(1, 0);
    // A run or pipeline that does not exist: acknowledged, not retried.
    let ghost_run = message(&app, &pid, RunId::generate().as_str());
    assert_eq!(process_message(&app.app, &engine, &s, &ghost_run).await.unwrap(), Outcome::Ignored("run no longer exists"));
    let ghost_pipe = message(&app, PipelineId::generate().as_str(), RunId::generate().as_str());
    assert_eq!(process_message(&app.app, &engine, &s, &ghost_pipe).await.unwrap(), Outcome::Ignored("pipeline no longer exists"));
    // A poison message is reported as a failure of its own: its neighbours are not redelivered.
    let rid = app.trigger(&pid).await;
    app.send_raw("{not json").await;
    app.send_raw(&ghost_run).await;
    let mut handled = 0;
    for _ in 0..5 {
        handled += poll(&app, &engine, &s).await;
        if handled >= 4 {
            break;
        }
    }
    assert_eq!(app.run(&pid, &rid).await["status"], "completed");
    let event = serde_json::from_value(json!({"Records": [
        {"messageId": "bad", "body": "{not json"},
        {"messageId": "good", "body": ghost_run},
    ]}))
    .unwrap();
    let response = shared::app::worker_batch(&app.app, &engine, &s, event).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["bad"]);
}

#[tokio::test]
async fn unsupported_connectors_and_bad_graphs_fail_clearly() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({})).await;
    let rid = app.trigger(&pid).await;
    assert_eq!(poll(&app, &app.engine(), &settings(5_000, 3)).await, 1);
    let run = app.run(&pid, &rid).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["code"], "UNSUPPORTED_CONNECTOR");
    assert!(run["error"]["message"].as_str().unwrap().contains("'snowflake'"), "{run}");

    // A graph without a target.
    app.put("/pipelines", &json!({"id": pid, "nodes": [{"id": "s", "nodeType": "source"}]})).await;
    let rid = app.trigger(&pid).await;
    assert_eq!(poll(&app, &BatchEngine::new(1, 0), &settings(5_000, 3)).await, 1);
    let run = app.run(&pid, &rid).await;
    assert_eq!((run["status"].as_str(), run["error"]["code"].as_str()), (Some("failed"), Some("INVALID_GRAPH")));
    assert_eq!(app.get(&format!("/pipelines/{pid}")).await.body["lastRunStatus"], "failed");
}

/// A worker killed mid-run leaves the run `running` with a lease; after the lease runs out a
/// redelivery takes it over with the next attempt.
#[tokio::test]
async fn a_killed_worker_is_taken_over_after_its_lease() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({})).await;
    let rid = app.trigger(&pid).await;
    let body = message(&app, &pid, &rid);
    let s = settings(600, 3);

    let started = Arc::new(tokio::sync::Notify::new());
    let doomed = {
        let (app, body, s, started) = (app.app.clone(), body.clone(), s.clone(), started.clone());
        tokio::spawn(async move { process_message(&app, &HangingEngine(started), &s, &body).await })
    };
    started.notified().await;
    doomed.abort(); // the Lambda timed out
    assert_eq!(app.run(&pid, &rid).await["status"], "running");

    // Redelivered while the lease is live: another worker holds it, nothing changes.
    assert_eq!(
        process_message(&app.app, &BatchEngine::new(1, 0), &s, &body).await.unwrap(),
        Outcome::Ignored("run is held by a live worker")
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let outcome = process_message(&app.app, &BatchEngine::new(2, 0), &s, &body).await.unwrap();
    assert_eq!(outcome, Outcome::Finished(shared::domain::run::RunStatus::Completed));
    let run = app.run(&pid, &rid).await;
    assert_eq!((run["status"].as_str(), run["attempt"].as_u64()), (Some("completed"), Some(2)));
    assert!(run["log"].to_string().contains("took over"), "{run}");
}

#[tokio::test]
async fn runs_whose_workers_keep_dying_fail_after_the_last_attempt() {
    let app = spawn_isolated_app().await;
    let pid = pipeline(&app, json!({})).await;
    let s = settings(300, 2);
    let kill = |body: String| {
        let (app, s) = (app.app.clone(), s.clone());
        async move {
            let started = Arc::new(tokio::sync::Notify::new());
            let task = {
                let started = started.clone();
                tokio::spawn(async move { process_message(&app, &HangingEngine(started), &s, &body).await })
            };
            started.notified().await;
            task.abort();
            tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        }
    };
    // Redelivery finds the last attempt's lease expired: failed.
    let rid = app.trigger(&pid).await;
    let body = message(&app, &pid, &rid);
    kill(body.clone()).await;
    kill(body.clone()).await;
    assert_eq!(
        process_message(&app.app, &BatchEngine::new(1, 0), &s, &body).await.unwrap(),
        Outcome::Finished(shared::domain::run::RunStatus::Failed)
    );
    let run = app.run(&pid, &rid).await;
    assert_eq!(
        (run["status"].as_str(), run["error"]["code"].as_str(), run["attempt"].as_u64()),
        (Some("failed"), Some("ATTEMPTS_EXHAUSTED"), Some(2))
    );

    // No redelivery at all: the scheduler's sweep fails it.
    let rid = app.trigger(&pid).await;
    let body = message(&app, &pid, &rid);
    kill(body.clone()).await;
    kill(body).await;
    let report = tick(&app.app, &s, Utc::now()).await.unwrap();
    assert!(report.failed >= 1, "{report:?}");
    assert_eq!(app.run(&pid, &rid).await["error"]["code"], "ATTEMPTS_EXHAUSTED");
    // A lease that expired with attempts left is sent again by the sweep.
    let rid = app.trigger(&pid).await;
    let _ = app.queued().await;
    kill(message(&app, &pid, &rid)).await;
    let before = tick(&app.app, &s, Utc::now()).await.unwrap();
    assert!(before.resent >= 1, "{before:?}");
    let resent: Vec<Value> = app.queued().await;
    assert!(resent.iter().any(|m| m["runId"] == rid.as_str()), "{resent:?}");
}

#[tokio::test]
async fn cancel_pending_at_once_and_running_at_a_batch_boundary() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({})).await;
    let s = settings(5_000, 3);

    let rid = app.trigger(&pid).await;
    let r = app.post(&format!("/pipelines/{pid}/runs/{rid}/cancel"), &json!({})).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("cancelled")));
    assert_error(&app.post(&format!("/pipelines/{pid}/runs/{rid}/cancel"), &json!({})).await, 409, "CONFLICT");
    // Its message still arrives, beside the one that asks to announce its end: nothing runs.
    assert_eq!(poll(&app, &BatchEngine::new(1, 0), &s).await, 2);
    assert_eq!(app.run(&pid, &rid).await["status"], "cancelled");

    let rid = app.trigger(&pid).await;
    let engine = Arc::new(BatchEngine::new(1000, 20));
    let worker = {
        let (app, engine, s) = (app.app.clone(), engine.clone(), s.clone());
        tokio::spawn(async move { local::runner::poll_once(&app, engine.as_ref(), &s, 1).await })
    };
    engine.started.notified().await;
    let r = app.post(&format!("/pipelines/{pid}/runs/{rid}/cancel"), &json!({})).await;
    assert_eq!((r.status, r.body["status"].as_str(), r.body["cancelRequested"].as_bool()), (202, Some("running"), Some(true)));
    worker.await.unwrap().unwrap();
    let run = app.run(&pid, &rid).await;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(app.get(&format!("/pipelines/{pid}")).await.body["lastRunStatus"], "cancelled");

    let missing = RunId::generate();
    assert_error(&app.post(&format!("/pipelines/{pid}/runs/{missing}/cancel"), &json!({})).await, 404, "NOT_FOUND");
    assert_error(&app.get(&format!("/pipelines/{pid}/runs/{missing}")).await, 404, "NOT_FOUND");
}

/// The run was written but its message never sent (the trigger died in between): the sweep
/// sends it once it has been pending too long, and it then runs.
#[tokio::test]
async fn a_lost_send_is_recovered_by_the_sweep() {
    let app = spawn_isolated_app().await;
    let pid = pipeline(&app, json!({})).await;
    let mut run =
        shared::domain::run::Run::new(PipelineId::parse(&pid).unwrap(), shared::domain::run::Trigger::Manual, &shared::domain::now());
    app.app.store().create_run(&app.tenant_id(), &mut run, None, 100, None, None).await.unwrap();
    let s = settings(5_000, 3);
    assert_eq!(tick(&app.app, &s, Utc::now()).await.unwrap().resent, 0, "not pending long enough yet");
    let report = tick(&app.app, &s, Utc::now() + Duration::seconds(121)).await.unwrap();
    assert_eq!(report.resent, 1);
    assert_eq!(poll(&app, &BatchEngine::new(1, 0), &s).await, 1);
    assert_eq!(app.run(&pid, run.id.as_str()).await["status"], "completed");
    let _ = RunMessage::new(&app.tenant_id(), &run);
}

#[tokio::test]
async fn schedules_fire_once_per_slot_even_with_overlapping_ticks_and_downtime() {
    let app = spawn_isolated_app().await;
    let mut body = app.example_body().await;
    body["schedule"] = json!("* * * * *");
    let p = app.create_pipeline(&body).await;
    let pid = p["id"].as_str().unwrap().to_string();
    let next = p["nextRunAt"].as_str().unwrap().to_string();
    assert!(next > shared::domain::now());
    let s = settings(5_000, 3);

    // Two ticks at once, ten minutes after the slot (downtime): one run.
    let later = Utc::now() + Duration::minutes(10);
    let (a, b) = tokio::join!(tick(&app.app, &s, later), tick(&app.app, &s, later));
    assert_eq!(a.unwrap().fired + b.unwrap().fired, 1);
    let runs = app.get(&format!("/pipelines/{pid}/runs")).await.body;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!((runs[0]["trigger"].as_str(), runs[0]["scheduledFor"].as_str()), (Some("schedule"), Some(next.as_str())));
    let moved = app.get(&format!("/pipelines/{pid}")).await.body["nextRunAt"].as_str().unwrap().to_string();
    assert!(moved > shared::domain::stamp(later), "{moved}");
    assert_eq!(tick(&app.app, &s, later).await.unwrap().fired, 0);

    // Paused and draft pipelines do not fire; resuming recomputes the slot.
    let r = app.put("/pipelines", &json!({"id": pid, "status": "paused"})).await;
    assert_eq!(r.body["nextRunAt"], Value::Null);
    assert_eq!(tick(&app.app, &s, Utc::now() + Duration::days(1)).await.unwrap().fired, 0);
    let r = app.put("/pipelines", &json!({"id": pid, "status": "active"})).await;
    assert!(r.body["nextRunAt"].as_str().unwrap() > shared::domain::now().as_str());
    assert_eq!(app.put("/pipelines", &json!({"id": pid, "status": "draft"})).await.body["nextRunAt"], Value::Null);
}

/// A daily 02:30 Paris schedule, ticked just after each slot across both 2027 transitions:
/// one run a day, at 02:30 local time or, on the day 02:30 does not exist, right after the gap.
#[tokio::test]
async fn schedules_follow_daylight_saving_time() {
    let app = spawn_isolated_app().await;
    let mut body = app.example_body().await;
    body["schedule"] = json!("30 2 * * *");
    body["timezone"] = json!("Europe/Paris");
    let pid = app.create_pipeline(&body).await["id"].as_str().unwrap().to_string();
    let s = settings(5_000, 3);
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().with_utc_timezone();
    // Jump to the day before the spring transition (fires once for everything missed).
    assert_eq!(tick(&app.app, &s, at("2027-03-27T12:00:00Z")).await.unwrap().fired, 1);
    let mut fired = vec![];
    for _ in 0..3 {
        let next = app.get(&format!("/pipelines/{pid}")).await.body["nextRunAt"].as_str().unwrap().to_string();
        fired.push(next.clone());
        assert_eq!(tick(&app.app, &s, at(&next) + Duration::seconds(5)).await.unwrap().fired, 1);
    }
    assert_eq!(fired, ["2027-03-28T01:00:00.000Z", "2027-03-29T00:30:00.000Z", "2027-03-30T00:30:00.000Z"]);

    assert_eq!(tick(&app.app, &s, at("2027-10-30T12:00:00Z")).await.unwrap().fired, 1);
    let mut fired = vec![];
    for _ in 0..2 {
        let next = app.get(&format!("/pipelines/{pid}")).await.body["nextRunAt"].as_str().unwrap().to_string();
        fired.push(next.clone());
        assert_eq!(tick(&app.app, &s, at(&next) + Duration::seconds(5)).await.unwrap().fired, 1);
    }
    assert_eq!(fired, ["2027-10-31T00:30:00.000Z", "2027-11-01T01:30:00.000Z"]);
}

trait UtcExt {
    fn with_utc_timezone(self) -> chrono::DateTime<Utc>;
}

impl UtcExt for chrono::DateTime<chrono::FixedOffset> {
    fn with_utc_timezone(self) -> chrono::DateTime<Utc> {
        self.with_timezone(&Utc)
    }
}

#[tokio::test]
async fn max_concurrent_runs_queue_waits_for_a_free_slot() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({"maxConcurrentRuns": 1})).await;
    let s = settings(5_000, 3);
    let (first, second) = (app.trigger(&pid).await, app.trigger(&pid).await);

    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let engine = Arc::new(BatchEngine { gate: Some(gate.clone()), ..BatchEngine::new(1, 0) });
    let running = {
        let (app, engine, s, body) = (app.app.clone(), engine.clone(), s.clone(), message(&app, &pid, &first));
        tokio::spawn(async move { process_message(&app, engine.as_ref(), &s, &body).await })
    };
    engine.started.notified().await;
    // The second waits: acknowledged, still pending.
    assert_eq!(process_message(&app.app, &BatchEngine::new(1, 0), &s, &message(&app, &pid, &second)).await.unwrap(), Outcome::Waiting);
    assert_eq!(app.run(&pid, &second).await["status"], "pending");
    gate.add_permits(1);
    running.await.unwrap().unwrap();
    // The finished run woke the waiting one.
    let woken: Vec<Value> = app.queued().await;
    assert!(woken.iter().any(|m| m["runId"] == second.as_str()), "{woken:?}");
    assert_eq!(
        process_message(&app.app, &BatchEngine::new(1, 0), &s, &message(&app, &pid, &second)).await.unwrap(),
        Outcome::Finished(shared::domain::run::RunStatus::Completed)
    );
}

#[tokio::test]
async fn max_concurrent_runs_skip_refuses_triggers_and_skips_slots() {
    let app = spawn_isolated_app().await;
    let mut body = app.example_body().await;
    body["executionConfig"] = json!({"maxConcurrentRuns": 1, "overlap": "skip"});
    body["schedule"] = json!("* * * * *");
    let pid = app.create_pipeline(&body).await["id"].as_str().unwrap().to_string();
    let rid = app.trigger(&pid).await;
    let r = app.post(&format!("/pipelines/{pid}/run"), &json!({})).await;
    assert_error(&r, 409, "CONFLICT");
    let report = tick(&app.app, &settings(5_000, 3), Utc::now() + Duration::minutes(2)).await.unwrap();
    assert_eq!((report.fired, report.skipped), (0, 1));
    assert_eq!(app.get(&format!("/pipelines/{pid}/runs")).await.body.as_array().unwrap().len(), 1);
    // Once the run ends, triggers are accepted again.
    app.post(&format!("/pipelines/{pid}/runs/{rid}/cancel"), &json!({})).await;
    app.trigger(&pid).await;
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_response() {
    let app = spawn_app().await;
    let body = app.example_body().await;
    let post = |key: &str, body: &Value| app.send(app.req(reqwest::Method::POST, "/pipelines").header("Idempotency-Key", key).json(body));
    let first = post("create-1", &body).await;
    assert_eq!(first.status, 201);
    let replay = post("create-1", &body).await;
    assert_eq!((replay.status, &replay.body), (201, &first.body));
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(app.get("/pipelines").await.body["total"], 1);
    let mut other = body.clone();
    other["name"] = json!("Something else");
    assert_error(&post("create-1", &other).await, 422, "UNPROCESSABLE_ENTITY");
    // A failed request leaves the key free for a corrected retry.
    let mut bad = body.clone();
    bad["name"] = json!("");
    assert_eq!(post("create-2", &bad).await.status, 400);
    assert_eq!(post("create-2", &body).await.status, 201);
    assert_error(&post("has space", &body).await, 400, "BAD_REQUEST");

    // Keys are per tenant.
    let b = spawn_app().await;
    let b_body = b.example_body().await;
    let r = b.send(b.req(reqwest::Method::POST, "/pipelines").header("Idempotency-Key", "create-1").json(&b_body)).await;
    assert_eq!(r.status, 201);
    assert_ne!(r.body["id"], first.body["id"]);

    // Triggers: one run however often the client retries; the record expires after 24 hours.
    let pid = first.body["id"].as_str().unwrap();
    let trigger =
        || app.send(app.req(reqwest::Method::POST, &format!("/pipelines/{pid}/run")).header("Idempotency-Key", "nightly-2026-11-29"));
    let (r1, r2) = (trigger().await, trigger().await);
    assert_eq!((r1.status, r2.status), (201, 201));
    assert_eq!(r1.body["id"], r2.body["id"]);
    assert_eq!(app.get(&format!("/pipelines/{pid}/runs")).await.body.as_array().unwrap().len(), 1);
    let stored = app
        .app
        .store()
        .client()
        .get_item()
        .table_name(app.app.store().table())
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(format!("T#{}", app.tenant)))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S("IDEM#nightly-2026-11-29".into()))
        .send()
        .await
        .unwrap();
    let expires: i64 = stored.item().unwrap()["expiresAt"].as_n().unwrap().parse().unwrap();
    let in_a_day = (Utc::now() + Duration::hours(24)).timestamp();
    assert!((in_a_day - 60..=in_a_day).contains(&expires), "{expires} vs {in_a_day}");
}

#[tokio::test]
async fn duplicate_creates_sent_at_once_make_one_pipeline() {
    let app = spawn_app().await;
    let body = app.example_body().await;
    let create = || app.send(app.req(reqwest::Method::POST, "/pipelines").header("Idempotency-Key", "burst").json(&body));
    let answers = futures::future::join_all((0..4).map(|_| create())).await;
    assert!(
        answers.iter().all(|r| r.status == 201 && r.body["id"] == answers[0].body["id"]),
        "{:?}",
        answers.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    // The replay is the first response as it was, the connector's and schema's names included.
    assert!(answers.iter().all(|r| r.body == answers[0].body));
    assert_eq!(app.get("/pipelines").await.body["total"], 1);
}

#[tokio::test]
async fn a_trigger_saves_its_reply_with_its_run() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({"maxConcurrentRuns": 1, "overlap": "skip"})).await;
    let other = pipeline(&app, json!({})).await;
    let trigger = |pid: String, key: &'static str| {
        let req = app.req(reqwest::Method::POST, &format!("/pipelines/{pid}/run")).header("Idempotency-Key", key);
        app.send(req)
    };
    // Duplicates sent at once: one run, and every answer is its 201 (none a 409).
    let answers = futures::future::join_all((0..4).map(|_| trigger(pid.clone(), "burst"))).await;
    assert!(answers.iter().all(|r| r.status == 201), "{:?}", answers.iter().map(|r| (r.status, &r.body)).collect::<Vec<_>>());
    assert!(answers.iter().all(|r| r.body["id"] == answers[0].body["id"]));
    assert_eq!(answers.iter().filter(|r| r.headers.get("idempotent-replayed").is_some()).count(), 3);
    assert_eq!(app.get(&format!("/pipelines/{pid}/runs")).await.body.as_array().unwrap().len(), 1);
    // The same key on another pipeline is another request.
    assert_error(&trigger(other.clone(), "burst").await, 422, "UNPROCESSABLE_ENTITY");
    // A refused trigger (at capacity) saves nothing: the key is free for a retry that can run.
    assert_eq!(trigger(pid.clone(), "later").await.status, 409);
    let rid = answers[0].body["id"].as_str().unwrap();
    app.post(&format!("/pipelines/{pid}/runs/{rid}/cancel"), &json!({})).await;
    let retried = trigger(pid.clone(), "later").await;
    assert_eq!(retried.status, 201);
    assert!(retried.headers.get("idempotent-replayed").is_none());
    assert_ne!(retried.body["id"], answers[0].body["id"]);
}

#[tokio::test]
async fn runs_list_filters_by_status_and_pages_with_a_cursor_header() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({})).await;
    let mut ids = vec![];
    for _ in 0..5 {
        ids.push(app.trigger(&pid).await);
    }
    for id in &ids[1..3] {
        app.post(&format!("/pipelines/{pid}/runs/{id}/cancel"), &json!({})).await;
    }
    let r = app.get(&format!("/pipelines/{pid}/runs?status=cancelled")).await;
    let cancelled: Vec<&str> = r.body.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(cancelled, [ids[2].as_str(), ids[1].as_str()]);
    assert_error(&app.get(&format!("/pipelines/{pid}/runs?status=done")).await, 400, "BAD_REQUEST");

    let mut seen = vec![];
    let mut path = format!("/pipelines/{pid}/runs?limit=2");
    loop {
        let r = app.get(&path).await;
        seen.extend(r.body.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match r.headers.get("x-next-cursor") {
            Some(c) => {
                path = format!("/pipelines/{pid}/runs?limit=2&cursor={}", form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>())
            }
            None => break,
        }
    }
    assert_eq!(seen, ids.iter().rev().cloned().collect::<Vec<_>>());
}

/// A message no worker can read is reported failed on every delivery, and SQS's redrive policy
/// moves it to the dead-letter queue (here after 2 receives, with no visibility delay).
#[tokio::test]
async fn poison_messages_end_in_the_dead_letter_queue() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let probe = spawn_app().await;
    let sqs = probe.sqs.clone();
    let name = unique("poison");
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url.unwrap();
    let attrs = sqs.get_queue_attributes().queue_url(&dlq).attribute_names(QueueAttributeName::QueueArn).send().await.unwrap();
    let arn = attrs.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "0")
        .attributes(QueueAttributeName::RedrivePolicy, json!({"deadLetterTargetArn": arn, "maxReceiveCount": "2"}).to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let app = spawn_app_with_queue(&queue).await;
    app.send_raw("{not a run message").await;
    let s = settings(5_000, 3);
    for _ in 0..4 {
        poll(&app, &BatchEngine::new(1, 0), &s).await;
    }
    let out = sqs.receive_message().queue_url(&dlq).wait_time_seconds(1).send().await.unwrap();
    let bodies: Vec<&str> = out.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, ["{not a run message"]);
}

/// A batch that takes several leases long (a slow write, a big truncate, a source slow to open)
/// keeps its lease: a background task renews it, so no redelivery takes the run over.
#[tokio::test]
async fn a_slow_batch_keeps_its_lease_alive_in_the_background() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({})).await;
    let rid = app.trigger(&pid).await;
    let body = message(&app, &pid, &rid);
    let s = settings(1_500, 3);
    let slow = {
        let (app, body, s) = (app.app.clone(), body.clone(), s.clone());
        tokio::spawn(async move { process_message(&app, &BatchEngine::new(1, 4_000), &s, &body).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(3_000)).await;
    // Twice the lease without a batch boundary, and the run is still held.
    assert_eq!(
        process_message(&app.app, &BatchEngine::new(1, 0), &s, &body).await.unwrap(),
        Outcome::Ignored("run is held by a live worker")
    );
    assert_eq!(slow.await.unwrap().unwrap(), Outcome::Finished(shared::domain::run::RunStatus::Completed));
    assert_eq!(app.run(&pid, &rid).await["attempt"], 1);
}

/// A pipeline deleted while its runs stayed behind (a delete cut short): the next message or
/// sweep for such a run removes what is left, so nothing is resent forever (issue "hostile input").
#[tokio::test]
async fn the_worker_removes_the_runs_of_a_pipeline_that_is_gone() {
    let app = spawn_app().await;
    let pid = pipeline(&app, json!({})).await;
    let rid = app.trigger(&pid).await;
    let (tenant, pipeline_id) = (app.tenant_id(), PipelineId::parse(&pid).unwrap());
    let run_id = RunId::parse(&rid).unwrap();
    // Only the pipeline item goes, as when a delete dies before removing the runs.
    let store = app.app.store();
    store
        .client()
        .delete_item()
        .table_name(store.table())
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(format!("T#{}", app.tenant)))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S(format!("PIPE#{pid}")))
        .send()
        .await
        .unwrap();
    assert!(store.get_run(&tenant, &pipeline_id, &run_id).await.unwrap().is_some());
    poll(&app, &BatchEngine::new(1, 0), &settings(5_000, 3)).await;
    assert!(store.get_run(&tenant, &pipeline_id, &run_id).await.unwrap().is_none(), "the orphan run is gone");
    assert!(store.list_runs(&tenant, &pipeline_id, 10).await.unwrap().is_empty());
}

/// `executionConfig.timeoutSeconds` ends a run that outlasts it as failed with `TIMED_OUT`,
/// counted from its start, across continuations (issue 10).
#[tokio::test]
async fn a_run_past_its_timeout_fails_timed_out_across_continuations() {
    let app = spawn_app().await;
    let records: Vec<Value> = (1..=60).map(|i| json!({"id": i})).collect();
    let conn = crate::engine::connector(&app, "inline", json!({"records": records})).await;
    let target = crate::engine::schema(&app, json!([{"name": "id", "type": "integer", "primaryKey": true}])).await;
    let pid = crate::engine::chain(&app, &conn, &target, vec![], json!({"timeoutSeconds": 1, "batchSize": 1})).await;
    assert_eq!(app.get(&format!("/pipelines/{pid}")).await.body["executionConfig"]["timeoutSeconds"], 1);
    // A continuation after every batch (no time budget): 60 invocations outlast a second.
    let s = RunSettings { time_budget: std::time::Duration::ZERO, ..settings(5_000, 3) };
    let engine = app.engine();
    let rid = app.trigger(&pid).await;
    for _ in 0..200 {
        poll(&app, &engine, &s).await;
        if app.run(&pid, &rid).await["status"] == "failed" {
            break;
        }
    }
    let run = app.run(&pid, &rid).await;
    assert_eq!((run["status"].as_str(), run["error"]["code"].as_str()), (Some("failed"), Some("TIMED_OUT")), "{run}");
    assert!(run["log"].to_string().contains("continuing in a follow-up"), "it was continued before it timed out: {run}");

    // Within its timeout the same run completes; the limit is checked on input.
    assert_eq!(app.put("/pipelines", &json!({"id": pid, "executionConfig": {"timeoutSeconds": 600}})).await.status, 200);
    let rid = app.trigger(&pid).await;
    for _ in 0..200 {
        poll(&app, &engine, &s).await;
        if app.run(&pid, &rid).await["status"] == "completed" {
            break;
        }
    }
    assert_eq!(app.run(&pid, &rid).await["status"], "completed");
    let r = app.put("/pipelines", &json!({"id": pid, "executionConfig": {"timeoutSeconds": 0}})).await;
    assert_eq!(detail_fields(&r.body), ["executionConfig.timeoutSeconds"]);
}
