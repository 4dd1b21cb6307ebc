//! Who is calling: the tenant and the role, both only ever taken from authentication.

use std::fmt;

/// A tenant id as sent in `X-Tenant-Id`: 1 to 64 of `[A-Za-z0-9_-]`. Key separators (`#`) can
/// never appear in one, so a tenant's keys cannot reach into another tenant's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(format!("must be 1 to {} characters", Self::MAX_LEN));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("may only contain letters, digits, '-' and '_'".into());
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Roles, weakest first: `viewer` reads, `editor` also writes, `admin` also manages API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub const NAMES: &'static str = "admin, editor, viewer";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "editor" => Some(Self::Editor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub role: Role,
}

impl Caller {
    /// The caller of a route that needs no key: a tenant id no tenant can have (ids never
    /// contain `#`), so that no tenant's item is ever reached through it.
    pub fn anonymous() -> Self {
        Self { tenant: TenantId("#".into()), role: Role::Viewer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_checked() {
        assert!(TenantId::parse("acme-prod_1").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("a#b").is_err());
        assert!(TenantId::parse("a b").is_err());
        assert!(TenantId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin > Role::Editor && Role::Editor > Role::Viewer);
        assert_eq!(Role::parse("editor"), Some(Role::Editor));
        assert_eq!(Role::parse("root"), None);
    }
}
