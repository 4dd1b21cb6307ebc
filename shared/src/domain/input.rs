//! Reading request bodies field by field, collecting every fault with its path, so that one 400
//! tells the client everything that is wrong at once.

use serde_json::{Map, Value};

/// A field at fault, named by its path in the request (`nodes[2].id`, `executionConfig.batchSize`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Why the domain refused a client's input. The domain knows nothing of HTTP: the API answers
/// each of these in one place (`crate::error`), as a 400 (or a 500 for `Inconsistent`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Not the right shape at all (a body that is not a JSON object).
    #[error("{0}")]
    Malformed(String),
    /// Every field at fault, with why.
    #[error("{} fields are invalid", .0.len())]
    Invalid(Vec<FieldError>),
    /// Our own checks disagree with each other: a bug, never the client's fault.
    #[error("{0}")]
    Inconsistent(&'static str),
}

impl InputError {
    /// One field at fault.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// A JSON object being read, and where it sits in the request (`""`, `nodes[1]`, ...).
pub struct Object<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

/// What a client said of an optional field in an update.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch<T> {
    Absent,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// The new value given the current one.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Absent => current,
            Self::Clear => None,
            Self::Set(v) => Some(v),
        }
    }
}

/// The faults found so far.
#[derive(Default)]
pub struct Check {
    errors: Vec<FieldError>,
}

impl<'a> Object<'a> {
    /// The request body: it must be a JSON object.
    pub fn root(value: &'a Value) -> Result<Self, InputError> {
        match value {
            Value::Object(map) => Ok(Self { map, path: String::new() }),
            _ => Err(InputError::Malformed("request body must be a JSON object".into())),
        }
    }

    pub fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value under `key`; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn is_null(&self, key: &str) -> bool {
        matches!(self.map.get(key), Some(Value::Null))
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

impl Check {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// Ok when nothing was at fault.
    pub fn finish(self) -> Result<(), InputError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(InputError::Invalid(self.errors))
        }
    }

    /// Fields the endpoint does not know are refused: a typo must not be silently dropped.
    pub fn only_known(&mut self, obj: &Object, known: &[&str]) {
        let mut unknown: Vec<&String> = obj.map.keys().filter(|k| !known.contains(&k.as_str())).collect();
        unknown.sort();
        for key in unknown {
            self.error(obj.path(key), format!("unknown field (known: {})", known.join(", ")));
        }
    }

    /// An optional field, read with `parse`; `None` when absent or at fault.
    pub fn optional<T>(&mut self, obj: &Object, key: &str, parse: impl FnOnce(&Value) -> Result<T, String>) -> Option<T> {
        let value = obj.get(key)?;
        match parse(value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(obj.path(key), message);
                None
            }
        }
    }

    /// A required field: absent (or null) is a fault.
    pub fn required<T>(&mut self, obj: &Object, key: &str, parse: impl FnOnce(&Value) -> Result<T, String>) -> Option<T> {
        if !obj.has(key) {
            self.error(obj.path(key), "is required");
            return None;
        }
        self.optional(obj, key, parse)
    }

    /// An optional field of an update: absent keeps, `null` clears, a value sets.
    pub fn patch<T>(&mut self, obj: &Object, key: &str, parse: impl FnOnce(&Value) -> Result<T, String>) -> Option<Patch<T>> {
        if obj.is_null(key) {
            return Some(Patch::Clear);
        }
        if !obj.has(key) {
            return Some(Patch::Absent);
        }
        self.optional(obj, key, parse).map(Patch::Set)
    }

    /// A nested object under `key` (`None` when absent or not an object).
    pub fn object<'a>(&mut self, obj: &Object<'a>, key: &str) -> Option<Object<'a>> {
        let path = obj.path(key);
        match obj.get(key)? {
            Value::Object(map) => Some(Object { map, path }),
            _ => {
                self.error(path, "must be an object");
                None
            }
        }
    }

    /// The objects of an array under `key`, each with its path (`nodes[3]`); non-objects are faults.
    pub fn objects<'a>(&mut self, obj: &Object<'a>, key: &str, max: usize) -> Option<Vec<Object<'a>>> {
        let path = obj.path(key);
        let Value::Array(items) = obj.get(key)? else {
            self.error(path, "must be an array");
            return None;
        };
        if items.len() > max {
            self.error(path, format!("at most {max} items"));
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::Object(map) => out.push(Object { map, path: format!("{path}[{i}]") }),
                _ => self.error(format!("{path}[{i}]"), "must be an object"),
            }
        }
        Some(out)
    }
}

/// A non-empty string (after trimming) of at most `max` characters, trimmed.
pub fn text(max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |v| {
        let s = v.as_str().ok_or("must be a string")?.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.chars().count() > max {
            return Err(format!("must be at most {max} characters"));
        }
        Ok(s.to_string())
    }
}

/// A string of at most `max` characters; may be empty.
pub fn any_text(max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |v| {
        let s = v.as_str().ok_or("must be a string")?;
        if s.chars().count() > max {
            return Err(format!("must be at most {max} characters"));
        }
        Ok(s.to_string())
    }
}

pub fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| "must be true or false".into())
}

/// An integer within `min..=max`.
pub fn int_in(min: i64, max: i64) -> impl Fn(&Value) -> Result<i64, String> {
    move |v| {
        let n = v.as_i64().filter(|_| v.is_i64() || v.is_u64()).ok_or("must be an integer")?;
        if n < min || n > max {
            return Err(format!("must be between {min} and {max}"));
        }
        Ok(n)
    }
}

/// One of the names of a string enum (`names` as "a, b, c").
pub fn one_of<T: serde::de::DeserializeOwned>(names: &'static str) -> impl Fn(&Value) -> Result<T, String> {
    move |v| serde_json::from_value(v.clone()).map_err(|_| format!("must be one of {names}"))
}

/// Any JSON object, kept as it is.
pub fn json_object(v: &Value) -> Result<Map<String, Value>, String> {
    v.as_object().cloned().ok_or_else(|| "must be an object".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_fault_with_its_path() {
        let body = json!({"name": "", "count": "3", "nested": {"x": true}, "extra": 1});
        let obj = Object::root(&body).unwrap();
        let mut check = Check::new();
        check.only_known(&obj, &["name", "count", "nested", "missing"]);
        assert_eq!(check.required(&obj, "name", text(10)), None);
        assert_eq!(check.required(&obj, "count", int_in(1, 5)), None);
        assert_eq!(check.required(&obj, "missing", text(10)), None);
        let nested = check.object(&obj, "nested").unwrap();
        assert_eq!(check.required(&nested, "x", text(5)), None);
        let InputError::Invalid(details) = check.finish().unwrap_err() else { panic!() };
        let fields: Vec<_> = details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["extra", "name", "count", "missing", "nested.x"]);
    }

    #[test]
    fn text_trims_and_bounds() {
        assert_eq!(text(5)(&json!("  abc ")), Ok("abc".into()));
        assert!(text(5)(&json!("   ")).is_err());
        assert!(text(5)(&json!("abcdef")).is_err());
        assert_eq!(text(2)(&json!("éé")), Ok("éé".into()));
        assert!(text(5)(&json!(5)).is_err());
    }

    #[test]
    fn integers_are_bounded_and_not_floats() {
        assert_eq!(int_in(1, 10)(&json!(10)), Ok(10));
        assert!(int_in(1, 10)(&json!(0)).is_err());
        assert!(int_in(1, 10)(&json!(2.5)).is_err());
        assert!(int_in(1, 10)(&json!("2")).is_err());
    }

    #[test]
    fn patch_tells_absent_null_and_value_apart() {
        let body = json!({"a": null, "b": "x"});
        let obj = Object::root(&body).unwrap();
        let mut check = Check::new();
        assert_eq!(check.patch(&obj, "a", text(5)), Some(Patch::Clear));
        assert_eq!(check.patch(&obj, "b", text(5)), Some(Patch::Set("x".into())));
        assert_eq!(check.patch(&obj, "c", text(5)), Some(Patch::Absent));
        assert!(check.is_clean());
    }

    #[test]
    fn root_must_be_an_object() {
        assert!(Object::root(&json!([1])).is_err());
        assert!(Object::root(&json!("x")).is_err());
    }
}
