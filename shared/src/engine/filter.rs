//! Filter nodes: records for which `config.condition` holds go on, the others are filtered out.
//!
//! A condition is a test of one field, `{"field", "op", "value"}`, or a group: `{"all": [...]}`,
//! `{"any": [...]}`, `{"not": condition}`.
//!
//! How values compare:
//! - When both sides read as numbers (a number, or a string in JSON number syntax such as `"42"` or
//!   `"-1.5e3"`), they compare as numbers: `1` equals `"1"`, `"10"` is greater than `"9"`. Strings
//!   like `"007"` or `"+1"` are not numbers, so codes keep their leading zeros.
//! - Otherwise strings compare as strings, a boolean equals its text (`true` and `"true"`, as CSV
//!   carries it), and other values are equal only when their JSON is.
//! - A test that cannot be made is false, never an error: the field is missing or null, or `gt`
//!   compares an object with a number. That includes `ne` and `not_in`, which hold only for a
//!   field that is present and differs, so that `not` of a test is the way to also take records
//!   without the field.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::record::{number, text_form, Record};
use super::transform::ConfigError;

const OPS: &str = "eq, ne, gt, gte, lt, lte, in, not_in, contains, starts_with, exists, not_exists";

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Field { field: String, test: Test },
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

/// A test of one field's value against the condition's `value`.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    /// A substring of a scalar's text, or an element of an array.
    Contains(Value),
    /// A prefix of a scalar's text.
    StartsWith(Value),
    /// Present and not null.
    Exists,
    NotExists,
}

/// The filter node's condition, from its config.
pub fn parse_filter_config(config: &Map<String, Value>) -> Result<Condition, ConfigError> {
    let condition = config.get("condition").filter(|v| !v.is_null()).ok_or_else(|| ConfigError::Missing("condition".into()))?;
    Condition::parse(condition)
}

impl Condition {
    /// Errors name the option at fault from the node's config: `condition.any[2].op`.
    pub fn parse(value: &Value) -> Result<Condition, ConfigError> {
        Self::parse_at(value, "condition")
    }

    fn parse_at(value: &Value, path: &str) -> Result<Condition, ConfigError> {
        let obj = value.as_object().ok_or_else(|| ConfigError::invalid(path, "must be an object"))?;
        for key in ["all", "any", "not"] {
            let Some(inner) = obj.get(key) else { continue };
            if obj.len() > 1 {
                return Err(ConfigError::invalid(path, format!("must have '{key}' alone")));
            }
            let at = format!("{path}.{key}");
            return Ok(match key {
                "all" => Self::All(Self::parse_list(inner, &at)?),
                "any" => Self::Any(Self::parse_list(inner, &at)?),
                _ => Self::Not(Box::new(Self::parse_at(inner, &at)?)),
            });
        }
        Self::parse_field_test(obj, path)
    }

    /// A non-empty list: an empty `all` would pass everything and an empty `any` nothing, which is
    /// more likely a half-built condition than the intent.
    fn parse_list(value: &Value, path: &str) -> Result<Vec<Condition>, ConfigError> {
        let items = value
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ConfigError::invalid(path, "must be a non-empty array of conditions"))?;
        items.iter().enumerate().map(|(i, item)| Self::parse_at(item, &format!("{path}[{i}]"))).collect()
    }

    fn parse_field_test(obj: &Map<String, Value>, path: &str) -> Result<Condition, ConfigError> {
        let option = |key: &str| format!("{path}.{key}");
        let get = |key: &str| obj.get(key).filter(|v| !v.is_null()).ok_or_else(|| ConfigError::Missing(option(key)));
        let field = match get("field")?.as_str() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => return Err(ConfigError::invalid(option("field"), "must be a field name")),
        };
        let op = get("op")?.as_str().ok_or_else(|| ConfigError::invalid(option("op"), format!("must be one of {OPS}")))?;
        let value = || get("value").cloned();
        let scalar = || match value()? {
            v @ (Value::Number(_) | Value::String(_)) => Ok(v),
            _ => Err(ConfigError::invalid(option("value"), format!("must be a number or a string for {op}"))),
        };
        let list = || match value()? {
            Value::Array(items) => Ok(items),
            _ => Err(ConfigError::invalid(option("value"), format!("must be an array for {op}"))),
        };
        let test = match op {
            "eq" => Test::Eq(value()?),
            "ne" => Test::Ne(value()?),
            "gt" => Test::Gt(scalar()?),
            "gte" => Test::Gte(scalar()?),
            "lt" => Test::Lt(scalar()?),
            "lte" => Test::Lte(scalar()?),
            "in" => Test::In(list()?),
            "not_in" => Test::NotIn(list()?),
            "contains" => Test::Contains(value()?),
            "starts_with" => Test::StartsWith(scalar()?),
            "exists" => Test::Exists,
            "not_exists" => Test::NotExists,
            _ => return Err(ConfigError::invalid(option("op"), format!("must be one of {OPS}"))),
        };
        Ok(Self::Field { field, test })
    }

    pub fn matches(&self, record: &Record) -> bool {
        match self {
            Self::Field { field, test } => test.holds(record.get(field).filter(|v| !v.is_null())),
            Self::All(conditions) => conditions.iter().all(|c| c.matches(record)),
            Self::Any(conditions) => conditions.iter().any(|c| c.matches(record)),
            Self::Not(condition) => !condition.matches(record),
        }
    }
}

impl Test {
    fn holds(&self, value: Option<&Value>) -> bool {
        let Some(v) = value else { return matches!(self, Self::NotExists) };
        match self {
            Self::Eq(x) => equal(v, x),
            Self::Ne(x) => !equal(v, x),
            Self::Gt(x) => order(v, x).is_some_and(Ordering::is_gt),
            Self::Gte(x) => order(v, x).is_some_and(Ordering::is_ge),
            Self::Lt(x) => order(v, x).is_some_and(Ordering::is_lt),
            Self::Lte(x) => order(v, x).is_some_and(Ordering::is_le),
            Self::In(xs) => xs.iter().any(|x| equal(v, x)),
            Self::NotIn(xs) => !xs.iter().any(|x| equal(v, x)),
            Self::Contains(x) => match v {
                Value::Array(items) => items.iter().any(|item| equal(item, x)),
                _ => matches!((scalar_text(v), scalar_text(x)), (Some(s), Some(part)) if s.contains(part.as_ref())),
            },
            Self::StartsWith(x) => matches!((scalar_text(v), scalar_text(x)), (Some(s), Some(prefix)) if s.starts_with(prefix.as_ref())),
            Self::Exists => true,
            Self::NotExists => false,
        }
    }
}

fn scalar_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)).then(|| text_form(value))
}

/// Numbers compare as integers when both are (no rounding through f64), else as floats.
fn numeric_order(a: &Value, b: &Value) -> Option<Ordering> {
    let (a, b) = (number(a)?, number(b)?);
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    numeric_order(a, b).or_else(|| match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    })
}

fn equal(a: &Value, b: &Value) -> bool {
    if let Some(ordering) = numeric_order(a, b) {
        return ordering.is_eq();
    }
    match (a, b) {
        (Value::String(_), Value::Bool(_)) | (Value::Bool(_), Value::String(_)) => text_form(a) == text_form(b),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(value: Value) -> Condition {
        Condition::parse(&value).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    fn record(value: Value) -> Record {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    /// Whether `field op value` holds for a record whose `x` is `field`.
    fn test(field: Value, op: &str, value: Value) -> bool {
        condition(json!({"field": "x", "op": op, "value": value})).matches(&record(json!({ "x": field })))
    }

    #[test]
    fn eq_and_ne_compare_numbers_as_numbers() {
        assert!(test(json!(1), "eq", json!("1")));
        assert!(test(json!("1.0"), "eq", json!(1)));
        assert!(test(json!("2"), "eq", json!("2.00")));
        assert!(test(json!("abc"), "eq", json!("abc")));
        assert!(!test(json!("abc"), "eq", json!("ABC")));
        assert!(test(json!(true), "eq", json!("true")));
        assert!(test(json!({"a": 1}), "eq", json!({"a": 1})));
        assert!(!test(json!("007"), "eq", json!(7)), "a code with a leading zero is text");
        assert!(test(json!(9007199254740993_i64), "eq", json!(9007199254740993_i64)));
        assert!(!test(json!(9007199254740993_i64), "eq", json!(9007199254740992_i64)), "integers do not round through f64");
        assert!(test(json!("a"), "ne", json!("b")));
        assert!(!test(json!("1"), "ne", json!(1)));
        assert!(test(json!({"a": 1}), "ne", json!(1)));
    }

    #[test]
    fn ordering_is_numeric_when_it_can_be_and_textual_for_strings() {
        assert!(test(json!("10"), "gt", json!("9")));
        assert!(test(json!(10), "gt", json!("9.5")));
        assert!(test(json!("10"), "gte", json!(10)));
        assert!(!test(json!(10), "gt", json!(10)));
        assert!(test(json!(-1.5), "lt", json!(0)));
        assert!(test(json!("3"), "lte", json!(3)));
        assert!(test(json!("2026-01-15"), "gt", json!("2025-12-31")));
        assert!(test(json!("apple"), "lt", json!("banana")));
        assert!(!test(json!("banana"), "lte", json!("apple")));
    }

    #[test]
    fn impossible_comparisons_are_false() {
        for op in ["gt", "gte", "lt", "lte"] {
            assert!(!test(json!("abc"), op, json!(5)), "{op} string vs number");
            assert!(!test(json!({"a": 1}), op, json!(5)), "{op} object vs number");
            assert!(!test(json!(true), op, json!("a")), "{op} bool vs string");
            assert!(!test(json!([1]), op, json!(1)), "{op} array vs number");
        }
        let empty = record(json!({"x": null}));
        for (op, value) in
            [("eq", json!(1)), ("ne", json!(1)), ("gt", json!(1)), ("in", json!([1])), ("not_in", json!([1])), ("contains", json!("a"))]
        {
            let c = condition(json!({"field": "x", "op": op, "value": value}));
            assert!(!c.matches(&record(json!({}))), "{op} on a missing field");
            assert!(!c.matches(&empty), "{op} on a null field");
        }
    }

    #[test]
    fn in_and_not_in_use_equality() {
        assert!(test(json!("2"), "in", json!([1, 2, 3])));
        assert!(test(json!("b"), "in", json!(["a", "b"])));
        assert!(!test(json!("z"), "in", json!(["a", "b"])));
        assert!(test(json!("z"), "not_in", json!(["a", "b"])));
        assert!(!test(json!(1), "not_in", json!(["1"])));
        assert!(!test(json!(1), "in", json!([])));
        assert!(test(json!(1), "not_in", json!([])));
    }

    #[test]
    fn contains_and_starts_with() {
        assert!(test(json!("hello world"), "contains", json!("lo w")));
        assert!(!test(json!("hello"), "contains", json!("xyz")));
        assert!(test(json!(["a", "b"]), "contains", json!("b")));
        assert!(test(json!([1, 2]), "contains", json!("2")));
        assert!(!test(json!(["ab"]), "contains", json!("a")), "arrays hold elements, not substrings");
        assert!(test(json!(12345), "contains", json!(234)));
        assert!(!test(json!({"a": "b"}), "contains", json!("a")));
        assert!(test(json!("https://x.io"), "starts_with", json!("https://")));
        assert!(!test(json!("http://x.io"), "starts_with", json!("https://")));
        assert!(test(json!(4111), "starts_with", json!("41")));
        assert!(!test(json!(["ab"]), "starts_with", json!("a")));
    }

    #[test]
    fn exists_and_not_exists_treat_null_as_absent() {
        let exists = condition(json!({"field": "x", "op": "exists"}));
        let not_exists = condition(json!({"field": "x", "op": "not_exists", "value": "ignored"}));
        for (r, present) in [(json!({"x": 0}), true), (json!({"x": ""}), true), (json!({"x": null}), false), (json!({}), false)] {
            assert_eq!(exists.matches(&record(r.clone())), present, "{r}");
            assert_eq!(not_exists.matches(&record(r.clone())), !present, "{r}");
        }
    }

    #[test]
    fn groups_combine_conditions() {
        let c = condition(json!({"all": [
            {"field": "age", "op": "gte", "value": 18},
            {"any": [{"field": "country", "op": "eq", "value": "FR"}, {"field": "country", "op": "eq", "value": "BE"}]},
            {"not": {"field": "banned", "op": "eq", "value": true}}
        ]}));
        assert!(c.matches(&record(json!({"age": "30", "country": "BE"}))));
        assert!(c.matches(&record(json!({"age": 18, "country": "FR", "banned": "false"}))));
        assert!(!c.matches(&record(json!({"age": 17, "country": "FR"}))));
        assert!(!c.matches(&record(json!({"age": 30, "country": "DE"}))));
        assert!(!c.matches(&record(json!({"age": 30, "country": "FR", "banned": true}))));
    }

    fn error(value: Value) -> String {
        Condition::parse(&value).unwrap_err().to_string()
    }

    #[test]
    fn bad_conditions_name_what_is_wrong() {
        assert_eq!(error(json!([1])), "condition must be an object");
        assert_eq!(error(json!({"op": "eq", "value": 1})), "condition.field is required");
        assert_eq!(error(json!({"field": 3, "op": "eq", "value": 1})), "condition.field must be a field name");
        assert_eq!(error(json!({"field": "x"})), "condition.op is required");
        assert_eq!(error(json!({"field": "x", "op": "like", "value": 1})), format!("condition.op must be one of {OPS}"));
        assert_eq!(error(json!({"field": "x", "op": "eq"})), "condition.value is required");
        assert_eq!(error(json!({"field": "x", "op": "eq", "value": null})), "condition.value is required");
        assert_eq!(error(json!({"field": "x", "op": "in", "value": "a"})), "condition.value must be an array for in");
        assert_eq!(error(json!({"field": "x", "op": "gt", "value": [1]})), "condition.value must be a number or a string for gt");
        assert_eq!(error(json!({"all": []})), "condition.all must be a non-empty array of conditions");
        assert_eq!(error(json!({"all": [{"field": "x", "op": "exists"}], "field": "y"})), "condition must have 'all' alone");
        assert_eq!(error(json!({"any": [{"field": "x", "op": "exists"}, {"not": {"field": "y"}}]})), "condition.any[1].not.op is required");
    }

    #[test]
    fn the_node_config_must_hold_a_condition() {
        let config = |v: Value| record(v);
        assert_eq!(parse_filter_config(&config(json!({}))), Err(ConfigError::Missing("condition".into())));
        let c = parse_filter_config(&config(json!({"condition": {"field": "x", "op": "exists"}}))).unwrap();
        assert_eq!(c, Condition::Field { field: "x".into(), test: Test::Exists });
    }
}
