//! Schemas: the tables pipelines write into.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::SchemaId;
use super::input::{any_text, boolean, one_of, text, Check, Object, Patch};
use crate::domain::input::InputError;

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
const MAX_FIELDS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Integer,
    Decimal,
    Boolean,
    Date,
    Timestamp,
    Json,
}

impl FieldType {
    const NAMES: &'static str = "text, integer, decimal, boolean, date, timestamp, json";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub required: bool,
    pub primary_key: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    pub id: SchemaId,
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub fields: Vec<Field>,
    pub created_at: String,
    pub updated_at: String,
    /// Which generation of rows readers see (internal): a `truncate` run writes a new one and
    /// switches to it when it completes. Never written with the rest of the schema, so an edit
    /// cannot undo a switch.
    #[serde(default, skip_serializing)]
    pub generation: Option<String>,
}

/// A table or field name: a letter or `_`, then letters, digits and `_`.
fn identifier(max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |v| {
        let s = v.as_str().ok_or("must be a string")?;
        let ok = !s.is_empty()
            && s.len() <= max
            && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| s.to_string()).ok_or_else(|| format!("must be 1 to {max} of letters, digits and _, not starting with a digit"))
    }
}

fn read_fields(check: &mut Check, body: &Object) -> Option<Vec<Field>> {
    let objs = check.objects(body, "fields", MAX_FIELDS)?;
    if objs.is_empty() {
        check.error("fields", "must have at least one field");
    }
    let mut names = HashSet::new();
    let mut fields = Vec::with_capacity(objs.len());
    for obj in objs {
        check.only_known(&obj, &["name", "type", "required", "primaryKey"]);
        let name = check.required(&obj, "name", identifier(128));
        let kind = check.required(&obj, "type", one_of(FieldType::NAMES));
        let primary_key = check.optional(&obj, "primaryKey", boolean).unwrap_or(false);
        // A primary key is always required: a row without one could not be addressed.
        let required = check.optional(&obj, "required", boolean).unwrap_or(false) || primary_key;
        if let Some(name) = &name {
            if !names.insert(name.clone()) {
                check.error(obj.path("name"), format!("duplicate field name '{name}'"));
            }
        }
        if let (Some(name), Some(kind)) = (name, kind) {
            fields.push(Field { name, kind, required, primary_key });
        }
    }
    Some(fields)
}

#[derive(Debug, Clone)]
pub struct NewSchema {
    name: String,
    display_name: Option<String>,
    description: Option<String>,
    fields: Vec<Field>,
}

impl NewSchema {
    pub fn parse(body: &Value) -> Result<Self, InputError> {
        let obj = Object::root(body)?;
        let mut check = Check::new();
        check.only_known(&obj, &["name", "displayName", "description", "fields"]);
        let name = check.required(&obj, "name", identifier(MAX_NAME));
        let display_name = check.optional(&obj, "displayName", text(MAX_NAME));
        let description = check.optional(&obj, "description", any_text(MAX_DESCRIPTION));
        if !obj.has("fields") {
            check.error("fields", "is required");
        }
        let fields = read_fields(&mut check, &obj);
        check.finish()?;
        match (name, fields) {
            (Some(name), Some(fields)) => Ok(Self { name, display_name, description, fields }),
            _ => Err(InputError::Inconsistent("schema checks passed with a field missing")),
        }
    }

    pub fn into_schema(self, id: SchemaId, now: &str) -> Schema {
        Schema {
            id,
            display_name: self.display_name.unwrap_or_else(|| self.name.clone()),
            name: self.name,
            description: self.description,
            fields: self.fields,
            created_at: now.into(),
            updated_at: now.into(),
            generation: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SchemaUpdate {
    pub id: SchemaId,
    name: Option<String>,
    display_name: Option<String>,
    description: Patch<String>,
    fields: Option<Vec<Field>>,
}

impl SchemaUpdate {
    pub fn parse(body: &Value) -> Result<Self, InputError> {
        let obj = Object::root(body)?;
        let mut check = Check::new();
        check.only_known(&obj, &["id", "name", "displayName", "description", "fields"]);
        let id = check
            .required(&obj, "id", |v| v.as_str().and_then(SchemaId::parse).ok_or_else(|| "must be a schema id (schema_...)".to_string()));
        let name = check.optional(&obj, "name", identifier(MAX_NAME));
        let display_name = check.optional(&obj, "displayName", text(MAX_NAME));
        let description = check.patch(&obj, "description", any_text(MAX_DESCRIPTION));
        let fields = read_fields(&mut check, &obj);
        check.finish()?;
        match (id, description) {
            (Some(id), Some(description)) => Ok(Self { id, name, display_name, description, fields }),
            _ => Err(InputError::Inconsistent("schema update checks passed with a field missing")),
        }
    }

    pub fn apply(&self, current: &Schema, now: &str) -> Schema {
        Schema {
            id: current.id.clone(),
            name: self.name.clone().unwrap_or_else(|| current.name.clone()),
            display_name: self.display_name.clone().unwrap_or_else(|| current.display_name.clone()),
            description: self.description.clone().apply(current.description.clone()),
            fields: self.fields.clone().unwrap_or_else(|| current.fields.clone()),
            created_at: current.created_at.clone(),
            updated_at: now.into(),
            generation: current.generation.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_at_fault(body: Value) -> Vec<String> {
        match NewSchema::parse(&body) {
            Err(InputError::Invalid(details)) => details.into_iter().map(|d| d.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_issue_example_is_valid_and_keys_are_required() {
        let s = NewSchema::parse(&json!({"name": "customers", "displayName": "Customers", "fields": [
            {"name": "id", "type": "integer", "primaryKey": true},
            {"name": "email", "type": "text", "required": true},
            {"name": "at", "type": "timestamp"}
        ]}))
        .unwrap()
        .into_schema(SchemaId::generate(), "t");
        assert!(s.fields[0].required && s.fields[0].primary_key);
        assert!(!s.fields[2].required);
    }

    #[test]
    fn every_field_type_is_known_and_others_are_not() {
        for t in ["text", "integer", "decimal", "boolean", "date", "timestamp", "json"] {
            assert!(NewSchema::parse(&json!({"name": "t", "fields": [{"name": "f", "type": t}]})).is_ok(), "{t}");
        }
        assert_eq!(fields_at_fault(json!({"name": "t", "fields": [{"name": "f", "type": "varchar"}]})), ["fields[0].type"]);
    }

    #[test]
    fn names_fields_and_duplicates_are_checked() {
        assert_eq!(fields_at_fault(json!({"name": "t"})), ["fields"]);
        assert_eq!(fields_at_fault(json!({"name": "t", "fields": []})), ["fields"]);
        assert_eq!(fields_at_fault(json!({"name": "1bad", "fields": [{"name": "a b", "type": "text"}]})), ["name", "fields[0].name"]);
        assert_eq!(
            fields_at_fault(
                json!({"name": "t", "fields": [{"name": "a", "type": "text"}, {"name": "a", "type": "json", "required": "yes"}]})
            ),
            ["fields[1].required", "fields[1].name"]
        );
    }
}
