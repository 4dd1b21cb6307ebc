//! HTTP: the route table, request reading, and [`handle`], the one place where a request meets
//! authentication, roles, its handler and the mapping of errors to responses.

mod handlers;
pub mod page;
pub mod request;
pub mod routes;

use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

pub use routes::{resolve, Endpoint, Resolved, ROUTES};

use crate::app::App;
use crate::auth::Verdict;
use crate::domain::tenant::Caller;
use crate::error::ApiError;
use crate::idempotency::{self, Begin, IdempotencyKey};

pub type Reply = Response<Body>;

/// A JSON response.
pub fn json(status: u16, value: &impl serde::Serialize) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder().status(status).header("content-type", "application/json").body(Body::Binary(body)).unwrap_or_default()
}

pub fn no_content() -> Reply {
    Response::builder().status(204).body(Body::Empty).unwrap_or_default()
}

fn error_reply(e: &ApiError) -> Reply {
    let mut reply = json(e.status(), &e.body());
    if let ApiError::MethodNotAllowed { allow, .. } = e {
        if let Ok(v) = allow.join(", ").parse() {
            reply.headers_mut().insert("allow", v);
        }
    }
    reply
}

/// Runs the handler, under the request's `Idempotency-Key` where the endpoint honours one.
async fn serve(app: &App, endpoint: Endpoint, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let header = req.headers().get("idempotency-key").map(|v| v.to_str().unwrap_or("\u{0}"));
    let key = match header {
        Some(raw) if endpoint.idempotent() => IdempotencyKey::parse(raw)?,
        _ => return handlers::dispatch(app, endpoint, caller, req).await,
    };
    let fp = idempotency::fingerprint(req.method().as_str(), req.uri().path(), request::body_bytes(req));
    if let Begin::Replay { status, body } = idempotency::begin(&app.store, &caller.tenant, &key, &fp).await? {
        let mut reply =
            Response::builder().status(status).header("content-type", "application/json").body(Body::Text(body)).unwrap_or_default();
        reply.headers_mut().insert("idempotent-replayed", lambda_http::http::HeaderValue::from_static("true"));
        return Ok(reply);
    }
    let result = handlers::dispatch(app, endpoint, caller, req).await;
    match &result {
        Ok(reply) if reply.status().is_success() => {
            let body = match reply.body() {
                Body::Text(t) => t.clone(),
                Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            idempotency::complete(&app.store, &caller.tenant, &key, reply.status().as_u16(), &body).await?;
        }
        // A failed request leaves nothing to replay: a retry under the same key runs again.
        _ => idempotency::abandon(&app.store, &caller.tenant, &key).await?,
    }
    result
}

fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Serves one request for `endpoint`: enforces the authorizer's verdict and the route's role,
/// runs the handler, and answers errors in the product's format. Never panics on client input.
pub async fn handle(app: &App, endpoint: Endpoint, req: Request) -> Reply {
    let verdict = Verdict::from_context(req.request_context_ref().and_then(|c| c.authorizer()).map(|a| &a.fields));
    let tenant = match &verdict {
        Verdict::Caller(c) => c.tenant.to_string(),
        Verdict::Denied(_) => String::new(),
    };
    let span = tracing::info_span!("request", request_id = %request_id(&req), tenant = %tenant, route = %endpoint.route_key());
    async move {
        let result = match (endpoint.route(), verdict) {
            (None, _) => Err(handlers::not_found(&req)),
            (Some(_), Verdict::Denied(e)) => Err(e),
            (Some(route), Verdict::Caller(caller)) if route.role.is_some_and(|needed| caller.role < needed) => {
                Err(ApiError::Forbidden(format!("role {} may not call {} {}", caller.role.as_str(), route.method, route.path)))
            }
            (Some(_), Verdict::Caller(caller)) => serve(app, endpoint, &caller, &req).await,
        };
        match result {
            Ok(reply) => {
                tracing::info!(status = reply.status().as_u16(), "handled");
                reply
            }
            Err(e) => {
                match &e {
                    ApiError::Internal(cause) => tracing::error!(status = 500, %cause, "failed"),
                    other => tracing::info!(status = other.status(), code = other.code(), "refused"),
                }
                error_reply(&e)
            }
        }
    }
    .instrument(span)
    .await
}
