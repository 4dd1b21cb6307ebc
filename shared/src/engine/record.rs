//! Records: the rows of data a run moves from source to target.

use std::borrow::Cow;

use serde_json::{Number, Value};

/// One row: field name to JSON value.
pub type Record = serde_json::Map<String, Value>;

/// Which row of the source a record is, and which copy of it: a row that branches bring to the
/// target by several paths arrives once per path (copy 0, 1, ...), and each copy is its own row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowId {
    pub row: u64,
    pub copy: u32,
}

/// A value as text: a string as it is, anything else as its JSON (`1.5`, `true`, `{"a":1}`).
/// Transforms and filters that work on text read every value this one way.
pub fn text_form(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// A number, or a string holding one in JSON's syntax (spaces around it allowed): CSV and many APIs
/// carry numbers as text. `NaN`, `inf` and `0x10` are not numbers; nor is `"007"`, which filters
/// compare as the code it usually is.
pub fn number(value: &Value) -> Option<Number> {
    match value {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// [`number`], also reading the ways text writes numbers beyond JSON: a `+` sign, leading zeros
/// and a bare fraction (`"007"`, `"+5"`, `"-.5"`). Schema coercion and `cast` read numbers this
/// way: a field typed as a number says the value is one.
pub fn loose_number(value: &Value) -> Option<Number> {
    match value {
        Value::String(s) => numeric_text(s.trim()),
        other => number(other),
    }
}

fn numeric_text(s: &str) -> Option<Number> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let (sign, body) = match s.as_bytes().first()? {
        b'+' => ("", &s[1..]),
        b'-' => ("-", &s[1..]),
        _ => ("", s),
    };
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let (int, rest) = body.split_at(digits);
    if digits == 0 && !rest.starts_with('.') {
        return None;
    }
    let int = int.trim_start_matches('0');
    format!("{sign}{}{rest}", if int.is_empty() { "0" } else { int }).parse().ok()
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
        assert_eq!(number(&json!("007")), None, "a code");
        for not in [json!("NaN"), json!("inf"), json!("0x10"), json!("1,5"), json!(""), json!("12abc"), json!(true), json!([1])] {
            assert_eq!(number(&not), None, "{not}");
            assert_eq!(loose_number(&not), None, "{not}");
        }
    }

    #[test]
    fn loose_numbers_read_signs_and_leading_zeros() {
        for (text, n) in [("007", 7), ("+5", 5), (" 42 ", 42), ("-007", -7), ("0", 0), ("000", 0)] {
            assert_eq!(loose_number(&json!(text)).and_then(|n| n.as_i64()), Some(n), "{text}");
        }
        for (text, f) in [("3.0", 3.0), ("+0.25", 0.25), ("-.5", -0.5), ("00.5", 0.5), ("+1e3", 1000.0)] {
            assert_eq!(loose_number(&json!(text)).and_then(|n| n.as_f64()), Some(f), "{text}");
        }
        for not in ["+", "-", ".", "+-5", "--5", "0x10", "e5", "5 5", "1,5", "+inf"] {
            assert_eq!(loose_number(&json!(not)), None, "{not}");
        }
        assert_eq!(loose_number(&json!(2.5)).and_then(|n| n.as_f64()), Some(2.5));
    }
}
