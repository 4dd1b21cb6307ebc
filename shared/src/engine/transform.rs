//! Transform nodes: `config.type` names the operation, the other keys of `config` are its options.
//!
//! A field an operation names but a record lacks is left alone. Null values are left alone too by
//! the operations that rewrite values (case, trim, hash, mask, cast): there is nothing to rewrite.
//! Keys a config has beyond its options are ignored, as the editor may keep its own there.

use std::collections::HashSet;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::coerce::coerce;
use super::record::{text_form, Record};
use crate::domain::schema::FieldType;

const TYPES: &str =
    "rename_field, rename, drop, select, add_field, cast, map_values, lowercase, uppercase, trim, hash, mask_pii, deduplicate";
const FIELD_TYPES: &str = "text, integer, decimal, boolean, date, timestamp, json";

/// A node config that cannot run, naming the option at fault (`fields`, `condition.all[1].op`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(String),
    #[error("{option} {message}")]
    Invalid { option: String, message: String },
    #[error("unknown transform type '{0}' (known: {TYPES})")]
    UnknownType(String),
}

impl ConfigError {
    pub fn invalid(option: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { option: option.into(), message: message.into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// `rename_field` and `rename`: `mappings` {old: new}, all renamed at once (so two fields can
    /// swap names). Without mappings, records pass through as they are.
    Rename {
        mappings: Vec<(String, String)>,
    },
    Drop {
        fields: Vec<String>,
    },
    /// Keeps only `fields`.
    Select {
        fields: Vec<String>,
    },
    /// Sets `field` to `value` (any JSON, null included), overwriting it.
    AddField {
        field: String,
        value: Value,
    },
    /// Converts each field to its type with the schema's coercion. A value that does not convert
    /// is left as it is: the target's schema validation reports it, with the record, where
    /// failures are counted and handled, rather than failing the run here.
    Cast {
        fields: Vec<(String, FieldType)>,
    },
    /// Replaces `field`'s value by the `mapping` entry for its text; when none matches, by `default`
    /// if there is one (null included), else the value stays.
    MapValues {
        field: String,
        mapping: Map<String, Value>,
        default: Option<Value>,
    },
    Lowercase {
        fields: Vec<String>,
    },
    Uppercase {
        fields: Vec<String>,
    },
    Trim {
        fields: Vec<String>,
    },
    /// The SHA-256 (hex) of each value's text.
    Hash {
        fields: Vec<String>,
    },
    /// Masks personal data, counting characters (not bytes). An e-mail keeps the first character of
    /// its local part and its domain (`a****@example.com`); anything else keeps its last 4
    /// characters (`************1111`), and a value of 4 characters or fewer is masked whole, since
    /// keeping 4 would keep all of it.
    MaskPii {
        fields: Vec<String>,
    },
    /// Keeps the first record of each `keys` tuple in the run; `seen` carries over from batch to
    /// batch. Values compare as JSON (`1` and `"1"` differ); a missing key field counts as null.
    Deduplicate {
        keys: Vec<String>,
        seen: HashSet<String>,
    },
}

/// A batch after a transform: the records that go on, and how many were removed as duplicates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    pub records: Vec<Record>,
    pub skipped: u64,
}

/// A config's options; null counts as absent, except where an option takes any JSON.
struct Options<'a>(&'a Map<String, Value>);

impl<'a> Options<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str) -> Result<&'a Value, ConfigError> {
        self.get(key).ok_or_else(|| ConfigError::Missing(key.into()))
    }

    fn name(&self, key: &str) -> Result<String, ConfigError> {
        match self.required(key)?.as_str() {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(ConfigError::invalid(key, "must be a field name")),
        }
    }

    /// A non-empty array of field names: an operation on no field is a mistake, not a no-op.
    fn names(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let wrong = || ConfigError::invalid(key, "must be a non-empty array of field names");
        let items = self.required(key)?.as_array().filter(|a| !a.is_empty()).ok_or_else(wrong)?;
        items.iter().map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string).ok_or_else(wrong)).collect()
    }

    fn object(&self, key: &str, what: &str) -> Result<&'a Map<String, Value>, ConfigError> {
        self.required(key)?.as_object().ok_or_else(|| ConfigError::invalid(key, format!("must be an object of {what}")))
    }

    fn renames(&self) -> Result<Vec<(String, String)>, ConfigError> {
        if self.get("mappings").is_none() {
            return Ok(Vec::new());
        }
        let mappings = self.object("mappings", "old field name to new field name")?;
        mappings
            .iter()
            .map(|(old, new)| match new.as_str() {
                Some(new) if !new.is_empty() => Ok((old.clone(), new.to_string())),
                _ => Err(ConfigError::invalid(format!("mappings.{old}"), "must be a field name")),
            })
            .collect()
    }

    fn casts(&self) -> Result<Vec<(String, FieldType)>, ConfigError> {
        let fields = self.object("fields", "field name to type")?;
        fields
            .iter()
            .map(|(name, kind)| {
                serde_json::from_value(kind.clone())
                    .map(|kind| (name.clone(), kind))
                    .map_err(|_| ConfigError::invalid(format!("fields.{name}"), format!("must be one of {FIELD_TYPES}")))
            })
            .collect()
    }
}

impl Transform {
    pub fn parse(config: &Map<String, Value>) -> Result<Transform, ConfigError> {
        let options = Options(config);
        let kind = options.required("type")?.as_str().ok_or_else(|| ConfigError::invalid("type", "must be a string"))?;
        Ok(match kind {
            "rename_field" | "rename" => Self::Rename { mappings: options.renames()? },
            "drop" => Self::Drop { fields: options.names("fields")? },
            "select" => Self::Select { fields: options.names("fields")? },
            "add_field" => Self::AddField {
                field: options.name("field")?,
                value: config.get("value").cloned().ok_or_else(|| ConfigError::Missing("value".into()))?,
            },
            "cast" => Self::Cast { fields: options.casts()? },
            "map_values" => Self::MapValues {
                field: options.name("field")?,
                mapping: options.object("mapping", "value to replacement")?.clone(),
                default: config.get("default").cloned(),
            },
            "lowercase" => Self::Lowercase { fields: options.names("fields")? },
            "uppercase" => Self::Uppercase { fields: options.names("fields")? },
            "trim" => Self::Trim { fields: options.names("fields")? },
            "hash" => Self::Hash { fields: options.names("fields")? },
            "mask_pii" => Self::MaskPii { fields: options.names("fields")? },
            "deduplicate" => Self::Deduplicate { keys: options.names("keys")?, seen: HashSet::new() },
            other => return Err(ConfigError::UnknownType(other.into())),
        })
    }

    pub fn apply(&mut self, batch: Vec<Record>) -> Applied {
        if let Self::Deduplicate { keys, seen } = self {
            let before = batch.len();
            let records: Vec<Record> = batch.into_iter().filter(|r| seen.insert(key_tuple(keys, r))).collect();
            return Applied { skipped: (before - records.len()) as u64, records };
        }
        let records = batch
            .into_iter()
            .map(|mut record| {
                self.apply_to(&mut record);
                record
            })
            .collect();
        Applied { records, skipped: 0 }
    }

    fn apply_to(&self, record: &mut Record) {
        match self {
            Self::Rename { mappings } => {
                let moved: Vec<(&String, Value)> =
                    mappings.iter().filter_map(|(old, new)| record.remove(old).map(|value| (new, value))).collect();
                for (new, value) in moved {
                    record.insert(new.clone(), value);
                }
            }
            Self::Drop { fields } => {
                for field in fields {
                    record.remove(field);
                }
            }
            Self::Select { fields } => record.retain(|name, _| fields.contains(name)),
            Self::AddField { field, value } => {
                record.insert(field.clone(), value.clone());
            }
            Self::Cast { fields } => {
                for (name, kind) in fields {
                    if let Some(value) = record.get_mut(name).filter(|v| !v.is_null()) {
                        if let Ok(cast) = coerce(*kind, value) {
                            *value = cast;
                        }
                    }
                }
            }
            Self::MapValues { field, mapping, default } => {
                if let Some(value) = record.get_mut(field) {
                    if let Some(to) = mapping.get(text_form(value).as_ref()).or(default.as_ref()) {
                        *value = to.clone();
                    }
                }
            }
            Self::Lowercase { fields } => rewrite_strings(record, fields, str::to_lowercase),
            Self::Uppercase { fields } => rewrite_strings(record, fields, str::to_uppercase),
            Self::Trim { fields } => rewrite_strings(record, fields, |s| s.trim().to_string()),
            Self::Hash { fields } => rewrite_values(record, fields, |v| hex::encode(Sha256::digest(text_form(v).as_bytes()))),
            Self::MaskPii { fields } => rewrite_values(record, fields, |v| mask(&text_form(v))),
            Self::Deduplicate { .. } => {}
        }
    }
}

fn rewrite_strings(record: &mut Record, fields: &[String], f: impl Fn(&str) -> String) {
    for name in fields {
        if let Some(Value::String(s)) = record.get_mut(name) {
            *s = f(s);
        }
    }
}

fn rewrite_values(record: &mut Record, fields: &[String], f: impl Fn(&Value) -> String) {
    for name in fields {
        if let Some(value) = record.get_mut(name).filter(|v| !v.is_null()) {
            *value = Value::String(f(value));
        }
    }
}

/// The key tuple as one string: JSON of the key values, so `["a,b"]` and `["a", "b"]` differ.
/// A record's values at `keys`, as one unambiguous text (a JSON array).
pub fn key_tuple(keys: &[String], record: &Record) -> String {
    Value::Array(keys.iter().map(|k| record.get(k).cloned().unwrap_or(Value::Null)).collect()).to_string()
}

/// The masking of [`Transform::MaskPii`].
fn mask(text: &str) -> String {
    let stars = |n: usize| "*".repeat(n);
    if let Some((local, domain)) = text.rsplit_once('@') {
        let mut chars = local.chars();
        if let (Some(first), false) = (chars.next(), domain.is_empty()) {
            return format!("{first}{}@{domain}", stars(chars.count()));
        }
    }
    let len = text.chars().count();
    if len <= 4 {
        return stars(len);
    }
    let kept: String = text.chars().skip(len - 4).collect();
    format!("{}{kept}", stars(len - 4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn transform(value: Value) -> Transform {
        Transform::parse(&config(value.clone())).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    fn error(value: Value) -> ConfigError {
        Transform::parse(&config(value)).unwrap_err()
    }

    fn records(values: Vec<Value>) -> Vec<Record> {
        values.into_iter().map(config).collect()
    }

    /// Applies `t` to one record and returns it as JSON.
    fn one(t: Value, record: Value) -> Value {
        let applied = transform(t).apply(records(vec![record]));
        assert_eq!(applied.skipped, 0);
        match applied.records.as_slice() {
            [r] => Value::Object(r.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn type_is_required_and_must_be_known() {
        assert_eq!(error(json!({})), ConfigError::Missing("type".into()));
        assert_eq!(error(json!({"type": null})), ConfigError::Missing("type".into()));
        assert_eq!(error(json!({"type": 3})).to_string(), "type must be a string");
        let e = error(json!({"type": "explode"}));
        assert_eq!(e, ConfigError::UnknownType("explode".into()));
        assert!(e.to_string().starts_with("unknown transform type 'explode' (known: rename_field"), "{e}");
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(error(json!({"type": "drop"})).to_string(), "fields is required");
        assert_eq!(error(json!({"type": "drop", "fields": []})).to_string(), "fields must be a non-empty array of field names");
        assert_eq!(error(json!({"type": "select", "fields": ["a", 1]})).to_string(), "fields must be a non-empty array of field names");
        assert_eq!(
            error(json!({"type": "rename", "mappings": ["a"]})).to_string(),
            "mappings must be an object of old field name to new field name"
        );
        assert_eq!(error(json!({"type": "rename", "mappings": {"a": 1}})).to_string(), "mappings.a must be a field name");
        assert_eq!(error(json!({"type": "add_field", "field": "x"})).to_string(), "value is required");
        assert_eq!(error(json!({"type": "add_field", "value": 1})).to_string(), "field is required");
        assert_eq!(
            error(json!({"type": "cast", "fields": {"a": "varchar"}})).to_string(),
            format!("fields.a must be one of {FIELD_TYPES}")
        );
        assert_eq!(error(json!({"type": "map_values", "field": "a"})).to_string(), "mapping is required");
        assert_eq!(error(json!({"type": "deduplicate"})).to_string(), "keys is required");
        assert_eq!(error(json!({"type": "hash", "fields": "a"})).to_string(), "fields must be a non-empty array of field names");
    }

    #[test]
    fn rename_without_mappings_passes_records_through() {
        for t in [json!({"type": "rename_field"}), json!({"type": "rename"}), json!({"type": "rename", "mappings": {}})] {
            assert_eq!(one(t, json!({"a": 1})), json!({"a": 1}));
        }
    }

    #[test]
    fn rename_moves_values_at_once_and_ignores_missing_fields() {
        let t = json!({"type": "rename_field", "mappings": {"a": "b", "b": "a", "gone": "x", "c": "d"}});
        assert_eq!(one(t, json!({"a": 1, "b": 2, "c": 3})), json!({"a": 2, "b": 1, "d": 3}));
    }

    #[test]
    fn drop_and_select() {
        assert_eq!(one(json!({"type": "drop", "fields": ["a", "zz"]}), json!({"a": 1, "b": 2})), json!({"b": 2}));
        assert_eq!(one(json!({"type": "select", "fields": ["a", "zz"]}), json!({"a": 1, "b": 2})), json!({"a": 1}));
    }

    #[test]
    fn add_field_sets_any_value() {
        assert_eq!(
            one(json!({"type": "add_field", "field": "src", "value": {"k": [1]}}), json!({"a": 1})),
            json!({"a": 1, "src": {"k": [1]}})
        );
        assert_eq!(one(json!({"type": "add_field", "field": "a", "value": null}), json!({"a": 1})), json!({"a": null}));
    }

    #[test]
    fn cast_converts_what_it_can_and_leaves_the_rest() {
        let t = json!({"type": "cast", "fields": {"n": "integer", "b": "boolean", "t": "text", "bad": "decimal", "nil": "integer", "gone": "date"}});
        assert_eq!(
            one(t, json!({"n": "42", "b": "yes", "t": 7, "bad": "abc", "nil": null})),
            json!({"n": 42, "b": true, "t": "7", "bad": "abc", "nil": null})
        );
        let t = json!({"type": "cast", "fields": {"zip": "integer", "price": "decimal"}});
        assert_eq!(one(t, json!({"zip": "007", "price": "+5"})), json!({"zip": 7, "price": 5.0}));
    }

    #[test]
    fn map_values_matches_text_and_falls_back_to_default() {
        let t = json!({"type": "map_values", "field": "s", "mapping": {"A": "active", "1": true}});
        assert_eq!(one(t.clone(), json!({"s": "A"})), json!({"s": "active"}));
        assert_eq!(one(t.clone(), json!({"s": 1})), json!({"s": true}));
        assert_eq!(one(t.clone(), json!({"s": "Z"})), json!({"s": "Z"}));
        assert_eq!(one(t, json!({"x": "A"})), json!({"x": "A"}));
        let t = json!({"type": "map_values", "field": "s", "mapping": {"A": "active"}, "default": "other"});
        assert_eq!(one(t.clone(), json!({"s": "A"})), json!({"s": "active"}));
        assert_eq!(one(t.clone(), json!({"s": "B"})), json!({"s": "other"}));
        assert_eq!(one(t, json!({"x": 1})), json!({"x": 1}));
        let t = json!({"type": "map_values", "field": "s", "mapping": {}, "default": null});
        assert_eq!(one(t, json!({"s": "B"})), json!({"s": null}));
    }

    #[test]
    fn case_and_trim_change_only_strings() {
        let r = json!({"a": " MiXed ", "n": 5, "o": {"k": "V"}});
        assert_eq!(
            one(json!({"type": "lowercase", "fields": ["a", "n", "o", "zz"]}), r.clone()),
            json!({"a": " mixed ", "n": 5, "o": {"k": "V"}})
        );
        assert_eq!(one(json!({"type": "uppercase", "fields": ["a"]}), r.clone()), json!({"a": " MIXED ", "n": 5, "o": {"k": "V"}}));
        assert_eq!(one(json!({"type": "trim", "fields": ["a", "n"]}), r), json!({"a": "MiXed", "n": 5, "o": {"k": "V"}}));
    }

    #[test]
    fn hash_is_sha256_hex_of_the_text() {
        let out = one(json!({"type": "hash", "fields": ["a", "n", "nil"]}), json!({"a": "abc", "n": 42, "nil": null}));
        assert_eq!(out["a"], json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        assert_eq!(out["n"], json!(hex::encode(Sha256::digest(b"42"))));
        assert_eq!(out["nil"], json!(null));
    }

    #[test]
    fn mask_keeps_an_email_initial_and_domain_or_the_last_four() {
        assert_eq!(mask("alice@example.com"), "a****@example.com");
        assert_eq!(mask("a@example.com"), "a@example.com");
        assert_eq!(mask("4111111111111111"), "************1111");
        assert_eq!(mask("12345"), "*2345");
        assert_eq!(mask("1234"), "****");
        assert_eq!(mask("ab"), "**");
        assert_eq!(mask(""), "");
        assert_eq!(mask("@example.com"), "********.com");
        assert_eq!(mask("user@"), "*ser@");
        assert_eq!(mask("émilie@exemple.fr"), "é*****@exemple.fr");
        assert_eq!(mask("ñandú-ñandú"), "*******andú");
    }

    #[test]
    fn mask_pii_masks_the_text_of_any_value() {
        let out = one(
            json!({"type": "mask_pii", "fields": ["email", "card", "n"]}),
            json!({"email": "bob@x.io", "card": "4111111111111111", "n": 5551234}),
        );
        assert_eq!(out, json!({"email": "b**@x.io", "card": "************1111", "n": "***1234"}));
    }

    #[test]
    fn deduplicate_keeps_the_first_of_each_key_across_batches() {
        let mut t = transform(json!({"type": "deduplicate", "keys": ["id", "kind"]}));
        let first = t.apply(records(vec![
            json!({"id": 1, "kind": "a", "n": 1}),
            json!({"id": 1, "kind": "b", "n": 2}),
            json!({"id": 1, "kind": "a", "n": 3}),
            json!({"id": "1", "kind": "a", "n": 4}),
        ]));
        assert_eq!(first.skipped, 1);
        assert_eq!(first.records.iter().map(|r| r["n"].clone()).collect::<Vec<_>>(), [json!(1), json!(2), json!(4)]);
        let second = t.apply(records(vec![json!({"id": 1, "kind": "b", "n": 5}), json!({"n": 6}), json!({"id": null, "n": 7})]));
        assert_eq!(second.skipped, 2);
        assert_eq!(second.records.iter().map(|r| r["n"].clone()).collect::<Vec<_>>(), [json!(6)]);
    }

    #[test]
    fn transforms_keep_order_and_count_nothing_skipped() {
        let applied = transform(json!({"type": "uppercase", "fields": ["a"]})).apply(records(vec![json!({"a": "x"}), json!({"a": "y"})]));
        assert_eq!(applied, Applied { records: records(vec![json!({"a": "X"}), json!({"a": "Y"})]), skipped: 0 });
    }
}
