//! The product's errors, and their one mapping to HTTP.
//!
//! Body: `{"error":{"code","message","status","details"?}}` (spec/conventions.md).

pub use crate::domain::input::FieldError;
use crate::domain::input::InputError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String, details: Vec<FieldError> },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String, allow: Vec<&'static str> },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    /// `If-Match` named another version than the one stored.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the query string is longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("{what} is larger than {limit} bytes")]
    HeadersTooLarge { what: String, limit: usize },
    /// A per-tenant quota ([`crate::settings::Quotas`]) would be passed.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("more than {limit} requests per second with this API key; retry after the time in Retry-After")]
    RateLimited { limit: u32 },
    #[error("{0}")]
    Unavailable(String),
    /// Our fault, never the client's: the message is logged, the client sees a generic one.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest { message: message.into(), details: Vec::new() }
    }

    /// A 400 about one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    /// A 400 listing every field at fault.
    pub fn invalid(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", details.len()),
        };
        Self::BadRequest { message, details }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::NotFound(format!("{what} {id} not found"))
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest { .. } => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Conflict(_) => 409,
            Self::Unprocessable(_) => 422,
            Self::PreconditionFailed(_) => 412,
            Self::PayloadTooLarge { .. } => 413,
            Self::UriTooLong { .. } => 414,
            Self::HeadersTooLarge { .. } => 431,
            Self::QuotaExceeded(_) | Self::RateLimited { .. } => 429,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "BAD_REQUEST",
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Self::Conflict(_) => "CONFLICT",
            Self::Unprocessable(_) => "UNPROCESSABLE_ENTITY",
            Self::PreconditionFailed(_) => "PRECONDITION_FAILED",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::UriTooLong { .. } => "URI_TOO_LONG",
            Self::HeadersTooLarge { .. } => "REQUEST_HEADER_FIELDS_TOO_LARGE",
            Self::QuotaExceeded(_) => "QUOTA_EXCEEDED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`), where waiting helps:
    /// DynamoDB throttling and brief outages clear within a second or two (the SDK has already
    /// retried three times); a request window is a second; runs in flight end within minutes.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::Unavailable(_) => Some(2),
            Self::RateLimited { .. } => Some(1),
            Self::QuotaExceeded(_) => Some(60),
            _ => None,
        }
    }

    /// The JSON body the client sees.
    pub fn body(&self) -> serde_json::Value {
        let message = match self {
            Self::Internal(_) => "internal error; the request id in the logs tells what happened".to_string(),
            other => other.to_string(),
        };
        let mut error = serde_json::json!({
            "code": self.code(),
            "message": message,
            "status": self.status(),
        });
        if let Self::BadRequest { details, .. } = self {
            if !details.is_empty() {
                error["details"] = serde_json::json!(details);
            }
        }
        serde_json::json!({ "error": error })
    }
}

/// Storage and queue failures are ours: they become 500s (or 503s where the caller may retry).
impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Malformed(message) => Self::bad_request(message),
            InputError::Invalid(details) => Self::invalid(details),
            InputError::Inconsistent(cause) => Self::Internal(cause.to_string()),
        }
    }
}

/// What a client is told when storage is passing unavailable (the cause is logged, not sent).
const STORAGE_UNAVAILABLE: &str = "storage is unavailable at the moment; retry after the time in Retry-After";

impl From<crate::store::records::RecordsError> for ApiError {
    fn from(e: crate::store::records::RecordsError) -> Self {
        match e {
            crate::store::records::RecordsError::Store(e) => e.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if let crate::store::StoreError::Limit(limit) = &e {
            return Self::field(limit.field.clone(), limit.to_string());
        }
        if e.is_passing() {
            tracing::warn!(cause = %e, "storage unavailable");
            return Self::Unavailable(STORAGE_UNAVAILABLE.into());
        }
        Self::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_request_carries_field_details() {
        let body = ApiError::field("name", "must not be empty").body();
        assert_eq!(body["error"]["code"], "BAD_REQUEST");
        assert_eq!(body["error"]["status"], 400);
        assert_eq!(body["error"]["message"], "name: must not be empty");
        assert_eq!(body["error"]["details"][0]["field"], "name");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let body = ApiError::Internal("dynamodb said: secret item".into()).body();
        assert_eq!(body["error"]["status"], 500);
        assert!(!body["error"]["message"].as_str().unwrap().contains("secret"));
    }

    #[test]
    fn every_variant_has_matching_status_and_code() {
        let cases = [
            (ApiError::Unauthorized("x".into()), 401, "UNAUTHORIZED"),
            (ApiError::Forbidden("x".into()), 403, "FORBIDDEN"),
            (ApiError::not_found("pipeline", "p"), 404, "NOT_FOUND"),
            (ApiError::Conflict("x".into()), 409, "CONFLICT"),
            (ApiError::PayloadTooLarge { limit: 1 }, 413, "PAYLOAD_TOO_LARGE"),
            (ApiError::UriTooLong { limit: 1 }, 414, "URI_TOO_LONG"),
            (ApiError::HeadersTooLarge { what: "x".into(), limit: 1 }, 431, "REQUEST_HEADER_FIELDS_TOO_LARGE"),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status(), e.code()), (status, code));
            assert!(e.body()["error"].get("details").is_none());
        }
    }
}
