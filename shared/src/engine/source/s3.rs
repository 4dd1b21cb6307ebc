//! `s3` sources: the object at `key`, or every object under `prefix` in key order, read from
//! `bucket` as one stream of records. Each object's format is `format` if given, else its key's
//! extension (`.csv`, `.jsonl` or `.ndjson`, `.json`).
//!
//! What a tenant may read is [`crate::domain::source_access`]'s rule: in the deployment's source
//! bucket (the default `bucket`), only under `tenants/<tenantId>/` (the default prefix); any
//! other bucket through `roleArn`, assumed with the tenant's external id for each run.
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
    error_chain, format, max_record, optional_text, records_path, Body, Document, DocumentPosition, Documents, Position, Reader,
    SourceContext, SourceError,
};
use crate::domain::pipeline::MAX_GROUP_KEYS;
use crate::domain::source_access::S3Grant;
use crate::domain::tenant::TenantId;
use crate::engine::decode::{Decoder, Format};

#[derive(Debug)]
pub(super) struct Settings {
    /// Absent: the deployment's source bucket.
    bucket: Option<String>,
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

/// A page of a prefix's objects in partition groups: consecutive objects until a group holds
/// `group_bytes` or [`MAX_GROUP_KEYS`] keys. Groups end at page ends, so listing again from the
/// same token gives the same groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub groups: Vec<(Vec<String>, u64)>,
    /// Where the next page starts; `None`: the listing has ended.
    pub next: Option<String>,
}

impl Settings {
    pub(super) fn parse(config: &Map<String, Value>) -> Result<Settings, SourceError> {
        let bucket = optional_text(config, "bucket")?.map(str::trim).filter(|b| !b.is_empty());
        if bucket.is_some_and(|b| b.contains('/')) {
            return Err(SourceError::config("bucket", "must be a bucket name, without '/' (put the path in config.prefix or config.key)"));
        }
        let objects = match (optional_text(config, "key")?, optional_text(config, "prefix")?) {
            (Some(_), Some(_)) => return Err(SourceError::config("key", "and config.prefix cannot both be given")),
            (Some(key), None) if key.is_empty() || key.ends_with('/') => {
                return Err(SourceError::config("key", "must name an object (for every object under a folder, use config.prefix)"))
            }
            (Some(key), None) => Objects::Key(key.to_string()),
            (None, prefix) => Objects::Prefix(prefix.unwrap_or_default().trim().to_string()),
        };
        let max_record = max_record(config)?;
        Ok(Settings {
            bucket: bucket.map(str::to_string),
            objects,
            format: format(config)?,
            records_path: records_path(config)?,
            max_record,
        })
    }

    /// Whether the source is a prefix, which partitions by object.
    pub(super) fn is_prefix(&self) -> bool {
        matches!(self.objects, Objects::Prefix(_))
    }

    /// The prefix to list, as the grant has it.
    fn prefix(&self, grant: &S3Grant) -> String {
        match (&self.objects, grant) {
            (Objects::Prefix(prefix), S3Grant::Deployment { folder, .. }) if prefix.is_empty() => folder.clone(),
            (Objects::Prefix(prefix), _) => prefix.clone(),
            (Objects::Key(key), _) => key.clone(),
        }
    }

    /// One page of the prefix's objects, after `token`, grouped for partitions.
    pub(super) async fn list_groups(
        &self,
        ctx: &SourceContext,
        tenant: &TenantId,
        grant: &S3Grant,
        group_bytes: u64,
        token: Option<String>,
    ) -> Result<Listing, SourceError> {
        let client = self.client_for(ctx, tenant, grant).await?;
        let bucket = self.bucket.clone().unwrap_or_else(|| grant.bucket().to_string());
        let prefix = self.prefix(grant);
        let page = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| s3_error(&format!("listing s3://{bucket}/{prefix}"), e))?;
        let mut listing = Listing::default();
        let mut group: (Vec<String>, u64) = (Vec::new(), 0);
        for object in page.contents() {
            let (Some(key), size) = (object.key(), object.size().unwrap_or(0).max(0) as u64) else { continue };
            if key.ends_with('/') || size == 0 {
                continue;
            }
            if !group.0.is_empty() && (group.1 + size > group_bytes || group.0.len() >= MAX_GROUP_KEYS) {
                listing.groups.push(std::mem::take(&mut group));
            }
            group.0.push(key.to_string());
            group.1 += size;
        }
        if !group.0.is_empty() {
            listing.groups.push(group);
        }
        let more = page.is_truncated().unwrap_or(false);
        listing.next = page.next_continuation_token().filter(|_| more).map(str::to_string);
        Ok(listing)
    }

    async fn client_for(&self, ctx: &SourceContext, tenant: &TenantId, grant: &S3Grant) -> Result<aws_sdk_s3::Client, SourceError> {
        match grant {
            S3Grant::Deployment { .. } => Ok(ctx.s3.clone()),
            S3Grant::Customer { role_arn, external_id, .. } => assumed_client(ctx, tenant, role_arn, external_id).await,
        }
    }

    /// Opens only `keys` (a partition's objects), which must lie where the source's prefix does.
    pub(super) async fn open_keys(
        self,
        ctx: &SourceContext,
        tenant: &TenantId,
        grant: S3Grant,
        keys: &[String],
        from: Position,
    ) -> Result<Reader<Bucket>, SourceError> {
        let prefix = self.prefix(&grant);
        if keys.iter().any(|k| !k.starts_with(&prefix)) {
            return Err(SourceError::Blocked(format!("a partition names an object outside the connector's prefix '{prefix}'")));
        }
        let mut pending: VecDeque<String> = keys.iter().cloned().collect();
        // A continuation starts at the object it stopped in (opened first), then the ones after it.
        if let Some(at) = from.document.as_ref().and_then(|d| d.key.as_deref()) {
            while pending.front().is_some_and(|k| k.as_str() != at) {
                pending.pop_front();
            }
            pending.pop_front();
        }
        let client = self.client_for(ctx, tenant, &grant).await?;
        let objects = Bucket {
            client,
            bucket: self.bucket.unwrap_or_else(|| grant.bucket().to_string()),
            keys: Keys::Listed { prefix, pending, token: None, listed_all: true, after: None },
            format: self.format,
            records_path: self.records_path,
            max_record: self.max_record,
            resume: from.document.clone(),
        };
        Reader::new(objects, Vec::new(), from).start().await
    }

    /// Opens the source as `grant` allows (the caller checked the config against it).
    pub(super) async fn open(
        self,
        ctx: &SourceContext,
        tenant: &TenantId,
        grant: S3Grant,
        from: Position,
    ) -> Result<Reader<Bucket>, SourceError> {
        let resume = from.document.clone();
        let client = self.client_for(ctx, tenant, &grant).await?;
        let keys = match (self.objects, &grant) {
            (Objects::Key(key), _) => Keys::One(Some(key)),
            (Objects::Prefix(prefix), S3Grant::Deployment { folder, .. }) if prefix.is_empty() => Keys::Listed {
                prefix: folder.clone(),
                pending: VecDeque::new(),
                token: None,
                listed_all: false,
                after: resume_key(&resume),
            },
            (Objects::Prefix(prefix), _) => {
                Keys::Listed { prefix, pending: VecDeque::new(), token: None, listed_all: false, after: resume_key(&resume) }
            }
        };
        let objects = Bucket {
            client,
            bucket: self.bucket.unwrap_or_else(|| grant.bucket().to_string()),
            keys,
            format: self.format,
            records_path: self.records_path,
            max_record: self.max_record,
            resume,
        };
        Reader::new(objects, Vec::new(), from).start().await
    }
}

fn resume_key(resume: &Option<DocumentPosition>) -> Option<String> {
    resume.as_ref().and_then(|at| at.key.clone())
}

/// How long assumed credentials last: a run's invocation is shorter, and each one assumes anew.
const ASSUMED_SECONDS: i32 = 900;

/// An S3 client with the credentials of the tenant's role, assumed with its external id.
async fn assumed_client(
    ctx: &SourceContext,
    tenant: &TenantId,
    role_arn: &str,
    external_id: &str,
) -> Result<aws_sdk_s3::Client, SourceError> {
    // Session names show in the customer's CloudTrail: say who reads, within STS's 64 characters.
    let session: String = format!("pipelines-{tenant}").chars().take(64).collect();
    let out = ctx
        .sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session)
        .external_id(external_id)
        .duration_seconds(ASSUMED_SECONDS)
        .send()
        .await
        .map_err(|e| {
            let detail = match e.as_service_error() {
                Some(service) => service.meta().code().unwrap_or("refused").to_string(),
                None => error_chain(&e),
            };
            SourceError::Blocked(format!(
                "config.roleArn could not be assumed ({detail}): the role must trust this deployment with external id {external_id}"
            ))
        })?;
    let creds = out.credentials().ok_or_else(|| SourceError::Failed("config.roleArn: STS answered without credentials".into()))?;
    let credentials = aws_sdk_s3::config::Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        None,
        "assumed-role",
    );
    let config = ctx.s3.config().to_builder().credentials_provider(credentials).build();
    Ok(aws_sdk_s3::Client::from_conf(config))
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
        assert_eq!((settings.bucket.as_deref(), &settings.objects), (Some("data"), &Objects::Key("in/orders.csv".into())));
        assert_eq!(parse(json!({"prefix": "tenants/t/"})).unwrap().bucket, None, "the deployment's bucket");
        assert_eq!(parse(json!({"bucket": "data", "prefix": "in/"})).unwrap().objects, Objects::Prefix("in/".into()));
        assert_eq!(parse(json!({"bucket": "data"})).unwrap().objects, Objects::Prefix(String::new()));
        assert_eq!(parse(json!({"bucket": "data", "key": null, "prefix": "x"})).unwrap().objects, Objects::Prefix("x".into()));
        let settings = parse(json!({"bucket": "data", "format": "jsonl", "recordsPath": "rows"})).unwrap();
        assert_eq!((settings.format, settings.records_path.as_deref()), (Some(Format::Jsonl), Some("rows")));
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
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
