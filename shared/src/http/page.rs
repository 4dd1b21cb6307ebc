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

/// At most this many bytes of items in one page. Lambda answers at most 6 MB, and the body may
/// travel base64-encoded (4/3 larger): a page of 100 items of up to 400 KB would not fit, so a
/// page ends early, with `hasMore` and a cursor after its last item.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// How many of `items`, from the first, fit in [`MAX_PAGE_BYTES`]; never fewer than one (an item
/// is at most 400 KB, DynamoDB's limit).
pub fn fitting(items: &[Value]) -> usize {
    let mut total = 0usize;
    for (i, item) in items.iter().enumerate() {
        let mut counter = ByteCount(0);
        let _ = serde_json::to_writer(&mut counter, item);
        total = total.saturating_add(counter.0 + 1);
        if total > MAX_PAGE_BYTES && i > 0 {
            return i;
        }
    }
    items.len()
}

/// Counts what is written to it, so measuring a value allocates nothing.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    /// The id the page starts after.
    pub after: Option<String>,
}

pub fn encode_cursor(id: &str) -> String {
    STANDARD.encode(json!({ "id": id }).to_string())
}

/// A cursor's id becomes a sort key, which DynamoDB caps at 1024 bytes; ours are far shorter.
const MAX_CURSOR_ID: usize = 512;

/// The id inside a cursor, if it is one of ours and names an id of the right kind.
pub fn decode_cursor(cursor: &str, valid_id: impl Fn(&str) -> bool) -> Option<String> {
    // Base64 of `{"id":"..."}` around an id of at most MAX_CURSOR_ID bytes.
    if cursor.len() > (MAX_CURSOR_ID + 16) * 4 / 3 + 4 {
        return None;
    }
    // A `+` that reached us unencoded in a query string arrives as a space.
    let cursor = cursor.trim().replace(' ', "+");
    let bytes = [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(&cursor).ok())?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let id = value.get("id")?.as_str()?;
    (id.len() <= MAX_CURSOR_ID && valid_id(id)).then(|| id.to_string())
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

/// `{data, total, hasMore, nextCursor?, pagination}`: `data` are the views of `page.items`, in
/// order, and `id` names an item for the cursor. A page past [`MAX_PAGE_BYTES`] ends early.
pub fn list_body<T>(page: &Page<T>, limit: usize, mut data: Vec<Value>, id: impl Fn(&T) -> &str) -> Value {
    let fits = fitting(&data);
    data.truncate(fits);
    let has_more = page.has_more || fits < page.items.len();
    let next = page.items.get(fits.wrapping_sub(1)).map(id).filter(|_| has_more).map(encode_cursor);
    let mut body = json!({
        "data": data,
        "total": page.total,
        "hasMore": has_more,
        "pagination": { "cursor": next, "hasMore": has_more, "total": page.total, "limit": limit },
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
    fn a_page_ends_before_it_outgrows_a_lambda_response() {
        let item = json!({ "blob": "x".repeat(300_000) });
        let items = vec![item.clone(); 22];
        let fits = fitting(&items);
        assert!(fits < 22 && fits * 300_000 <= MAX_PAGE_BYTES && (fits + 1) * 300_000 > MAX_PAGE_BYTES, "{fits}");
        // One item always fits, whatever its size; small pages are whole.
        assert_eq!(fitting(&[json!({ "blob": "x".repeat(MAX_PAGE_BYTES + 1) })]), 1);
        assert_eq!(fitting(&vec![json!({"id": 1}); 100]), 100);
        let page = Page { items: (0..22).map(|i| format!("p{i}")).collect::<Vec<_>>(), total: 40, has_more: false };
        let body = list_body(&page, 100, items, |s| s.as_str());
        assert_eq!((body["hasMore"].as_bool(), body["data"].as_array().unwrap().len()), (Some(true), fits));
        assert_eq!(decode_cursor(body["nextCursor"].as_str().unwrap(), any).unwrap(), format!("p{}", fits - 1));
    }

    #[test]
    fn oversized_cursors_are_refused_before_they_reach_a_key() {
        let long = encode_cursor(&format!("K#{}", "x".repeat(2000)));
        assert!(decode_cursor(&long, any).is_none());
        let fits = encode_cursor(&format!("K#{}", "x".repeat(500)));
        assert!(decode_cursor(&fits, any).is_some());
        assert!(PageRequest::parse(None, Some(&long), any).is_err());
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
