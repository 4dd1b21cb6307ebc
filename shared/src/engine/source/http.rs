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
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_RANGE, LOCATION, RANGE};
use reqwest::StatusCode;
use reqwest::{redirect, Response, Url};
use serde_json::{Map, Value};

use super::{
    error_chain, field, format, guard, max_record, records_path, required_text, Document, DocumentPosition, HttpLimits, Position, Reader,
    SourceContext, SourceError,
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
}

impl Settings {
    pub(super) fn parse(config: &Map<String, Value>) -> Result<Settings, SourceError> {
        let url = parse_url(required_text(config, "url")?)?;
        let headers = match field(config, "headers") {
            None => HeaderMap::new(),
            Some(Value::Object(headers)) => parse_headers(headers)?,
            Some(_) => return Err(SourceError::config("headers", "must be an object of header names to string values")),
        };
        Ok(Settings { url, format: format(config)?, headers, records_path: records_path(config)?, max_record: max_record(config)? })
    }

    /// A continuation asks for the rest of the body with `Range` (and `If-Range` on the ETag it
    /// saw): a 206 is decoded from the offset on; a full 200 (ranges ignored) has the bytes
    /// before the offset dropped undecoded.
    pub(super) async fn open(self, ctx: &SourceContext, from: Position) -> Result<Reader<Option<Document>>, SourceError> {
        let mut waiting = Waiting { limits: ctx.http, waited: Duration::ZERO };
        let at = from.document.clone();
        let (url, response) = self.fetch(ctx, &mut waiting, at.as_ref()).await?;
        let name = format!("the response from {}", origin(&url));
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let format = match (self.format, content_type.and_then(Format::from_content_type)) {
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
        let (decoder, discard, size) = match &at {
            None => (Decoder::new(format, self.records_path.as_deref(), self.max_record), 0, length),
            Some(at) => {
                if response.status() == StatusCode::OK && at.etag.is_some() && etag != at.etag {
                    return Err(failed(&url, "the document changed while the run was reading it; run it again to read the new version"));
                }
                let decoder = Decoder::resume(format, self.max_record, at.mark, at.header.clone());
                match response.status() {
                    StatusCode::PARTIAL_CONTENT => (decoder, 0, length.map(|n| n + at.mark.offset)),
                    StatusCode::RANGE_NOT_SATISFIABLE => (decoder, 0, Some(at.mark.offset)),
                    _ => (decoder, at.mark.offset, length),
                }
            }
        };
        let body = match response.status() {
            StatusCode::RANGE_NOT_SATISFIABLE => super::Body::Empty,
            _ => super::Body::Http(Box::new(Body { response, waiting, discard })),
        };
        let document = Document { etag: etag.or(at.and_then(|a| a.etag)), size, ..Document::new(name, decoder, body) };
        let mut reader = Reader::new(Some(document), Vec::new(), from);
        reader.bytes_total = size;
        Ok(reader)
    }

    /// The successful response, after redirects, and the URL that gave it.
    async fn fetch(
        &self,
        ctx: &SourceContext,
        waiting: &mut Waiting,
        at: Option<&DocumentPosition>,
    ) -> Result<(Url, Response), SourceError> {
        let mut url = self.url.clone();
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
            let response = waiting.on(request.send()).await.map_err(|e| failed(&url, &e))?;
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
                return Ok((url, response));
            }
            if !status.is_success() {
                return Err(failed(&url, &format!("status {status}")));
            }
            return Ok((url, response));
        }
    }
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

/// A client that connects `url`'s host only at the addresses vetted for it.
async fn client_for(url: &Url, ctx: &SourceContext) -> Result<reqwest::Client, SourceError> {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(failed(url, "the URL has no host"));
    };
    let addrs = guard::vet(host, port, ctx.allow_private_addresses, ctx.http.connect_timeout).await?;
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
}

impl Body {
    pub(super) async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            let Some(mut chunk) = self.waiting.on(self.response.chunk()).await? else { return Ok(None) };
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
