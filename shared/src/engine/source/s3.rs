//! `s3` sources: the object at `key`, or every object under `prefix` in key order, read from
//! `bucket` as one stream of records. Without either, the whole bucket. Each object's format is
//! `format` if given, else its key's extension (`.csv`, `.jsonl` or `.ndjson`, `.json`).
//!
//! Under a prefix, "directory" keys (ending in `/`) and empty objects are passed over: they hold
//! no records, and markers such as `_SUCCESS` are empty. Keys are listed a page at a time, as the
//! reading reaches them, and each object is read as a stream.
//!
//! A continuation opens the object it stopped in with `Range: bytes=<offset>-` and `If-Match`
//! on the ETag it read before (an object replaced meanwhile fails the run rather than mix two
//! versions), then lists on after that key.

use std::collections::VecDeque;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::{
    error_chain, format, max_record, optional_text, records_path, required_text, Body, Document, DocumentPosition, Documents, Position,
    Reader, SourceContext, SourceError,
};
use crate::engine::decode::{Decoder, Format};

#[derive(Debug)]
pub(super) struct Settings {
    bucket: String,
    objects: Objects,
    format: Option<Format>,
    records_path: Option<String>,
    max_record: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Objects {
    Key(String),
    Prefix(String),
}

impl Settings {
    pub(super) fn parse(config: &Map<String, Value>) -> Result<Settings, SourceError> {
        let bucket = required_text(config, "bucket")?.trim();
        if bucket.contains('/') {
            return Err(SourceError::config("bucket", "must be a bucket name, without '/' (put the path in config.prefix or config.key)"));
        }
        let objects = match (optional_text(config, "key")?, optional_text(config, "prefix")?) {
            (Some(_), Some(_)) => return Err(SourceError::config("key", "and config.prefix cannot both be given")),
            (Some(key), None) if key.is_empty() || key.ends_with('/') => {
                return Err(SourceError::config("key", "must name an object (for every object under a folder, use config.prefix)"))
            }
            (Some(key), None) => Objects::Key(key.to_string()),
            (None, prefix) => Objects::Prefix(prefix.unwrap_or_default().to_string()),
        };
        let max_record = max_record(config)?;
        Ok(Settings { bucket: bucket.to_string(), objects, format: format(config)?, records_path: records_path(config)?, max_record })
    }

    pub(super) async fn open(self, ctx: &SourceContext, from: Position) -> Result<Reader<Bucket>, SourceError> {
        let resume = from.document.clone();
        let keys = match self.objects {
            Objects::Key(key) => Keys::One(Some(key)),
            Objects::Prefix(prefix) => {
                let after = resume.as_ref().and_then(|at| at.key.clone());
                Keys::Listed { prefix, pending: VecDeque::new(), token: None, listed_all: false, after }
            }
        };
        let objects = Bucket {
            client: ctx.s3.clone(),
            bucket: self.bucket,
            keys,
            format: self.format,
            records_path: self.records_path,
            max_record: self.max_record,
            resume,
        };
        Reader::new(objects, Vec::new(), from).start().await
    }
}

/// The objects of one source, opened one at a time.
pub(super) struct Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
    keys: Keys,
    format: Option<Format>,
    records_path: Option<String>,
    max_record: usize,
    /// Where a continuation resumes: the first document opened is this one, at this mark.
    resume: Option<DocumentPosition>,
}

enum Keys {
    One(Option<String>),
    /// `pending` holds the rest of the last page listed; `token` leads to the next one; listing
    /// starts after the key `after` (the object a continuation resumes in, opened first).
    Listed {
        prefix: String,
        pending: VecDeque<String>,
        token: Option<String>,
        listed_all: bool,
        after: Option<String>,
    },
}

impl Bucket {
    async fn next_key(&mut self) -> Result<Option<String>, SourceError> {
        let (prefix, pending, token, listed_all, after) = match &mut self.keys {
            Keys::One(key) => return Ok(key.take()),
            Keys::Listed { prefix, pending, token, listed_all, after } => (prefix, pending, token, listed_all, after),
        };
        loop {
            if let Some(key) = pending.pop_front() {
                return Ok(Some(key));
            }
            if *listed_all {
                return Ok(None);
            }
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix.as_str())
                .set_start_after(after.take())
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error(&format!("listing s3://{}/{prefix}", self.bucket), e))?;
            for object in page.contents() {
                match object.key() {
                    Some(key) if !key.ends_with('/') && object.size() != Some(0) => pending.push_back(key.to_string()),
                    _ => {}
                }
            }
            *token = page.next_continuation_token().map(str::to_string);
            *listed_all = !page.is_truncated().unwrap_or(false) || token.is_none();
        }
    }

    async fn open_next(&mut self) -> Result<Option<Document>, SourceError> {
        // A continuation's first document is the one it stopped in.
        let (key, at) = match self.resume.take() {
            Some(at) => match (at.key.clone(), &self.keys) {
                (Some(key), _) => (key, Some(at)),
                (None, Keys::One(_)) => match self.next_key().await? {
                    Some(key) => (key, Some(at)),
                    None => return Ok(None),
                },
                (None, _) => return Err(SourceError::Failed("the checkpoint names no object to resume in".into())),
            },
            None => match self.next_key().await? {
                Some(key) => (key, None),
                None => return Ok(None),
            },
        };
        if let Keys::One(key) = &mut self.keys {
            key.take();
        }
        let name = format!("s3://{}/{key}", self.bucket);
        let format = self.format.or_else(|| format_of(&key)).ok_or_else(|| {
            SourceError::config(
                "format",
                format!("is required: the format of {name} cannot be told from its extension (.csv, .jsonl, .ndjson, .json)"),
            )
        })?;
        let mut request = self.client.get_object().bucket(&self.bucket).key(&key);
        if let Some(at) = &at {
            request = request.range(format!("bytes={}-", at.mark.offset)).set_if_match(at.etag.clone());
        }
        let object = match request.send().await {
            Ok(object) => object,
            // Stopped at the object's very end: nothing of it is left to read.
            Err(e) if at.is_some() && status(&e) == Some(416) => {
                let at = at.unwrap_or_default();
                let decoder = Decoder::resume(format, self.max_record, at.mark, at.header);
                return Ok(Some(Document { key: Some(key), etag: at.etag, ..Document::new(name, decoder, Body::Empty) }));
            }
            Err(e) if at.is_some() && status(&e) == Some(412) => {
                return Err(SourceError::Failed(format!(
                    "{name} changed while the run was reading it; run it again to read the new version"
                )));
            }
            Err(e) => return Err(s3_error(&format!("reading {name}"), e)),
        };
        let offset = at.as_ref().map_or(0, |at| at.mark.offset);
        let decoder = match at {
            Some(at) => Decoder::resume(format, self.max_record, at.mark, at.header),
            None => Decoder::new(format, self.records_path.as_deref(), self.max_record),
        };
        let (etag, size) = (object.e_tag().map(str::to_string), object.content_length().map(|n| offset + n.max(0) as u64));
        Ok(Some(Document { key: Some(key), etag, size, ..Document::new(name, decoder, Body::S3(object.body)) }))
    }
}

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    match e {
        SdkError::ServiceError(service) => Some(service.raw().status().as_u16()),
        _ => None,
    }
}

impl Documents for Bucket {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Document>, SourceError>> {
        Box::pin(self.open_next())
    }
}

/// The format a key's extension names.
fn format_of(key: &str) -> Option<Format> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let (_, extension) = name.rsplit_once('.')?;
    Format::parse(extension)
}

/// An S3 failure: the service's error code and message, or what kept the request from being made.
/// Never the raw response, which can hold object data.
fn s3_error<E: ProvideErrorMetadata + std::error::Error + 'static>(what: &str, e: SdkError<E>) -> SourceError {
    let detail = match &e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let error = service.err();
            match (error.code(), error.message()) {
                (Some(code), Some(message)) => format!("{code} ({message}), status {status}"),
                (Some(code), None) => format!("{code}, status {status}"),
                _ => format!("status {status}"),
            }
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::ResponseError(response) => format!("unreadable response, status {}", response.raw().status().as_u16()),
        other => error_chain(other),
    };
    SourceError::Failed(format!("{what}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(config: Value) -> Result<Settings, SourceError> {
        Settings::parse(config.as_object().unwrap())
    }

    #[test]
    fn objects_are_one_key_or_a_prefix() {
        let settings = parse(json!({"bucket": " data ", "key": "in/orders.csv"})).unwrap();
        assert_eq!((settings.bucket.as_str(), &settings.objects), ("data", &Objects::Key("in/orders.csv".into())));
        assert_eq!(parse(json!({"bucket": "data", "prefix": "in/"})).unwrap().objects, Objects::Prefix("in/".into()));
        assert_eq!(parse(json!({"bucket": "data"})).unwrap().objects, Objects::Prefix(String::new()));
        assert_eq!(parse(json!({"bucket": "data", "key": null, "prefix": "x"})).unwrap().objects, Objects::Prefix("x".into()));
        let settings = parse(json!({"bucket": "data", "format": "jsonl", "recordsPath": "rows"})).unwrap();
        assert_eq!((settings.format, settings.records_path.as_deref()), (Some(Format::Jsonl), Some("rows")));
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (json!({}), "config.bucket is required"),
            (json!({"bucket": ""}), "config.bucket is required"),
            (json!({"bucket": ["b"]}), "config.bucket must be a string"),
            (json!({"bucket": "b/in"}), "config.bucket must be a bucket name, without '/' (put the path in config.prefix or config.key)"),
            (json!({"bucket": "b", "key": "a.csv", "prefix": "a"}), "config.key and config.prefix cannot both be given"),
            (json!({"bucket": "b", "key": ""}), "config.key must name an object (for every object under a folder, use config.prefix)"),
            (json!({"bucket": "b", "key": "in/"}), "config.key must name an object (for every object under a folder, use config.prefix)"),
            (json!({"bucket": "b", "prefix": 1}), "config.prefix must be a string"),
            (json!({"bucket": "b", "format": "avro"}), "config.format must be json, jsonl or csv"),
        ];
        for (config, message) in cases {
            assert_eq!(parse(config.clone()).unwrap_err().to_string(), message, "{config}");
        }
    }

    #[test]
    fn extensions_name_formats() {
        assert_eq!(format_of("a/b/orders.csv"), Some(Format::Csv));
        assert_eq!(format_of("orders.CSV"), Some(Format::Csv));
        assert_eq!(format_of("x/events.jsonl"), Some(Format::Jsonl));
        assert_eq!(format_of("x/events.ndjson"), Some(Format::Jsonl));
        assert_eq!(format_of("dump.json"), Some(Format::Json));
        assert_eq!(format_of("orders.csv.gz"), None);
        assert_eq!(format_of("v1.csv/orders"), None);
        assert_eq!(format_of("README"), None);
    }
}
