//! `inline` sources: records kept in the connector's config, for demos and tests. Either
//! `records` (an array of objects), or `data` (text) in `format` `csv`, `jsonl` or `json`, with
//! `recordsPath` for a JSON document that keeps its array inside an object.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::{field, format, max_record, optional_text, records_path, Body, Document, Position, Reader, SourceError};
use crate::engine::decode::{Decoder, Format};
use crate::engine::record::Record;

#[derive(Debug)]
pub(super) enum Settings {
    Records(Vec<Record>),
    Data { data: String, format: Format, records_path: Option<String>, max_record: usize },
}

impl Settings {
    pub(super) fn parse(config: &Map<String, Value>) -> Result<Settings, SourceError> {
        let data = optional_text(config, "data")?;
        match (field(config, "records"), data) {
            (Some(_), Some(_)) => Err(SourceError::config("records", "and config.data cannot both be given")),
            (Some(records), None) => records_of(records).map(Settings::Records),
            (None, Some(data)) => {
                let format =
                    format(config)?.ok_or_else(|| SourceError::config("format", "is required with config.data (csv, jsonl or json)"))?;
                Ok(Settings::Data { data: data.to_string(), format, records_path: records_path(config)?, max_record: max_record(config)? })
            }
            (None, None) => Err(SourceError::config("records", "(or config.data) is required")),
        }
    }

    /// Records resume at their index, data at the byte offset where the position left it.
    pub(super) fn open(self, from: Position) -> Reader<Option<Document>> {
        match self {
            Settings::Records(records) => Reader::new(None, records, from),
            Settings::Data { data, format, records_path, max_record } => {
                let total = data.len() as u64;
                let mut bytes = Bytes::from(data);
                let decoder = match &from.document {
                    None => Decoder::new(format, records_path.as_deref(), max_record),
                    Some(at) => {
                        let _ = bytes.split_to((at.mark.offset as usize).min(bytes.len()));
                        Decoder::resume(format, max_record, at.mark, at.header.clone())
                    }
                };
                let document = Document::new("inline data".into(), decoder, Body::Inline(bytes));
                // Nothing to fetch: the reader starts with its one document.
                let mut reader = Reader::new(Some(document), Vec::new(), from);
                reader.bytes_total = Some(total);
                reader
            }
        }
    }
}

fn records_of(value: &Value) -> Result<Vec<Record>, SourceError> {
    let Value::Array(items) = value else { return Err(SourceError::config("records", "must be an array of objects")) };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(record) => Ok(record.clone()),
            _ => Err(SourceError::config(format!("records[{i}]"), "must be an object")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::open;
    use super::super::tests::{connector, context, drain, open_error};
    use super::*;
    use crate::domain::tenant::TenantId;
    use serde_json::json;

    /// Batch sizes and records of an inline source.
    async fn read(config: Value, skip: u64, max: usize) -> (Vec<usize>, Vec<Value>) {
        let mut source =
            open(&connector("inline", config), &TenantId::parse("t").unwrap(), &context(), Some(&super::super::tests::skip(skip)))
                .await
                .unwrap();
        drain(source.as_mut(), max).await
    }

    fn ten() -> Vec<Value> {
        (1..=10).map(|i| json!({"id": i})).collect()
    }

    #[tokio::test]
    async fn records_come_in_batches_of_at_most_max() {
        assert_eq!(read(json!({"records": ten()}), 0, 3).await, (vec![3, 3, 3, 1], ten()));
        assert_eq!(read(json!({"records": ten()}), 0, 10).await.0, [10]);
        assert_eq!(read(json!({"records": ten()}), 0, 100).await.0, [10]);
        assert_eq!(read(json!({"records": []}), 0, 3).await.0, Vec::<usize>::new());
    }

    #[tokio::test]
    async fn skipped_records_are_not_handed_out() {
        assert_eq!(read(json!({"records": ten()}), 4, 3).await, (vec![3, 3], ten()[4..].to_vec()));
        assert_eq!(read(json!({"records": ten()}), 10, 3).await.0, Vec::<usize>::new());
        assert_eq!(read(json!({"records": ten()}), u64::MAX, 3).await.0, Vec::<usize>::new());
    }

    #[tokio::test]
    async fn data_is_decoded_in_its_format() {
        let csv: String = std::iter::once("id,name\n".to_string()).chain((1..=10).map(|i| format!("{i},n{i}\n"))).collect();
        let (sizes, records) = read(json!({"data": csv, "format": "csv"}), 2, 3).await;
        assert_eq!(sizes, [3, 3, 2]);
        assert_eq!(records[0], json!({"id": "3", "name": "n3"}));

        let jsonl: String = (1..=10).map(|i| format!("{{\"id\":{i}}}\n")).collect();
        assert_eq!(read(json!({"data": jsonl, "format": "jsonl"}), 0, 3).await, (vec![3, 3, 3, 1], ten()));
        assert_eq!(read(json!({"data": jsonl, "format": "ndjson"}), 9, 3).await, (vec![1], ten()[9..].to_vec()));

        let doc = json!({"page": {"items": ten()}}).to_string();
        assert_eq!(
            read(json!({"data": doc, "format": "json", "recordsPath": "page.items"}), 1, 5).await,
            (vec![5, 4], ten()[1..].to_vec())
        );
    }

    #[tokio::test]
    async fn bad_data_fails_when_read() {
        let mut source =
            open(&connector("inline", json!({"data": "a,b\n1,2\n3\n", "format": "csv"})), &TenantId::parse("t").unwrap(), &context(), None)
                .await
                .unwrap();
        let e = source.next_batch(10).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("SOURCE_ERROR", "inline data: row 3: has 1 fields, the header has 2"));
    }

    #[tokio::test]
    async fn config_errors_name_the_field() {
        let cases = [
            (json!({}), "config.records (or config.data) is required"),
            (json!({"records": null, "data": null}), "config.records (or config.data) is required"),
            (json!({"records": [], "data": "x"}), "config.records and config.data cannot both be given"),
            (json!({"records": {"id": 1}}), "config.records must be an array of objects"),
            (json!({"records": [{"id": 1}, 2]}), "config.records[1] must be an object"),
            (json!({"data": 5, "format": "csv"}), "config.data must be a string"),
            (json!({"data": "a\n1\n"}), "config.format is required with config.data (csv, jsonl or json)"),
            (json!({"data": "a\n1\n", "format": "parquet"}), "config.format must be json, jsonl or csv"),
            (json!({"data": "[]", "format": "json", "recordsPath": 1}), "config.recordsPath must be a string"),
        ];
        for (config, message) in cases {
            let e = open_error("inline", config.clone()).await;
            assert_eq!((e.code.as_str(), e.message.as_str()), ("INVALID_CONNECTOR_CONFIG", message), "{config}");
        }
    }
}
