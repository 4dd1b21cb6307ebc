//! `Idempotency-Key` on create and trigger calls: a replay within 24 hours returns the first
//! response; the same key with a different request is a 422; duplicates sent at once make one
//! write, and each answers with its reply. Keys are per tenant and expire through DynamoDB TTL
//! (`expiresAt`).
//!
//! The handler of such an endpoint saves its reply ([`Claim::save`]) in the same transaction as
//! the write it makes (a pipeline, a trigger's run), so the two commit together or not at all, at
//! no extra round trip: a retry can never make a second one, even when the server dies between
//! the write and its answer. A duplicate that loses the race replays the winner's reply.
//! (Records locked by an earlier version, without a reply, answer 409 until their lock lapses.)

use chrono::{Duration, Utc};
use sha2::{Digest, Sha256};

use crate::domain::stamp;
use crate::error::ApiError;
use crate::store::{IdempotencyRecord, SavedReply};

/// How long a first response is replayed.
pub const RETENTION: Duration = Duration::hours(24);

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

/// A request's hold on its key, for an endpoint that saves its reply in its own write.
#[derive(Debug, Clone)]
pub struct Claim {
    pub key: IdempotencyKey,
    pub fingerprint: String,
}

impl Claim {
    /// The completed record of the reply `status`/`body`, to write beside the request's write.
    pub fn save(&self, status: u16, body: String) -> SavedReply {
        let now = Utc::now();
        let record = IdempotencyRecord {
            fingerprint: self.fingerprint.clone(),
            status: Some(status),
            body: Some(body),
            locked_until: stamp(now),
            expires_at: (now + RETENTION).timestamp(),
        };
        SavedReply { key: self.key.as_str().to_string(), record, now: stamp(now), now_epoch: now.timestamp() }
    }

    /// What to answer when a live record held the key: its reply, or why not.
    pub fn replay(&self, existing: IdempotencyRecord) -> Result<(u16, String), ApiError> {
        judge(existing, &self.fingerprint)
    }
}

/// The answer to a request whose key a live record holds.
fn judge(existing: IdempotencyRecord, fingerprint: &str) -> Result<(u16, String), ApiError> {
    if existing.fingerprint != fingerprint {
        return Err(ApiError::Unprocessable("this Idempotency-Key was already used with a different request".into()));
    }
    match (existing.status, existing.body) {
        (Some(status), Some(body)) => Ok((status, body)),
        _ => Err(ApiError::Conflict("a request with this Idempotency-Key is still in progress; retry shortly".into())),
    }
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

    fn record(fingerprint: &str, reply: Option<(u16, &str)>) -> IdempotencyRecord {
        IdempotencyRecord {
            fingerprint: fingerprint.into(),
            status: reply.map(|r| r.0),
            body: reply.map(|r| r.1.to_string()),
            locked_until: "2026-12-01T00:00:00Z".into(),
            expires_at: 0,
        }
    }

    #[test]
    fn a_held_key_replays_its_reply_only_for_the_same_request() {
        assert_eq!(judge(record("fp", Some((201, "{}"))), "fp").unwrap(), (201, "{}".to_string()));
        assert!(matches!(judge(record("fp", Some((201, "{}"))), "other"), Err(ApiError::Unprocessable(_))));
        assert!(matches!(judge(record("fp", None), "fp"), Err(ApiError::Conflict(_))));
    }

    #[test]
    fn a_saved_reply_is_complete_and_expires_in_a_day() {
        let claim = Claim { key: IdempotencyKey::parse("k").unwrap(), fingerprint: "fp".into() };
        let saved = claim.save(201, "{}".into());
        assert_eq!((saved.key.as_str(), saved.record.status, saved.record.body.as_deref()), ("k", Some(201), Some("{}")));
        assert_eq!(saved.record.expires_at - saved.now_epoch, RETENTION.num_seconds());
        assert_eq!(claim.replay(saved.record).unwrap().0, 201);
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = fingerprint("POST", "/api/v1/pipelines", b"{}");
        assert_eq!(a, fingerprint("POST", "/api/v1/pipelines", b"{}"));
        assert_ne!(a, fingerprint("POST", "/api/v1/pipelines", b"{ }"));
        assert_ne!(a, fingerprint("POST", "/api/v1/pipelines/x/run", b"{}"));
    }
}
