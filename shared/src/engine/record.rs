//! Records: the rows of data a run moves from source to target.

use std::borrow::Cow;

use serde_json::{Number, Value};

/// One row: field name to JSON value.
pub type Record = serde_json::Map<String, Value>;

/// A value as text: a string as it is, anything else as its JSON (`1.5`, `true`, `{"a":1}`).
/// Transforms and filters that work on text read every value this one way.
pub fn text_form(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// A number, or a string holding one in JSON's syntax (spaces around it allowed): CSV and many APIs
/// carry numbers as text. `NaN`, `inf` and `0x10` are not numbers.
pub fn number(value: &Value) -> Option<Number> {
    match value {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_bare_and_the_rest_is_json() {
        assert_eq!(text_form(&json!("a\"b")), "a\"b");
        assert_eq!(text_form(&json!(42)), "42");
        assert_eq!(text_form(&json!(1.5)), "1.5");
        assert_eq!(text_form(&json!(false)), "false");
        assert_eq!(text_form(&json!(null)), "null");
        assert_eq!(text_form(&json!({"a": [1]})), r#"{"a":[1]}"#);
    }

    #[test]
    fn numbers_and_numeric_strings_are_numbers() {
        assert_eq!(number(&json!(7)).and_then(|n| n.as_i64()), Some(7));
        assert_eq!(number(&json!(" -2.5 ")).and_then(|n| n.as_f64()), Some(-2.5));
        assert_eq!(number(&json!("1e3")).and_then(|n| n.as_f64()), Some(1000.0));
        for not in [json!("NaN"), json!("inf"), json!("0x10"), json!("1,5"), json!(""), json!("12abc"), json!(true), json!([1])] {
            assert_eq!(number(&not), None, "{not}");
        }
    }
}
