//! Reading a `POST /cdrs` body into raw records, before per-record validation.
//!
//! Accepted shapes: a JSON array of records, `{"cdrs": [...]}`, a single record object, or
//! NDJSON (one record per line). A body that cannot be read at all is a 400; an NDJSON line
//! that is not JSON only refuses that record.

use jobs::cdr::formats::{Charset, CsvOptions, decode_field, read_csv, to_utf8};
use serde_json::Value;
use std::borrow::Cow;

/// Wire format of the body, from its content type.
#[derive(Debug, Clone)]
pub enum BatchFormat {
    Json,
    Ndjson,
    /// A switch's CSV file.
    Csv(Box<CsvOptions>),
}

/// A raw record, or why its NDJSON line could not be read.
pub type RawRecord = Result<Value, String>;

#[derive(Debug, PartialEq, Eq)]
pub enum BatchError {
    Malformed(String),
    WrongShape(String),
    /// The CSV's format could not be told or read.
    Format(String),
    Empty,
}

/// The records of a body, each with the line it starts on where lines mean something, and
/// the name of the CSV layout that read it.
pub struct Batch {
    pub records: Vec<(Option<u64>, RawRecord)>,
    pub layout: Option<String>,
}

/// Reads the body's records. Records of a CSV file come with the line they start on, so
/// refusals can point at it. Text that is not UTF-8 is decoded with the declared charset (or
/// Windows-1252) rather than refused: JSON's structure is ASCII, so decoding the whole body
/// decodes each string in it.
pub fn read_batch(format: BatchFormat, body: &[u8], charset: Option<Charset>) -> Result<Batch, BatchError> {
    if let BatchFormat::Csv(options) = &format {
        let file =
            read_csv(body, &CsvOptions { charset, ..(**options).clone() }).map_err(BatchError::Format)?;
        if file.records.is_empty() {
            return Err(BatchError::Empty);
        }
        let records = file.records.into_iter().map(|(line, r)| (Some(line), r)).collect();
        return Ok(Batch { records, layout: Some(file.layout) });
    }
    let bytes = to_utf8(body);
    let text: Cow<'_, str> = match std::str::from_utf8(&bytes) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => Cow::Owned(decode_field(&bytes, charset)),
    };
    let records: Vec<(Option<u64>, RawRecord)> = match format {
        BatchFormat::Json => read_json(&text)?.into_iter().map(|r| (None, r)).collect(),
        BatchFormat::Csv(_) => Vec::new(),
        BatchFormat::Ndjson => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| {
                let record = serde_json::from_str::<Value>(line).map_err(|e| format!("invalid JSON: {e}"));
                (Some(n as u64 + 1), record)
            })
            .collect(),
    };
    if records.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(Batch { records, layout: None })
}

fn read_json(text: &str) -> Result<Vec<RawRecord>, BatchError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| BatchError::Malformed(format!("invalid JSON: {e}")))?;
    match value {
        Value::Array(items) => Ok(items.into_iter().map(Ok).collect()),
        Value::Object(mut obj) => match obj.remove("cdrs") {
            Some(Value::Array(items)) => Ok(items.into_iter().map(Ok).collect()),
            Some(_) => Err(BatchError::WrongShape("\"cdrs\" must be an array of records".into())),
            None => Ok(vec![Ok(Value::Object(obj))]),
        },
        _ => Err(BatchError::WrongShape(
            "expected an array of records, {\"cdrs\": [...]}, or one record object".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(format: BatchFormat, body: &[u8]) -> Result<Vec<(Option<u64>, RawRecord)>, BatchError> {
        read_batch(format, body, None).map(|b| b.records)
    }

    #[test]
    fn accepts_array_wrapper_single_and_ndjson() {
        assert_eq!(read(BatchFormat::Json, br#"[{"a":1},{"a":2}]"#).unwrap().len(), 2);
        assert_eq!(read(BatchFormat::Json, br#"{"cdrs":[{"a":1}]}"#).unwrap().len(), 1);
        assert_eq!(read(BatchFormat::Json, br#"{"a":1}"#).unwrap().len(), 1);
        let nd = read(BatchFormat::Ndjson, b"{\"a\":1}\r\n\n{\"a\":2}\n").unwrap();
        assert_eq!(nd.len(), 2);
        assert!(nd.iter().all(|(_, r)| r.is_ok()));
    }

    #[test]
    fn text_that_is_not_utf8_is_decoded_not_refused() {
        let body = b"[{\"caller_name\": \"\xcf\xe5\xf2\xf0\"}]";
        let latin = read(BatchFormat::Json, body).unwrap();
        assert_eq!(latin[0].1.as_ref().unwrap()["caller_name"], "\u{cf}\u{e5}\u{f2}\u{f0}");
        let cyrillic = jobs::cdr::formats::parse_charset("windows-1251").ok();
        let decoded = read_batch(BatchFormat::Json, body, cyrillic).unwrap().records;
        assert_eq!(decoded[0].1.as_ref().unwrap()["caller_name"], "Петр");
    }

    #[test]
    fn a_bad_ndjson_line_refuses_only_that_record() {
        let nd = read(BatchFormat::Ndjson, b"{\"a\":1}\n{oops\n").unwrap();
        assert!(nd[0].1.is_ok());
        assert_eq!(nd[1].0, Some(2));
        assert!(nd[1].1.as_ref().unwrap_err().starts_with("invalid JSON"));
    }

    #[test]
    fn unreadable_bodies_are_refused() {
        assert!(matches!(read(BatchFormat::Json, b"[{"), Err(BatchError::Malformed(_))));
        assert!(matches!(read(BatchFormat::Json, b"[\xff]"), Err(BatchError::Malformed(_))));
        assert!(matches!(read(BatchFormat::Json, b"42"), Err(BatchError::WrongShape(_))));
        assert!(matches!(read(BatchFormat::Json, br#"{"cdrs":1}"#), Err(BatchError::WrongShape(_))));
        assert!(matches!(read(BatchFormat::Json, b"[]"), Err(BatchError::Empty)));
        assert!(matches!(read(BatchFormat::Ndjson, b"\n\n"), Err(BatchError::Empty)));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(matches!(read(BatchFormat::Json, deep.as_bytes()), Err(BatchError::Malformed(_))));
    }
}
