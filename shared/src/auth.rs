//! Authentication: an API key and the tenant a request names, to a [`Caller`].
//!
//! Each function authenticates its own requests (no Lambda authorizer): one invocation per
//! request instead of two, and every denial answered in the product's error format. The key is
//! read on every request, never cached, so a revoked key stops working at once.

use crate::domain::api_key::{ApiKey, PresentedKey};
use crate::domain::now;
use crate::domain::tenant::{Caller, TenantId};
use crate::error::ApiError;
use crate::store::Store;

/// The token of `Bearer <token>`; the scheme is matched whatever its case (RFC 9110 §11.1).
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Checks `Authorization: Bearer <key>` and `X-Tenant-Id`, in that order, and counts the
/// request in its key's window of this second: past `per_second`, a 429.
///
/// The count is made beside the key's read (one round trip, not two) and keyed by the key's id,
/// which only its holder and the tenant's admins know: a stranger naming a tenant cannot spend
/// its budget. A request with a wrong secret for a real id is still counted; it is refused
/// either way.
pub async fn authorize(
    store: &Store,
    per_second: u32,
    authorization: Option<&str>,
    tenant_header: Option<&str>,
) -> Result<Caller, ApiError> {
    let Some(token) = authorization.and_then(bearer) else {
        return Err(ApiError::Unauthorized("missing Authorization: Bearer <api key>".into()));
    };
    let unknown = || ApiError::Unauthorized("unknown or revoked API key".into());
    let Some(presented) = PresentedKey::parse(token) else { return Err(unknown()) };
    let second = chrono::Utc::now().timestamp();
    let (stored, counted) = futures::join!(
        store.get::<ApiKey>(&presented.tenant, presented.id.as_str()),
        store.count_request(&presented.tenant, &presented.id, second, per_second)
    );
    let stored = match stored {
        Ok(Some(stored)) if presented.matches(&stored) && stored.is_live(&now()) => stored,
        Ok(Some(stored)) if presented.matches(&stored) => {
            return Err(ApiError::Unauthorized(format!("this API key expired at {}", stored.expires_at.unwrap_or_default())));
        }
        Ok(_) => return Err(unknown()),
        Err(e) if e.is_passing() => return Err(e.into()),
        Err(e) => return Err(ApiError::Internal(format!("resolving an API key: {e}"))),
    };
    let Some(header) = tenant_header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Err(ApiError::bad_request("missing X-Tenant-Id header"));
    };
    match TenantId::parse(header) {
        Ok(tenant) if tenant == presented.tenant => match counted {
            Ok(true) => Ok(Caller { tenant, role: stored.role }),
            Ok(false) => Err(ApiError::RateLimited { limit: per_second }),
            // A window that cannot be counted now lets the request through: the rate guards the
            // tenants from each other, and must not turn a throttled counter into an outage.
            Err(e) => {
                tracing::warn!(cause = %e, "the request was not counted");
                Ok(Caller { tenant, role: stored.role })
            }
        },
        Ok(_) => Err(ApiError::Forbidden("this API key does not belong to the tenant in X-Tenant-Id".into())),
        Err(why) => Err(ApiError::field("X-Tenant-Id", why)),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_bearer_scheme_is_matched_whatever_its_case() {
        for h in ["Bearer k", "bearer k", "BEARER k", "  Bearer   k  ", "Bearer\tk"] {
            assert_eq!(bearer(h), Some("k"), "{h:?}");
        }
        for h in ["Basic k", "Bearer", "Bearer   ", "Bearerk", ""] {
            assert_eq!(bearer(h), None, "{h:?}");
        }
    }
}
