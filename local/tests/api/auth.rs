use reqwest::Method;
use serde_json::json;
use shared::context::Stores;
use shared::domain::tenant::Role;

use crate::support::*;

#[tokio::test]
async fn missing_unknown_malformed_and_revoked_keys_are_401() {
    let app = spawn_app().await;
    let r = app.send(app.http.get(format!("{}/pipelines", app.base)).header("X-Tenant-Id", &app.tenant)).await;
    assert_error(&r, 401, "UNAUTHORIZED");
    let parts: Vec<&str> = app.key.split('.').collect();
    let unknown_id = format!("pl.{}.{}.{}", parts[1], shared::domain::ids::ApiKeyId::generate(), parts[3]);
    // Right tenant and key id, wrong secret.
    let forged = format!("pl.{}.{}.{}", parts[1], parts[2], "0".repeat(64));
    for key in ["nonsense", "pl.x.y.z", &unknown_id, &forged] {
        assert_error(&app.send(app.req_as(key, &app.tenant, Method::GET, "/pipelines")).await, 401, "UNAUTHORIZED");
    }

    // Revocation takes effect at once.
    let r = app.post("/api-keys", &json!({"name": "temp", "role": "viewer"})).await;
    assert_eq!(r.status, 201);
    let (key, id) = (r.body["key"].as_str().unwrap().to_string(), r.body["id"].as_str().unwrap().to_string());
    assert_eq!(app.send(app.req_as(&key, &app.tenant, Method::GET, "/pipelines")).await.status, 200);
    assert_eq!(app.delete(&format!("/api-keys?id={id}")).await.status, 204);
    assert_error(&app.send(app.req_as(&key, &app.tenant, Method::GET, "/pipelines")).await, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn tenant_header_missing_is_400_and_foreign_is_403() {
    let app = spawn_app().await;
    let r = app.send(app.http.get(format!("{}/pipelines", app.base)).bearer_auth(&app.key)).await;
    assert_error(&r, 400, "BAD_REQUEST");
    let other = unique("t");
    assert_error(&app.send(app.req_as(&app.key, &other, Method::GET, "/pipelines")).await, 403, "FORBIDDEN");
    assert_error(&app.send(app.req_as(&app.key, "not a tenant!", Method::GET, "/pipelines")).await, 400, "BAD_REQUEST");
}

#[tokio::test]
async fn roles_decide_reads_writes_and_key_management() {
    let app = spawn_app().await;
    let viewer = app.key_for(&app.tenant, Role::Viewer).await;
    let editor = app.key_for(&app.tenant, Role::Editor).await;
    let created = app.create_pipeline(&app.example_body().await).await;
    let id = created["id"].as_str().unwrap();
    let as_ = |key: &str, m: Method, path: &str| app.req_as(key, &app.tenant, m, path);

    // Reads: every role.
    for key in [&viewer, &editor, &app.key] {
        for path in
            ["/pipelines".to_string(), format!("/pipelines/{id}"), format!("/pipelines/{id}/runs"), "/connectors".into(), "/schemas".into()]
        {
            assert_eq!(app.send(as_(key, Method::GET, &path)).await.status, 200, "{path}");
        }
    }
    // Writes: not the viewer.
    let body = app.example_body().await;
    assert_error(&app.send(as_(&viewer, Method::POST, "/pipelines").json(&body)).await, 403, "FORBIDDEN");
    assert_error(&app.send(as_(&viewer, Method::PUT, "/pipelines").json(&json!({"id": id, "name": "x"}))).await, 403, "FORBIDDEN");
    assert_error(&app.send(as_(&viewer, Method::DELETE, &format!("/pipelines?id={id}"))).await, 403, "FORBIDDEN");
    assert_error(&app.send(as_(&viewer, Method::POST, &format!("/pipelines/{id}/run"))).await, 403, "FORBIDDEN");
    assert_error(&app.send(as_(&viewer, Method::POST, "/connectors").json(&json!({"name": "c", "type": "http"}))).await, 403, "FORBIDDEN");
    assert_eq!(app.send(as_(&editor, Method::POST, "/pipelines").json(&body)).await.status, 201);
    assert_eq!(app.send(as_(&editor, Method::POST, &format!("/pipelines/{id}/run"))).await.status, 201);
    assert_eq!(app.send(as_(&editor, Method::PUT, "/pipelines").json(&json!({"id": id, "name": "x"}))).await.status, 200);

    // API keys: admin only.
    for key in [&viewer, &editor] {
        assert_error(&app.send(as_(key, Method::GET, "/api-keys")).await, 403, "FORBIDDEN");
        assert_error(&app.send(as_(key, Method::POST, "/api-keys").json(&json!({"name": "k", "role": "admin"}))).await, 403, "FORBIDDEN");
    }
    assert_eq!(app.get("/api-keys").await.status, 200);
}

#[tokio::test]
async fn api_keys_show_their_secret_once_and_never_in_lists() {
    let app = spawn_app().await;
    let r = app.post("/api-keys", &json!({"name": "ci", "role": "editor"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["key"].as_str().unwrap();
    assert_eq!((r.body["name"].as_str(), r.body["role"].as_str()), (Some("ci"), Some("editor")));

    let list = app.get("/api-keys").await;
    assert_eq!(list.body["total"], 2);
    let text = list.body.to_string();
    assert!(!text.contains(key.rsplit('.').next().unwrap()), "a secret leaked: {text}");
    assert!(list.body["data"].as_array().unwrap().iter().all(|k| k.get("key").is_none() && k.get("secretHash").is_none()));

    assert_eq!(detail_fields(&app.post("/api-keys", &json!({"name": "x", "role": "root"})).await.body), ["role"]);
    assert_eq!(detail_fields(&app.post("/api-keys", &json!({"role": "viewer"})).await.body), ["name"]);
    let missing = shared::domain::ids::ApiKeyId::generate();
    assert_error(&app.delete(&format!("/api-keys?id={missing}")).await, 404, "NOT_FOUND");
}

/// Another tenant's resources answer exactly like missing ones.
#[tokio::test]
async fn tenants_never_see_each_other() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    let pipeline = a.create_pipeline(&a.example_body().await).await;
    let (pid, cid, sid) =
        (pipeline["id"].as_str().unwrap(), pipeline["connector"]["id"].as_str().unwrap(), pipeline["schema"]["id"].as_str().unwrap());
    a.post(&format!("/pipelines/{pid}/run"), &json!({})).await;

    for path in [format!("/pipelines/{pid}"), format!("/pipelines/{pid}/runs"), format!("/connectors/{cid}"), format!("/schemas/{sid}")] {
        let r = b.get(&path).await;
        assert_error(&r, 404, "NOT_FOUND");
    }
    for path in ["/pipelines", "/connectors", "/schemas"] {
        let r = b.get(path).await;
        assert_eq!((r.body["total"].as_u64(), r.body["data"].as_array().map(Vec::len)), (Some(0), Some(0)), "{path}");
    }
    assert_error(&b.put("/pipelines", &json!({"id": pid, "name": "stolen"})).await, 404, "NOT_FOUND");
    assert_error(&b.delete(&format!("/pipelines?id={pid}")).await, 404, "NOT_FOUND");
    assert_error(&b.post(&format!("/pipelines/{pid}/run"), &json!({})).await, 404, "NOT_FOUND");
    assert_error(&b.put("/connectors", &json!({"id": cid, "name": "stolen"})).await, 404, "NOT_FOUND");
    assert_error(&b.delete(&format!("/schemas?id={sid}")).await, 404, "NOT_FOUND");
    // B cannot build on A's connector and schema.
    let r = b.post("/pipelines", &example_pipeline(cid, sid)).await;
    assert_error(&r, 400, "BAD_REQUEST");
    // A's pipeline is untouched.
    assert_eq!(a.get(&format!("/pipelines/{pid}")).await.body["name"], "Customer Import");
}

/// Keys may expire (issue "hostile input"): one that has is refused, saying so.
#[tokio::test]
async fn a_key_that_expired_is_refused() {
    let app = spawn_app().await;
    let soon = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let created = app.post("/api-keys", &json!({"name": "ci", "role": "viewer", "expiresAt": soon})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.body["expiresAt"].as_str().is_some_and(|s| s.ends_with('Z')), "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_string();
    assert_eq!(app.send(app.req_as(&key, &app.tenant, Method::GET, "/pipelines")).await.status, 200);
    let listed = app.get("/api-keys").await.body;
    assert!(listed["data"].as_array().unwrap().iter().any(|k| k["expiresAt"].is_string()));

    for bad in [json!("2020-01-01T00:00:00Z"), json!("next week"), json!(3)] {
        let r = app.post("/api-keys", &json!({"name": "ci", "role": "viewer", "expiresAt": bad})).await;
        assert_eq!(detail_fields(&r.body), ["expiresAt"], "{}", r.body);
    }

    // A key whose time has passed (written straight to the table, as no request can make one).
    let tenant = app.tenant_id();
    let mut issued = shared::domain::api_key::issue(&tenant, "old".into(), Role::Admin, &shared::domain::now());
    issued.stored.expires_at = Some("2026-01-01T00:00:00.000Z".into());
    app.app.store().create(&tenant, &issued.stored).await.unwrap();
    let r = app.send(app.req_as(&issued.key, &app.tenant, Method::GET, "/pipelines")).await;
    assert_error(&r, 401, "UNAUTHORIZED");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("expired"), "{}", r.body);
}

/// The tenant's last live admin key cannot be deleted (409), even by two deletes at once.
#[tokio::test]
async fn the_last_admin_key_stays() {
    let app = spawn_app().await;
    let own = app.key.split('.').nth(2).unwrap().to_string();
    let r = app.delete(&format!("/api-keys?id={own}")).await;
    assert_error(&r, 409, "CONFLICT");
    // Other roles' keys go freely.
    let viewer = app.post("/api-keys", &json!({"name": "v", "role": "viewer"})).await.body["id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/api-keys?id={viewer}")).await.status, 204);

    // Two admins, each deleted at once by the first: one delete wins, and an admin key remains.
    let second = app.post("/api-keys", &json!({"name": "a2", "role": "admin"})).await.body["id"].as_str().unwrap().to_string();
    let (first, other) = (format!("/api-keys?id={own}"), format!("/api-keys?id={second}"));
    let (a, b) = futures::join!(app.delete(&first), app.delete(&other));
    let statuses = [a.status, b.status];
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1, "{statuses:?} {} {}", a.body, b.body);
    assert!(statuses.iter().all(|s| [204, 409, 401].contains(s)), "{statuses:?}");
    let tenant = app.tenant_id();
    let left = app.app.store().list::<shared::domain::api_key::ApiKey>(&tenant, 100, None).await.unwrap();
    assert_eq!(left.items.iter().filter(|k| k.role == Role::Admin).count(), 1);
}

/// A query or headers larger than any call needs are refused first, in the product's format.
#[tokio::test]
async fn oversized_queries_and_headers_are_refused() {
    let app = spawn_app().await;
    let r = app.get(&format!("/pipelines?cursor={}", "a".repeat(5000))).await;
    assert_error(&r, 414, "URI_TOO_LONG");
    let r = app.send(app.req(Method::GET, "/pipelines").header("X-Big", "b".repeat(9000))).await;
    assert_error(&r, 431, "REQUEST_HEADER_FIELDS_TOO_LARGE");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("x-big"), "{}", r.body);
    let mut req = app.req(Method::GET, "/pipelines");
    for i in 0..5 {
        req = req.header(format!("X-Part-{i}"), "c".repeat(4000));
    }
    assert_error(&app.send(req).await, 431, "REQUEST_HEADER_FIELDS_TOO_LARGE");
    // Before the key is checked: no key at all still gets the size answer.
    let r = app.send(app.http.get(format!("{}/pipelines?x={}", app.base, "d".repeat(5000)))).await;
    assert_error(&r, 414, "URI_TOO_LONG");
    // And ordinary requests are untouched.
    assert_eq!(app.get("/pipelines?limit=5").await.status, 200);
}

/// The cross-tenant probe, generated from the route table so that a new route is probed too:
/// tenant B sends tenant A's ids to every route, in the path, in `?id=` and in bodies. Whatever
/// names A's data is a 404 (a create naming A's connector and schema, a 400 on them); no answer
/// carries anything of A's; A's data is intact after.
#[tokio::test]
async fn every_route_refuses_another_tenants_ids() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    let mut body = a.example_body().await;
    body["name"] = json!("tenant-a-secret-pipeline");
    let pipeline = a.create_pipeline(&body).await;
    let (pid, cid, sid) =
        (pipeline["id"].as_str().unwrap(), pipeline["connector"]["id"].as_str().unwrap(), pipeline["schema"]["id"].as_str().unwrap());
    let rid = a.trigger(pid).await;
    let kid = a.key.split('.').nth(2).unwrap().to_string();
    let secrets = ["tenant-a-secret-pipeline", a.tenant.as_str()];

    for route in shared::http::ROUTES {
        let path = route.path.trim_start_matches("/api/v1");
        let id = match path.split('/').nth(1) {
            Some("pipelines") => pid,
            Some("connectors") => cid,
            Some("schemas") => sid,
            _ => kid.as_str(),
        };
        let mut target = path.replace("{id}", id).replace("{runId}", &rid);
        let named = path.contains('{') || matches!(route.method, "PUT" | "DELETE");
        if route.method == "DELETE" {
            target = format!("{target}?id={id}");
        }
        let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
        let mut req = b.req(method, &target);
        req = match (route.method, path) {
            ("PUT", _) => req.json(&json!({"id": id, "name": "stolen"})),
            ("POST", "/pipelines") => req.json(&example_pipeline(cid, sid)),
            ("POST", "/connectors") => req.json(&json!({"name": "b", "type": "http", "config": {"url": "https://x.io"}})),
            ("POST", "/schemas") => req.json(&json!({"name": "b", "fields": [{"name": "id", "type": "text"}]})),
            ("POST", "/api-keys") => req.json(&json!({"name": "b", "role": "viewer"})),
            ("POST", _) => req.json(&json!({})),
            _ => req,
        };
        let r = b.send(req).await;
        let what = format!("{} {target}", route.method);
        if named {
            assert_error(&r, 404, "NOT_FOUND");
        } else if (route.method, path) == ("POST", "/pipelines") {
            assert_error(&r, 400, "BAD_REQUEST");
        } else {
            assert!(r.status < 500, "{what}: {}", r.status);
        }
        let text = r.body.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "{what} shows {secret}: {text}");
        }
    }
    // A's pipeline, run, connector, schema and key are all still there.
    assert_eq!(a.get(&format!("/pipelines/{pid}")).await.body["name"], "tenant-a-secret-pipeline");
    assert_eq!(a.get(&format!("/pipelines/{pid}/runs/{rid}")).await.status, 200);
    assert_eq!(a.get(&format!("/connectors/{cid}")).await.status, 200);
    assert_eq!(a.get(&format!("/schemas/{sid}")).await.status, 200);
}
