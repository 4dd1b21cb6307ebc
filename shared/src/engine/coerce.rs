//! Conforming records to a target schema: only the schema's fields, each of its field's type.
//!
//! What each type accepts (anything else is an issue):
//! - text: strings as they are; numbers and booleans as their text.
//! - integer: a JSON integer, a number with no fraction, or a string holding one (`"42"`, `"4.0"`,
//!   `"007"`, `"+5"`, `" 42 "`).
//! - decimal: a number or a numeric string, written as a JSON number.
//! - boolean: `true`/`false`, `1`/`0`, and the strings `true false 1 0 yes no` in any case.
//! - date: `YYYY-MM-DD`, or any timestamp below, keeping the date as written (not its UTC date).
//! - timestamp: RFC 3339 with an offset, `YYYY-MM-DD HH:MM:SS[.fff]`, `YYYY-MM-DDTHH:MM:SS[.fff]`
//!   (taken as UTC) or `YYYY-MM-DD` (midnight UTC); written in UTC with milliseconds
//!   (`2026-01-15T09:00:00.000Z`). Epoch numbers are refused: seconds and milliseconds cannot be
//!   told apart, and guessing wrong would store dates in 1970 or far in the future.
//! - json: any value as it is.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::{Number, Value};

use super::record::{loose_number, Record};
use crate::domain::schema::{Field, FieldType};

pub use crate::domain::report::FieldIssue;

/// The record as the schema wants it, or every issue found in it.
///
/// Fields the schema does not name are dropped. Missing and null count as no value: an issue for a
/// required field, left out for an optional one. An empty string is no value either (an empty CSV
/// cell), except in an optional text or json field, where it is kept as written.
pub fn conform(schema_fields: &[Field], record: &Record) -> Result<Record, Vec<FieldIssue>> {
    let mut out = Record::new();
    let mut issues = Vec::new();
    let mut issue = |field: &Field, message: String| issues.push(FieldIssue { field: field.name.clone(), message });
    for field in schema_fields {
        let Some(value) = record.get(&field.name).filter(|v| !v.is_null()) else {
            if field.required {
                issue(field, "is required".into());
            }
            continue;
        };
        if value.as_str() == Some("") {
            if field.required {
                issue(field, "is required and must not be empty".into());
                continue;
            }
            if !matches!(field.kind, FieldType::Text | FieldType::Json) {
                continue;
            }
        }
        match coerce(field.kind, value) {
            Ok(v) => {
                out.insert(field.name.clone(), v);
            }
            Err(message) => issue(field, message),
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

/// The value as `kind`, or what `kind` expects. Messages never quote the value: it may be personal
/// data, and issues end up in run reports.
pub fn coerce(kind: FieldType, value: &Value) -> Result<Value, String> {
    let coerced = match kind {
        FieldType::Text => text(value),
        FieldType::Integer => integer(value).map(Value::from),
        FieldType::Decimal => decimal(value).map(Value::Number),
        FieldType::Boolean => boolean(value).map(Value::Bool),
        FieldType::Date => date(value).map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
        FieldType::Timestamp => timestamp(value).map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))),
        FieldType::Json => Some(value.clone()),
    };
    coerced.ok_or_else(|| expected(kind).to_string())
}

fn expected(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Text => "must be text, a number or a boolean",
        FieldType::Integer => "must be an integer",
        FieldType::Decimal => "must be a number",
        FieldType::Boolean => "must be a boolean (true/false, yes/no, 1/0)",
        FieldType::Date => "must be a date (YYYY-MM-DD)",
        FieldType::Timestamp => "must be a timestamp (RFC 3339, or YYYY-MM-DD HH:MM:SS in UTC)",
        FieldType::Json => "must be JSON",
    }
}

fn text(value: &Value) -> Option<Value> {
    match value {
        Value::String(_) => Some(value.clone()),
        Value::Number(_) | Value::Bool(_) => Some(Value::String(value.to_string())),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<i64> {
    // 2^63: the first float past i64::MAX (which itself has no exact f64).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let n = loose_number(value)?;
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && (-LIMIT..LIMIT).contains(f)).map(|f| f as i64))
}

fn decimal(value: &Value) -> Option<Number> {
    loose_number(value)?.as_f64().and_then(Number::from_f64)
}

fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `YYYY-MM-DD` exactly: chrono alone would also take `2026-1-5`.
fn date_only(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().filter(|_| s.len() == 10)
}

/// A date and time without offset; `%.f` also matches no fraction at all.
fn naive_date_time(s: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"].iter().find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
}

fn date(value: &Value) -> Option<NaiveDate> {
    let s = value.as_str()?.trim();
    date_only(s).or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.date_naive())).or_else(|| naive_date_time(s).map(|t| t.date()))
}

fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    let s = value.as_str()?.trim();
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| naive_date_time(s).or_else(|| date_only(s).map(|d| d.and_time(NaiveTime::MIN))).map(|t| t.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(kind: FieldType, value: Value) -> Value {
        coerce(kind, &value).unwrap_or_else(|e| panic!("{value} as {kind:?}: {e}"))
    }

    fn refused(kind: FieldType, values: &[Value]) {
        for value in values {
            assert!(coerce(kind, value).is_err(), "{value} as {kind:?} should be refused, got {:?}", coerce(kind, value));
        }
    }

    #[test]
    fn text_takes_scalars_but_not_structures() {
        assert_eq!(ok(FieldType::Text, json!("héllo")), json!("héllo"));
        assert_eq!(ok(FieldType::Text, json!(12)), json!("12"));
        assert_eq!(ok(FieldType::Text, json!(1.5)), json!("1.5"));
        assert_eq!(ok(FieldType::Text, json!(true)), json!("true"));
        refused(FieldType::Text, &[json!({"a": 1}), json!([1]), json!(null)]);
    }

    #[test]
    fn integers_come_from_whole_numbers_and_numeric_strings() {
        assert_eq!(ok(FieldType::Integer, json!(42)), json!(42));
        assert_eq!(ok(FieldType::Integer, json!(-7.0)), json!(-7));
        assert_eq!(ok(FieldType::Integer, json!(" 123 ")), json!(123));
        assert_eq!(ok(FieldType::Integer, json!("4.0")), json!(4));
        // Zero-padded codes and signed text, as CSV carries them.
        for (text, n) in [("007", 7), ("+5", 5), (" 42 ", 42), ("3.0", 3), ("-0012", -12), ("+007.00", 7)] {
            assert_eq!(ok(FieldType::Integer, json!(text)), json!(n), "{text}");
        }
        assert_eq!(ok(FieldType::Integer, json!("9223372036854775807")), json!(i64::MAX));
        refused(
            FieldType::Integer,
            &[json!(1.5), json!("1.5"), json!("abc"), json!(""), json!(true), json!(u64::MAX), json!(1e19), json!([1]), json!(null)],
        );
    }

    #[test]
    fn decimals_are_finite_numbers() {
        assert_eq!(ok(FieldType::Decimal, json!(2)), json!(2.0));
        assert_eq!(ok(FieldType::Decimal, json!(2.25)), json!(2.25));
        assert_eq!(ok(FieldType::Decimal, json!("-0.5")), json!(-0.5));
        assert_eq!(ok(FieldType::Decimal, json!("1e3")), json!(1000.0));
        for (text, f) in [("007.5", 7.5), ("+5", 5.0), (" 42 ", 42.0), ("3.0", 3.0), ("-.25", -0.25)] {
            assert_eq!(ok(FieldType::Decimal, json!(text)), json!(f), "{text}");
        }
        refused(
            FieldType::Decimal,
            &[json!("NaN"), json!("inf"), json!("-Infinity"), json!("1e999"), json!("1,5"), json!(false), json!({})],
        );
    }

    #[test]
    fn booleans_take_the_usual_spellings() {
        for t in [json!(true), json!("TRUE"), json!("yes"), json!(" Yes "), json!("1"), json!(1)] {
            assert_eq!(ok(FieldType::Boolean, t), json!(true));
        }
        for f in [json!(false), json!("False"), json!("NO"), json!("0"), json!(0)] {
            assert_eq!(ok(FieldType::Boolean, f), json!(false));
        }
        refused(FieldType::Boolean, &[json!(2), json!(1.0), json!("y"), json!("on"), json!(""), json!([true])]);
    }

    #[test]
    fn dates_keep_the_date_as_written() {
        assert_eq!(ok(FieldType::Date, json!("2026-01-15")), json!("2026-01-15"));
        assert_eq!(ok(FieldType::Date, json!("2026-01-15T23:30:00-05:00")), json!("2026-01-15"));
        assert_eq!(ok(FieldType::Date, json!("2026-01-15 08:00:00")), json!("2026-01-15"));
        refused(FieldType::Date, &[json!("2026-1-5"), json!("2026-02-30"), json!("15/01/2026"), json!(20260115), json!("")]);
    }

    #[test]
    fn timestamps_are_normalized_to_utc_millis() {
        assert_eq!(ok(FieldType::Timestamp, json!("2026-01-15T10:00:00+01:00")), json!("2026-01-15T09:00:00.000Z"));
        assert_eq!(ok(FieldType::Timestamp, json!("2026-01-15T09:00:00.123456Z")), json!("2026-01-15T09:00:00.123Z"));
        assert_eq!(ok(FieldType::Timestamp, json!("2026-01-15 09:00:00")), json!("2026-01-15T09:00:00.000Z"));
        assert_eq!(ok(FieldType::Timestamp, json!("2026-01-15T09:00:00.5")), json!("2026-01-15T09:00:00.500Z"));
        assert_eq!(ok(FieldType::Timestamp, json!("2026-01-15")), json!("2026-01-15T00:00:00.000Z"));
        refused(
            FieldType::Timestamp,
            &[json!(1768467600), json!("1768467600"), json!("2026-01-15T25:00:00Z"), json!("yesterday"), json!("2026-01-15T09:00")],
        );
    }

    #[test]
    fn json_takes_anything_as_it_is() {
        for v in [json!("s"), json!(1), json!({"a": [1, null]}), json!([]), json!(null)] {
            assert_eq!(ok(FieldType::Json, v.clone()), v);
        }
    }

    fn field(name: &str, kind: FieldType, required: bool) -> Field {
        Field { name: name.into(), kind, required, primary_key: false }
    }

    fn record(value: Value) -> Record {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn conform_keeps_only_schema_fields_coerced() {
        let fields =
            [field("id", FieldType::Integer, true), field("name", FieldType::Text, false), field("at", FieldType::Timestamp, false)];
        let out = conform(&fields, &record(json!({"id": "7", "name": "Ann", "extra": 1, "at": "2026-01-15 09:00:00"}))).unwrap();
        assert_eq!(Value::Object(out), json!({"id": 7, "name": "Ann", "at": "2026-01-15T09:00:00.000Z"}));
    }

    #[test]
    fn required_fields_need_a_value_and_optional_ones_are_omitted() {
        let fields = [field("id", FieldType::Integer, true), field("note", FieldType::Text, false), field("n", FieldType::Integer, false)];
        for missing in [json!({}), json!({"id": null}), json!({"id": ""})] {
            let issues = conform(&fields, &record(missing.clone())).unwrap_err();
            assert_eq!(issues.iter().map(|i| i.field.as_str()).collect::<Vec<_>>(), ["id"], "{missing}");
        }
        let out = conform(&fields, &record(json!({"id": 1, "note": null}))).unwrap();
        assert_eq!(Value::Object(out), json!({"id": 1}));
        // An empty cell in an optional non-text column is no value; in a text column it is text.
        let out = conform(&fields, &record(json!({"id": 1, "note": "", "n": ""}))).unwrap();
        assert_eq!(Value::Object(out), json!({"id": 1, "note": ""}));
    }

    #[test]
    fn every_issue_is_reported_with_its_field() {
        let fields = [field("a", FieldType::Integer, false), field("b", FieldType::Boolean, true), field("c", FieldType::Date, true)];
        let issues = conform(&fields, &record(json!({"a": "x", "b": "maybe"}))).unwrap_err();
        assert_eq!(
            issues,
            [
                FieldIssue { field: "a".into(), message: "must be an integer".into() },
                FieldIssue { field: "b".into(), message: "must be a boolean (true/false, yes/no, 1/0)".into() },
                FieldIssue { field: "c".into(), message: "is required".into() },
            ]
        );
        assert_eq!(serde_json::to_value(&issues[0]).unwrap(), json!({"field": "a", "message": "must be an integer"}));
    }
}
