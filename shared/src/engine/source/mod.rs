//! Sources: where a run's records come from. [`open`] reads a connector's config and returns a
//! [`Source`] that hands out records in batches.
//!
//! The executable connector types are `inline` (records kept in the config, for demos and tests),
//! `http` (a URL answering JSON, JSON Lines or CSV) and `s3` (one object, or every object under a
//! prefix). Bytes reach the streaming [`Decoder`] chunk by chunk, so a source holds one chunk's
//! records plus the batch being filled, and no record larger than `maxRecordBytes` (1 MiB unless
//! the connector says otherwise): a larger one is handed out as a failed record.
//!
//! After every batch a source knows its [`Position`]: the records handed out, and the document
//! and byte offset just past the last one. A continuation opens the source there: `inline` at
//! the record index or byte offset, `s3` with a `Range` GetObject conditioned on the object's
//! ETag, `http` with a `Range` request (a server that ignores ranges is read from the start and
//! the bytes before the offset are dropped undecoded).
//!
//! Config values that are null count as absent (editors keep cleared fields as null), and keys a
//! config has beyond its options are ignored.

mod guard;
mod http;
pub use http::install_tls;
mod inline;
mod s3;

use std::collections::VecDeque;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::decode::{DecodeError, Decoded, Decoder, Format, Mark, DEFAULT_MAX_RECORD};
use super::record::Record;
use crate::domain::connector::Connector;
use crate::domain::run::RunError;
use crate::domain::run::RunErrorCode;
use crate::domain::source_access::SourceBuckets;
use crate::domain::tenant::TenantId;

pub use guard::Range;
pub use s3::Listing;

/// A source that cannot be opened or read; [`SourceError::code`] is the run error's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("connector type '{0}' cannot be executed yet (executable types: inline, http, s3)")]
    Unsupported(String),
    /// A config option that cannot work, named as `config.<field>`.
    #[error("config.{field} {message}")]
    Config { field: String, message: String },
    /// An address sources may not connect to.
    #[error("{0}")]
    Blocked(String),
    /// Fetching or decoding failed. Messages name statuses, lines and rows, never bodies or header
    /// values (headers may hold credentials).
    #[error("{0}")]
    Failed(String),
}

impl SourceError {
    pub fn code(&self) -> RunErrorCode {
        match self {
            SourceError::Unsupported(_) => RunErrorCode::UnsupportedConnector,
            SourceError::Config { .. } => RunErrorCode::InvalidConnectorConfig,
            SourceError::Blocked(_) => RunErrorCode::SourceBlocked,
            SourceError::Failed(_) => RunErrorCode::SourceError,
        }
    }

    fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        SourceError::Config { field: field.into(), message: message.into() }
    }
}

impl From<SourceError> for RunError {
    fn from(e: SourceError) -> Self {
        RunError::new(e.code(), e.to_string())
    }
}

/// How long an `http` source may take. The defaults suit large exports from slow APIs while a
/// stalled server still fails the run within a minute. Only time spent waiting on the server
/// counts: the engine's time with a batch, while the response waits, does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// For the DNS lookup, then again for the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// The longest wait for the response's head, or for its next bytes.
    pub idle_timeout: Duration,
    /// All the waits of one source together, redirects and body included.
    pub total_timeout: Duration,
    /// Redirects followed; each one is checked like the first address.
    pub max_redirects: usize,
    /// Retries of a request that timed out, could not connect, or got a 5xx or 429.
    pub max_retries: u32,
    /// The first retry's wait, doubled for each one after (a `Retry-After` replaces it).
    pub retry_base: Duration,
    /// The most bytes one streamed response may send.
    pub max_response_bytes: u64,
    /// The most bytes a page read whole (cursor and offset pagination) may have.
    pub max_page_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            max_redirects: 5,
            max_retries: 4,
            retry_base: Duration::from_millis(500),
            max_response_bytes: 64 * 1024 * 1024 * 1024,
            max_page_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What sources need from the outside world.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub s3: aws_sdk_s3::Client,
    /// Assumes the roles that customer buckets are read through.
    pub sts: aws_sdk_sts::Client,
    /// Where `s3` connectors may read (see [`crate::domain::source_access`]).
    pub buckets: SourceBuckets,
    /// Each `http` request gets a client of its own, pinned to the addresses vetted for it: a
    /// shared client would resolve names again, after the check.
    pub http: HttpLimits,
    /// Loopback, private and shared (CGNAT) addresses; link-local and metadata addresses never.
    pub allow_private_addresses: bool,
}

impl SourceContext {
    /// The S3 client from `sdk`. With a custom S3 endpoint (`AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL`, or one set on `sdk`), addressing is path-style, which emulators and
    /// most S3-compatible stores need.
    pub fn new(sdk: &aws_config::SdkConfig, allow_private_addresses: bool) -> Self {
        let custom_endpoint = sdk.endpoint_url().is_some()
            || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(custom_endpoint).build();
        Self::with_clients(aws_sdk_s3::Client::from_conf(config), aws_sdk_sts::Client::new(sdk), allow_private_addresses)
    }

    /// With the deployment's source bucket unset: set `buckets` for `s3` connectors to work.
    pub fn with_clients(s3: aws_sdk_s3::Client, sts: aws_sdk_sts::Client, allow_private_addresses: bool) -> Self {
        SourceContext { s3, sts, buckets: SourceBuckets::default(), http: HttpLimits::default(), allow_private_addresses }
    }

    /// [`SourceContext::new`], with private addresses allowed and the source bucket as the
    /// deployment says (`SOURCES_ALLOW_PRIVATE`, `SOURCE_BUCKET`).
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Self {
        SourceContext { buckets: SourceBuckets::from_env(), ..Self::new(sdk, Self::private_allowed_by_env()) }
    }

    /// `SOURCES_ALLOW_PRIVATE=1` (or `true`): for the local stack and private deployments.
    pub fn private_allowed_by_env() -> bool {
        allows_private(std::env::var("SOURCES_ALLOW_PRIVATE").ok().as_deref())
    }
}

fn allows_private(setting: Option<&str>) -> bool {
    setting.is_some_and(|v| v.trim() == "1" || v.trim().eq_ignore_ascii_case("true"))
}

/// A record, or why the source could not make one of its bytes (too large, not an object): a
/// failed row, counted and reported, while the rest of the source is read on.
pub type Item = Result<Record, String>;

pub trait Source: Send {
    /// The next batch of at most `max` items; `None` when the source is exhausted. A batch is
    /// short only at the end, and `max` 0 counts as 1. After an error the source keeps failing.
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Vec<Item>>, RunError>>;

    /// Where the source stands: just past the last item handed out.
    fn position(&self) -> Position;

    /// The source's size in bytes, when it is known (one object, a response with a length).
    fn bytes_total(&self) -> Option<u64> {
        None
    }
}

/// Where a source stands, as a checkpoint keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Position {
    /// Items handed out, failed ones included.
    pub records: u64,
    /// Bytes of the source read so far, across continuations (progress).
    pub bytes_read: u64,
    /// The document the last item came from, and where in it that item ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentPosition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DocumentPosition {
    /// The object's key, for a source of many documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The document's version then: a document that changed cannot be resumed at an offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub mark: Mark,
    /// A CSV document's header, which a reader starting mid-document does not see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<Vec<String>>,
}

/// A connector's config, checked.
#[derive(Debug)]
enum Settings {
    Inline(inline::Settings),
    Http(http::Settings),
    S3(s3::Settings),
}

impl Settings {
    fn parse(connector: &Connector) -> Result<Settings, SourceError> {
        let config = &connector.config;
        match connector.kind.as_str() {
            "inline" => inline::Settings::parse(config).map(Settings::Inline),
            "http" => http::Settings::parse(config).map(Settings::Http),
            "s3" => s3::Settings::parse(config).map(Settings::S3),
            other => Err(SourceError::Unsupported(other.to_string())),
        }
    }
}

/// An HTTP client for `url` that connects only at the addresses the guard vetted for its host
/// (loopback and private ones only with `allow_private_addresses`): webhooks go out through it.
pub async fn guarded_client(url: &str, ctx: &SourceContext) -> Result<(reqwest::Client, reqwest::Url), SourceError> {
    let url = reqwest::Url::parse(url).map_err(|e| SourceError::config("url", format!("is not a valid URL ({e})")))?;
    Ok((http::client_for(&url, ctx).await?, url))
}

/// Checks that a connector can be opened as a source, without opening it: the type is executable
/// and its config is complete.
pub fn check(connector: &Connector) -> Result<(), RunError> {
    Settings::parse(connector)?;
    Ok(())
}

/// Opens `tenant`'s connector's source, at `from` for a continuation. An `http` source makes its
/// request here and an `s3` source lists and opens its first object, so that an unreachable
/// source fails before any record is read. An `s3` source outside what the tenant may read is
/// refused here too, whatever the connector's config said when it was written.
pub async fn open(
    connector: &Connector,
    tenant: &TenantId,
    ctx: &SourceContext,
    from: Option<&Position>,
) -> Result<Box<dyn Source>, RunError> {
    let from = from.cloned().unwrap_or_default();
    let source: Box<dyn Source> = match Settings::parse(connector)? {
        Settings::Inline(settings) => Box::new(settings.open(from)),
        Settings::Http(settings) => Box::new(settings.open(ctx, from).await?),
        Settings::S3(settings) => {
            let grant =
                ctx.buckets.grant(tenant, &connector.config).map_err(|r| SourceError::Blocked(format!("{} {}", r.field, r.message)))?;
            Box::new(settings.open(ctx, tenant, grant, from).await?)
        }
    };
    Ok(source)
}

/// Whether the connector's source partitions by object: an `s3` source over a prefix.
pub fn partitions_by_object(connector: &Connector) -> bool {
    matches!(Settings::parse(connector), Ok(Settings::S3(settings)) if settings.is_prefix())
}

fn s3_settings(
    connector: &Connector,
    tenant: &TenantId,
    ctx: &SourceContext,
) -> Result<(s3::Settings, crate::domain::source_access::S3Grant), RunError> {
    let Settings::S3(settings) = Settings::parse(connector)? else {
        return Err(SourceError::config("type", "partitions need an s3 source").into());
    };
    let grant = ctx.buckets.grant(tenant, &connector.config).map_err(|r| SourceError::Blocked(format!("{} {}", r.field, r.message)))?;
    Ok((settings, grant))
}

/// One page of an `s3` prefix's objects, after `token`, grouped into partitions of at most
/// `group_bytes`.
pub async fn list_partitions(
    connector: &Connector,
    tenant: &TenantId,
    ctx: &SourceContext,
    group_bytes: u64,
    token: Option<String>,
) -> Result<Listing, RunError> {
    let (settings, grant) = s3_settings(connector, tenant, ctx)?;
    Ok(settings.list_groups(ctx, tenant, &grant, group_bytes, token).await?)
}

/// Opens a partition of an `s3` source: only `keys`, at `from` for a continuation.
pub async fn open_partition(
    connector: &Connector,
    tenant: &TenantId,
    ctx: &SourceContext,
    keys: &[String],
    from: Option<&Position>,
) -> Result<Box<dyn Source>, RunError> {
    let (settings, grant) = s3_settings(connector, tenant, ctx)?;
    Ok(Box::new(settings.open_keys(ctx, tenant, grant, keys, from.cloned().unwrap_or_default()).await?))
}

// --- Reading config -------------------------------------------------------------------------

fn field<'a>(config: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    config.get(name).filter(|v| !v.is_null())
}

fn optional_text<'a>(config: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, SourceError> {
    match field(config, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SourceError::config(name, "must be a string")),
    }
}

/// A string that must be there and not be blank.
fn required_text<'a>(config: &'a Map<String, Value>, name: &str) -> Result<&'a str, SourceError> {
    match optional_text(config, name)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(SourceError::config(name, "is required")),
    }
}

/// `config.format`: `json`, `jsonl` (or `ndjson`) or `csv`.
fn format(config: &Map<String, Value>) -> Result<Option<Format>, SourceError> {
    optional_text(config, "format")?
        .map(|name| Format::parse(name).ok_or_else(|| SourceError::config("format", "must be json, jsonl or csv")))
        .transpose()
}

/// The most `config.maxRecordBytes` may be: records are held whole, a batch's worth at a time.
const MAX_RECORD_LIMIT: u64 = 16 * 1024 * 1024;

/// `config.maxRecordBytes`: the largest record read (1 MiB when absent).
fn max_record(config: &Map<String, Value>) -> Result<usize, SourceError> {
    match field(config, "maxRecordBytes") {
        None => Ok(DEFAULT_MAX_RECORD),
        Some(v) => {
            v.as_u64().filter(|n| (1..=MAX_RECORD_LIMIT).contains(n)).map(|n| n as usize).ok_or_else(|| {
                SourceError::config("maxRecordBytes", format!("must be a whole number of bytes from 1 to {MAX_RECORD_LIMIT}"))
            })
        }
    }
}

/// `config.recordsPath`: where a JSON document keeps its records (`data.items`).
fn records_path(config: &Map<String, Value>) -> Result<Option<String>, SourceError> {
    Ok(optional_text(config, "recordsPath")?.map(str::trim).filter(|p| !p.is_empty()).map(str::to_string))
}

// --- Reading records ------------------------------------------------------------------------

/// One stream of bytes in one format: a response, an object, inline data.
struct Document {
    /// For messages: never a URL's path or query, which may carry credentials.
    name: String,
    /// The object's key, where a source has many documents.
    key: Option<String>,
    /// The version read (ETag), to resume it only while it is the same.
    etag: Option<String>,
    /// Bytes in all, when known.
    size: Option<u64>,
    decoder: Decoder,
    body: Body,
}

impl Document {
    fn new(name: String, decoder: Decoder, body: Body) -> Self {
        Document { name, key: None, etag: None, size: None, decoder, body }
    }
}

enum Body {
    Inline(Bytes),
    Http(Box<http::Body>),
    S3(ByteStream),
    /// Nothing left to read (a continuation that stopped at the very end).
    Empty,
}

/// Inline data is handed to the decoder in slices of this size, as a download would be.
const INLINE_CHUNK: usize = 64 * 1024;

impl Body {
    /// The next chunk; `None` at the end.
    async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        match self {
            Body::Inline(rest) => Ok((!rest.is_empty()).then(|| rest.split_to(rest.len().min(INLINE_CHUNK)))),
            Body::Http(body) => body.chunk().await,
            Body::S3(stream) => stream.try_next().await.map_err(|e| error_chain(&e)),
            Body::Empty => Ok(None),
        }
    }
}

/// The documents a source reads one after another (the objects under an S3 prefix).
trait Documents: Send {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Document>, SourceError>>;
}

/// A single document (a response, inline data), or none (inline records).
impl Documents for Option<Document> {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Document>, SourceError>> {
        let document = self.take();
        Box::pin(async move { Ok(document) })
    }
}

/// What the reader remembers of a document while its items wait to be handed out.
struct Seen {
    key: Option<String>,
    etag: Option<String>,
    header: Option<Vec<String>>,
}

/// The one [`Source`]: decodes its documents in turn, as one stream of records.
struct Reader<D> {
    documents: D,
    current: Option<Document>,
    /// Documents opened whose items may still wait in `ready`, by sequence number.
    seen: VecDeque<(u32, Seen)>,
    opened: u32,
    /// Decoded and not yet handed out (less than a batch, plus the last chunk's items), each with
    /// its document's sequence number and mark (none for inline records).
    ready: VecDeque<(Item, Option<(u32, Mark)>)>,
    skip: u64,
    position: Position,
    bytes_total: Option<u64>,
    /// The documents have ended (and with them the current one).
    exhausted: bool,
    failed: Option<SourceError>,
}

impl<D: Documents> Reader<D> {
    /// `records` come before the documents' (inline records have no documents); the first
    /// `from.records` of them are skipped.
    fn new(documents: D, records: Vec<Record>, from: Position) -> Self {
        Reader {
            documents,
            current: None,
            seen: VecDeque::new(),
            opened: 0,
            ready: records.into_iter().map(|r| (Ok(r), None)).collect(),
            skip: if from.document.is_none() { from.records } else { 0 },
            position: from,
            bytes_total: None,
            exhausted: false,
            failed: None,
        }
    }

    /// Opens the first document, so that a source that cannot be reached fails at `open`.
    async fn start(mut self) -> Result<Self, SourceError> {
        self.next_document().await?;
        self.bytes_total = self.current.as_ref().and_then(|d| d.size);
        Ok(self)
    }

    async fn next_document(&mut self) -> Result<(), SourceError> {
        self.current = self.documents.next().await?;
        self.exhausted = self.current.is_none();
        if let Some(document) = &self.current {
            self.opened += 1;
            let seen =
                Seen { key: document.key.clone(), etag: document.etag.clone(), header: document.decoder.header().map(<[String]>::to_vec) };
            self.seen.push_back((self.opened, seen));
        }
        Ok(())
    }

    /// Decodes until `want` items are ready (after those to skip) or the documents end.
    async fn fill(&mut self, want: usize) -> Result<(), SourceError> {
        let mut decoded = Vec::new();
        loop {
            let dropped = self.ready.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            self.ready.drain(..dropped);
            self.skip -= dropped as u64;
            if self.ready.len() >= want || self.exhausted {
                return Ok(());
            }
            let Some(document) = self.current.as_mut() else {
                self.next_document().await?;
                continue;
            };
            let chunk = document.body.chunk().await.map_err(|e| SourceError::Failed(format!("{}: reading failed: {e}", document.name)))?;
            let ended = match chunk {
                Some(chunk) => {
                    self.position.bytes_read += chunk.len() as u64;
                    document.decoder.feed(&chunk, &mut decoded).map_err(|e| decode_error(&document.name, e))?;
                    false
                }
                None => {
                    document.decoder.finish(&mut decoded).map_err(|e| decode_error(&document.name, e))?;
                    true
                }
            };
            let seq = self.opened;
            if let (Some(header), Some((_, seen))) = (document.decoder.header(), self.seen.back_mut()) {
                if seen.header.is_none() {
                    seen.header = Some(header.to_vec());
                }
            }
            self.ready.extend(decoded.drain(..).map(|Decoded { record, mark }| (record, Some((seq, mark)))));
            if ended {
                self.current = None;
            }
        }
    }

    /// Hands out `n` ready items and moves the position past them.
    fn take(&mut self, n: usize) -> Vec<Item> {
        let mut last = None;
        let items = self
            .ready
            .drain(..n)
            .map(|(item, spot)| {
                last = spot.or(last);
                item
            })
            .collect();
        self.position.records += n as u64;
        if let Some((seq, mark)) = last {
            while self.seen.front().is_some_and(|(s, _)| *s < seq) {
                self.seen.pop_front();
            }
            if let Some((_, seen)) = self.seen.front() {
                self.position.document =
                    Some(DocumentPosition { key: seen.key.clone(), etag: seen.etag.clone(), mark, header: seen.header.clone() });
            }
        }
        items
    }
}

impl<D: Documents> Source for Reader<D> {
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Vec<Item>>, RunError>> {
        Box::pin(async move {
            if let Some(e) = &self.failed {
                return Err(e.clone().into());
            }
            let max = max.max(1);
            if let Err(e) = self.fill(max).await {
                // Spent: what was decoded is dropped with the document that failed.
                self.failed = Some(e.clone());
                self.current = None;
                self.ready.clear();
                return Err(e.into());
            }
            if self.ready.is_empty() {
                return Ok(None);
            }
            let n = max.min(self.ready.len());
            Ok(Some(self.take(n)))
        })
    }

    fn position(&self) -> Position {
        self.position.clone()
    }

    fn bytes_total(&self) -> Option<u64> {
        self.bytes_total
    }
}

fn decode_error(name: &str, e: DecodeError) -> SourceError {
    SourceError::Failed(format!("{name}: {e}"))
}

/// An error and its causes, `a: b: c`, each cause said once (wrappers often repeat their source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ConnectorId;
    use serde_json::json;

    pub(super) fn connector(kind: &str, config: Value) -> Connector {
        let Value::Object(config) = config else { panic!("config must be an object") };
        Connector {
            id: ConnectorId::generate(),
            name: "test".into(),
            kind: kind.into(),
            description: None,
            config,
            created_at: "t".into(),
            updated_at: "t".into(),
        }
    }

    pub(super) fn context() -> SourceContext {
        let config = aws_sdk_s3::Config::builder().behavior_version(aws_sdk_s3::config::BehaviorVersion::latest()).build();
        let sts = aws_sdk_sts::Config::builder().behavior_version(aws_sdk_sts::config::BehaviorVersion::latest()).build();
        SourceContext::with_clients(aws_sdk_s3::Client::from_conf(config), aws_sdk_sts::Client::from_conf(sts), false)
    }

    pub(super) async fn open_error(kind: &str, config: Value) -> RunError {
        match open(&connector(kind, config), &TenantId::parse("t").unwrap(), &context(), None).await {
            Ok(_) => panic!("opened"),
            Err(e) => e,
        }
    }

    /// Every batch, by size, and every record.
    pub(super) async fn drain(source: &mut dyn Source, max: usize) -> (Vec<usize>, Vec<Value>) {
        let (mut sizes, mut records) = (Vec::new(), Vec::new());
        while let Some(batch) = source.next_batch(max).await.unwrap() {
            sizes.push(batch.len());
            records.extend(batch.into_iter().map(|item| Value::Object(item.expect("a record"))));
        }
        (sizes, records)
    }

    #[tokio::test]
    async fn only_executable_types_open() {
        let e = open_error("snowflake", json!({})).await;
        assert_eq!(e.code, "UNSUPPORTED_CONNECTOR");
        assert_eq!(e.message, "connector type 'snowflake' cannot be executed yet (executable types: inline, http, s3)");
        assert_eq!(check(&connector("postgres", json!({}))).unwrap_err().code, "UNSUPPORTED_CONNECTOR");
    }

    #[test]
    fn checking_reads_config_without_opening() {
        assert!(check(&connector("inline", json!({"records": []}))).is_ok());
        assert!(check(&connector("http", json!({"url": "https://example.com/x"}))).is_ok());
        assert!(check(&connector("s3", json!({"bucket": "b", "key": "k.csv"}))).is_ok());
        let e = check(&connector("s3", json!({"bucket": "in/b"}))).unwrap_err();
        assert_eq!(e.code.as_str(), "INVALID_CONNECTOR_CONFIG");
    }

    #[test]
    fn common_options_are_checked() {
        let config = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(format(&config(json!({"format": "NDJSON"}))), Ok(Some(Format::Jsonl)));
        assert_eq!(format(&config(json!({"format": null}))), Ok(None));
        assert_eq!(format(&config(json!({"format": "xml"}))).unwrap_err().to_string(), "config.format must be json, jsonl or csv");
        assert_eq!(format(&config(json!({"format": 3}))).unwrap_err().to_string(), "config.format must be a string");
        assert_eq!(required_text(&config(json!({"url": "  "})), "url").unwrap_err().to_string(), "config.url is required");
        assert_eq!(records_path(&config(json!({"recordsPath": " data.items "}))), Ok(Some("data.items".into())));
        assert_eq!(records_path(&config(json!({"recordsPath": ""}))), Ok(None));
    }

    #[test]
    fn errors_carry_their_codes() {
        let cases = [
            (SourceError::Unsupported("x".into()), "UNSUPPORTED_CONNECTOR"),
            (SourceError::config("url", "is required"), "INVALID_CONNECTOR_CONFIG"),
            (SourceError::Blocked("no".into()), "SOURCE_BLOCKED"),
            (SourceError::Failed("no".into()), "SOURCE_ERROR"),
        ];
        for (error, code) in cases {
            let run_error = RunError::from(error.clone());
            assert_eq!((run_error.code.as_str(), run_error.message), (code, error.to_string()));
        }
    }

    #[test]
    fn private_addresses_are_allowed_only_when_asked() {
        for yes in ["1", "true", " TRUE "] {
            assert!(allows_private(Some(yes)), "{yes}");
        }
        for no in [None, Some(""), Some("0"), Some("yes"), Some("false")] {
            assert!(!allows_private(no), "{no:?}");
        }
    }

    fn document(format: Format, text: &str) -> Document {
        Document::new("test data".into(), Decoder::new(format, None, DEFAULT_MAX_RECORD), Body::Inline(Bytes::from(text.to_string())))
    }

    pub(super) fn skip(records: u64) -> Position {
        Position { records, ..Position::default() }
    }

    #[tokio::test]
    async fn documents_form_one_stream_in_batches_of_max() {
        struct Many(VecDeque<Document>);
        impl Documents for Many {
            fn next(&mut self) -> BoxFuture<'_, Result<Option<Document>, SourceError>> {
                let next = self.0.pop_front();
                Box::pin(async move { Ok(next) })
            }
        }
        let many = || {
            Many(VecDeque::from([
                document(Format::Csv, "n\n1\n2\n"),
                document(Format::Csv, "n\n"),
                document(Format::Jsonl, "{\"n\":3}\n{\"n\":4}\n{\"n\":5}"),
            ]))
        };
        let mut reader = Reader::new(many(), Vec::new(), Position::default()).start().await.unwrap();
        let (sizes, records) = drain(&mut reader, 2).await;
        assert_eq!(sizes, [2, 2, 1]);
        assert_eq!(records, [json!({"n": "1"}), json!({"n": "2"}), json!({"n": 3}), json!({"n": 4}), json!({"n": 5})]);
        assert!(reader.next_batch(2).await.unwrap().is_none(), "stays exhausted");

        // Skipping crosses documents.
        let mut reader = Reader::new(many(), Vec::new(), skip(3)).start().await.unwrap();
        assert_eq!(drain(&mut reader, 10).await.1, [json!({"n": 4}), json!({"n": 5})]);
        let mut reader = Reader::new(many(), Vec::new(), skip(99)).start().await.unwrap();
        assert_eq!(drain(&mut reader, 10).await.0, Vec::<usize>::new());
    }

    #[tokio::test]
    async fn a_decoding_error_names_the_document_and_sticks() {
        let mut reader = Reader::new(Some(document(Format::Jsonl, "{\"a\":1}\n{\"a\":2}\nnope\n")), Vec::new(), Position::default())
            .start()
            .await
            .unwrap();
        // The chunk holding the bad line fails as a whole.
        let e = reader.next_batch(1).await.unwrap_err();
        assert_eq!(e.code, "SOURCE_ERROR");
        assert_eq!(e.message, "test data: line 3: invalid JSON at column 2: expected ident");
        assert_eq!(reader.next_batch(5).await.unwrap_err(), e);
    }

    #[tokio::test]
    async fn a_batch_of_zero_is_a_batch_of_one() {
        let mut reader =
            Reader::new(Some(document(Format::Jsonl, "{\"a\":1}\n{\"a\":2}\n")), Vec::new(), Position::default()).start().await.unwrap();
        assert_eq!(drain(&mut reader, 0).await.0, [1, 1]);
    }

    #[tokio::test]
    async fn memory_holds_a_chunk_and_a_batch() {
        // 100k lines of about 10 bytes: a 64 KiB chunk decodes to about 6,500 records.
        let text: String = (0..100_000).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        let mut reader = Reader::new(Some(document(Format::Jsonl, &text)), Vec::new(), Position::default()).start().await.unwrap();
        let mut seen = 0;
        let mut most = 0;
        while let Some(batch) = reader.next_batch(100).await.unwrap() {
            seen += batch.len();
            most = most.max(reader.ready.len());
        }
        assert_eq!(seen, 100_000);
        assert!(most < 100 + INLINE_CHUNK / 6, "held {most} records");
    }

    #[tokio::test]
    async fn the_position_follows_the_last_item_across_documents() {
        struct Many(VecDeque<Document>);
        impl Documents for Many {
            fn next(&mut self) -> BoxFuture<'_, Result<Option<Document>, SourceError>> {
                let next = self.0.pop_front();
                Box::pin(async move { Ok(next) })
            }
        }
        let keyed =
            |key: &str, format, text: &str| Document { key: Some(key.into()), etag: Some(format!("\"{key}\"")), ..document(format, text) };
        let docs =
            Many(VecDeque::from([keyed("a.csv", Format::Csv, "n\n1\n2\n"), keyed("b.jsonl", Format::Jsonl, "{\"n\":3}\n{\"n\":4}\n")]));
        let mut reader = Reader::new(docs, Vec::new(), Position::default()).start().await.unwrap();
        reader.next_batch(1).await.unwrap();
        let at = reader.position();
        assert_eq!(at.records, 1);
        let doc = at.document.unwrap();
        assert_eq!((doc.key.as_deref(), doc.etag.as_deref(), doc.mark), (Some("a.csv"), Some("\"a.csv\""), Mark { offset: 4, count: 2 }));
        assert_eq!(doc.header, Some(vec!["n".to_string()]), "a CSV position keeps its header");
        reader.next_batch(2).await.unwrap();
        let doc = reader.position().document.unwrap();
        assert_eq!((doc.key.as_deref(), doc.mark, doc.header), (Some("b.jsonl"), Mark { offset: 8, count: 1 }, None));
        assert_eq!(reader.position().records, 3);
        assert_eq!(reader.position().bytes_read, 22);
    }
}
