//! Reading what a request carries: its JSON body, query parameters and path id.

use lambda_http::{Body, Request, RequestExt};
use serde_json::Value;

use crate::error::ApiError;

/// Bodies above this are refused with 413 before they are parsed.
pub const MAX_BODY: usize = 1024 * 1024;
/// Query strings above this are refused with 414: ours carry a limit, a cursor, a status and an id.
pub const MAX_QUERY: usize = 4096;
/// A header value, and all headers together, above these are refused with 431 (API Gateway's
/// own ceiling is 10 KB of request line and headers; these hold wherever a request comes from).
pub const MAX_HEADER: usize = 8192;
pub const MAX_HEADERS: usize = 16384;

/// Refuses a request whose query or headers outgrow what any call of ours needs, before anything
/// reads them.
pub fn check_envelope(req: &Request) -> Result<(), ApiError> {
    if req.uri().query().map_or(0, str::len) > MAX_QUERY {
        return Err(ApiError::UriTooLong { limit: MAX_QUERY });
    }
    let mut total = 0usize;
    for (name, value) in req.headers() {
        if value.len() > MAX_HEADER {
            return Err(ApiError::HeadersTooLarge { what: format!("header {name}"), limit: MAX_HEADER });
        }
        total = total.saturating_add(name.as_str().len() + value.len());
    }
    if total > MAX_HEADERS {
        return Err(ApiError::HeadersTooLarge { what: "the request's headers".into(), limit: MAX_HEADERS });
    }
    Ok(())
}

pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// The body as JSON: present, at most [`MAX_BODY`] bytes, well-formed.
pub fn json_body(req: &Request) -> Result<Value, ApiError> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_BODY {
        return Err(ApiError::PayloadTooLarge { limit: MAX_BODY });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("request body is required (a JSON object)"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}

/// A query parameter, if given (and not empty).
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name)).filter(|v| !v.is_empty()).map(str::to_string)
}

/// The required `?id=` of a DELETE, as an id of the right kind. One that cannot be an id of
/// that kind names nothing: 404, as for an id that is not there.
pub fn query_id<T>(req: &Request, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, ApiError> {
    let raw = query(req, "id").ok_or_else(|| ApiError::field("id", "query parameter is required"))?;
    parse(&raw).ok_or_else(|| ApiError::not_found(what, shown(&raw)))
}

/// Refuses an update whose body's `id` is a string that cannot be an id of the kind: it names
/// nothing, so 404, before the body's other checks (as for a well-formed id that is not there).
/// An `id` that is not a string is left to the body's checks (a 400).
pub fn body_names_something(body: &Value, valid: fn(&str) -> bool, what: &str) -> Result<(), ApiError> {
    match body.get("id").and_then(Value::as_str) {
        Some(raw) if !valid(raw) => Err(ApiError::not_found(what, shown(raw))),
        _ => Ok(()),
    }
}

/// An id as an error message quotes it: at most 80 characters of what the client sent.
fn shown(raw: &str) -> &str {
    raw.char_indices().nth(80).map_or(raw, |(end, _)| &raw[..end])
}

/// The `{id}` of the path; one that cannot be an id of that kind names nothing: 404.
pub fn path_id<T>(req: &Request, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, ApiError> {
    let raw = req.path_parameters_ref().and_then(|p| p.first("id")).unwrap_or_default();
    parse(raw).ok_or_else(|| ApiError::not_found(what, shown(raw)))
}
