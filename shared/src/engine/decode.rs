//! Decoding a source's bytes into records, chunk by chunk, wherever the chunks split them (inside
//! a line, a quoted CSV field or a UTF-8 character).
//!
//! JSONL and CSV stream: a chunk yields the records it completes, and memory holds the chunk and
//! at most one partial line or row. JSON is the one format that does not stream: its records are
//! the items of one array, which only a streaming JSON parser could read before the document ends,
//! so the document is buffered and decoded at [`Decoder::finish`].
//!
//! A UTF-8 byte order mark at the start is dropped, whatever the format. After an error the
//! decoder is spent: the source is not what its format says.

use std::borrow::Cow;

use csv_core::ReadRecordResult;
use serde_json::Value;

use super::record::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An array of objects, or an object holding one at a records path.
    Json,
    /// One object per line.
    Jsonl,
    /// A header row, then one record per row; every value is a string.
    Csv,
}

impl Format {
    /// `json`, `jsonl` (or `ndjson`), `csv`, in any case.
    pub fn parse(name: &str) -> Option<Format> {
        match name.trim().to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    /// The format of an HTTP body, from its media type (parameters such as `charset` ignored).
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media_type.as_str() {
            "application/json" => Some(Self::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Some(Self::Jsonl),
            "text/csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// Where the bytes stop being the format: JSONL lines count from 1; CSV rows count records, the
/// header being row 1 (a quoted field may span lines, so a row is not a line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
    #[error("row {row}: {message}")]
    Row { row: u64, message: String },
    #[error("{0}")]
    Document(String),
}

pub struct Decoder {
    bom: Bom,
    body: Body,
}

enum Body {
    Json { buffer: Vec<u8>, records_path: Option<String> },
    Jsonl(Lines),
    Csv(Box<Rows>),
}

impl Decoder {
    /// `records_path` (`data.items`) is where a JSON document keeps its records; other formats
    /// ignore it.
    pub fn new(format: Format, records_path: Option<String>) -> Decoder {
        let body = match format {
            Format::Json => Body::Json { buffer: Vec::new(), records_path },
            Format::Jsonl => Body::Jsonl(Lines::default()),
            Format::Csv => Body::Csv(Box::default()),
        };
        Decoder { bom: Bom::default(), body }
    }

    /// The records this chunk completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Record>, DecodeError> {
        let chunk = self.bom.strip(chunk);
        let mut records = Vec::new();
        if !chunk.is_empty() {
            self.body.feed(&chunk, &mut records)?;
        }
        Ok(records)
    }

    /// The records left when the source has no more bytes.
    pub fn finish(mut self) -> Result<Vec<Record>, DecodeError> {
        let mut records = Vec::new();
        let rest = self.bom.finish();
        if !rest.is_empty() {
            self.body.feed(&rest, &mut records)?;
        }
        match self.body {
            Body::Json { buffer, records_path } => records = document(&buffer, records_path.as_deref())?,
            Body::Jsonl(mut lines) => lines.finish(&mut records)?,
            Body::Csv(mut rows) => rows.read(&[], &mut records)?,
        }
        Ok(records)
    }
}

impl Body {
    fn feed(&mut self, chunk: &[u8], records: &mut Vec<Record>) -> Result<(), DecodeError> {
        match self {
            Self::Json { buffer, .. } => {
                buffer.extend_from_slice(chunk);
                Ok(())
            }
            Self::Jsonl(lines) => lines.feed(chunk, records),
            Self::Csv(rows) => rows.read(chunk, records),
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Drops a byte order mark at the start of the stream, even one split across chunks.
#[derive(Default)]
struct Bom {
    start: Vec<u8>,
    done: bool,
}

impl Bom {
    fn strip<'a>(&mut self, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        if self.done {
            return Cow::Borrowed(chunk);
        }
        self.start.extend_from_slice(chunk);
        if self.start.len() < BOM.len() && BOM.starts_with(&self.start) {
            return Cow::Borrowed(&[]);
        }
        Cow::Owned(self.finish())
    }

    /// The bytes held back, without the mark.
    fn finish(&mut self) -> Vec<u8> {
        self.done = true;
        let mut start = std::mem::take(&mut self.start);
        if start.starts_with(BOM) {
            start.drain(..BOM.len());
        }
        start
    }
}

/// What a JSON value is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSONL: complete lines are decoded as they arrive; the line in progress waits in `partial`.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    line: u64,
}

impl Lines {
    fn feed(&mut self, chunk: &[u8], records: &mut Vec<Record>) -> Result<(), DecodeError> {
        let mut rest = chunk;
        // A newline byte never occurs inside a multi-byte UTF-8 character, so splitting on it is safe.
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.decode(&rest[..at], records)?;
            } else {
                self.partial.extend_from_slice(&rest[..at]);
                let line = std::mem::take(&mut self.partial);
                self.decode(&line, records)?;
            }
            rest = &rest[at + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// The last line may lack its newline.
    fn finish(&mut self, records: &mut Vec<Record>) -> Result<(), DecodeError> {
        let line = std::mem::take(&mut self.partial);
        if line.is_empty() {
            return Ok(());
        }
        self.decode(&line, records)
    }

    fn decode(&mut self, line: &[u8], records: &mut Vec<Record>) -> Result<(), DecodeError> {
        self.line += 1;
        let line_no = self.line;
        let error = |message: String| DecodeError::Line { line: line_no, message };
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match serde_json::from_slice(line) {
            Ok(Value::Object(record)) => {
                records.push(record);
                Ok(())
            }
            Ok(other) => Err(error(format!("expected a JSON object, found {}", kind(&other)))),
            Err(e) => {
                // serde_json ends its message with a position within the line; the line is ours.
                let message = e.to_string();
                let reason = message.split(" at line ").next().unwrap_or_default();
                Err(error(format!("invalid JSON at column {}: {reason}", e.column())))
            }
        }
    }
}

/// CSV, read incrementally by csv-core into `fields` (the current row's bytes, field after field)
/// and `ends` (where each field ends), both grown to fit the longest row.
struct Rows {
    reader: csv_core::Reader,
    fields: Vec<u8>,
    fields_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    header: Option<Vec<String>>,
    row: u64,
}

impl Default for Rows {
    fn default() -> Self {
        Rows { reader: csv_core::Reader::new(), fields: vec![0; 4096], fields_len: 0, ends: vec![0; 64], ends_len: 0, header: None, row: 0 }
    }
}

impl Rows {
    /// Reads `input`; an empty input means the data has ended (csv-core's convention), which is
    /// why `feed` never passes an empty chunk.
    fn read(&mut self, mut input: &[u8], records: &mut Vec<Record>) -> Result<(), DecodeError> {
        let at_end = input.is_empty();
        loop {
            let (result, read, written, ended) =
                self.reader.read_record(input, &mut self.fields[self.fields_len..], &mut self.ends[self.ends_len..]);
            input = &input[read..];
            self.fields_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => return Ok(()),
                ReadRecordResult::OutputFull => self.fields.resize(self.fields.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => self.row(records)?,
            }
            if input.is_empty() && !at_end {
                return Ok(());
            }
        }
    }

    fn row(&mut self, records: &mut Vec<Record>) -> Result<(), DecodeError> {
        self.row += 1;
        let row = self.row;
        let error = |message: String| DecodeError::Row { row, message };
        let (bytes, ends) = (&self.fields[..self.fields_len], &self.ends[..self.ends_len]);
        (self.fields_len, self.ends_len) = (0, 0);
        let mut start = 0;
        let mut values = Vec::with_capacity(ends.len());
        for (column, &end) in ends.iter().enumerate() {
            // Checked field by field: two invalid halves of a character could make a valid whole.
            let value = bytes.get(start..end).and_then(|b| std::str::from_utf8(b).ok());
            values.push(value.ok_or_else(|| error(format!("column {} is not valid UTF-8", column + 1)))?);
            start = end;
        }
        let Some(header) = &self.header else {
            self.header = Some(header_names(&values).map_err(error)?);
            return Ok(());
        };
        if values.len() != header.len() {
            return Err(error(format!("has {} fields, the header has {}", values.len(), header.len())));
        }
        records.push(header.iter().cloned().zip(values.into_iter().map(|v| Value::String(v.to_string()))).collect());
        Ok(())
    }
}

/// Every column needs a name of its own: values are stored under it.
fn header_names(values: &[&str]) -> Result<Vec<String>, String> {
    for (i, name) in values.iter().enumerate() {
        if name.is_empty() {
            return Err(format!("column {} of the header has no name", i + 1));
        }
        if values[..i].contains(name) {
            return Err(format!("column '{name}' appears twice in the header"));
        }
    }
    Ok(values.iter().map(|v| v.to_string()).collect())
}

/// A whole JSON document: an array of objects, or the array at `records_path` (`data.items`).
fn document(bytes: &[u8], records_path: Option<&str>) -> Result<Vec<Record>, DecodeError> {
    let error = DecodeError::Document;
    let mut doc: Value = serde_json::from_slice(bytes).map_err(|e| error(format!("invalid JSON: {e}")))?;
    let path = records_path.filter(|p| !p.is_empty());
    let mut at = &mut doc;
    for key in path.into_iter().flat_map(|p| p.split('.')) {
        at = at.get_mut(key).ok_or_else(|| error(format!("records path '{}': the document has no '{key}'", path.unwrap_or_default())))?;
    }
    let items = match at.take() {
        Value::Array(items) => items,
        other => {
            return Err(error(match path {
                Some(path) => format!("records path '{path}' leads to {}, not an array", kind(&other)),
                None => format!("expected an array of records, found {} (a records path can point into it)", kind(&other)),
            }))
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(record) => Ok(record),
            other => Err(error(format!("record {} of the array is {}, not an object", i + 1, kind(&other)))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn whole(format: Format, path: Option<&str>, bytes: &[u8]) -> Result<Vec<Record>, DecodeError> {
        let mut decoder = Decoder::new(format, path.map(str::to_string));
        let mut records = decoder.feed(bytes)?;
        records.extend(decoder.finish()?);
        Ok(records)
    }

    fn chunked<'a>(format: Format, chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Record>, DecodeError> {
        let mut decoder = Decoder::new(format, None);
        let mut records = Vec::new();
        for chunk in chunks {
            records.extend(decoder.feed(chunk)?);
        }
        records.extend(decoder.finish()?);
        Ok(records)
    }

    /// The same records whether fed whole, byte by byte, or split in two at any byte.
    fn same_at_every_split(format: Format, bytes: &[u8]) -> Vec<Record> {
        let expected = whole(format, None, bytes).unwrap();
        assert_eq!(chunked(format, bytes.chunks(1)).unwrap(), expected, "byte by byte");
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(chunked(format, [a, b]).unwrap(), expected, "split at byte {at}");
        }
        expected
    }

    fn values(records: &[Record]) -> Vec<Value> {
        records.iter().map(|r| Value::Object(r.clone())).collect()
    }

    #[test]
    fn formats_have_names_and_media_types() {
        assert_eq!(Format::parse("json"), Some(Format::Json));
        assert_eq!(Format::parse("NDJSON"), Some(Format::Jsonl));
        assert_eq!(Format::parse("jsonl"), Some(Format::Jsonl));
        assert_eq!(Format::parse(" csv "), Some(Format::Csv));
        assert_eq!(Format::parse("xml"), None);
        assert_eq!(Format::from_content_type("application/json; charset=utf-8"), Some(Format::Json));
        assert_eq!(Format::from_content_type("application/x-ndjson"), Some(Format::Jsonl));
        assert_eq!(Format::from_content_type("application/jsonl"), Some(Format::Jsonl));
        assert_eq!(Format::from_content_type("Text/CSV;header=present"), Some(Format::Csv));
        assert_eq!(Format::from_content_type("text/plain"), None);
    }

    #[test]
    fn jsonl_reads_one_object_per_line_at_any_chunk_boundary() {
        let text = "{\"id\":1,\"name\":\"Zoë 😀\"}\r\n\n  \n{\"id\":2,\"tags\":[\"a\",\"b\"]}\n{\"id\":3}";
        let records = same_at_every_split(Format::Jsonl, text.as_bytes());
        assert_eq!(values(&records), [json!({"id": 1, "name": "Zoë 😀"}), json!({"id": 2, "tags": ["a", "b"]}), json!({"id": 3})]);
    }

    #[test]
    fn jsonl_yields_records_as_lines_complete() {
        let mut decoder = Decoder::new(Format::Jsonl, None);
        assert_eq!(decoder.feed(b"{\"a\":1}\n{\"a\"").unwrap().len(), 1);
        assert_eq!(decoder.feed(b":2}").unwrap().len(), 0);
        assert_eq!(decoder.feed(b"\n").unwrap().len(), 1);
        assert!(decoder.finish().unwrap().is_empty());
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        assert_eq!(
            whole(Format::Jsonl, None, b"{\"a\":1}\n\n[1,2]\n"),
            Err(DecodeError::Line { line: 3, message: "expected a JSON object, found an array".into() })
        );
        assert_eq!(
            whole(Format::Jsonl, None, b"{\"a\":1}\n{\"a\":}").unwrap_err().to_string(),
            "line 2: invalid JSON at column 6: expected value"
        );
        assert!(whole(Format::Jsonl, None, b"{\"a\":\"\xff\"}\n").unwrap_err().to_string().starts_with("line 1: invalid JSON"));
        assert!(whole(Format::Jsonl, None, b"").unwrap().is_empty());
    }

    const CSV: &str = "id,name,note\r\n1,\"Smith, Ann\",\"said \"\"hi\"\"\nthen left\"\n2,Zoë,\n3,,\"\"\n";

    #[test]
    fn csv_reads_quoted_fields_at_any_chunk_boundary() {
        let records = same_at_every_split(Format::Csv, CSV.as_bytes());
        assert_eq!(
            values(&records),
            [
                json!({"id": "1", "name": "Smith, Ann", "note": "said \"hi\"\nthen left"}),
                json!({"id": "2", "name": "Zoë", "note": ""}),
                json!({"id": "3", "name": "", "note": ""}),
            ]
        );
    }

    #[test]
    fn csv_yields_records_as_rows_complete() {
        let mut decoder = Decoder::new(Format::Csv, None);
        assert!(decoder.feed(b"a,b\n1,\"x\n").unwrap().is_empty());
        assert_eq!(values(&decoder.feed(b"y\"\n2,z").unwrap()), [json!({"a": "1", "b": "x\ny"})]);
        assert_eq!(values(&decoder.finish().unwrap()), [json!({"a": "2", "b": "z"})]);
    }

    #[test]
    fn csv_rows_longer_than_the_buffers_are_read() {
        let long = "x".repeat(10_000);
        let header: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        let row: Vec<&str> = (0..100).map(|_| long.as_str()).collect();
        let text = format!("{}\n{}\n", header.join(","), row.join(","));
        let records = chunked(Format::Csv, text.as_bytes().chunks(777)).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].len(), 100);
        assert_eq!(records[0].get("c99"), Some(&json!(long)));
    }

    #[test]
    fn csv_errors_name_the_row() {
        assert_eq!(
            whole(Format::Csv, None, b"a,b\n1,2\n3\n").unwrap_err(),
            DecodeError::Row { row: 3, message: "has 1 fields, the header has 2".into() }
        );
        assert_eq!(whole(Format::Csv, None, b"a,b\n1,2,3").unwrap_err().to_string(), "row 2: has 3 fields, the header has 2");
        assert_eq!(whole(Format::Csv, None, b"a,b,a\n").unwrap_err().to_string(), "row 1: column 'a' appears twice in the header");
        assert_eq!(whole(Format::Csv, None, b"a,,b\n").unwrap_err().to_string(), "row 1: column 2 of the header has no name");
        assert_eq!(whole(Format::Csv, None, b"a,b\nok,\xff\n").unwrap_err().to_string(), "row 2: column 2 is not valid UTF-8");
        // Each half of "é" alone is invalid, though together they would be valid.
        assert_eq!(whole(Format::Csv, None, b"a,b\n\xC3,\xA9\n").unwrap_err().to_string(), "row 2: column 1 is not valid UTF-8");
    }

    #[test]
    fn csv_without_rows_has_no_records() {
        assert!(whole(Format::Csv, None, b"").unwrap().is_empty());
        assert!(whole(Format::Csv, None, b"a,b\n").unwrap().is_empty());
    }

    #[test]
    fn a_byte_order_mark_is_dropped_even_when_split() {
        let bytes = b"\xEF\xBB\xBFid\n7\n";
        assert_eq!(values(&same_at_every_split(Format::Csv, bytes)), [json!({"id": "7"})]);
        assert_eq!(values(&chunked(Format::Jsonl, [&b"\xEF"[..], b"\xBB", b"\xBF{\"a\":1}"]).unwrap()), [json!({"a": 1})]);
        assert_eq!(values(&whole(Format::Json, None, b"\xEF\xBB\xBF[{\"a\":1}]").unwrap()), [json!({"a": 1})]);
        // Bytes that only begin like a mark are data (here, invalid data).
        assert!(chunked(Format::Jsonl, [&b"\xEF"[..], b"x\n"]).is_err());
    }

    #[test]
    fn json_is_an_array_of_objects_decoded_at_finish() {
        let mut decoder = Decoder::new(Format::Json, None);
        assert!(decoder.feed(b"[{\"a\":1},").unwrap().is_empty());
        assert!(decoder.feed(b"{\"a\":2}]").unwrap().is_empty());
        assert_eq!(values(&decoder.finish().unwrap()), [json!({"a": 1}), json!({"a": 2})]);
        assert!(whole(Format::Json, None, b"[]").unwrap().is_empty());
    }

    #[test]
    fn json_records_can_sit_at_a_path() {
        let doc = br#"{"data": {"items": [{"id": 1}], "total": 1}}"#;
        assert_eq!(values(&whole(Format::Json, Some("data.items"), doc).unwrap()), [json!({"id": 1})]);
        assert_eq!(
            whole(Format::Json, Some("data.rows"), doc).unwrap_err().to_string(),
            "records path 'data.rows': the document has no 'rows'"
        );
        assert_eq!(
            whole(Format::Json, Some("data.total"), doc).unwrap_err().to_string(),
            "records path 'data.total' leads to a number, not an array"
        );
        assert_eq!(
            whole(Format::Json, None, doc).unwrap_err().to_string(),
            "expected an array of records, found an object (a records path can point into it)"
        );
    }

    #[test]
    fn json_errors_say_what_is_wrong() {
        assert_eq!(
            whole(Format::Json, None, b"[{\"a\":1}, 2]").unwrap_err().to_string(),
            "record 2 of the array is a number, not an object"
        );
        assert!(whole(Format::Json, None, b"[{\"a\":1}").unwrap_err().to_string().starts_with("invalid JSON: EOF while parsing"));
        assert!(whole(Format::Json, None, b"").unwrap_err().to_string().starts_with("invalid JSON"));
    }
}
