//! `GET /`: the web console, `console/index.html` at the repository's root, one page with its
//! script and styles inline (no build step, no asset routes). It calls the public API only, from
//! the same origin, with the key the user signs in with.

use lambda_http::{Body, Request, Response};

use crate::context::Stores;
use crate::domain::tenant::Caller;
use crate::error::ApiError;
use crate::http::Reply;

const PAGE: &str = include_str!("../../../../console/index.html");

/// The page may run its own inline script and styles and call this origin; nothing may frame it.
const POLICY: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub(super) async fn get(_: &dyn Stores, _: &Caller, _: &Request) -> Result<Reply, ApiError> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-cache")
        .header("content-security-policy", POLICY)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .body(Body::Text(PAGE.to_string()))
        .unwrap_or_default())
}
