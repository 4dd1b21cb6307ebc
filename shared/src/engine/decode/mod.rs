//! Decoding a source's bytes into records, chunk by chunk, wherever the chunks split them (inside
//! a line, a quoted CSV field, a JSON string or a UTF-8 character).
//!
//! Every format streams: a chunk yields the records it completes, and memory holds the chunk and
//! at most one partial record, itself at most `max_record` bytes. A larger record is skipped
//! without being held, and handed out as a failed record that names it: one huge row of one
//! tenant's file costs a failed row, never the worker's memory.
//!
//! Each record comes with a [`Mark`]: the byte offset where it ends in the document and the
//! decoder's count there (JSONL line, CSV row, JSON array item). [`Decoder::resume`] starts a
//! decoder at a mark, so a continuation reads on from there (an S3 or HTTP `Range`) instead of
//! from the first byte.
//!
//! A UTF-8 byte order mark at the start is dropped, whatever the format. After an error the
//! decoder is spent: the source is not what its format says.

mod json_array;

use std::borrow::Cow;

use csv_core::ReadRecordResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::Record;
use json_array::JsonArray;

/// Records are at most this large unless a source says otherwise.
pub const DEFAULT_MAX_RECORD: usize = 1024 * 1024;
/// CSV rows with more fields than this are too large whatever their bytes.
const MAX_CSV_FIELDS: usize = 65_536;

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

/// A place to resume decoding: just past a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Bytes from the document's first byte (a byte order mark included) to the record's end.
    pub offset: u64,
    /// The record's JSONL line, CSV row or JSON array item number.
    pub count: u64,
}

/// One record of a document, or why it could not be one (too large, not an object), with where
/// it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub record: Result<Record, String>,
    pub mark: Mark,
}

pub struct Decoder {
    bom: Bom,
    /// Bytes of a byte order mark dropped: offsets count them.
    base: u64,
    body: Body,
}

enum Body {
    Json(Box<JsonArray>),
    Jsonl(Lines),
    Csv(Box<Rows>),
}

impl Decoder {
    /// `records_path` (`data.items`) is where a JSON document keeps its records; other formats
    /// ignore it. Records over `max_record` bytes are failed records.
    pub fn new(format: Format, records_path: Option<&str>, max_record: usize) -> Decoder {
        let body = match format {
            Format::Json => Body::Json(Box::new(JsonArray::new(records_path, max_record))),
            Format::Jsonl => Body::Jsonl(Lines::new(max_record, Mark::default())),
            Format::Csv => Body::Csv(Box::new(Rows::new(max_record, Mark::default(), None))),
        };
        Decoder { bom: Bom::default(), base: 0, body }
    }

    /// A decoder fed from `at.offset` of a document, just past a record another decoder marked;
    /// a CSV document needs the `header` that decoder read.
    pub fn resume(format: Format, max_record: usize, at: Mark, header: Option<Vec<String>>) -> Decoder {
        let body = match format {
            Format::Json => Body::Json(Box::new(JsonArray::resume(max_record, at.offset, at.count))),
            Format::Jsonl => Body::Jsonl(Lines::new(max_record, at)),
            Format::Csv => Body::Csv(Box::new(Rows::new(max_record, at, header))),
        };
        Decoder { bom: Bom { start: Vec::new(), done: true }, base: 0, body }
    }

    /// A CSV document's column names, once its header row is read.
    pub fn header(&self) -> Option<&[String]> {
        match &self.body {
            Body::Csv(rows) => rows.header.as_deref(),
            _ => None,
        }
    }

    /// Appends the records this chunk completes.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Decoded>) -> Result<(), DecodeError> {
        let chunk = self.bom.strip(chunk, &mut self.base);
        if chunk.is_empty() {
            return Ok(());
        }
        let from = out.len();
        self.body.feed(&chunk, out)?;
        self.rebase(&mut out[from..]);
        Ok(())
    }

    /// Appends the records left when the document has no more bytes.
    pub fn finish(&mut self, out: &mut Vec<Decoded>) -> Result<(), DecodeError> {
        let from = out.len();
        let rest = self.bom.finish(&mut self.base);
        if !rest.is_empty() {
            self.body.feed(&rest, out)?;
        }
        match &mut self.body {
            Body::Json(array) => array.finish(&mut Vec::new()).map_err(|e| DecodeError::Document(e.0))?,
            Body::Jsonl(lines) => lines.finish(out)?,
            Body::Csv(rows) => rows.read(&[], out)?,
        }
        self.rebase(&mut out[from..]);
        Ok(())
    }

    /// The inner decoders count the bytes they were fed; a dropped byte order mark came first.
    fn rebase(&self, decoded: &mut [Decoded]) {
        if self.base > 0 {
            for d in decoded {
                d.mark.offset += self.base;
            }
        }
    }
}

impl Body {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Decoded>) -> Result<(), DecodeError> {
        match self {
            Self::Json(array) => {
                let mut items = Vec::new();
                let result = array.feed(chunk, &mut items);
                out.extend(items.into_iter().map(|item| Decoded {
                    record: item.record.map_err(|why| format!("record {} of the array {why}", item.index)),
                    mark: Mark { offset: item.end, count: item.index },
                }));
                result.map_err(|e| DecodeError::Document(e.0))
            }
            Self::Jsonl(lines) => lines.feed(chunk, out),
            Self::Csv(rows) => rows.read(chunk, out),
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
    fn strip<'a>(&mut self, chunk: &'a [u8], dropped: &mut u64) -> Cow<'a, [u8]> {
        if self.done {
            return Cow::Borrowed(chunk);
        }
        self.start.extend_from_slice(chunk);
        if self.start.len() < BOM.len() && BOM.starts_with(&self.start) {
            return Cow::Borrowed(&[]);
        }
        Cow::Owned(self.finish(dropped))
    }

    /// The bytes held back, without the mark.
    fn finish(&mut self, dropped: &mut u64) -> Vec<u8> {
        self.done = true;
        let mut start = std::mem::take(&mut self.start);
        if start.starts_with(BOM) {
            start.drain(..BOM.len());
            *dropped = BOM.len() as u64;
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

/// JSONL: complete lines are decoded as they arrive; the line in progress waits in `partial`,
/// unless it has grown past `max`, when the rest of it is only counted.
struct Lines {
    max: usize,
    partial: Vec<u8>,
    /// Bytes of the line in progress, held or not.
    pending: u64,
    oversized: bool,
    /// Offset of the line in progress.
    offset: u64,
    line: u64,
}

impl Lines {
    fn new(max: usize, at: Mark) -> Self {
        Lines { max, partial: Vec::new(), pending: 0, oversized: false, offset: at.offset, line: at.count }
    }

    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Decoded>) -> Result<(), DecodeError> {
        let mut rest = chunk;
        // A newline byte never occurs inside a multi-byte UTF-8 character, so splitting on it is safe.
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let piece = &rest[..at];
            let end = self.offset + self.pending + at as u64 + 1;
            if self.oversized || self.partial.len() + piece.len() > self.max {
                self.too_large(end, out);
            } else if self.partial.is_empty() {
                self.decode(piece, end, out)?;
            } else {
                self.partial.extend_from_slice(piece);
                let line = std::mem::take(&mut self.partial);
                self.decode(&line, end, out)?;
            }
            (self.offset, self.pending, self.oversized) = (end, 0, false);
            rest = &rest[at + 1..];
        }
        self.pending += rest.len() as u64;
        if !self.oversized && self.partial.len() + rest.len() > self.max {
            // Held no longer: the line is a failed record whatever follows.
            self.oversized = true;
            self.partial = Vec::new();
        } else if !self.oversized {
            self.partial.extend_from_slice(rest);
        }
        Ok(())
    }

    /// The last line may lack its newline.
    fn finish(&mut self, out: &mut Vec<Decoded>) -> Result<(), DecodeError> {
        let end = self.offset + self.pending;
        if self.oversized {
            self.too_large(end, out);
            return Ok(());
        }
        let line = std::mem::take(&mut self.partial);
        if line.is_empty() {
            return Ok(());
        }
        self.decode(&line, end, out)
    }

    fn too_large(&mut self, end: u64, out: &mut Vec<Decoded>) {
        self.line += 1;
        let record = Err(format!("line {} is larger than the limit of {} bytes", self.line, self.max));
        out.push(Decoded { record, mark: Mark { offset: end, count: self.line } });
    }

    fn decode(&mut self, line: &[u8], end: u64, out: &mut Vec<Decoded>) -> Result<(), DecodeError> {
        self.line += 1;
        let line_no = self.line;
        let error = |message: String| DecodeError::Line { line: line_no, message };
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match serde_json::from_slice(line) {
            Ok(Value::Object(record)) => {
                out.push(Decoded { record: Ok(record), mark: Mark { offset: end, count: line_no } });
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
/// and `ends` (where each field ends), both grown to fit the longest row up to the limits; a row
/// past them is only scanned, and becomes a failed record.
struct Rows {
    reader: csv_core::Reader,
    max: usize,
    fields: Vec<u8>,
    fields_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    oversized: bool,
    header: Option<Vec<String>>,
    row: u64,
    /// Bytes csv-core has consumed, from the document's start.
    offset: u64,
}

impl Rows {
    fn new(max: usize, at: Mark, header: Option<Vec<String>>) -> Self {
        Rows {
            reader: csv_core::Reader::new(),
            max: max.max(1),
            fields: vec![0; max.clamp(1, 4096)],
            fields_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            oversized: false,
            header,
            row: at.count,
            offset: at.offset,
        }
    }

    /// Reads `input`; an empty input means the data has ended (csv-core's convention), which is
    /// why `feed` never passes an empty chunk.
    fn read(&mut self, mut input: &[u8], out: &mut Vec<Decoded>) -> Result<(), DecodeError> {
        let at_end = input.is_empty();
        loop {
            let (result, read, written, ended) =
                self.reader.read_record(input, &mut self.fields[self.fields_len..], &mut self.ends[self.ends_len..]);
            input = &input[read..];
            self.offset += read as u64;
            self.fields_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => return Ok(()),
                ReadRecordResult::OutputFull if self.fields.len() < self.max => {
                    let grown = (self.fields.len() * 2).min(self.max);
                    self.fields.resize(grown, 0);
                }
                ReadRecordResult::OutputEndsFull if self.ends.len() < MAX_CSV_FIELDS => self.ends.resize(self.ends.len() * 2, 0),
                // Past a limit: drop what the row holds so far and scan on to its end.
                ReadRecordResult::OutputFull => (self.oversized, self.fields_len) = (true, 0),
                ReadRecordResult::OutputEndsFull => (self.oversized, self.ends_len) = (true, 0),
                ReadRecordResult::Record => self.row(out)?,
            }
            if input.is_empty() && !at_end {
                return Ok(());
            }
        }
    }

    fn row(&mut self, out: &mut Vec<Decoded>) -> Result<(), DecodeError> {
        self.row += 1;
        let row = self.row;
        let mark = Mark { offset: self.offset, count: row };
        let error = |message: String| DecodeError::Row { row, message };
        let (bytes, ends) = (&self.fields[..self.fields_len], &self.ends[..self.ends_len]);
        (self.fields_len, self.ends_len) = (0, 0);
        if std::mem::take(&mut self.oversized) {
            let message = format!("is larger than the limit of {} bytes (or {MAX_CSV_FIELDS} fields)", self.max);
            if self.header.is_none() {
                return Err(error(format!("the header {message}")));
            }
            out.push(Decoded { record: Err(format!("row {row} {message}")), mark });
            return Ok(());
        }
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
        let record = header.iter().cloned().zip(values.into_iter().map(|v| Value::String(v.to_string()))).collect();
        out.push(Decoded { record: Ok(record), mark });
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: usize = DEFAULT_MAX_RECORD;

    /// Every item of a document fed in `chunks`, failed ones included.
    fn items<'a>(mut decoder: Decoder, chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Decoded>, DecodeError> {
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out)?;
        }
        decoder.finish(&mut out)?;
        Ok(out)
    }

    /// The records, a failed record counting as an error here.
    fn records(items: Vec<Decoded>) -> Result<Vec<Record>, DecodeError> {
        items.into_iter().map(|d| d.record.map_err(DecodeError::Document)).collect()
    }

    fn whole(format: Format, path: Option<&str>, bytes: &[u8]) -> Result<Vec<Record>, DecodeError> {
        records(items(Decoder::new(format, path, MAX), [bytes])?)
    }

    fn chunked<'a>(format: Format, chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Record>, DecodeError> {
        records(items(Decoder::new(format, None, MAX), chunks)?)
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
        let mut decoder = Decoder::new(Format::Jsonl, None, MAX);
        let mut out = Vec::new();
        decoder.feed(b"{\"a\":1}\n{\"a\"", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        decoder.feed(b":2}", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        decoder.feed(b"\n", &mut out).unwrap();
        assert_eq!(out.len(), 2);
        decoder.finish(&mut out).unwrap();
        assert_eq!(out.len(), 2);
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
        let mut decoder = Decoder::new(Format::Csv, None, MAX);
        let mut out = Vec::new();
        decoder.feed(b"a,b\n1,\"x\n", &mut out).unwrap();
        assert!(out.is_empty());
        decoder.feed(b"y\"\n2,z", &mut out).unwrap();
        assert_eq!(values(&records(out.clone()).unwrap()), [json!({"a": "1", "b": "x\ny"})]);
        decoder.finish(&mut out).unwrap();
        assert_eq!(values(&records(out).unwrap()), [json!({"a": "1", "b": "x\ny"}), json!({"a": "2", "b": "z"})]);
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
    fn json_arrays_stream_their_records() {
        let mut decoder = Decoder::new(Format::Json, None, MAX);
        let mut out = Vec::new();
        decoder.feed(b"[{\"a\":1},", &mut out).unwrap();
        assert_eq!(values(&records(out.clone()).unwrap()), [json!({"a": 1})], "an item is handed out once it is complete");
        decoder.feed(b"{\"a\":2}]", &mut out).unwrap();
        decoder.finish(&mut out).unwrap();
        assert_eq!(values(&records(out).unwrap()), [json!({"a": 1}), json!({"a": 2})]);
        assert!(whole(Format::Json, None, b"[]").unwrap().is_empty());
        let text = br#"[{"id":1},{"id":2,"s":"]\""},{"id":3}]"#;
        assert_eq!(same_at_every_split(Format::Json, text).len(), 3);
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
        // An item that is no object is a failed record; the records around it are read.
        let got = items(Decoder::new(Format::Json, None, MAX), [&b"[{\"a\":1}, 2, {\"a\":3}]"[..]]).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].record, Err("record 2 of the array is a number, not an object".to_string()));
        assert!(got[2].record.is_ok());
        assert!(whole(Format::Json, None, b"[{\"a\":1}").unwrap_err().to_string().starts_with("invalid JSON: EOF while parsing"));
        assert!(whole(Format::Json, None, b"").unwrap_err().to_string().starts_with("invalid JSON"));
    }

    /// Resuming at each record's mark gives exactly the records after it, in every format.
    fn resumes_at_every_mark(format: Format, text: &[u8]) {
        let all = items(Decoder::new(format, None, MAX), text.chunks(7)).unwrap();
        let mut header = None;
        if format == Format::Csv {
            let mut d = Decoder::new(format, None, MAX);
            d.feed(text, &mut Vec::new()).unwrap();
            header = d.header().map(<[String]>::to_vec);
        }
        for (i, at) in all.iter().enumerate() {
            let rest = &text[at.mark.offset as usize..];
            let decoder = Decoder::resume(format, MAX, at.mark, header.clone());
            let again = items(decoder, rest.chunks(5)).unwrap();
            assert_eq!(again, all[i + 1..], "{format:?} resumed after record {}", i + 1);
        }
    }

    #[test]
    fn every_format_resumes_at_a_mark() {
        resumes_at_every_mark(Format::Jsonl, b"\xEF\xBB\xBF{\"a\":1}\r\n\n{\"a\":2}\n{\"a\":3}");
        resumes_at_every_mark(Format::Csv, CSV.as_bytes());
        resumes_at_every_mark(Format::Csv, b"\xEF\xBB\xBFid,n\n1,a\n2,\"b\nc\"\n3,d");
        resumes_at_every_mark(Format::Json, br#"[{"a":1}, {"a":"x,]"} ,{"a":3}]"#);
    }

    #[test]
    fn marks_count_lines_rows_and_items() {
        let got = items(Decoder::new(Format::Jsonl, None, MAX), [&b"{\"a\":1}\n\n{\"a\":2}\n"[..]]).unwrap();
        assert_eq!(got.iter().map(|d| d.mark).collect::<Vec<_>>(), [Mark { offset: 8, count: 1 }, Mark { offset: 17, count: 3 }]);
        let got = items(Decoder::new(Format::Csv, None, MAX), [&b"a\n1\n2"[..]]).unwrap();
        assert_eq!(got.iter().map(|d| d.mark).collect::<Vec<_>>(), [Mark { offset: 4, count: 2 }, Mark { offset: 5, count: 3 }]);
    }

    #[test]
    fn records_over_the_limit_are_failed_records_and_never_held() {
        let big = "x".repeat(100);
        let jsonl = format!("{{\"a\":1}}\n{{\"a\":\"{big}\"}}\n{{\"a\":3}}\n");
        let got = items(Decoder::new(Format::Jsonl, None, 50), jsonl.as_bytes().chunks(9)).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].record, Err("line 2 is larger than the limit of 50 bytes".into()));
        assert!(got[0].record.is_ok() && got[2].record.is_ok());

        let csv = format!("a,b\n1,2\n{big},3\n4,5\n");
        let got = items(Decoder::new(Format::Csv, None, 50), csv.as_bytes().chunks(9)).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].record, Err("row 3 is larger than the limit of 50 bytes (or 65536 fields)".into()));
        assert_eq!(got[2].record, Ok(json!({"a": "4", "b": "5"}).as_object().cloned().unwrap()));

        let json = format!("[{{\"a\":1}},{{\"a\":\"{big}\"}},{{\"a\":3}}]");
        let got = items(Decoder::new(Format::Json, None, 50), json.as_bytes().chunks(9)).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].record, Err("record 2 of the array is larger than the limit of 50 bytes".into()));

        // A header too large to hold cannot name the columns: the document is refused.
        assert!(whole(Format::Csv, None, format!("{big}\n").as_bytes()).is_ok());
        let e = items(Decoder::new(Format::Csv, None, 50), [format!("{big}\n1\n").as_bytes()]).unwrap_err();
        assert!(e.to_string().starts_with("row 1: the header is larger"), "{e}");
    }
}
