//! What API Gateway (HTTP API, payload 2.0) does in front of the functions, locally: match the
//! route of `template.yaml` (shared route table), build the v2 event exactly as AWS sends it, and
//! call the function's handler (which authenticates the request itself, as in AWS).

use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::Request as AxumRequest;
use axum::response::Response as AxumResponse;
use axum::Router;
use lambda_http::Body;
use serde_json::{json, Map, Value};
use shared::context::App;
use shared::http::{handle, handlers, resolve, Endpoint, Resolved};

/// API Gateway's own limit on a request payload; above it AWS answers 413 before any function.
const GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(move |req: AxumRequest| {
        let app = app.clone();
        async move { serve(&app, req).await }
    })
}

fn error_response(status: u16, code: &str, message: &str) -> AxumResponse {
    let body = json!({ "error": { "code": code, "message": message, "status": status } });
    AxumResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(AxumBody::from(body.to_string()))
        .unwrap_or_default()
}

async fn serve(app: &App, req: AxumRequest) -> AxumResponse {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, GATEWAY_MAX_BODY).await else {
        return error_response(413, "PAYLOAD_TOO_LARGE", "request body is larger than the gateway accepts");
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let (endpoint, path_params) = match resolve(&method, &path) {
        Resolved::Route(endpoint, params) => (endpoint, params),
        _ => (Endpoint::NotFound, Default::default()),
    };

    // Header names lower-cased, repeated values joined with commas, as API Gateway does.
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).to_string();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => *existing = format!("{existing},{value}"),
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    let mut query = Map::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => *existing = format!("{existing},{v}"),
            _ => {
                query.insert(k.to_string(), Value::String(v.to_string()));
            }
        }
    }
    let route_key = endpoint.route_key();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let now = gateway_time();
    let context = json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": headers.get("host").cloned().unwrap_or(json!("localhost")),
        "domainPrefix": "local",
        "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": headers.get("user-agent").cloned().unwrap_or(json!("")) },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": now.0,
        "timeEpoch": now.1,
    });

    let (body, base64) = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => (text, false),
        Err(_) => {
            use base64::Engine;
            (base64::engine::general_purpose::STANDARD.encode(&bytes), true)
        }
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": base64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !path_params.is_empty() {
        event["pathParameters"] = json!(path_params);
    }
    if !bytes.is_empty() {
        event["body"] = json!(body);
    }
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => return error_response(500, "INTERNAL_ERROR", &format!("gateway built a bad event: {e}")),
    };
    let reply = handle(app, &handlers::function(endpoint), request).await;
    let (parts, body) = reply.into_parts();
    let bytes = match body {
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    AxumResponse::from_parts(parts, AxumBody::from(bytes))
}

/// API Gateway's `time` (`29/Nov/2026:18:00:00 +0000`) and `timeEpoch` (ms).
fn gateway_time() -> (String, i64) {
    let now = chrono::Utc::now();
    (now.format("%d/%b/%Y:%H:%M:%S %z").to_string(), now.timestamp_millis())
}
