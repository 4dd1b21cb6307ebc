//! Credentials in a connector's config are write-only: every response shows them as [`MASK`],
//! and an update that sends a masked value back keeps the stored one.
//!
//! What counts as a credential, at any depth of the config:
//! - the value of a field whose name says so (`password`, `apiToken`, `clientSecret`,
//!   `signature`, `accessKey`... see [`secret_name`]);
//! - every value of a `headers` object, except a few that never carry one (`Accept`...);
//! - in a string that is an http(s) URL, its user info and the values of query parameters whose
//!   names say so (`?token=`, `?key=`, `?X-Amz-Signature=`).
//!
//! The table is encrypted at rest (DynamoDB's default, AWS-owned keys); that, and reads of it
//! only by the functions' roles, is why the values are not encrypted again here (see
//! docs/architecture.md).

use serde_json::{Map, Value};

/// What a response shows in place of a credential: that one is set, not what it is.
pub const MASK: &str = "********";

/// Headers that never carry a credential, shown as they are.
const PLAIN_HEADERS: [&str; 5] = ["accept", "accept-encoding", "accept-language", "content-type", "user-agent"];

/// Whether a field or query parameter named `name` holds a credential. A field named `key`
/// alone is an S3 object key; as a query parameter it is an API key.
fn secret_name(name: &str, in_query: bool) -> bool {
    let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    let words = [
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "signature",
        "authorization",
        "cookie",
        "apikey",
        "accesskey",
        "privatekey",
    ];
    words.iter().any(|w| name.contains(w))
        || (name.ends_with("key") && name != "key")
        || (in_query && matches!(name.as_str(), "key" | "sig" | "code"))
}

/// `config` as a response shows it.
pub fn masked(config: &Map<String, Value>) -> Map<String, Value> {
    config.iter().map(|(name, value)| (name.clone(), mask_field(name, value))).collect()
}

fn mask_field(name: &str, value: &Value) -> Value {
    match value {
        Value::Null => Value::Null,
        _ if secret_name(name, false) => Value::String(MASK.into()),
        Value::Object(headers) if name.eq_ignore_ascii_case("headers") => Value::Object(
            headers
                .iter()
                .map(|(header, v)| {
                    let plain = PLAIN_HEADERS.contains(&header.to_ascii_lowercase().as_str());
                    (header.clone(), if plain { mask_value(v) } else { Value::String(MASK.into()) })
                })
                .collect(),
        ),
        other => mask_value(other),
    }
}

fn mask_value(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(masked(fields)),
        Value::Array(items) => Value::Array(items.iter().map(mask_value).collect()),
        Value::String(s) => Value::String(mask_url(s)),
        other => other.clone(),
    }
}

/// An http(s) URL without its user info and credential query values; any other string as it is.
pub(crate) fn mask_url(s: &str) -> String {
    let lower = s.trim_start().get(..8).unwrap_or_default().to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return s.to_string();
    }
    let (scheme, rest) = s.split_once("://").unwrap_or(("", s));
    // The authority ends at the first `/`, `?` or `#`; user info is what precedes its last `@`.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{MASK}@{host}"),
        None => authority.to_string(),
    };
    let (path, fragment) = tail.split_once('#').map_or((tail, None), |(p, f)| (p, Some(f)));
    let tail = match path.split_once('?') {
        None => path.to_string(),
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if secret_name(&percent_decoded(name), true) => format!("{name}={MASK}"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
    };
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    format!("{scheme}://{authority}{tail}{fragment}")
}

/// A query parameter's name with `%XX` escapes and `+` decoded, so that `api%5Fkey` is seen.
fn percent_decoded(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `update` with every value that is the masked form of what `stored` holds at the same place
/// replaced by the stored value: a client that read the config and sends it back, changed
/// elsewhere, keeps its credentials. A URL that carries one is kept only when sent back
/// unchanged; to change such a URL, send it whole.
pub fn restore(update: &mut Map<String, Value>, stored: &Map<String, Value>) {
    let shown = masked(stored);
    for (name, value) in update.iter_mut() {
        if let (Some(old), Some(seen)) = (stored.get(name), shown.get(name)) {
            restore_value(value, old, seen);
        }
    }
}

/// `value` against `old` and `shown` (what a response showed of `old`), in step.
fn restore_value(value: &mut Value, old: &Value, shown: &Value) {
    if value == shown && old != shown {
        *value = old.clone();
        return;
    }
    match (value, old, shown) {
        (Value::Object(fields), Value::Object(old), Value::Object(shown)) => {
            for (name, v) in fields.iter_mut() {
                if let (Some(o), Some(s)) = (old.get(name), shown.get(name)) {
                    restore_value(v, o, s);
                }
            }
        }
        (Value::Array(items), Value::Array(old), Value::Array(shown)) => {
            for ((v, o), s) in items.iter_mut().zip(old).zip(shown) {
                restore_value(v, o, s);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn config() -> Map<String, Value> {
        map(json!({
            "url": "https://alice:hunter2@api.example.com/v1/orders?page=1&access_token=tok-1&api%5Fkey=k2#top",
            "format": "json",
            "headers": {"Authorization": "Bearer tok-3", "X-Api-Key": "k4", "Accept": "application/json"},
            "pagination": {"type": "cursor", "param": "after", "nextUrl": "https://h.io/p?sig=s5"},
            "auth": {"clientId": "me", "clientSecret": "s6", "password": "p7"},
            "bucket": "b",
            "key": "exports/orders.csv",
            "sessionToken": null,
        }))
    }

    #[test]
    fn credentials_are_masked_wherever_they_are() {
        let shown = Value::Object(masked(&config()));
        let text = shown.to_string();
        for secret in ["hunter2", "alice", "tok-1", "k2", "tok-3", "k4", "s5", "s6", "p7"] {
            assert!(!text.contains(secret), "{secret} shows in {text}");
        }
        assert_eq!(shown["url"], format!("https://{MASK}@api.example.com/v1/orders?page=1&access_token={MASK}&api%5Fkey={MASK}#top"));
        assert_eq!(shown["headers"]["Accept"], "application/json");
        assert_eq!(shown["headers"]["Authorization"], MASK);
        assert_eq!(shown["pagination"]["param"], "after");
        assert_eq!((shown["auth"]["clientId"].as_str(), shown["auth"]["clientSecret"].as_str()), (Some("me"), Some(MASK)));
        // What is not a credential shows as it is, an S3 object key and an unset value included.
        assert_eq!((shown["bucket"].as_str(), shown["key"].as_str()), (Some("b"), Some("exports/orders.csv")));
        assert_eq!(shown["sessionToken"], Value::Null);
    }

    #[test]
    fn a_masked_value_sent_back_keeps_the_stored_one() {
        let stored = config();
        let mut update = masked(&stored);
        update.insert("format".into(), json!("jsonl"));
        restore(&mut update, &stored);
        let mut expected = stored.clone();
        expected.insert("format".into(), json!("jsonl"));
        assert_eq!(update, expected);
    }

    #[test]
    fn a_new_value_replaces_the_stored_one() {
        let stored = config();
        let mut update = masked(&stored);
        update["headers"]["Authorization"] = json!("Bearer new");
        update["url"] = json!("https://api.example.com/v2?access_token=new");
        update["auth"]["password"] = json!(MASK);
        restore(&mut update, &stored);
        assert_eq!(update["headers"]["Authorization"], "Bearer new");
        assert_eq!(update["headers"]["X-Api-Key"], "k4");
        assert_eq!(update["url"], "https://api.example.com/v2?access_token=new");
        assert_eq!(update["auth"]["password"], "p7");
        // A mask where nothing was stored stays a mask: there is nothing to keep.
        let mut fresh = map(json!({"password": MASK}));
        restore(&mut fresh, &Map::new());
        assert_eq!(fresh["password"], MASK);
    }

    #[test]
    fn names_that_say_credential() {
        for name in ["password", "apiToken", "client_secret", "X-Amz-Signature", "accessKeyId", "privateKey", "Cookie"] {
            assert!(secret_name(name, false), "{name}");
        }
        for name in ["key", "bucket", "format", "param", "url", "prefix"] {
            assert!(!secret_name(name, false), "{name}");
        }
        assert!(secret_name("key", true) && secret_name("sig", true));
        assert_eq!(mask_url("not a url ?token=x"), "not a url ?token=x");
        assert_eq!(mask_url("https://h.io/a?b&token"), "https://h.io/a?b&token");
    }
}
