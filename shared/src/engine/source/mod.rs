//! Sources: where a run's records come from. [`open`] reads a connector's config and returns a
//! [`Source`] that hands out records in batches.
//!
//! The executable connector types are `inline` (records kept in the config, for demos and tests),
//! `http` (a URL answering JSON, JSON Lines or CSV) and `s3` (one object, or every object under a
//! prefix). Bytes reach the streaming [`Decoder`] chunk by chunk, so a source holds one chunk's
//! records plus the batch being filled; a JSON document, which does not stream, is the exception.
//!
//! Resuming from a checkpoint reads the skipped records again and drops them: no format or
//! service here offers a position to seek to that would survive between two runs.
//!
//! Config values that are null count as absent (editors keep cleared fields as null), and keys a
//! config has beyond its options are ignored.

mod guard;
mod http;
mod inline;
mod s3;

use std::collections::VecDeque;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::decode::{DecodeError, Decoder, Format};
use super::record::Record;
use crate::domain::connector::Connector;
use crate::domain::run::RunError;

pub use guard::Range;

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
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::Unsupported(_) => "UNSUPPORTED_CONNECTOR",
            SourceError::Config { .. } => "INVALID_CONNECTOR_CONFIG",
            SourceError::Blocked(_) => "SOURCE_BLOCKED",
            SourceError::Failed(_) => "SOURCE_ERROR",
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
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            max_redirects: 5,
        }
    }
}

/// What sources need from the outside world.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub s3: aws_sdk_s3::Client,
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
        Self::with_s3(aws_sdk_s3::Client::from_conf(config), allow_private_addresses)
    }

    pub fn with_s3(s3: aws_sdk_s3::Client, allow_private_addresses: bool) -> Self {
        SourceContext { s3, http: HttpLimits::default(), allow_private_addresses }
    }

    /// [`SourceContext::new`], with private addresses allowed when the deployment says so.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(sdk, Self::private_allowed_by_env())
    }

    /// `SOURCES_ALLOW_PRIVATE=1` (or `true`): for the local stack and private deployments.
    pub fn private_allowed_by_env() -> bool {
        allows_private(std::env::var("SOURCES_ALLOW_PRIVATE").ok().as_deref())
    }
}

fn allows_private(setting: Option<&str>) -> bool {
    setting.is_some_and(|v| v.trim() == "1" || v.trim().eq_ignore_ascii_case("true"))
}

pub trait Source: Send {
    /// The next batch of at most `max` records; `None` when the source is exhausted. A batch is
    /// short only at the end, and `max` 0 counts as 1. After an error the source keeps failing.
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Vec<Record>>, RunError>>;
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

/// Checks that a connector can be opened as a source, without opening it: the type is executable
/// and its config is complete.
pub fn check(connector: &Connector) -> Result<(), RunError> {
    Settings::parse(connector)?;
    Ok(())
}

/// Opens the connector's source, skipping the first `skip` records (a run resumed from a
/// checkpoint). An `http` source makes its request here and an `s3` source lists and opens its
/// first object, so that an unreachable source fails before any record is read.
pub async fn open(connector: &Connector, ctx: &SourceContext, skip: u64) -> Result<Box<dyn Source>, RunError> {
    let source: Box<dyn Source> = match Settings::parse(connector)? {
        Settings::Inline(settings) => Box::new(settings.open(skip)),
        Settings::Http(settings) => Box::new(settings.open(ctx, skip).await?),
        Settings::S3(settings) => Box::new(settings.open(ctx, skip).await?),
    };
    Ok(source)
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

/// `config.recordsPath`: where a JSON document keeps its records (`data.items`).
fn records_path(config: &Map<String, Value>) -> Result<Option<String>, SourceError> {
    Ok(optional_text(config, "recordsPath")?.map(str::trim).filter(|p| !p.is_empty()).map(str::to_string))
}

// --- Reading records ------------------------------------------------------------------------

/// One stream of bytes in one format: a response, an object, inline data.
struct Document {
    /// For messages: never a URL's path or query, which may carry credentials.
    name: String,
    decoder: Decoder,
    body: Body,
}

enum Body {
    Inline(Bytes),
    Http(Box<http::Body>),
    S3(ByteStream),
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

/// The one [`Source`]: decodes its documents in turn, as one stream of records.
struct Reader<D> {
    documents: D,
    current: Option<Document>,
    /// Decoded and not yet handed out: less than a batch, plus the last chunk's records.
    ready: VecDeque<Record>,
    skip: u64,
    /// The documents have ended (and with them the current one).
    exhausted: bool,
    failed: Option<SourceError>,
}

impl<D: Documents> Reader<D> {
    /// `records` come before the documents' (inline records have no documents).
    fn new(documents: D, records: Vec<Record>, skip: u64) -> Self {
        Reader { documents, current: None, ready: records.into(), skip, exhausted: false, failed: None }
    }

    /// Opens the first document, so that a source that cannot be reached fails at `open`.
    async fn start(mut self) -> Result<Self, SourceError> {
        self.current = self.documents.next().await?;
        self.exhausted = self.current.is_none();
        Ok(self)
    }

    /// Decodes until `want` records are ready (after those to skip) or the documents end.
    async fn fill(&mut self, want: usize) -> Result<(), SourceError> {
        loop {
            let dropped = self.ready.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            self.ready.drain(..dropped);
            self.skip -= dropped as u64;
            if self.ready.len() >= want || self.exhausted {
                return Ok(());
            }
            let Some(document) = self.current.as_mut() else {
                self.current = self.documents.next().await?;
                self.exhausted = self.current.is_none();
                continue;
            };
            let chunk = document.body.chunk().await.map_err(|e| SourceError::Failed(format!("{}: reading failed: {e}", document.name)))?;
            match chunk {
                Some(chunk) => {
                    let records = document.decoder.feed(&chunk).map_err(|e| decode_error(&document.name, e))?;
                    self.ready.extend(records);
                }
                None => {
                    if let Some(document) = self.current.take() {
                        let records = document.decoder.finish().map_err(|e| decode_error(&document.name, e))?;
                        self.ready.extend(records);
                    }
                }
            }
        }
    }
}

impl<D: Documents> Source for Reader<D> {
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Vec<Record>>, RunError>> {
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
            Ok(Some(self.ready.drain(..n).collect()))
        })
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
        SourceContext::with_s3(aws_sdk_s3::Client::from_conf(config), false)
    }

    pub(super) async fn open_error(kind: &str, config: Value) -> RunError {
        match open(&connector(kind, config), &context(), 0).await {
            Ok(_) => panic!("opened"),
            Err(e) => e,
        }
    }

    /// Every batch, by size, and every record.
    pub(super) async fn drain(source: &mut dyn Source, max: usize) -> (Vec<usize>, Vec<Value>) {
        let (mut sizes, mut records) = (Vec::new(), Vec::new());
        while let Some(batch) = source.next_batch(max).await.unwrap() {
            sizes.push(batch.len());
            records.extend(batch.into_iter().map(Value::Object));
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
        let e = check(&connector("s3", json!({"prefix": "in/"}))).unwrap_err();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("INVALID_CONNECTOR_CONFIG", "config.bucket is required"));
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
        Document { name: "test data".into(), decoder: Decoder::new(format, None), body: Body::Inline(Bytes::from(text.to_string())) }
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
        let mut reader = Reader::new(many(), Vec::new(), 0).start().await.unwrap();
        let (sizes, records) = drain(&mut reader, 2).await;
        assert_eq!(sizes, [2, 2, 1]);
        assert_eq!(records, [json!({"n": "1"}), json!({"n": "2"}), json!({"n": 3}), json!({"n": 4}), json!({"n": 5})]);
        assert!(reader.next_batch(2).await.unwrap().is_none(), "stays exhausted");

        // Skipping crosses documents.
        let mut reader = Reader::new(many(), Vec::new(), 3).start().await.unwrap();
        assert_eq!(drain(&mut reader, 10).await.1, [json!({"n": 4}), json!({"n": 5})]);
        let mut reader = Reader::new(many(), Vec::new(), 99).start().await.unwrap();
        assert_eq!(drain(&mut reader, 10).await.0, Vec::<usize>::new());
    }

    #[tokio::test]
    async fn a_decoding_error_names_the_document_and_sticks() {
        let mut reader = Reader::new(Some(document(Format::Jsonl, "{\"a\":1}\n{\"a\":2}\nnope\n")), Vec::new(), 0).start().await.unwrap();
        // The chunk holding the bad line fails as a whole.
        let e = reader.next_batch(1).await.unwrap_err();
        assert_eq!(e.code, "SOURCE_ERROR");
        assert_eq!(e.message, "test data: line 3: invalid JSON at column 2: expected ident");
        assert_eq!(reader.next_batch(5).await.unwrap_err(), e);
    }

    #[tokio::test]
    async fn a_batch_of_zero_is_a_batch_of_one() {
        let mut reader = Reader::new(Some(document(Format::Jsonl, "{\"a\":1}\n{\"a\":2}\n")), Vec::new(), 0).start().await.unwrap();
        assert_eq!(drain(&mut reader, 0).await.0, [1, 1]);
    }

    #[tokio::test]
    async fn memory_holds_a_chunk_and_a_batch() {
        // 100k lines of about 10 bytes: a 64 KiB chunk decodes to about 6,500 records.
        let text: String = (0..100_000).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        let mut reader = Reader::new(Some(document(Format::Jsonl, &text)), Vec::new(), 0).start().await.unwrap();
        let mut seen = 0;
        let mut most = 0;
        while let Some(batch) = reader.next_batch(100).await.unwrap() {
            seen += batch.len();
            most = most.max(reader.ready.len());
        }
        assert_eq!(seen, 100_000);
        assert!(most < 100 + INLINE_CHUNK / 6, "held {most} records");
    }
}
