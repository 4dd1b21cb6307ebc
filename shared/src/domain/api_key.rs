//! API keys: a secret that names its tenant and key, stored only as a hash.
//!
//! A key reads `pl.<base64url(tenant)>.<key id>.<secret>`. The tenant and id in it locate the
//! stored key with one GetItem under the tenant's own partition; the secret is checked against
//! the stored SHA-256 digest (keys are 256 random bits: a fast hash is enough, no KDF needed).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ids::ApiKeyId;
use super::input::{one_of, text, Check, Object};
use super::tenant::{Role, TenantId};
use crate::domain::input::InputError;

/// A key as stored: never the secret itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub secret_hash: String,
    pub created_at: String,
    /// After this instant the key is refused; none: it lasts until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl ApiKey {
    /// Whether the key still opens at `now` (both timestamps as [`super::stamp`] writes them,
    /// which order as strings).
    pub fn is_live(&self, now: &str) -> bool {
        self.expires_at.as_deref().is_none_or(|end| now < end)
    }
}

/// A key as a client presented it, split into its parts.
#[derive(Debug)]
pub struct PresentedKey {
    pub tenant: TenantId,
    pub id: ApiKeyId,
    secret: String,
}

impl PresentedKey {
    pub fn parse(key: &str) -> Option<Self> {
        let mut parts = key.split('.');
        let (Some("pl"), Some(tenant), Some(id), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let tenant = String::from_utf8(URL_SAFE_NO_PAD.decode(tenant).ok()?).ok()?;
        Some(Self { tenant: TenantId::parse(&tenant).ok()?, id: ApiKeyId::parse(id)?, secret: secret.to_string() })
    }

    /// Whether this key's secret is the one `stored` was made from (in constant time).
    pub fn matches(&self, stored: &ApiKey) -> bool {
        let digest = hash(&self.secret);
        let (a, b) = (digest.as_bytes(), stored.secret_hash.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A newly issued key: the stored part, and the full key shown to the client once.
pub struct IssuedKey {
    pub stored: ApiKey,
    pub key: String,
}

pub fn issue(tenant: &TenantId, name: String, role: Role, now: &str) -> IssuedKey {
    let id = ApiKeyId::generate();
    // Two v4 UUIDs: 244 bits from the OS's secure generator.
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let key = format!("pl.{}.{}.{}", URL_SAFE_NO_PAD.encode(tenant.as_str()), id, secret);
    let stored = ApiKey { id, name, role, secret_hash: hash(&secret), created_at: now.into(), expires_at: None };
    IssuedKey { stored, key }
}

/// `POST /api-keys`, checked.
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    pub expires_at: Option<String>,
}

/// How far ahead a key may expire: long enough for any rotation policy, short of forever.
const MAX_LIFETIME_DAYS: i64 = 3660;

impl NewApiKey {
    pub fn parse(body: &Value, now: chrono::DateTime<chrono::Utc>) -> Result<Self, InputError> {
        let obj = Object::root(body)?;
        let mut check = Check::new();
        check.only_known(&obj, &["name", "role", "expiresAt"]);
        let name = check.required(&obj, "name", text(200));
        let role = check.required(&obj, "role", one_of(Role::NAMES));
        let expires_at = check.optional(&obj, "expiresAt", |v| expiry(v, now));
        check.finish()?;
        match (name, role) {
            (Some(name), Some(role)) => Ok(Self { name, role, expires_at }),
            _ => Err(InputError::Inconsistent("api key checks passed with a field missing")),
        }
    }
}

/// An RFC 3339 instant after `now` and within [`MAX_LIFETIME_DAYS`], as the store keeps it.
fn expiry(v: &Value, now: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
    let text = v.as_str().ok_or("must be an RFC 3339 timestamp (2027-01-31T00:00:00Z)")?;
    let at = chrono::DateTime::parse_from_rfc3339(text.trim())
        .map_err(|_| "must be an RFC 3339 timestamp (2027-01-31T00:00:00Z)".to_string())?
        .with_timezone(&chrono::Utc);
    if at <= now {
        return Err("must be in the future".into());
    }
    if at > now + chrono::Duration::days(MAX_LIFETIME_DAYS) {
        return Err(format!("must be within {MAX_LIFETIME_DAYS} days"));
    }
    Ok(super::stamp(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_key_parses_back_and_matches_only_itself() {
        let tenant = TenantId::parse("acme").unwrap();
        let issued = issue(&tenant, "ci".into(), Role::Editor, "t");
        let presented = PresentedKey::parse(&issued.key).unwrap();
        assert_eq!(presented.tenant, tenant);
        assert_eq!(presented.id, issued.stored.id);
        assert!(presented.matches(&issued.stored));
        assert!(!issued.key.contains(&issued.stored.secret_hash));

        let other = issue(&tenant, "other".into(), Role::Editor, "t");
        assert!(!presented.matches(&other.stored));
    }

    #[test]
    fn a_key_may_expire_in_the_future_only() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let parse = |at: Value| NewApiKey::parse(&serde_json::json!({"name": "ci", "role": "viewer", "expiresAt": at}), now);
        assert_eq!(parse("2027-01-31T00:00:00+01:00".into()).unwrap().expires_at.as_deref(), Some("2027-01-30T23:00:00.000Z"));
        for bad in [Value::from("2026-11-30T00:00:00Z"), Value::from("tomorrow"), Value::from(5), Value::from("2099-01-01T00:00:00Z")] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        let mut key = issue(&TenantId::parse("acme").unwrap(), "ci".into(), Role::Viewer, "t").stored;
        assert!(key.is_live("2026-12-01T00:00:00.000Z"));
        key.expires_at = Some("2026-12-01T00:00:00.000Z".into());
        assert!(key.is_live("2026-11-30T23:59:59.999Z") && !key.is_live("2026-12-01T00:00:00.000Z"));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in [
            "",
            "pl",
            "pl.x.y.z",
            "xx.YWNtZQ.key_0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4.s",
            "pl.YWNtZQ.key_0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4.s.extra",
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad}");
        }
        assert!(PresentedKey::parse("pl.YWNtZQ.key_0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4.s").is_some());
    }
}
