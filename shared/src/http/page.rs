//! Pagination: `limit` (1..100, default 20) and an opaque `cursor`, which is base64 of
//! `{"id":"<last id of the previous page>"}` (so a client that knows the last id can build one).

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use lambda_http::Request;
use serde_json::{json, Value};

use super::request::query;
use crate::error::ApiError;
use crate::store::Page;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    /// The id the page starts after.
    pub after: Option<String>,
}

pub fn encode_cursor(id: &str) -> String {
    STANDARD.encode(json!({ "id": id }).to_string())
}

/// The id inside a cursor, if it is one of ours and names an id of the right kind.
pub fn decode_cursor(cursor: &str, valid_id: impl Fn(&str) -> bool) -> Option<String> {
    // A `+` that reached us unencoded in a query string arrives as a space.
    let cursor = cursor.trim().replace(' ', "+");
    let bytes = [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(&cursor).ok())?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let id = value.get("id")?.as_str()?;
    valid_id(id).then(|| id.to_string())
}

impl PageRequest {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>, valid_id: impl Fn(&str) -> bool) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => return Err(ApiError::field("limit", format!("must be an integer from 1 to {MAX_LIMIT}"))),
            },
        };
        let after = match cursor {
            None => None,
            Some(c) => Some(decode_cursor(c, valid_id).ok_or_else(|| ApiError::field("cursor", "is not a valid cursor"))?),
        };
        Ok(Self { limit, after })
    }

    pub fn from_request(req: &Request, valid_id: impl Fn(&str) -> bool) -> Result<Self, ApiError> {
        Self::parse(query(req, "limit").as_deref(), query(req, "cursor").as_deref(), valid_id)
    }
}

/// `{data, total, hasMore, nextCursor?, pagination}`.
pub fn list_body<T>(page: &Page<T>, limit: usize, data: Vec<Value>, last_id: Option<&str>) -> Value {
    let next = last_id.filter(|_| page.has_more).map(encode_cursor);
    let mut body = json!({
        "data": data,
        "total": page.total,
        "hasMore": page.has_more,
        "pagination": { "cursor": next, "hasMore": page.has_more, "total": page.total, "limit": limit },
    });
    if let Some(next) = next {
        body["nextCursor"] = json!(next);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(_: &str) -> bool {
        true
    }

    #[test]
    fn cursors_round_trip_and_match_the_documented_form() {
        let c = encode_cursor("pipe_1");
        assert_eq!(STANDARD.decode(&c).unwrap(), br#"{"id":"pipe_1"}"#);
        assert_eq!(decode_cursor(&c, any), Some("pipe_1".into()));
    }

    #[test]
    fn bad_limits_and_cursors_are_refused() {
        assert_eq!(PageRequest::parse(None, None, any).unwrap(), PageRequest { limit: 20, after: None });
        for bad in ["0", "101", "-1", "abc", "2.5"] {
            assert!(PageRequest::parse(Some(bad), None, any).is_err(), "{bad}");
        }
        assert!(PageRequest::parse(None, Some("not base64!"), any).is_err());
        assert!(PageRequest::parse(None, Some(&STANDARD.encode("[1]")), any).is_err());
        assert!(PageRequest::parse(None, Some(&encode_cursor("x")), |_| false).is_err());
    }
}
