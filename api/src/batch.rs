//! Reading a `POST /cdrs` body into raw records, before per-record validation.
//!
//! Accepted shapes: a JSON array of records, `{"cdrs": [...]}`, a single record object, or
//! NDJSON (one record per line). A body that cannot be read at all is a 400; an NDJSON line
//! that is not JSON only refuses that record.

use jobs::cdr::formats::{CsvOptions, read_csv};
use serde_json::Value;

/// Wire format of the body, from its content type.
#[derive(Debug, Clone, Copy)]
pub enum BatchFormat {
    Json,
    Ndjson,
    /// A switch's CSV file.
    Csv(CsvOptions),
}

/// A raw record, or why its NDJSON line could not be read.
pub type RawRecord = Result<Value, String>;

#[derive(Debug, PartialEq, Eq)]
pub enum BatchError {
    NotUtf8(String),
    Malformed(String),
    WrongShape(String),
    /// The CSV's format could not be told or read.
    Format(String),
    Empty,
}

/// Reads the body's records. Records of a CSV file come with the line they start on, so
/// refusals can point at it.
pub fn read_batch(format: BatchFormat, body: &[u8]) -> Result<Vec<(Option<u64>, RawRecord)>, BatchError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| BatchError::NotUtf8(format!("body is not valid UTF-8 (at byte {})", e.valid_up_to())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records: Vec<(Option<u64>, RawRecord)> = match format {
        BatchFormat::Json => read_json(text)?.into_iter().map(|r| (None, r)).collect(),
        BatchFormat::Csv(options) => read_csv(text, &options)
            .map_err(BatchError::Format)?
            .into_iter()
            .map(|(line, r)| (Some(line), r))
            .collect(),
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
    Ok(records)
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

    #[test]
    fn accepts_array_wrapper_single_and_ndjson() {
        assert_eq!(read_batch(BatchFormat::Json, br#"[{"a":1},{"a":2}]"#).unwrap().len(), 2);
        assert_eq!(read_batch(BatchFormat::Json, br#"{"cdrs":[{"a":1}]}"#).unwrap().len(), 1);
        assert_eq!(read_batch(BatchFormat::Json, br#"{"a":1}"#).unwrap().len(), 1);
        let nd = read_batch(BatchFormat::Ndjson, b"{\"a\":1}\r\n\n{\"a\":2}\n").unwrap();
        assert_eq!(nd.len(), 2);
        assert!(nd.iter().all(|(_, r)| r.is_ok()));
    }

    #[test]
    fn a_bad_ndjson_line_refuses_only_that_record() {
        let nd = read_batch(BatchFormat::Ndjson, b"{\"a\":1}\n{oops\n").unwrap();
        assert!(nd[0].1.is_ok());
        assert_eq!(nd[1].0, Some(2));
        assert!(nd[1].1.as_ref().unwrap_err().starts_with("invalid JSON"));
    }

    #[test]
    fn unreadable_bodies_are_refused() {
        assert!(matches!(read_batch(BatchFormat::Json, b"[{"), Err(BatchError::Malformed(_))));
        assert!(matches!(read_batch(BatchFormat::Json, b"\xff\xfe"), Err(BatchError::NotUtf8(_))));
        assert!(matches!(read_batch(BatchFormat::Json, b"42"), Err(BatchError::WrongShape(_))));
        assert!(matches!(read_batch(BatchFormat::Json, br#"{"cdrs":1}"#), Err(BatchError::WrongShape(_))));
        assert!(matches!(read_batch(BatchFormat::Json, b"[]"), Err(BatchError::Empty)));
        assert!(matches!(read_batch(BatchFormat::Ndjson, b"\n\n"), Err(BatchError::Empty)));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(matches!(read_batch(BatchFormat::Json, deep.as_bytes()), Err(BatchError::Malformed(_))));
    }
}
