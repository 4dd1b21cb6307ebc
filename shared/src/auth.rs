//! Authentication and its verdict.
//!
//! In AWS, the HTTP API's Lambda authorizer runs [`authorize`] once per request and always
//! *allows*, passing its verdict in the context: either `tenantId` and `role`, or an error code and
//! message. Each function enforces the verdict ([`caller`]). This way every denial is answered in
//! the product's error format (API Gateway's own denials have a fixed body), and a missing header
//! reaches our code instead of being refused before the authorizer runs. Caching is off: a
//! revoked key stops working at once. The local gateway runs the same two functions.

use std::collections::HashMap;

use serde_json::Value;

use crate::domain::api_key::{ApiKey, PresentedKey};
use crate::domain::tenant::{Caller, Role, TenantId};
use crate::error::ApiError;
use crate::store::Store;

/// The authorizer's decision about one request.
#[derive(Debug)]
pub enum Verdict {
    Caller(Caller),
    Denied(ApiError),
}

/// Checks `Authorization: Bearer <key>` and `X-Tenant-Id`, in that order.
pub async fn authorize(store: &Store, authorization: Option<&str>, tenant_header: Option<&str>) -> Verdict {
    let denied = |e| Verdict::Denied(e);
    let Some(token) = authorization.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim).filter(|t| !t.is_empty()) else {
        return denied(ApiError::Unauthorized("missing Authorization: Bearer <api key>".into()));
    };
    let unknown = || ApiError::Unauthorized("unknown or revoked API key".into());
    let Some(presented) = PresentedKey::parse(token) else { return denied(unknown()) };
    let stored = match store.get::<ApiKey>(&presented.tenant, presented.id.as_str()).await {
        Ok(Some(stored)) if presented.matches(&stored) => stored,
        Ok(_) => return denied(unknown()),
        Err(e) => return denied(ApiError::Internal(format!("resolving an API key: {e}"))),
    };
    let Some(header) = tenant_header.map(str::trim).filter(|h| !h.is_empty()) else {
        return denied(ApiError::bad_request("missing X-Tenant-Id header"));
    };
    match TenantId::parse(header) {
        Ok(tenant) if tenant == presented.tenant => Verdict::Caller(Caller { tenant, role: stored.role }),
        Ok(_) => denied(ApiError::Forbidden("this API key does not belong to the tenant in X-Tenant-Id".into())),
        Err(why) => denied(ApiError::field("X-Tenant-Id", why)),
    }
}

impl Verdict {
    /// The verdict as the authorizer's context (string values only, as API Gateway passes them).
    pub fn to_context(&self) -> HashMap<String, Value> {
        let pairs: Vec<(&str, String)> = match self {
            Verdict::Caller(c) => vec![("tenantId", c.tenant.to_string()), ("role", c.role.as_str().into())],
            Verdict::Denied(e) => vec![("errorStatus", e.status().to_string()), ("errorMessage", e.to_string())],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), Value::String(v))).collect()
    }

    /// Reads a verdict back from the context a function received. No context at all means the
    /// function was reached without the authorizer: nobody is authenticated.
    pub fn from_context(context: Option<&HashMap<String, Value>>) -> Verdict {
        let get = |k: &str| context.and_then(|c| c.get(k)).and_then(Value::as_str);
        if let (Some(tenant), Some(role)) = (get("tenantId"), get("role")) {
            if let (Ok(tenant), Some(role)) = (TenantId::parse(tenant), Role::parse(role)) {
                return Verdict::Caller(Caller { tenant, role });
            }
        }
        let message = get("errorMessage").unwrap_or("not authenticated").to_string();
        Verdict::Denied(match get("errorStatus") {
            Some("400") => ApiError::bad_request(message),
            Some("403") => ApiError::Forbidden(message),
            Some("500") => ApiError::Internal(message),
            _ => ApiError::Unauthorized(message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_survive_the_context() {
        let caller = Caller { tenant: TenantId::parse("acme").unwrap(), role: Role::Editor };
        let back = Verdict::from_context(Some(&Verdict::Caller(caller.clone()).to_context()));
        assert!(matches!(back, Verdict::Caller(c) if c == caller));

        for e in [ApiError::bad_request("no tenant"), ApiError::Forbidden("other".into()), ApiError::Unauthorized("who".into())] {
            let status = e.status();
            let Verdict::Denied(back) = Verdict::from_context(Some(&Verdict::Denied(e).to_context())) else { panic!() };
            assert_eq!(back.status(), status);
        }
    }

    #[test]
    fn no_context_means_unauthenticated() {
        let Verdict::Denied(e) = Verdict::from_context(None) else { panic!() };
        assert_eq!(e.status(), 401);
        // A forged role does not make a caller.
        let ctx = HashMap::from([("tenantId".to_string(), Value::from("a")), ("role".to_string(), Value::from("root"))]);
        assert!(matches!(Verdict::from_context(Some(&ctx)), Verdict::Denied(_)));
    }
}
