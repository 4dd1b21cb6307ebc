//! HTTP: the route table, request reading, and [`handle`], the one place where a request meets
//! authentication, roles, its handler and the mapping of errors to responses.
//!
//! Each API function serves one [`Function`]: its endpoint and its handler, over the narrowest
//! context that handler needs ([`crate::context`]). A function's `main` names its handler, so
//! its binary links that handler and nothing else of [`handlers`].

pub mod grants;
pub mod handlers;
pub mod page;
pub mod request;
pub mod routes;

use futures::future::{BoxFuture, Either};
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

pub use handlers::Function;
pub use routes::{resolve, Endpoint, Resolved, Route, ROUTES};

use crate::auth::authorize;
use crate::context::Stores;
use crate::domain::tenant::{Caller, Role, TenantId};
use crate::error::ApiError;
use crate::idempotency::{self, Claim, IdempotencyKey};

pub type Reply = Response<Body>;

/// A handler of one endpoint, over context `C`.
pub type Handler<C> = for<'a> fn(&'a C, &'a Caller, &'a Request) -> BoxFuture<'a, Result<Reply, ApiError>>;

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
    if let Some(seconds) = e.retry_after() {
        reply.headers_mut().insert("retry-after", lambda_http::http::HeaderValue::from(seconds));
    }
    reply
}

/// A handler bound to its context, for one request: everything below [`handle`] runs through
/// this, so it is compiled once, in this crate, not once per function binary.
pub type Bound<'x> = dyn Fn(Caller, &'x Request) -> BoxFuture<'x, Result<Reply, ApiError>> + Send + Sync + 'x;

/// The request's `Idempotency-Key` with its fingerprint, where `endpoint` honours one (its
/// handler saves the reply under it, in its own write).
pub fn claim(endpoint: Endpoint, req: &Request) -> Result<Option<Claim>, ApiError> {
    let Some(header) = req.headers().get("idempotency-key") else { return Ok(None) };
    if !endpoint.idempotent() {
        return Ok(None);
    }
    let key = IdempotencyKey::parse(header.to_str().unwrap_or("\u{0}"))?;
    let fingerprint = idempotency::fingerprint(req.method().as_str(), req.uri().path(), request::body_bytes(req));
    Ok(Some(Claim { key, fingerprint }))
}

/// The answer to a request whose write found its key taken: the first response again, or why
/// not ([`Claim::replay`]).
pub fn replay(claim: Option<Claim>, record: crate::store::IdempotencyRecord) -> Result<Reply, ApiError> {
    let claim = claim.ok_or_else(|| ApiError::Internal("a key was taken without one".into()))?;
    let (status, body) = claim.replay(record)?;
    Ok(replayed(status, body))
}

/// The first response under a key, answered again.
fn replayed(status: u16, body: String) -> Reply {
    let mut reply =
        Response::builder().status(status).header("content-type", "application/json").body(Body::Text(body)).unwrap_or_default();
    reply.headers_mut().insert("idempotent-replayed", lambda_http::http::HeaderValue::from_static("true"));
    reply
}

fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Authenticates the caller, checks the route's role, and runs the handler.
///
/// A read that any key may make (GET, viewer) runs beside the key check, as the tenant the
/// request names and with the weakest role: the two are one round trip instead of two, and the
/// read's answer is dropped unless the key belongs to that tenant. Writes wait for the check.
async fn authenticated<'x>(app: &'x dyn Stores, handler: &'x Bound<'x>, route: &'x Route, req: &'x Request) -> Result<Reply, ApiError> {
    if route.role.is_none() {
        return handler(Caller::anonymous(), req).await;
    }
    let check = authorize(app.store(), app.quotas().requests_per_second, header(req, "authorization"), header(req, "x-tenant-id"));
    let claimed = header(req, "x-tenant-id").and_then(|t| TenantId::parse(t.trim()).ok());
    if let (Some(tenant), "GET", Some(Role::Viewer)) = (claimed, route.method, route.role) {
        let read = handler(Caller { tenant: tenant.clone(), role: Role::Viewer }, req);
        let (caller, reply) = match futures::future::select(std::pin::pin!(check), std::pin::pin!(read)).await {
            // A refused key drops the read where it stands: none of its later round trips are made.
            Either::Left((caller, read)) => (caller?, read.await),
            Either::Right((reply, check)) => (check.await?, reply),
        };
        return match caller {
            caller if caller.tenant == tenant => reply,
            _ => Err(ApiError::Forbidden("this API key does not belong to the tenant in X-Tenant-Id".into())),
        };
    }
    let caller = check.await?;
    if route.role.is_some_and(|needed| caller.role < needed) {
        return Err(ApiError::Forbidden(format!("role {} may not call {} {}", caller.role.as_str(), route.method, route.path)));
    }
    handler(caller, req).await
}

/// Serves one request for `function` over its context: binds the handler to the context, then
/// [`respond`]s.
pub async fn handle<C: Stores>(app: &C, function: &Function<C>, req: Request) -> Reply {
    let handler = function.handler;
    let bound =
        move |caller: Caller, req| -> BoxFuture<'_, Result<Reply, ApiError>> { Box::pin(async move { handler(app, &caller, req).await }) };
    respond(app, function.endpoint, &bound, &req).await
}

/// Answers one request: authenticates it, enforces the route's role, runs the handler, and
/// answers errors in the product's format. Never panics on client input.
///
/// A plain function returning a boxed future, not an `async fn`: the body of an `async fn` is
/// compiled where it is first awaited, which would be once in each function binary.
pub fn respond<'x>(app: &'x dyn Stores, endpoint: Endpoint, handler: &'x Bound<'x>, req: &'x Request) -> BoxFuture<'x, Reply> {
    Box::pin(respond_now(app, endpoint, handler, req))
}

async fn respond_now<'x>(app: &'x dyn Stores, endpoint: Endpoint, handler: &'x Bound<'x>, req: &'x Request) -> Reply {
    // What the client claims, as the logs show it: bounded, whatever was sent.
    let tenant: String = header(req, "x-tenant-id").unwrap_or_default().chars().take(64).collect();
    let span = tracing::info_span!("request", request_id = %request_id(req), tenant = %tenant, route = %endpoint.route_key());
    let started = std::time::Instant::now();
    async move {
        let result = match (request::check_envelope(req), endpoint.route()) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(handlers::not_found(req)),
            (Ok(()), Some(route)) => authenticated(app, handler, route, req).await,
        };
        let reply = match result {
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
        };
        crate::metrics::request(&endpoint.route_key(), reply.status().as_u16(), started.elapsed().as_secs_f64() * 1000.0);
        reply
    }
    .instrument(span)
    .await
}
