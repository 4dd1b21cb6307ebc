//! The gateway, the template and the sample events agree with the route table.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use shared::context::Stores;
use shared::http::{handle, Endpoint, ROUTES};

use crate::support::*;

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// (method, path, binary) for every HttpApi event of `template.yaml`.
fn template_routes() -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(repo("template.yaml")).expect("template.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    let mut routes = BTreeSet::new();
    for (_, resource) in doc["Resources"].as_mapping().expect("Resources") {
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default().to_string();
        for (_, event) in resource["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() == Some("HttpApi") {
                let props = &event["Properties"];
                let method = props["Method"].as_str().unwrap_or_default().to_uppercase();
                routes.insert((method, props["Path"].as_str().unwrap_or_default().to_string(), binary.clone()));
            }
        }
    }
    routes
}

#[test]
fn template_routes_are_the_gateway_routes() {
    let mut gateway: BTreeSet<(String, String, String)> =
        ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_string(), r.function.to_string())).collect();
    gateway.insert(("ANY".into(), "$default".into(), shared::http::routes::NOT_FOUND_FUNCTION.into()));
    assert_eq!(template_routes(), gateway);
}

#[test]
fn every_function_crate_is_in_the_template() {
    let text = std::fs::read_to_string(repo("template.yaml")).unwrap();
    for entry in std::fs::read_dir(repo("functions")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(text.contains(&format!("Binary: {name}\n")), "functions/{name} is not in template.yaml");
    }
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = spawn_app().await;
    let r = app.get("/nope").await;
    assert_error(&r, 404, "NOT_FOUND");
    let r = app.send(app.req(reqwest::Method::PATCH, "/pipelines")).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "GET, POST, PUT, DELETE");
    assert_error(&app.send(app.req(reqwest::Method::DELETE, "/connectors/x")).await, 405, "METHOD_NOT_ALLOWED");
    // Unauthenticated requests to unknown routes are still 404, not a leak of anything.
    assert_error(&app.send(app.http.get(format!("{}/nope", app.base))).await, 404, "NOT_FOUND");
}

const SAMPLE_CONNECTOR: &str = "conn_019ad0c0a0a07000800000000000c0c1";
const SAMPLE_SCHEMA: &str = "schema_019ad0c0a0a07000800000000000c0c2";
const SAMPLE_PIPELINE: &str = "pipe_019ad0c0a0a07000800000000000c0c3";
const SAMPLE_KEY: &str = "key_019ad0c0a0a07000800000000000c0c4";
const SAMPLE_RUN: &str = "run_019ad0c0a0a07000800000000000c0c5";
const SAMPLE_BACKFILL: &str = "bf_019ad0c0a0a07000800000000000c0c6";

/// Every `events/` file is a valid API Gateway event its function accepts: each runs through the
/// function's handler (with the sample ids swapped for real ones in a fresh tenant) and succeeds.
#[tokio::test]
async fn every_sample_event_is_accepted_by_its_function() {
    let app = spawn_app().await;
    let (connector, schema) = (app.create_connector().await, app.create_schema().await);
    let pipeline = app.create_pipeline(&example_pipeline(&connector, &schema)).await;
    let extra = app.post("/api-keys", &json!({"name": "to revoke", "role": "viewer"})).await.body;
    // The create-pipeline event uses the sample connector and schema too: deletes get unused ones.
    let (unused_connector, unused_schema) = (app.create_connector().await, app.create_schema().await);
    let run = app.trigger(pipeline["id"].as_str().unwrap()).await;
    let days = json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-03T00:00:00Z"});
    let backfill = app.post(&format!("/pipelines/{}/backfill", pipeline["id"].as_str().unwrap()), &days).await.body;
    let swap = |text: String, deleting: bool| {
        let (connector, schema) = if deleting { (&unused_connector, &unused_schema) } else { (&connector, &schema) };
        text.replace(SAMPLE_CONNECTOR, connector)
            .replace(SAMPLE_SCHEMA, schema)
            .replace(SAMPLE_PIPELINE, pipeline["id"].as_str().unwrap())
            .replace(SAMPLE_KEY, extra["id"].as_str().unwrap())
            .replace(SAMPLE_RUN, &run)
            .replace(SAMPLE_BACKFILL, backfill["id"].as_str().unwrap())
            .replace("\\\"tenantId\\\":\\\"demo\\\"", &format!("\\\"tenantId\\\":\\\"{}\\\"", app.tenant))
    };

    let mut files: Vec<String> =
        std::fs::read_dir(repo("events")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort_by_key(|f| (f.starts_with("delete-"), f.clone()));
    let mut seen = BTreeSet::new();
    for file in files {
        let name = file.trim_end_matches(".json").to_string();
        let text = swap(std::fs::read_to_string(repo(&format!("events/{file}"))).unwrap(), name.starts_with("delete-"));
        let mut event: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        if name == "worker" {
            let event = serde_json::from_value(event).unwrap_or_else(|e| panic!("{file}: {e}"));
            let settings = shared::settings::RunSettings::default();
            let response = shared::app::worker_batch(&app.app, &app.engine(), &settings, event).await;
            assert!(response.batch_item_failures.is_empty(), "{file}");
            seen.insert(name);
            continue;
        }
        if name == "scheduler" {
            assert_eq!(event["detail-type"], "Scheduled Event", "{file}");
            shared::scheduler::tick(&*app.app, &shared::settings::RunSettings::default(), chrono::Utc::now()).await.expect("tick");
            seen.insert(name);
            continue;
        }
        // The scheduler's other event: a shard message from its tick queue, worked in full.
        if name == "scheduler-shard" {
            let ticks = local::stack::tick_queue(&app.app, &format!("{}-ticks", app.app.store().table())).await.expect("tick queue");
            let settings = shared::settings::RunSettings::default();
            let reply = shared::app::scheduler_event(&*app.app, &ticks, &settings, event).await.expect("shard event");
            assert_eq!(reply["batchItemFailures"], json!([]), "{file}: {reply}");
            continue;
        }
        event["headers"]["authorization"] = json!(format!("Bearer {}", app.key));
        event["headers"]["x-tenant-id"] = json!(app.tenant);
        let endpoint = ROUTES.iter().find(|r| r.function == name).map_or(Endpoint::NotFound, |r| r.endpoint);
        let request = lambda_http::request::from_str(&event.to_string()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let reply = handle(&*app.app, &shared::http::handlers::function(endpoint), request).await;
        let status = reply.status().as_u16();
        if endpoint == Endpoint::NotFound {
            assert_eq!(status, 404, "{file}");
        } else {
            assert!((200..300).contains(&status), "{file}: {status} {:?}", reply.body());
        }
        seen.insert(name);
    }
    let mut want: BTreeSet<String> = ROUTES.iter().map(|r| r.function.to_string()).collect();
    want.extend(["not-found", "worker", "scheduler"].map(String::from));
    assert_eq!(seen, want, "one event per function");
}

/// A policy's resource as written (`!GetAtt Table.Arn` → `Table.Arn`, `!Sub "${Table.Arn}/x"`
/// → `${Table.Arn}/x`).
fn resource_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().to_string(),
        other => other.as_str().unwrap_or_default().to_string(),
    }
}

/// (resource, action, conditioned on the request windows) of a list of statements.
fn statement_grants(statements: &serde_yaml::Value) -> BTreeSet<(String, String, bool)> {
    let mut grants = BTreeSet::new();
    for statement in statements.as_sequence().expect("Statement is a list") {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{statement:?}");
        let windows = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
        let conditioned = match &statement["Condition"] {
            serde_yaml::Value::Null => false,
            _ if windows.as_sequence().is_some_and(|s| s.len() == 1 && s[0].as_str() == Some("T#*#RATE#*")) => true,
            other => panic!("an unexpected condition {other:?}"),
        };
        for action in statement["Action"].as_sequence().expect("Action is a list") {
            grants.insert((resource_text(&statement["Resource"]), action.as_str().unwrap().to_string(), conditioned));
        }
    }
    grants
}

/// Each function's policies grant exactly what `shared::http::grants` lists for it: inline
/// statements and the shared AuthenticatePolicy only, no SAM policy template (those grant
/// whole tables).
#[test]
fn every_function_policy_is_its_grants() {
    use shared::http::grants::{all_grants, Resource};
    let text = std::fs::read_to_string(repo("template.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let authenticate = statement_grants(&doc["Resources"]["AuthenticatePolicy"]["Properties"]["PolicyDocument"]["Statement"]);
    let mut checked = 0;
    for (name, resource) in doc["Resources"].as_mapping().unwrap() {
        let Some(binary) = resource["Metadata"]["BuildProperties"]["Binary"].as_str() else { continue };
        let mut granted = BTreeSet::new();
        for policy in resource["Properties"]["Policies"].as_sequence().into_iter().flatten() {
            match policy {
                serde_yaml::Value::Tagged(t) if t.value.as_str() == Some("AuthenticatePolicy") => granted.extend(authenticate.clone()),
                p if p.get("Statement").is_some() => granted.extend(statement_grants(&p["Statement"])),
                other => panic!("{name:?}: a policy other than statements or AuthenticatePolicy: {other:?}"),
            }
        }
        let want: BTreeSet<(String, String, bool)> = all_grants(binary)
            .iter()
            .flat_map(|(r, actions)| {
                actions.iter().map(move |a| (r.in_template().to_string(), a.to_string(), *r == Resource::RequestWindows))
            })
            .collect();
        assert!(shared::http::grants::grants(binary).is_some(), "{binary} has no grants in shared/src/http/grants.rs");
        assert_eq!(granted, want, "{name:?} ({binary}): template policies vs grants");
        checked += 1;
    }
    assert_eq!(checked, ROUTES.len() + 3, "every route's function, not-found, worker and scheduler");
}

/// `openapi.yaml` is the contract: its JSON (served by `get-openapi`) is it, and it names every
/// route of the table, each with the route's function as its operation id.
#[test]
fn the_openapi_document_is_the_route_table() {
    let yaml: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(repo("openapi.yaml")).unwrap()).unwrap();
    let yaml: Value = serde_json::to_value(yaml).unwrap();
    let served: Value = serde_json::from_str(&std::fs::read_to_string(repo("shared/src/http/openapi.json")).unwrap()).unwrap();
    assert!(yaml == served, "shared/src/http/openapi.json is stale: run scripts/openapi-json.py shared/src/http/openapi.json");
    assert_eq!(yaml["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in yaml["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap().iter().filter(|(m, _)| m.as_str() != "parameters") {
            documented.insert((
                method.to_uppercase(),
                format!("/api/v1{path}"),
                op["operationId"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    let camel = |f: &str| {
        let mut parts = f.split('-');
        let first = parts.next().unwrap_or_default().to_string();
        first + &parts.map(|p| p[..1].to_uppercase() + &p[1..]).collect::<String>()
    };
    // The API's routes; the console's page is not part of the API.
    let api = ROUTES.iter().filter(|r| r.path.starts_with("/api/v1/"));
    let routes: BTreeSet<_> = api.map(|r| (r.method.to_string(), r.path.to_string(), camel(r.function))).collect();
    assert_eq!(documented, routes);
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_key() {
    let app = spawn_app().await;
    let resp = app.http.get(format!("{}/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["info"]["title"].as_str().is_some());
    assert!(doc["paths"]["/pipelines"]["post"].is_object());
}
