//! `http` sources: a GET of `url` answering a JSON array (or an object holding one at
//! `recordsPath`), JSON Lines or CSV. The format is `format` if given, else the response's
//! Content-Type. `headers` (names to string values) go with the request, to its origin only.
//!
//! Every connection goes through the address guard (`guard.rs`): each request, the first and every
//! redirect, gets a client of its own whose resolver answers only with the addresses vetted for
//! it, with no proxy. Redirects are followed here rather than by the client (at most
//! [`HttpLimits::max_redirects`](super::HttpLimits)), because each hop needs that check, and
//! because configured headers (often credentials) must not follow a redirect to another origin.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_RANGE, LINK, LOCATION, RANGE, RETRY_AFTER,
};
use reqwest::StatusCode;
use reqwest::{redirect, Response, Url};
use serde_json::{Map, Value};

use futures::future::BoxFuture;

use super::{
    error_chain, field, format, guard, max_record, records_path, required_text, Document, DocumentPosition, Documents, HttpLimits,
    Position, Reader, SourceContext, SourceError,
};
use crate::engine::decode::{Decoder, Format};

const USER_AGENT: &str = "pipelines-source/1";
/// A configured `Accept` header replaces this one.
const ACCEPTED: &str = "application/json, application/x-ndjson, text/csv;q=0.9, */*;q=0.1";

#[derive(Debug)]
pub(super) struct Settings {
    url: Url,
    format: Option<Format>,
    headers: HeaderMap,
    records_path: Option<String>,
    max_record: usize,
    pagination: Pagination,
}

/// `config.pagination`: how the next page is found after each response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pagination {
    /// One response.
    None,
    /// RFC 8288 `Link: <url>; rel="next"` on each response.
    Link,
    /// A JSON body's cursor at `cursor_path` (`meta.next`), sent back as the query parameter
    /// `param`; pages end with a missing, null or empty cursor (or a page without records).
    Cursor { cursor_path: String, param: String },
    /// The query parameter `param` counts records to skip, `page_size` at a time; pages end with
    /// a short page.
    Offset { param: String, page_size: u64 },
}

/// Pages a source may have: enough for any export, and a stop for a server that never ends.
const MAX_PAGES: u32 = 100_000;

impl Pagination {
    fn parse(config: &Map<String, Value>) -> Result<Pagination, SourceError> {
        let Some(value) = field(config, "pagination") else { return Ok(Pagination::None) };
        let Value::Object(p) = value else {
            return Err(SourceError::config("pagination", "must be an object such as {\"type\": \"link\"}"));
        };
        let text = |name: &str| match p.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            _ => Err(SourceError::config(format!("pagination.{name}"), "is required (a non-empty string)")),
        };
        match p.get("type").and_then(Value::as_str) {
            Some("none") => Ok(Pagination::None),
            Some("link") => Ok(Pagination::Link),
            Some("cursor") => Ok(Pagination::Cursor { cursor_path: text("cursorPath")?, param: text("param")? }),
            Some("offset") => {
                let page_size = p.get("pageSize").and_then(Value::as_u64).filter(|n| (1..=1_000_000).contains(n)).ok_or_else(|| {
                    SourceError::config("pagination.pageSize", "is required (the records a full page holds, 1 to 1000000)")
                })?;
                Ok(Pagination::Offset { param: text("param")?, page_size })
            }
            _ => Err(SourceError::config("pagination.type", "must be none, link, cursor or offset")),
        }
    }

    /// Cursor and offset pages are read whole (within [`HttpLimits::max_page_bytes`]) to find
    /// what leads to the next; other responses stream.
    fn reads_whole(&self) -> bool {
        matches!(self, Pagination::Cursor { .. } | Pagination::Offset { .. })
    }
}

impl Settings {
    pub(super) fn parse(config: &Map<String, Value>) -> Result<Settings, SourceError> {
        let url = parse_url(required_text(config, "url")?)?;
        let headers = match field(config, "headers") {
            None => HeaderMap::new(),
            Some(Value::Object(headers)) => parse_headers(headers)?,
            Some(_) => return Err(SourceError::config("headers", "must be an object of header names to string values")),
        };
        let pagination = Pagination::parse(config)?;
        let format = format(config)?;
        if pagination.reads_whole() && format.is_some_and(|f| f != Format::Json) {
            return Err(SourceError::config("format", "must be json with cursor or offset pagination (pages are JSON documents)"));
        }
        Ok(Settings { url, format, headers, records_path: records_path(config)?, max_record: max_record(config)?, pagination })
    }

    /// Opens the source at its first page, or for a continuation at the page and offset where
    /// it stopped: a streamed response is asked for the rest with `Range` (and `If-Range` on
    /// the ETag it saw); a 206 is decoded from the offset on, a full 200 (ranges ignored) has
    /// the bytes before the offset dropped undecoded.
    pub(super) async fn open(self, ctx: &SourceContext, from: Position) -> Result<Reader<Pages>, SourceError> {
        let resume = from.document.clone();
        let first = match resume.as_ref().and_then(|at| at.key.as_deref()) {
            Some(page) => parse_url(page).map_err(|_| SourceError::Failed("the checkpoint names a page that is no URL".into()))?,
            None => self.url.clone(),
        };
        let pages = Pages { settings: self, ctx: ctx.clone(), next: Some(first), resume, fetched: 0 };
        Reader::new(pages, Vec::new(), from).start().await
    }

    /// The successful response to a GET of `start`, after redirects and retries, and the URL
    /// that gave it. 429 and 503 wait as `Retry-After` says (within the limits); other 5xx,
    /// timeouts and refused connections are retried with backoff.
    async fn fetch(
        &self,
        ctx: &SourceContext,
        waiting: &mut Waiting,
        start: &Url,
        at: Option<&DocumentPosition>,
    ) -> Result<(Url, Response), SourceError> {
        let mut retries = 0;
        loop {
            let pause = match self.fetch_once(ctx, waiting, start, at).await {
                Ok(Fetched::Done(url, response)) => return Ok((url, response)),
                Ok(Fetched::Retry(url, why, after)) if retries < ctx.http.max_retries => {
                    tracing::info!(origin = %origin(&url), %why, "retrying the request");
                    after.unwrap_or(ctx.http.retry_base * 2u32.pow(retries))
                }
                Ok(Fetched::Retry(url, why, _)) => return Err(failed(&url, &format!("{why}, {} times", retries + 1))),
                Err(e) => return Err(e),
            };
            retries += 1;
            let left = ctx.http.total_timeout.saturating_sub(waiting.waited);
            if pause > left.min(MAX_RETRY_AFTER) {
                return Err(failed(start, &format!("asked to wait {} s, longer than the source may", pause.as_secs())));
            }
            tokio::time::sleep(pause).await;
            waiting.waited += pause;
        }
    }

    async fn fetch_once(
        &self,
        ctx: &SourceContext,
        waiting: &mut Waiting,
        start: &Url,
        at: Option<&DocumentPosition>,
    ) -> Result<Fetched, SourceError> {
        let mut url = start.clone();
        let mut redirects = 0;
        loop {
            let client = client_for(&url, ctx).await?;
            let mut request = client.get(url.clone()).header(ACCEPT, ACCEPTED);
            if url.origin() == self.url.origin() {
                request = request.headers(self.headers.clone());
            }
            if let Some(at) = at {
                request = request.header(RANGE, format!("bytes={}-", at.mark.offset));
                if let Some(etag) = &at.etag {
                    request = request.header(IF_RANGE, etag);
                }
            }
            let response = match waiting.on(request.send()).await {
                Ok(response) => response,
                Err(e) => return Ok(Fetched::Retry(url, e, None)),
            };
            let status = response.status();
            if status.is_redirection() {
                if let Some(location) = response.headers().get(LOCATION) {
                    if redirects == ctx.http.max_redirects {
                        return Err(failed(&url, &format!("more than {} redirects", ctx.http.max_redirects)));
                    }
                    redirects += 1;
                    url = location
                        .to_str()
                        .ok()
                        .and_then(|location| url.join(location).ok())
                        .filter(|next| matches!(next.scheme(), "http" | "https") && next.host_str().is_some())
                        .ok_or_else(|| {
                            failed(&url, &format!("status {status} redirects to a location that is not an http or https URL"))
                        })?;
                    continue;
                }
            }
            if status == StatusCode::RANGE_NOT_SATISFIABLE && at.is_some() {
                return Ok(Fetched::Done(url, response));
            }
            if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
                let after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(retry_after);
                return Ok(Fetched::Retry(url, format!("status {status}"), after));
            }
            if status.is_server_error() {
                return Ok(Fetched::Retry(url, format!("status {status}"), None));
            }
            if !status.is_success() {
                return Err(failed(&url, &format!("status {status}")));
            }
            return Ok(Fetched::Done(url, response));
        }
    }
}

/// The longest `Retry-After` a source waits for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

enum Fetched {
    Done(Url, Response),
    /// Worth trying again: why, and how long the server asked to wait.
    Retry(Url, String, Option<Duration>),
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

/// The pages of an `http` source, fetched one after another as the reading reaches them.
pub(super) struct Pages {
    settings: Settings,
    ctx: SourceContext,
    next: Option<Url>,
    /// A continuation's first page resumes at this mark.
    resume: Option<DocumentPosition>,
    fetched: u32,
}

impl Documents for Pages {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Document>, SourceError>> {
        Box::pin(self.next_page())
    }
}

impl Pages {
    async fn next_page(&mut self) -> Result<Option<Document>, SourceError> {
        let Some(page) = self.next.take() else { return Ok(None) };
        self.fetched += 1;
        if self.fetched > MAX_PAGES {
            return Err(failed(&page, &format!("more than {MAX_PAGES} pages")));
        }
        let at = self.resume.take();
        let settings = &self.settings;
        let mut waiting = Waiting { limits: self.ctx.http, waited: Duration::ZERO };
        // A page of a paged source is read again from its start (its response decides the next
        // page), the bytes before the mark dropped undecoded; a single response asks for a Range.
        let ranged = at.as_ref().filter(|_| settings.pagination == Pagination::None);
        let (url, response) = settings.fetch(&self.ctx, &mut waiting, &page, ranged).await?;
        let name = format!("the response from {}", origin(&url));
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let format = match (settings.format, content_type.and_then(Format::from_content_type)) {
            (Some(format), _) | (None, Some(format)) => format,
            // Nothing is left to decode.
            (None, None) if response.status() == StatusCode::RANGE_NOT_SATISFIABLE => Format::Jsonl,
            (None, None) => {
                let told = match content_type.and_then(media_type) {
                    Some(media_type) => format!("content type {media_type}, which is none of them"),
                    None => "no content type it could be told from".into(),
                };
                return Err(SourceError::config("format", format!("is required (json, jsonl or csv): {name} has {told}")));
            }
        };
        let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        let length = response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if response.status() == StatusCode::OK && at.as_ref().is_some_and(|at| at.etag.is_some() && etag != at.etag) {
            return Err(failed(&url, "the document changed while the run was reading it; run it again to read the new version"));
        }
        let decoder = match &at {
            None => Decoder::new(format, settings.records_path.as_deref(), settings.max_record),
            Some(at) => Decoder::resume(format, settings.max_record, at.mark, at.header.clone()),
        };
        let skip = at.as_ref().map_or(0, |at| at.mark.offset);
        let key = Some(page.to_string());
        let etag = etag.or(at.as_ref().and_then(|a| a.etag.clone()));
        if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            // Stopped at the very end of the response: nothing is left.
            return Ok(Some(Document { key, etag, size: Some(skip), ..Document::new(name, decoder, super::Body::Empty) }));
        }
        self.next = match &settings.pagination {
            Pagination::None => None,
            Pagination::Link => next_link(&url, response.headers()),
            _ => None,
        };
        let partial = response.status() == StatusCode::PARTIAL_CONTENT;
        if !settings.pagination.reads_whole() {
            let size = length.map(|n| if partial { n + skip } else { n });
            let discard = if partial { 0 } else { skip };
            let body = super::Body::Http(Box::new(Body { response, waiting, discard, left: self.ctx.http.max_response_bytes }));
            return Ok(Some(Document { key, etag, size, ..Document::new(name, decoder, body) }));
        }
        // A whole page: read it (within the cap), find the next page in it, decode it from memory.
        if format != Format::Json {
            return Err(failed(&url, "a cursor or offset page must be a JSON document"));
        }
        let mut body = Body { response, waiting, discard: 0, left: self.ctx.http.max_page_bytes };
        let mut bytes = Vec::new();
        while let Some(chunk) = body.chunk().await.map_err(|e| failed(&url, &e))? {
            bytes.extend_from_slice(&chunk);
        }
        let whole: Value = serde_json::from_slice(&bytes).map_err(|e| failed(&url, &format!("the page is not JSON: {e}")))?;
        let records = settings.records_path.as_deref().map_or(Some(&whole), |path| at_path(&whole, path)).and_then(Value::as_array);
        let count = records.map_or(0, Vec::len) as u64;
        self.next = match &settings.pagination {
            Pagination::Cursor { cursor_path, param } => match at_path(&whole, cursor_path) {
                Some(Value::String(c)) if !c.is_empty() && count > 0 => Some(with_param(&page, param, c)),
                Some(Value::Number(n)) if count > 0 => Some(with_param(&page, param, &n.to_string())),
                _ => None,
            },
            Pagination::Offset { param, page_size } if count >= *page_size => {
                let offset = page.query_pairs().find(|(k, _)| k == param.as_str()).and_then(|(_, v)| v.parse::<u64>().ok()).unwrap_or(0);
                Some(with_param(&page, param, &(offset + page_size).to_string()))
            }
            _ => None,
        };
        let size = Some(bytes.len() as u64);
        let from = (skip as usize).min(bytes.len());
        let body = super::Body::Inline(bytes::Bytes::from(bytes).slice(from..));
        Ok(Some(Document { key, etag, size, ..Document::new(name, decoder, body) }))
    }
}

/// The value at a dotted path of a JSON document.
fn at_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| v.get(key))
}

/// `url` with query parameter `name` set to `value` (replacing it if present).
fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let kept: Vec<(String, String)> = url.query_pairs().filter(|(k, _)| k != name).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let mut next = url.clone();
    next.query_pairs_mut().clear().extend_pairs(kept).append_pair(name, value);
    next
}

/// The `rel="next"` target of RFC 8288 `Link` headers, resolved against the page's URL.
fn next_link(base: &Url, headers: &HeaderMap) -> Option<Url> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|value| {
            split_links(value).into_iter().find_map(|(target, params)| {
                let rel = params.iter().find(|(k, _)| k.eq_ignore_ascii_case("rel"))?.1.clone();
                rel.split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case("next")).then(|| base.join(&target).ok()).flatten()
            })
        })
        .filter(|next| matches!(next.scheme(), "http" | "https"))
}

/// `<target>; name="value"; name=value, <target>; ...` into targets and their parameters.
fn split_links(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut links = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else { break };
        let target = rest[open + 1..open + close].trim().to_string();
        rest = &rest[open + close + 1..];
        // Parameters run to the next link (a ',' outside quotes) or the end.
        let mut end = rest.len();
        let mut quoted = false;
        for (i, c) in rest.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let params = rest[..end]
            .split(';')
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            })
            .collect();
        links.push((target, params));
        rest = &rest[end..];
    }
    links
}

fn parse_url(text: &str) -> Result<Url, SourceError> {
    // The parser's message says what is wrong without repeating the URL (which may hold a token).
    let url = Url::parse(text.trim()).map_err(|e| SourceError::config("url", format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SourceError::config("url", "must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(SourceError::config("url", "has no host"));
    }
    Ok(url)
}

fn parse_headers(headers: &Map<String, Value>) -> Result<HeaderMap, SourceError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let at = || format!("headers.{name}");
        let Value::String(value) = value else { return Err(SourceError::config(at(), "must be a string")) };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| SourceError::config(at(), "is not a valid header name"))?;
        // The value is never repeated: it may be a credential.
        let mut value = HeaderValue::from_str(value).map_err(|_| SourceError::config(at(), "has characters a header value cannot hold"))?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

/// Makes ring the process's TLS crypto, as it is for the AWS clients (one crypto library in the
/// build, not two): reqwest needs one installed before it builds a client. Idempotent.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client that connects `url`'s host only at the addresses vetted for it.
pub(crate) async fn client_for(url: &Url, ctx: &SourceContext) -> Result<reqwest::Client, SourceError> {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(failed(url, "the URL has no host"));
    };
    let addrs = guard::vet(host, port, ctx.allow_private_addresses, ctx.http.connect_timeout).await?;
    install_tls();
    reqwest::Client::builder()
        .dns_resolver(Arc::new(Pinned(addrs)))
        .no_proxy()
        .redirect(redirect::Policy::none())
        // The other limits are kept by `Waiting`: the client's own would count the engine's time.
        .connect_timeout(ctx.http.connect_timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| failed(url, &format!("the HTTP client could not be set up: {}", error_chain(&e))))
}

/// A response's body, read as the engine asks for records.
pub(super) struct Body {
    response: Response,
    waiting: Waiting,
    /// Bytes still to drop before the first chunk handed out (a server that ignored `Range`).
    discard: u64,
    /// Bytes the response may still send (its cap).
    left: u64,
}

impl Body {
    pub(super) async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            let Some(mut chunk) = self.waiting.on(self.response.chunk()).await? else { return Ok(None) };
            self.left = self.left.checked_sub(chunk.len() as u64).ok_or("the response is larger than a source's response may be")?;
            if self.discard == 0 {
                return Ok(Some(chunk));
            }
            let dropped = self.discard.min(chunk.len() as u64);
            self.discard -= dropped;
            let _ = chunk.split_to(dropped as usize);
            if !chunk.is_empty() {
                return Ok(Some(chunk));
            }
        }
    }
}

/// The time a source has waited on its server, against its limits.
struct Waiting {
    limits: HttpLimits,
    waited: Duration,
}

impl Waiting {
    /// Waits for `step` (sending, or reading a chunk) within the idle and total limits.
    async fn on<T>(&mut self, step: impl Future<Output = reqwest::Result<T>>) -> Result<T, String> {
        let left = self.limits.total_timeout.saturating_sub(self.waited);
        let limit = left.min(self.limits.idle_timeout);
        let started = Instant::now();
        let done = tokio::time::timeout(limit, step).await;
        self.waited += started.elapsed();
        match done {
            Ok(result) => result.map_err(|e| error_chain(&e.without_url())),
            Err(_) if limit < self.limits.idle_timeout => Err(format!("took longer than {} in all", duration(self.limits.total_timeout))),
            Err(_) => Err(format!("no data for {}", duration(self.limits.idle_timeout))),
        }
    }
}

fn duration(d: Duration) -> String {
    match d.as_secs() {
        0 => format!("{} ms", d.as_millis()),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Answers every lookup with the vetted addresses. The client it serves makes one request to one
/// host, so there is nothing else it could be asked for. (An IP literal is never looked up.)
struct Pinned(Vec<SocketAddr>);

impl Resolve for Pinned {
    fn resolve(&self, _name: Name) -> Resolving {
        let addrs: Addrs = Box::new(self.0.clone().into_iter());
        Box::pin(async move { Ok(addrs) })
    }
}

/// `https://host:port`: a URL's path and query may carry credentials, its origin does not.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn failed(url: &Url, message: &str) -> SourceError {
    SourceError::Failed(format!("{}: {message}", origin(url)))
}

/// A Content-Type's media type, when it looks like one (it is repeated in a message).
fn media_type(content_type: &str) -> Option<&str> {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"!#$&^_.+-/".contains(&b);
    (!media_type.is_empty() && media_type.len() <= 100 && media_type.bytes().all(plain)).then_some(media_type)
}

#[cfg(test)]
mod tests {
    use super::super::tests::open_error;
    use super::*;
    use serde_json::json;

    fn parse(config: Value) -> Result<Settings, SourceError> {
        Settings::parse(config.as_object().unwrap())
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let base = Url::parse("https://api.example.com/v1/items?page=1").unwrap();
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(LINK, HeaderValue::from_str(v).unwrap());
            h
        };
        let next = |v: &str| next_link(&base, &headers(v)).map(|u| u.to_string());
        assert_eq!(
            next(r#"<https://api.example.com/v1/items?page=2>; rel="next""#).as_deref(),
            Some("https://api.example.com/v1/items?page=2")
        );
        assert_eq!(
            next(r#"</v1/items?page=1>; rel="prev", <?page=3>; rel="next last""#).as_deref(),
            Some("https://api.example.com/v1/items?page=3")
        );
        assert_eq!(next(r#"<https://x.io/a,b>; title="a, b"; rel=next"#).as_deref(), Some("https://x.io/a,b"));
        assert_eq!(next(r#"<https://x.io/p2>; rel="prev""#), None);
        assert_eq!(next(r#"<ftp://x.io/p2>; rel="next""#), None);
        assert_eq!(next("garbage"), None);
    }

    #[test]
    fn pagination_and_retry_after_are_read() {
        let p = |v: Value| Pagination::parse(v.as_object().unwrap());
        assert_eq!(p(json!({})), Ok(Pagination::None));
        assert_eq!(p(json!({"pagination": {"type": "link"}})), Ok(Pagination::Link));
        assert_eq!(
            p(json!({"pagination": {"type": "cursor", "cursorPath": "meta.next", "param": "cursor"}})),
            Ok(Pagination::Cursor { cursor_path: "meta.next".into(), param: "cursor".into() })
        );
        assert_eq!(
            p(json!({"pagination": {"type": "offset", "param": "skip", "pageSize": 50}})),
            Ok(Pagination::Offset { param: "skip".into(), page_size: 50 })
        );
        assert_eq!(
            p(json!({"pagination": {"type": "offset", "param": "skip"}})).unwrap_err().to_string().split(' ').next(),
            Some("config.pagination.pageSize")
        );
        assert_eq!(
            p(json!({"pagination": {"type": "cursor", "param": "c"}})).unwrap_err().to_string().split(' ').next(),
            Some("config.pagination.cursorPath")
        );
        assert_eq!(
            p(json!({"pagination": {"type": "pages"}})).unwrap_err().to_string(),
            "config.pagination.type must be none, link, cursor or offset"
        );
        assert!(
            parse(json!({"url": "https://x.io", "format": "csv", "pagination": {"type": "offset", "param": "o", "pageSize": 2}})).is_err()
        );
        assert_eq!(retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a date in the past waits no more");
        assert_eq!(retry_after("soon"), None);
        let u = Url::parse("https://x.io/a?skip=2&limit=5").unwrap();
        assert_eq!(with_param(&u, "skip", "4").as_str(), "https://x.io/a?limit=5&skip=4");
    }

    #[test]
    fn a_complete_config_is_read() {
        let settings = parse(json!({
            "url": " https://api.example.com/v1/orders?page=1 ",
            "format": "jsonl",
            "headers": {"Authorization": "Bearer secret", "X-Tenant": "acme"},
            "recordsPath": "data",
            "note": "ignored",
        }))
        .unwrap();
        assert_eq!(settings.url.as_str(), "https://api.example.com/v1/orders?page=1");
        assert_eq!(settings.format, Some(Format::Jsonl));
        assert_eq!(settings.headers.len(), 2);
        assert!(settings.headers["authorization"].is_sensitive());
        assert_eq!(settings.records_path.as_deref(), Some("data"));
        assert!(!format!("{settings:?}").contains("secret"), "header values stay out of debug output");
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (json!({}), "config.url is required"),
            (json!({"url": ""}), "config.url is required"),
            (json!({"url": 7}), "config.url must be a string"),
            (json!({"url": "example.com/data"}), "config.url is not a valid URL (relative URL without a base)"),
            (json!({"url": "ftp://example.com/data"}), "config.url must be an http or https URL"),
            (json!({"url": "file:///etc/passwd"}), "config.url must be an http or https URL"),
            (json!({"url": "https://x.io", "format": "xml"}), "config.format must be json, jsonl or csv"),
            (json!({"url": "https://x.io", "headers": ["a"]}), "config.headers must be an object of header names to string values"),
            (json!({"url": "https://x.io", "headers": {"X-Count": 3}}), "config.headers.X-Count must be a string"),
            (json!({"url": "https://x.io", "headers": {"X-Key": null}}), "config.headers.X-Key must be a string"),
            (json!({"url": "https://x.io", "headers": {"Bad Name": "v"}}), "config.headers.Bad Name is not a valid header name"),
            (
                json!({"url": "https://x.io", "headers": {"X-Key": "a\nb"}}),
                "config.headers.X-Key has characters a header value cannot hold",
            ),
            (json!({"url": "https://x.io", "recordsPath": {}}), "config.recordsPath must be a string"),
        ];
        for (config, message) in cases {
            assert_eq!(parse(config.clone()).unwrap_err().to_string(), message, "{config}");
        }
    }

    #[tokio::test]
    async fn blocked_addresses_fail_before_any_connection() {
        // Nothing listens on these; a connection attempt would fail differently, and slowly.
        let started = std::time::Instant::now();
        for url in
            ["http://127.0.0.1:9/", "http://[::1]:9/", "http://10.1.2.3/", "http://169.254.169.254/latest/meta-data/", "http://0x7f.1/"]
        {
            let e = open_error("http", json!({"url": url})).await;
            assert_eq!(e.code, "SOURCE_BLOCKED", "{url}: {}", e.message);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn urls_are_named_by_their_origin_only() {
        let url = Url::parse("https://user:pw@api.example.com:8443/v1/secret-token?key=abc").unwrap();
        assert_eq!(origin(&url), "https://api.example.com:8443");
        assert_eq!(failed(&url, "status 500").to_string(), "https://api.example.com:8443: status 500");
    }

    #[tokio::test]
    async fn only_time_spent_waiting_on_the_server_counts() {
        let limits =
            HttpLimits { idle_timeout: Duration::from_millis(400), total_timeout: Duration::from_millis(600), ..HttpLimits::default() };
        let step = |ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, reqwest::Error>(ms)
        };
        let mut waiting = Waiting { limits, waited: Duration::ZERO };
        assert_eq!(waiting.on(step(300)).await, Ok(300));
        // The engine's time between chunks is its own.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(waiting.on(step(100)).await, Ok(100));
        assert_eq!(waiting.on(step(500)).await, Err("took longer than 600 ms in all".into()));

        let mut waiting = Waiting { limits, waited: Duration::ZERO };
        assert_eq!(waiting.on(step(1000)).await, Err("no data for 400 ms".into()));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(duration(Duration::from_secs(10)), "10 s");
        assert_eq!(duration(Duration::from_secs(60)), "1 min");
        assert_eq!(duration(Duration::from_secs(600)), "10 min");
        assert_eq!(duration(Duration::from_secs(90)), "90 s");
    }

    #[test]
    fn media_types_are_repeated_only_when_plain() {
        assert_eq!(media_type("text/html; charset=utf-8"), Some("text/html"));
        assert_eq!(media_type("application/vnd.api+json"), Some("application/vnd.api+json"));
        assert_eq!(media_type(""), None);
        assert_eq!(media_type("text/html\"><script>"), None);
    }
}
