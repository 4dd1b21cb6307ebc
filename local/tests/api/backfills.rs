//! Backfills: one run per past slot of the schedule, a window at a time, each slot once (across
//! backfills and the schedule), idempotent, and cancelled as a whole.

use reqwest::Method;
use serde_json::{json, Value};
use shared::context::Stores;
use shared::domain::tenant::Role;
use shared::settings::RunSettings;

use crate::engine::{chain, connector, schema};
use crate::support::*;

fn quick() -> RunSettings {
    RunSettings { backfill_step_delay: std::time::Duration::from_secs(1), ..RunSettings::default() }
}

/// An hourly pipeline of two records with at most `window` runs at once.
async fn hourly(app: &TestApp, window: u32) -> String {
    let conn = connector(app, "inline", json!({"records": [{"x": 1}, {"x": 2}]})).await;
    let target = schema(app, json!([{"name": "x", "type": "integer"}])).await;
    let pid = chain(app, &conn, &target, vec![], json!({"maxConcurrentRuns": window, "overlap": "queue"})).await;
    let r = app.put("/pipelines", &json!({"id": pid, "schedule": "0 * * * *"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    pid
}

/// The pipeline's runs, oldest first.
async fn runs(app: &TestApp, pid: &str) -> Vec<Value> {
    let mut all = app.get(&format!("/pipelines/{pid}/runs?limit=100")).await.body.as_array().unwrap().clone();
    all.reverse();
    all
}

/// Lets the worker take messages until the backfill ends.
async fn drive(app: &TestApp, pid: &str, bid: &str) -> Value {
    let engine = app.engine();
    for _ in 0..120 {
        local::runner::poll_once(&app.app, &engine, &quick(), 1).await.expect("poll");
        let b = app.get(&format!("/pipelines/{pid}/backfills/{bid}")).await.body;
        let live = runs(app, pid).await.iter().filter(|r| matches!(r["status"].as_str(), Some("pending" | "running"))).count();
        if b["status"] != "running" && live == 0 {
            return b;
        }
    }
    panic!("backfill {bid} did not end");
}

#[tokio::test]
async fn a_backfill_runs_each_past_slot_once_a_window_at_a_time() {
    let app = spawn_app().await;
    // maxConcurrentRuns 3: a window of 2, one place left to the schedule.
    let pid = hourly(&app, 3).await;
    let range = json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T05:00:00Z"});
    let made = app.post(&format!("/pipelines/{pid}/backfill"), &range).await;
    assert_eq!(made.status, 202, "{}", made.body);
    assert_eq!(
        (made.body["slots"].as_u64(), made.body["status"].as_str(), made.body["created"].as_u64()),
        (Some(5), Some("running"), Some(0))
    );
    let bid = made.body["id"].as_str().unwrap().to_string();

    // The first step makes the window's two runs and no more.
    let engine = app.engine();
    local::runner::poll_once(&app.app, &engine, &quick(), 1).await.expect("poll");
    let first = runs(&app, &pid).await;
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(
        (first[0]["trigger"].as_str(), first[0]["scheduledFor"].as_str(), first[0]["backfillId"].as_str()),
        (Some("backfill"), Some("2026-11-01T00:00:00.000Z"), Some(bid.as_str()))
    );

    let done = drive(&app, &pid, &bid).await;
    assert_eq!(
        (done["status"].as_str(), done["created"].as_u64(), done["skipped"].as_u64()),
        (Some("completed"), Some(5), Some(0)),
        "{done}"
    );
    let all = runs(&app, &pid).await;
    let slots: Vec<&str> = all.iter().map(|r| r["scheduledFor"].as_str().unwrap()).collect();
    assert_eq!(slots, (0..5).map(|h| format!("2026-11-01T0{h}:00:00.000Z")).collect::<Vec<_>>());
    assert!(all.iter().all(|r| r["status"] == "completed"), "{all:?}");
    assert_eq!(done["runIds"].as_array().unwrap().len(), 5);

    // An overlapping backfill skips the slots that have runs and fills the others.
    let more =
        app.post(&format!("/pipelines/{pid}/backfill"), &json!({"from": "2026-11-01T03:00:00Z", "to": "2026-11-01T07:00:00Z"})).await;
    let second = drive(&app, &pid, more.body["id"].as_str().unwrap()).await;
    assert_eq!((second["created"].as_u64(), second["skipped"].as_u64()), (Some(2), Some(2)), "{second}");
    assert_eq!(runs(&app, &pid).await.len(), 7);
    // The pipeline's count of active runs is back to 0: every run was counted out once.
    let runs_pk = format!("T#{}#P#{pid}", app.tenant);
    assert_eq!(crate::chaos::number(&app, runs_pk, "SLOTS", "active").await, 0);
}

#[tokio::test]
async fn a_backfill_is_idempotent_and_refuses_what_it_cannot_run() {
    let app = spawn_app().await;
    let pid = hourly(&app, 1).await;
    let url = format!("/pipelines/{pid}/backfill");
    let range = json!({"from": "2026-11-02T00:00:00Z", "to": "2026-11-02T03:00:00Z"});
    let keyed = || app.req(Method::POST, &url).header("Idempotency-Key", "bf-1").json(&range);
    let (a, b) = (app.send(keyed()).await, app.send(keyed()).await);
    assert_eq!((a.status, b.status, &a.body["id"]), (202, 202, &b.body["id"]), "{} {}", a.body, b.body);
    assert_eq!(b.headers["idempotent-replayed"], "true");

    let refused = |body: Value, field: &'static str| {
        let app = &app;
        let url = url.clone();
        async move {
            let r = app.post(&url, &body).await;
            assert_error(&r, 400, "BAD_REQUEST");
            assert_eq!(detail_fields(&r.body), [field], "{}", r.body);
        }
    };
    refused(json!({"from": "2026-11-02T00:00:00Z", "to": "2099-01-01T00:00:00Z"}), "to").await;
    refused(json!({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}), "to").await;
    refused(json!({"from": "2026-11-02T03:00:00Z", "to": "2026-11-02T00:00:00Z"}), "to").await;
    refused(json!({"from": "2026-11-02T00:10:00Z", "to": "2026-11-02T00:50:00Z"}), "from").await;
    refused(json!({"from": "last week", "to": "2026-11-02T00:00:00Z"}), "from").await;
    refused(json!({"from": "2026-11-02T00:00:00Z", "to": "2026-11-02T03:00:00Z", "dryRun": true}), "dryRun").await;

    let unscheduled = app.put("/pipelines", &json!({"id": pid, "schedule": null})).await;
    assert_eq!(unscheduled.status, 200);
    assert_error(&app.post(&url, &range).await, 409, "CONFLICT");

    // Viewers read a backfill but may not make or cancel one; other tenants see nothing.
    let bid = a.body["id"].as_str().unwrap();
    let viewer = app.key_for(&app.tenant, Role::Viewer).await;
    assert_eq!(app.send(app.req_as(&viewer, &app.tenant, Method::GET, &format!("/pipelines/{pid}/backfills/{bid}"))).await.status, 200);
    assert_error(&app.send(app.req_as(&viewer, &app.tenant, Method::POST, &url).json(&range)).await, 403, "FORBIDDEN");
    let other = spawn_app().await;
    assert_error(&other.get(&format!("/pipelines/{pid}/backfills/{bid}")).await, 404, "NOT_FOUND");
    assert_error(&other.post(&format!("/pipelines/{pid}/backfills/{bid}/cancel"), &json!({})).await, 404, "NOT_FOUND");
    assert_error(&app.get(&format!("/pipelines/{pid}/backfills/bf_nope")).await, 404, "NOT_FOUND");
}

#[tokio::test]
async fn a_cancelled_backfill_stops_its_runs_and_makes_no_more() {
    let app = spawn_app().await;
    let pid = hourly(&app, 1).await;
    let made =
        app.post(&format!("/pipelines/{pid}/backfill"), &json!({"from": "2026-11-03T00:00:00Z", "to": "2026-11-03T04:00:00Z"})).await;
    let bid = made.body["id"].as_str().unwrap().to_string();
    // The first step makes one run (the window); the worker has not taken it yet.
    let step = app.queued().await;
    assert_eq!(step.len(), 1, "{step:?}");
    shared::backfill::step(
        &*app.app,
        &app.tenant_id(),
        &serde_json::from_value(step[0]["backfill"].clone()).unwrap(),
        quick().backfill_step_delay,
    )
    .await
    .expect("step");
    assert_eq!(runs(&app, &pid).await.len(), 1);

    let cancelled = app.post(&format!("/pipelines/{pid}/backfills/{bid}/cancel"), &json!({})).await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str(), cancelled.body["cancelledRuns"].as_u64()),
        (200, Some("cancelled"), Some(1)),
        "{}",
        cancelled.body
    );
    assert_eq!(runs(&app, &pid).await[0]["status"], "cancelled");
    // Whatever is still queued for it does nothing; cancelling again answers the same.
    let engine = app.engine();
    for _ in 0..4 {
        local::runner::poll_once(&app.app, &engine, &quick(), 1).await.expect("poll");
    }
    assert_eq!(runs(&app, &pid).await.len(), 1);
    assert_eq!(app.post(&format!("/pipelines/{pid}/backfills/{bid}/cancel"), &json!({})).await.status, 200);

    // A step that made a run and died before saving it: the cancel finds the run by its slot's
    // marker and stops it too.
    let crashed =
        app.post(&format!("/pipelines/{pid}/backfill"), &json!({"from": "2026-11-05T00:00:00Z", "to": "2026-11-05T03:00:00Z"})).await;
    let crashed_id = shared::domain::ids::BackfillId::parse(crashed.body["id"].as_str().unwrap()).unwrap();
    let stored = app.app.store().get::<shared::domain::pipeline::Pipeline>(&app.tenant_id(), &pid).await.unwrap().unwrap();
    let orphan = shared::trigger::trigger_backfill(&*app.app, &app.tenant_id(), &stored, &crashed_id, "2026-11-05T00:00:00.000Z", 1)
        .await
        .expect("a run of the first slot");
    let stopped = app.post(&format!("/pipelines/{pid}/backfills/{crashed_id}/cancel"), &json!({})).await;
    assert_eq!((stopped.status, stopped.body["cancelledRuns"].as_u64()), (200, Some(1)), "{}", stopped.body);
    assert_eq!(app.run(&pid, orphan.id.as_str()).await["status"], "cancelled");

    // A completed backfill cannot be cancelled.
    let one = app.post(&format!("/pipelines/{pid}/backfill"), &json!({"from": "2026-11-04T00:00:00Z", "to": "2026-11-04T01:00:00Z"})).await;
    let one_id = one.body["id"].as_str().unwrap().to_string();
    assert_eq!(drive(&app, &pid, &one_id).await["status"], "completed");
    assert_error(&app.post(&format!("/pipelines/{pid}/backfills/{one_id}/cancel"), &json!({})).await, 409, "CONFLICT");
}

#[tokio::test]
async fn the_schedule_skips_a_slot_a_backfill_already_ran() {
    let app = spawn_isolated_app().await;
    let pid = hourly(&app, 5).await;
    let pipeline = app.get(&format!("/pipelines/{pid}")).await.body;
    let slot = pipeline["nextRunAt"].as_str().unwrap().to_string();
    // A backfill took the slot while the scheduler was behind (its run made as a backfill's is).
    let stored = app.app.store().get::<shared::domain::pipeline::Pipeline>(&app.tenant_id(), &pid).await.unwrap().expect("pipeline");
    let backfill = shared::domain::ids::BackfillId::generate();
    shared::trigger::trigger_backfill(&*app.app, &app.tenant_id(), &stored, &backfill, &slot, 5).await.expect("backfill run");

    let at = chrono::DateTime::parse_from_rfc3339(&slot).unwrap().with_timezone(&chrono::Utc) + chrono::Duration::seconds(1);
    let report = shared::scheduler::tick(&*app.app, &RunSettings::default(), at).await.expect("tick");
    assert_eq!((report.fired, report.skipped), (0, 1), "{report:?}");
    assert_eq!(runs(&app, &pid).await.len(), 1);
    assert_ne!(app.get(&format!("/pipelines/{pid}")).await.body["nextRunAt"], json!(slot), "the schedule moved on");
}
