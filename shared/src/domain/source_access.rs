//! Which S3 objects an `s3` connector may read on behalf of its tenant. The worker's role can
//! read more than any one tenant may, so the rule is the product's, checked when a connector is
//! written (a 400 on the field) and again when a run opens it:
//!
//! - the deployment's source bucket (`SOURCE_BUCKET`), only under `tenants/<tenantId>/`; a
//!   connector that names no bucket reads there, and one that names no key or prefix reads the
//!   tenant's whole folder;
//! - a customer's bucket, through `config.roleArn`: a role in the customer's account that trusts
//!   this deployment, assumed with an external id unique to the tenant. Another tenant naming the
//!   same role assumes it with its own external id, which the role's trust policy refuses (the
//!   confused-deputy guard of cross-account access).
//!
//! Any other bucket is refused.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::tenant::TenantId;

/// Where every tenant's folder lies in the deployment's source bucket.
pub const TENANTS_FOLDER: &str = "tenants/";

/// What a tenant may read: the deployment's bucket under its folder, or a bucket through a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Grant {
    /// `folder` is what a connector that names no key or prefix reads.
    Deployment {
        bucket: String,
        folder: String,
    },
    Customer {
        bucket: String,
        role_arn: String,
        external_id: String,
    },
}

impl S3Grant {
    pub fn bucket(&self) -> &str {
        match self {
            S3Grant::Deployment { bucket, .. } | S3Grant::Customer { bucket, .. } => bucket,
        }
    }
}

/// A connector config that breaks the rule: the field (`config.bucket`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub field: String,
    pub message: String,
}

fn refused(field: &str, message: impl Into<String>) -> Refused {
    Refused { field: format!("config.{field}"), message: message.into() }
}

/// The deployment's source bucket, if it has one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceBuckets {
    pub deployment: Option<String>,
}

impl SourceBuckets {
    /// `SOURCE_BUCKET`.
    pub fn from_env() -> Self {
        SourceBuckets { deployment: std::env::var("SOURCE_BUCKET").ok().map(|b| b.trim().to_string()).filter(|b| !b.is_empty()) }
    }

    /// What `tenant` may read with this `s3` connector config, or the field that breaks the rule.
    /// Fields of the wrong type are left to the source's own checks.
    pub fn grant(&self, tenant: &TenantId, config: &Map<String, Value>) -> Result<S3Grant, Refused> {
        let text = |name: &str| config.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let folder = tenant_folder(tenant);
        match (text("roleArn"), text("bucket")) {
            (Some(role), bucket) => {
                if !is_role_arn(role) {
                    return Err(refused("roleArn", "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)"));
                }
                let Some(bucket) = bucket else {
                    return Err(refused("bucket", "is required with config.roleArn (the bucket the role reads)"));
                };
                if Some(bucket) == self.deployment.as_deref() {
                    return Err(refused(
                        "roleArn",
                        format!("is for a bucket of yours; in this deployment's bucket, read {folder} without it"),
                    ));
                }
                Ok(S3Grant::Customer { bucket: bucket.to_string(), role_arn: role.to_string(), external_id: external_id(tenant) })
            }
            (None, bucket) => {
                let Some(deployment) = self.deployment.as_deref() else {
                    return Err(refused(
                        "roleArn",
                        format!("is required: this deployment has no source bucket, so S3 is read through a role of yours that trusts it with external id {}", external_id(tenant)),
                    ));
                };
                if bucket.is_some_and(|b| b != deployment) {
                    return Err(refused(
                        "bucket",
                        format!(
                            "must be this deployment's source bucket '{deployment}' (under {folder}), or a bucket of yours read through config.roleArn, a role that trusts this deployment with external id {}",
                            external_id(tenant)
                        ),
                    ));
                }
                for name in ["key", "prefix"] {
                    if text(name).is_some_and(|path| !path.starts_with(&folder)) {
                        return Err(refused(
                            name,
                            format!("must begin with {folder}: a tenant reads only its own folder of bucket '{deployment}'"),
                        ));
                    }
                }
                Ok(S3Grant::Deployment { bucket: deployment.to_string(), folder })
            }
        }
    }
}

/// `tenants/<tenantId>/`: the trailing `/` keeps tenant `acme` out of `acme-corp`'s folder.
pub fn tenant_folder(tenant: &TenantId) -> String {
    format!("{TENANTS_FOLDER}{tenant}/")
}

/// The external id this deployment presents when it assumes a tenant's role: the same for every
/// connector of the tenant (so one role serves them all), different for every tenant.
pub fn external_id(tenant: &TenantId) -> String {
    let digest = Sha256::digest(format!("pipelines external id\0{tenant}").as_bytes());
    format!("pl-{}", hex::encode(&digest[..16]))
}

fn is_role_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty() && name.len() <= 512)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant(t: &str) -> TenantId {
        TenantId::parse(t).unwrap()
    }

    fn grant(buckets: &SourceBuckets, t: &str, config: Value) -> Result<S3Grant, Refused> {
        buckets.grant(&tenant(t), config.as_object().unwrap())
    }

    fn deployment() -> SourceBuckets {
        SourceBuckets { deployment: Some("pl-sources".into()) }
    }

    #[test]
    fn the_deployment_bucket_is_read_only_under_the_tenants_folder() {
        let d = deployment();
        let ok = Ok(S3Grant::Deployment { bucket: "pl-sources".into(), folder: "tenants/acme/".into() });
        assert_eq!(grant(&d, "acme", json!({"prefix": "tenants/acme/in/"})), ok);
        assert_eq!(grant(&d, "acme", json!({"bucket": "pl-sources", "key": "tenants/acme/a.csv"})), ok);
        assert_eq!(grant(&d, "acme", json!({})), ok, "no key or prefix: the tenant's folder");
        for (config, field) in [
            (json!({"prefix": "tenants/beta/"}), "config.prefix"),
            (json!({"key": "tenants/beta/a.csv"}), "config.key"),
            (json!({"prefix": "tenants/acme"}), "config.prefix"),
            (json!({"prefix": "tenants/acme-corp/"}), "config.prefix"),
            (json!({"bucket": "someone-else", "prefix": "tenants/acme/"}), "config.bucket"),
        ] {
            assert_eq!(grant(&d, "acme", config.clone()).unwrap_err().field, field, "{config}");
        }
        // An empty prefix is the tenant's folder too.
        assert_eq!(grant(&d, "acme", json!({"prefix": ""})), ok);
    }

    #[test]
    fn a_customer_bucket_needs_a_role_assumed_with_the_tenants_external_id() {
        let d = deployment();
        let role = "arn:aws:iam::123456789012:role/pipelines-read";
        let got = grant(&d, "acme", json!({"bucket": "their-data", "roleArn": role, "prefix": "anything/"})).unwrap();
        assert_eq!(
            got,
            S3Grant::Customer { bucket: "their-data".into(), role_arn: role.into(), external_id: external_id(&tenant("acme")) }
        );
        assert_eq!(grant(&d, "acme", json!({"roleArn": role})).unwrap_err().field, "config.bucket");
        assert_eq!(grant(&d, "acme", json!({"bucket": "pl-sources", "roleArn": role})).unwrap_err().field, "config.roleArn");
        for bad in [
            "arn:aws:iam::123:role/x",
            "arn:aws:s3:::bucket",
            "role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert_eq!(grant(&d, "acme", json!({"bucket": "b", "roleArn": bad})).unwrap_err().field, "config.roleArn", "{bad}");
        }
        // Without a deployment bucket, only roles.
        let none = SourceBuckets::default();
        let e = grant(&none, "acme", json!({"bucket": "b"})).unwrap_err();
        assert_eq!(e.field, "config.roleArn");
        assert!(e.message.contains(&external_id(&tenant("acme"))), "{}", e.message);
    }

    #[test]
    fn external_ids_differ_by_tenant_and_stay_put() {
        assert_ne!(external_id(&tenant("acme")), external_id(&tenant("beta")));
        assert_eq!(external_id(&tenant("acme")), external_id(&tenant("acme")));
        assert_eq!(external_id(&tenant("acme")).len(), 35);
        assert_eq!(tenant_folder(&tenant("acme")), "tenants/acme/");
    }
}
