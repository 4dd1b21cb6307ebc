//! `GET /api/v1/openapi.json`: the API's contract, `openapi.yaml` at the repository's root as
//! JSON (`scripts/openapi-json.py` writes it; a test checks the two agree).

use lambda_http::{Body, Request, Response};

use crate::context::Stores;
use crate::domain::tenant::Caller;
use crate::error::ApiError;
use crate::http::Reply;

const DOCUMENT: &str = include_str!("../openapi.json");

pub(super) async fn get(_: &dyn Stores, _: &Caller, _: &Request) -> Result<Reply, ApiError> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "public, max-age=300")
        .body(Body::Text(DOCUMENT.to_string()))
        .unwrap_or_default())
}
