//! Per-tenant quotas: what one tenant may hold or do at once. Each is refused with 429, the
//! product's error and `Retry-After`, writes nothing, and gives room back when the tenant
//! deletes or finishes something; another tenant is never held by it.

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use shared::context::Stores;
use shared::domain::tenant::Role;

use crate::support::*;

fn quotas(f: impl FnOnce(&mut Quotas)) -> Quotas {
    let mut q = Quotas { requests_per_second: 100_000, ..Quotas::default() };
    f(&mut q);
    q
}

fn assert_quota(r: &Response, code: &str) {
    assert_error(r, 429, code);
    assert!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()).is_some_and(|v| v.parse::<u32>().is_ok()), "{:?}", r.headers);
}

fn scheduled(body: &Value, cron: &str) -> Value {
    let mut body = body.clone();
    body["schedule"] = json!(cron);
    body["status"] = json!("active");
    body
}

#[tokio::test]
async fn pipelines_past_the_quota_are_refused_until_one_is_deleted() {
    let app = spawn_app_with_quotas(quotas(|q| q.pipelines = 2)).await;
    let body = app.example_body().await;
    let first = app.create_pipeline(&body).await;
    app.create_pipeline(&body).await;
    let r = app.post("/pipelines", &body).await;
    assert_quota(&r, "QUOTA_EXCEEDED");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("2 pipelines"), "{}", r.body);
    assert_eq!(app.get("/pipelines").await.body["total"], 2, "nothing was written");
    // An idempotent create past the quota is refused too, and its key stays free.
    let keyed = app.send(app.req(Method::POST, "/pipelines").header("Idempotency-Key", "q-1").json(&body)).await;
    assert_quota(&keyed, "QUOTA_EXCEEDED");

    assert_eq!(app.delete(&format!("/pipelines?id={}", first["id"].as_str().unwrap())).await.status, 204);
    let again = app.send(app.req(Method::POST, "/pipelines").header("Idempotency-Key", "q-1").json(&body)).await;
    assert_eq!(again.status, 201, "{}", again.body);

    // Another tenant of the same deployment has its own quota.
    let other = unique("t");
    let key = app.key_for(&other, Role::Editor).await;
    let (conn, schema) = (
        app.send(app.req_as(&key, &other, Method::POST, "/connectors").json(&json!({"name": "c", "type": "inline", "config": {}}))).await,
        app.send(app.req_as(&key, &other, Method::POST, "/schemas").json(&json!({"name": "s", "fields": [{"name": "a", "type": "text"}]})))
            .await,
    );
    let theirs = example_pipeline(conn.body["id"].as_str().unwrap(), schema.body["id"].as_str().unwrap());
    assert_eq!(app.send(app.req_as(&key, &other, Method::POST, "/pipelines").json(&theirs)).await.status, 201);
}

#[tokio::test]
async fn frequent_schedules_are_counted_on_create_update_and_delete() {
    let app = spawn_app_with_quotas(quotas(|q| q.frequent_schedules = 1)).await;
    let body = app.example_body().await;
    let every_minute = app.create_pipeline(&scheduled(&body, "* * * * *")).await;
    assert_quota(&app.post("/pipelines", &scheduled(&body, "*/2 * * * *")).await, "QUOTA_EXCEEDED");
    // Working hours every minute is frequent; every minute of one hour a day is not.
    assert_quota(&app.post("/pipelines", &scheduled(&body, "* 9-17 * * 1-5")).await, "QUOTA_EXCEEDED");
    let daily = app.create_pipeline(&scheduled(&body, "* 2 * * *")).await;
    let draft = app.create_pipeline(&body).await;

    let (daily_id, every_id) = (daily["id"].as_str().unwrap(), every_minute["id"].as_str().unwrap());
    let to_frequent = json!({"id": daily_id, "schedule": "*/4 * * * *"});
    assert_eq!(app.put("/pipelines", &json!({"id": daily_id, "schedule": "*/6 * * * *"})).await.status, 200, "every 6 minutes is not");
    assert_quota(&app.put("/pipelines", &json!({"id": daily_id, "schedule": "*/4 * * * *"})).await, "QUOTA_EXCEEDED");
    assert_eq!(app.get(&format!("/pipelines/{daily_id}")).await.body["schedule"], "*/6 * * * *", "the refused update wrote nothing");

    // Moving the frequent one to daily gives its place back; deleting it too.
    assert_eq!(app.put("/pipelines", &json!({"id": every_id, "schedule": "0 2 * * *"})).await.status, 200);
    assert_eq!(app.put("/pipelines", &to_frequent).await.status, 200);
    assert_quota(&app.put("/pipelines", &json!({"id": every_id, "schedule": "* * * * *"})).await, "QUOTA_EXCEEDED");
    assert_eq!(app.delete(&format!("/pipelines?id={daily_id}")).await.status, 204);
    let r = app.put("/pipelines", &json!({"id": draft["id"], "schedule": "* * * * *"})).await;
    assert_eq!(r.status, 200, "a draft's schedule counts too: {}", r.body);
}

#[tokio::test]
async fn runs_in_flight_are_held_to_the_quota_across_pipelines() {
    let app = spawn_app_with_quotas(quotas(|q| q.runs_in_flight = 2)).await;
    let body = app.example_body().await;
    let a = app.create_pipeline(&body).await["id"].as_str().unwrap().to_string();
    let b = app.create_pipeline(&scheduled(&body, "* * * * *")).await["id"].as_str().unwrap().to_string();
    let first = app.trigger(&a).await;
    app.trigger(&a).await;
    let r = app.post(&format!("/pipelines/{b}/run"), &json!({})).await;
    assert_quota(&r, "QUOTA_EXCEEDED");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("2 runs"), "{}", r.body);
    assert_eq!(app.get(&format!("/pipelines/{b}/runs")).await.body.as_array().map(Vec::len), Some(0), "no run was written");

    // The scheduler skips a slot the tenant has no room for, rather than piling it up.
    let later = chrono::Utc::now() + chrono::Duration::minutes(2);
    let report = shared::scheduler::tick(&*app.app, &shared::settings::RunSettings::default(), later).await.unwrap();
    assert_eq!((report.fired, report.skipped), (0, 1), "{report:?}");

    // A cancelled run gives its place back.
    assert_eq!(app.post(&format!("/pipelines/{a}/runs/{first}/cancel"), &json!({})).await.status, 200);
    app.trigger(&b).await;
    assert_quota(&app.post(&format!("/pipelines/{b}/run"), &json!({})).await, "QUOTA_EXCEEDED");
    // So do a deleted pipeline's runs, with the pipeline.
    assert_eq!(app.delete(&format!("/pipelines?id={a}")).await.status, 204);
    app.trigger(&b).await;
    assert_quota(&app.post(&format!("/pipelines/{b}/run"), &json!({})).await, "QUOTA_EXCEEDED");
}

/// The runs-in-flight count is split over shards (`store/in_flight.rs`): concurrent triggers
/// still make exactly the quota's worth, wherever their ids land, and deleting pipelines gives
/// each shard back exactly what their runs held.
#[tokio::test]
async fn concurrent_triggers_fill_the_sharded_quota_exactly() {
    let app = spawn_app_with_quotas(quotas(|q| q.runs_in_flight = 20)).await;
    let body = app.example_body().await;
    let mut pipelines = Vec::new();
    for _ in 0..30 {
        pipelines.push(app.create_pipeline(&body).await["id"].as_str().unwrap().to_string());
    }
    let empty = json!({});
    let paths: Vec<String> = pipelines.iter().map(|p| format!("/pipelines/{p}/run")).collect();
    let triggers = join_all(paths.iter().map(|path| app.post(path, &empty))).await;
    let made: Vec<&String> = pipelines.iter().zip(&triggers).filter(|(_, r)| r.status == 201).map(|(p, _)| p).collect();
    assert_eq!(made.len(), 20, "{:?}", triggers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(triggers.iter().all(|r| r.status == 201 || r.status == 429));
    let tenant = app.tenant_id();
    assert_eq!(app.app.store().runs_in_flight(&tenant).await.unwrap(), 20);
    for p in made.iter().take(5) {
        assert_eq!(app.delete(&format!("/pipelines?id={p}")).await.status, 204);
    }
    assert_eq!(app.app.store().runs_in_flight(&tenant).await.unwrap(), 15, "each deleted pipeline gave its run's place back");
    let refused: Vec<&String> = paths.iter().zip(&triggers).filter(|(_, r)| r.status == 429).map(|(p, _)| p).collect();
    let again = join_all(refused.iter().map(|path| app.post(path, &empty))).await;
    assert_eq!(again.iter().filter(|r| r.status == 201).count(), 5, "exactly the five places given back");
}

#[tokio::test]
async fn api_keys_past_the_quota_are_refused() {
    // The tenant's first admin key counts.
    let app = spawn_app_with_quotas(quotas(|q| q.api_keys = 2)).await;
    let created = app.post("/api-keys", &json!({"name": "ci", "role": "editor"})).await;
    assert_eq!(created.status, 201);
    assert_quota(&app.post("/api-keys", &json!({"name": "one more", "role": "viewer"})).await, "QUOTA_EXCEEDED");
    assert_eq!(app.get("/api-keys").await.body["total"], 2);
    assert_eq!(app.delete(&format!("/api-keys?id={}", created.body["id"].as_str().unwrap())).await.status, 204);
    assert_eq!(app.post("/api-keys", &json!({"name": "one more", "role": "viewer"})).await.status, 201);
}

#[tokio::test]
async fn each_key_is_held_to_its_requests_per_second() {
    let app = spawn_app_with_quotas(quotas(|q| q.requests_per_second = 5)).await;
    let burst = join_all((0..30).map(|_| app.get("/pipelines"))).await;
    let statuses: Vec<u16> = burst.iter().map(|r| r.status).collect();
    let limited: Vec<&Response> = burst.iter().filter(|r| r.status == 429).collect();
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)), "{statuses:?}");
    // 30 requests within a second or two: at most 5 a second pass.
    assert!(limited.len() >= 20, "{statuses:?}");
    for r in limited {
        assert_error(r, 429, "RATE_LIMITED");
        assert_eq!(r.headers["retry-after"], "1");
    }
    // Another key of the tenant has its own window; a forged key is refused as ever.
    let other = app.key_for(&app.tenant, Role::Viewer).await;
    assert_eq!(app.send(app.req_as(&other, &app.tenant, Method::GET, "/pipelines")).await.status, 200);
    let forged = format!("{}x", &app.key[..app.key.len() - 1]);
    assert_error(&app.send(app.req_as(&forged, &app.tenant, Method::GET, "/pipelines")).await, 401, "UNAUTHORIZED");
    // The next second is a new window.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.get("/pipelines").await.status, 200);
}
