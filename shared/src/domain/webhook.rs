//! Webhooks: a pipeline's `notifications.webhookUrl` hears each run's end as a signed POST of
//! the `Run Finished` payload, retried with backoff over a bounded time, every attempt logged on
//! the run (`deliveries`).
//!
//! The signature (`X-Pipelines-Signature: t=<unix seconds>,v1=<hex>`) is HMAC-SHA256 with the
//! pipeline's `notifications.secret` over `"<t>.<body>"`: a receiver recomputes it, compares in
//! constant time, and refuses a `t` too far from its clock (a replayed delivery).

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::ids::{PipelineId, RunId};
use super::secrets::{mask_url, MASK};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-pipelines-signature";
/// Attempts of one delivery before it is given up: about 37 minutes with the default backoff.
pub const MAX_ATTEMPTS: u32 = 6;
/// The wait before the second attempt; each later one waits 6 times longer, at most 15 minutes
/// (SQS's longest delay).
pub const RETRY_BASE_SECONDS: u64 = 10;
const MAX_URL: usize = 2048;
const SECRET_LENGTH: std::ops::RangeInclusive<usize> = 16..=256;

/// Where a pipeline's runs' ends are posted, and the key that signs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    pub webhook_url: String,
    pub secret: String,
}

impl Notifications {
    /// `{webhookUrl, secret}`: an `http(s)` URL, and a secret of 16 to 256 characters. The mask a
    /// read shows for the secret keeps the one `current` holds (a client saving what it read).
    pub fn parse(v: &Value, current: Option<&Notifications>) -> Result<Self, String> {
        let obj = v.as_object().ok_or("must be an object {webhookUrl, secret}")?;
        if let Some(unknown) = obj.keys().find(|k| !["webhookUrl", "secret"].contains(&k.as_str())) {
            return Err(format!("unknown field '{unknown}' (known: webhookUrl, secret)"));
        }
        let url = obj.get("webhookUrl").and_then(Value::as_str).ok_or("webhookUrl is required (an https URL)")?.trim();
        // The masked URL a read showed stands for the stored one.
        let url = match current {
            Some(c) if !c.webhook_url.is_empty() && mask_url(&c.webhook_url) == url => c.webhook_url.as_str(),
            _ => url,
        };
        let parsed = url::Url::parse(url).map_err(|_| "webhookUrl must be an absolute http(s) URL".to_string())?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() || url.len() > MAX_URL {
            return Err(format!("webhookUrl must be an http(s) URL with a host, at most {MAX_URL} characters"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("webhookUrl may not carry credentials; the signature authenticates us".into());
        }
        let secret = match (obj.get("secret").and_then(Value::as_str), current) {
            (Some(MASK), Some(current)) => current.secret.clone(),
            (Some(s), _) if SECRET_LENGTH.contains(&s.chars().count()) && s != MASK => s.to_string(),
            _ => return Err("secret is required: 16 to 256 characters that sign each delivery".into()),
        };
        Ok(Self { webhook_url: url.to_string(), secret })
    }

    /// As clients read it: the secret is write-only, and so are credentials in the URL (a
    /// token in its query), masked as a connector's are.
    pub fn view(&self) -> Value {
        serde_json::json!({ "webhookUrl": mask_url(&self.webhook_url), "secret": MASK })
    }
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// How long attempt `attempt` (from 2) waits after the one before it.
pub fn backoff(attempt: u32, base: std::time::Duration) -> std::time::Duration {
    let factor = 6u32.saturating_pow(attempt.saturating_sub(2));
    base.saturating_mul(factor).min(std::time::Duration::from_secs(900))
}

/// What the run queue carries for a delivery: `{"webhook": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookMessage {
    pub webhook: Delivery,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub tenant_id: String,
    pub pipeline_id: PipelineId,
    pub run_id: RunId,
    /// From 1.
    pub attempt: u32,
}

/// One attempt, as the run's `deliveries` log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    pub attempt: u32,
    pub at: String,
    /// The receiver's status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// When the next attempt goes, if one will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_signature_is_hmac_sha256_over_the_timestamp_and_body() {
        // Computed apart: python3 -c "import hmac,hashlib; print(hmac.new(b'whsec_0123456789abcdef',
        // b'1700000000.{\"id\":\"run_1\"}', hashlib.sha256).hexdigest())"
        let signed = sign("whsec_0123456789abcdef", 1700000000, r#"{"id":"run_1"}"#);
        assert_eq!(signed, "t=1700000000,v1=75e5354d3ebf55afb2402113b989829e038b90ead2021318ad3c38f5b9cb7147");
        assert_ne!(sign("whsec_0123456789abcdef", 1700000001, r#"{"id":"run_1"}"#), signed, "the timestamp is signed");
    }

    #[test]
    fn notifications_need_a_url_and_a_secret_and_keep_the_stored_secret_under_the_mask() {
        let ok = Notifications::parse(&json!({"webhookUrl": "https://hooks.example.com/p", "secret": "0123456789abcdef"}), None).unwrap();
        assert_eq!(ok.view(), json!({"webhookUrl": "https://hooks.example.com/p", "secret": "********"}));
        let kept = Notifications::parse(&json!({"webhookUrl": "https://hooks.example.com/q", "secret": "********"}), Some(&ok)).unwrap();
        assert_eq!((kept.webhook_url.as_str(), kept.secret.as_str()), ("https://hooks.example.com/q", "0123456789abcdef"));
        // A token in the URL is shown masked, and the masked URL sent back keeps it.
        let tokened =
            Notifications::parse(&json!({"webhookUrl": "https://h.example.com/x?token=abc123", "secret": "0123456789abcdef"}), None)
                .unwrap();
        let shown = tokened.view()["webhookUrl"].as_str().unwrap().to_string();
        assert!(!shown.contains("abc123"), "{shown}");
        let again = Notifications::parse(&json!({"webhookUrl": shown, "secret": "********"}), Some(&tokened)).unwrap();
        assert_eq!(again, tokened);
        for bad in [
            json!({"webhookUrl": "ftp://x/y", "secret": "0123456789abcdef"}),
            json!({"webhookUrl": "https://u:p@x/y", "secret": "0123456789abcdef"}),
            json!({"webhookUrl": "/relative", "secret": "0123456789abcdef"}),
            json!({"webhookUrl": "https://x/y", "secret": "short"}),
            json!({"webhookUrl": "https://x/y", "secret": "********"}),
            json!({"webhookUrl": "https://x/y"}),
            json!({"webhookUrl": "https://x/y", "secret": "0123456789abcdef", "retries": 3}),
            json!("https://x/y"),
        ] {
            assert!(Notifications::parse(&bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_back_off_to_at_most_fifteen_minutes() {
        let base = std::time::Duration::from_secs(RETRY_BASE_SECONDS);
        let waits: Vec<u64> = (2..=MAX_ATTEMPTS).map(|a| backoff(a, base).as_secs()).collect();
        assert_eq!(waits, [10, 60, 360, 900, 900]);
    }
}
