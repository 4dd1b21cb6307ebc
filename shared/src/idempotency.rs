//! `Idempotency-Key` on create and trigger calls: a replay within 24 hours returns the first
//! response; the same key with a different request is a 422; while the first is still being
//! served, a replay is a 409. Keys are per tenant and expire through DynamoDB TTL (`expiresAt`).
//!
//! A request first *begins* under its key (a conditional write that only one request can win),
//! then either *completes* (its response is saved) or *abandons* the key (on an error, so that a
//! retry may run again). A server that dies in between leaves a lock that lapses after
//! [`LOCK`], after which the same request may take the key over.

use chrono::{Duration, Utc};
use sha2::{Digest, Sha256};

use crate::domain::stamp;
use crate::domain::tenant::TenantId;
use crate::error::ApiError;
use crate::store::{IdempotencyRecord, Store};

/// How long a first response is replayed.
pub const RETENTION: Duration = Duration::hours(24);
/// How long a request that began under a key holds it before another may take it over.
pub const LOCK: Duration = Duration::seconds(60);

/// A key as a client sent it: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let ok = (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(s.to_string())).ok_or_else(|| ApiError::field("Idempotency-Key", "must be 1 to 255 visible ASCII characters"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request is, for telling a replay from a different request under the same key.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The two ways a request under a key can go.
#[derive(Debug)]
pub enum Begin {
    /// First time (or the key lapsed): serve it, then `complete` or `abandon`.
    Proceed,
    /// Served before: answer this.
    Replay { status: u16, body: String },
}

pub async fn begin(store: &Store, tenant: &TenantId, key: &IdempotencyKey, fingerprint: &str) -> Result<Begin, ApiError> {
    let now = Utc::now();
    let record = IdempotencyRecord {
        fingerprint: fingerprint.to_string(),
        status: None,
        body: None,
        locked_until: stamp(now + LOCK),
        expires_at: (now + RETENTION).timestamp(),
    };
    let Some(existing) = store.begin_idempotent(tenant, key.as_str(), &record, &stamp(now), now.timestamp()).await? else {
        return Ok(Begin::Proceed);
    };
    if existing.fingerprint != fingerprint {
        return Err(ApiError::Unprocessable("this Idempotency-Key was already used with a different request".into()));
    }
    match (existing.status, existing.body) {
        (Some(status), Some(body)) => Ok(Begin::Replay { status, body }),
        _ => Err(ApiError::Conflict("a request with this Idempotency-Key is still in progress; retry shortly".into())),
    }
}

pub async fn complete(store: &Store, tenant: &TenantId, key: &IdempotencyKey, status: u16, body: &str) -> Result<(), ApiError> {
    Ok(store.complete_idempotent(tenant, key.as_str(), status, body).await?)
}

pub async fn abandon(store: &Store, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), ApiError> {
    Ok(store.abandon_idempotent(tenant, key.as_str()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::parse("order-42_retry.1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = fingerprint("POST", "/api/v1/pipelines", b"{}");
        assert_eq!(a, fingerprint("POST", "/api/v1/pipelines", b"{}"));
        assert_ne!(a, fingerprint("POST", "/api/v1/pipelines", b"{ }"));
        assert_ne!(a, fingerprint("POST", "/api/v1/pipelines/x/run", b"{}"));
    }
}
