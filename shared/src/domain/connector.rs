//! Connectors: where a pipeline's data comes from.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::ConnectorId;
use super::input::{any_text, json_object, text, Check, Object, Patch};
use super::secrets;
use super::source_access::{external_id, SourceBuckets};
use super::tenant::TenantId;
use crate::domain::input::InputError;

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;

/// A connector type: lowercase letters, digits and `_` (`http`, `s3`, `snowflake`, ...). Any
/// well-formed type can be stored; a run fails clearly on one the engine cannot execute.
fn connector_type(v: &Value) -> Result<String, String> {
    let s = v.as_str().ok_or("must be a string")?;
    let ok = (1..=50).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    ok.then(|| s.to_string()).ok_or_else(|| "must be 1 to 50 of a-z, 0-9 and _, starting with a letter (such as http, s3)".into())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    pub id: ConnectorId,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: Option<String>,
    pub config: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

impl Connector {
    /// Refuses an `s3` connector that would read outside what `tenant` may read, naming the
    /// config field (see [`super::source_access`]).
    pub fn check_access(&self, tenant: &TenantId, buckets: &SourceBuckets) -> Result<(), InputError> {
        if self.kind != "s3" {
            return Ok(());
        }
        let mut check = Check::new();
        if let Err(refused) = buckets.grant(tenant, &self.config) {
            check.error(refused.field, refused.message);
        }
        check.finish()
    }

    /// The connector as its tenant sees it: credentials in its config masked (they are
    /// write-only, see [`super::secrets`]); an `s3` connector shows the external id its role's
    /// trust policy must name.
    pub fn view(&self, tenant: &TenantId) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("config".into(), Value::Object(secrets::masked(&self.config)));
            if self.kind == "s3" {
                obj.insert("externalId".into(), Value::String(external_id(tenant)));
            }
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct NewConnector {
    name: String,
    kind: String,
    description: Option<String>,
    config: Map<String, Value>,
}

impl NewConnector {
    pub fn parse(body: &Value) -> Result<Self, InputError> {
        let obj = Object::root(body)?;
        let mut check = Check::new();
        check.only_known(&obj, &["name", "type", "config", "description"]);
        let name = check.required(&obj, "name", text(MAX_NAME));
        let kind = check.required(&obj, "type", connector_type);
        let description = check.optional(&obj, "description", any_text(MAX_DESCRIPTION));
        let config = check.optional(&obj, "config", json_object).unwrap_or_default();
        check.finish()?;
        match (name, kind) {
            (Some(name), Some(kind)) => Ok(Self { name, kind, description, config }),
            _ => Err(InputError::Inconsistent("connector checks passed with a field missing")),
        }
    }

    pub fn into_connector(self, id: ConnectorId, now: &str) -> Connector {
        Connector {
            id,
            name: self.name,
            kind: self.kind,
            description: self.description,
            config: self.config,
            created_at: now.into(),
            updated_at: now.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConnectorUpdate {
    pub id: ConnectorId,
    name: Option<String>,
    kind: Option<String>,
    description: Patch<String>,
    config: Option<Map<String, Value>>,
}

impl ConnectorUpdate {
    pub fn parse(body: &Value) -> Result<Self, InputError> {
        let obj = Object::root(body)?;
        let mut check = Check::new();
        check.only_known(&obj, &["id", "name", "type", "config", "description"]);
        let id = check.required(&obj, "id", |v| {
            v.as_str().and_then(ConnectorId::parse).ok_or_else(|| "must be a connector id (conn_...)".to_string())
        });
        let name = check.optional(&obj, "name", text(MAX_NAME));
        let kind = check.optional(&obj, "type", connector_type);
        let description = check.patch(&obj, "description", any_text(MAX_DESCRIPTION));
        let config = check.optional(&obj, "config", json_object);
        check.finish()?;
        match (id, description) {
            (Some(id), Some(description)) => Ok(Self { id, name, kind, description, config }),
            _ => Err(InputError::Inconsistent("connector update checks passed with a field missing")),
        }
    }

    pub fn apply(&self, current: &Connector, now: &str) -> Connector {
        Connector {
            id: current.id.clone(),
            name: self.name.clone().unwrap_or_else(|| current.name.clone()),
            kind: self.kind.clone().unwrap_or_else(|| current.kind.clone()),
            description: self.description.clone().apply(current.description.clone()),
            config: match &self.config {
                // A credential sent back as the mask a response showed keeps its stored value.
                Some(config) => {
                    let mut config = config.clone();
                    secrets::restore(&mut config, &current.config);
                    config
                }
                None => current.config.clone(),
            },
            created_at: current.created_at.clone(),
            updated_at: now.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_connector_needs_a_name_and_a_well_formed_type() {
        assert!(NewConnector::parse(&json!({"name": "Orders", "type": "http", "config": {"url": "x"}})).is_ok());
        let Err(InputError::Invalid(details)) = NewConnector::parse(&json!({"type": "Not A Type", "config": 3})) else { panic!() };
        let fields: Vec<_> = details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["name", "type", "config"]);
    }

    #[test]
    fn update_keeps_what_it_does_not_name() {
        let c = NewConnector::parse(&json!({"name": "A", "type": "s3", "description": "d"}))
            .unwrap()
            .into_connector(ConnectorId::generate(), "t0");
        let u = ConnectorUpdate::parse(&json!({"id": c.id.as_str(), "name": "B", "description": null})).unwrap();
        let next = u.apply(&c, "t1");
        assert_eq!((next.name.as_str(), next.kind.as_str(), next.description.as_deref()), ("B", "s3", None));
        assert_eq!((next.created_at.as_str(), next.updated_at.as_str()), ("t0", "t1"));
    }
}
