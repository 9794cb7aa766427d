//! The CSV files switches write, turned into raw records for the same validation JSON
//! batches go through.
//!
//! Each format maps its columns onto this API's field names; columns without a field of
//! their own go to `extra`. Times in these files are local wall-clock times without a zone,
//! read in a given time zone (UTC by default) and passed on as UTC.

mod asterisk;
mod freeswitch;
mod generic;

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::{Map, Value};
use std::str::FromStr;

/// A record read from one CSV row, or why the row could not be read.
pub type CsvRecord = Result<Value, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvFormat {
    /// Asterisk `cdr_csv` (Master.csv), 18 columns.
    Asterisk,
    /// Asterisk `cdr_csv` with `peeraccount`, `linkedid`, `sequence` appended, 21 columns.
    AsteriskExtended,
    /// FreeSWITCH `mod_cdr_csv` default template, 15 columns.
    FreeSwitch,
    /// A header row naming this API's field names.
    Generic,
}

impl FromStr for CsvFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "asterisk" => Ok(CsvFormat::Asterisk),
            "asterisk-extended" => Ok(CsvFormat::AsteriskExtended),
            "freeswitch" => Ok(CsvFormat::FreeSwitch),
            "generic" => Ok(CsvFormat::Generic),
            _ => Err(format!("unknown format {s:?}; use asterisk, asterisk-extended, freeswitch or generic")),
        }
    }
}

/// How to read a CSV body.
#[derive(Debug, Clone, Copy)]
pub struct CsvOptions {
    /// `None`: detect from the first row.
    pub format: Option<CsvFormat>,
    /// Zone of the file's zone-less times.
    pub timezone: Tz,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { format: None, timezone: Tz::UTC }
    }
}

pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?}; use an IANA name such as Europe/Paris"))
}

/// Reads every row, each with the line it starts on. `Err` when the file as a whole cannot
/// be read (its format cannot be told).
pub fn read_csv(text: &str, options: &CsvOptions) -> Result<Vec<(u64, CsvRecord)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for row in reader.records() {
        match row {
            Ok(r) => {
                let line = r.position().map(|p| line_at(text, p.byte())).unwrap_or(0);
                if r.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                rows.push(Ok((line, r.iter().map(str::to_string).collect::<Vec<String>>())));
            }
            Err(e) => {
                let line = e.position().map(|p| line_at(text, p.byte())).unwrap_or(0);
                rows.push(Err((line, format!("unreadable CSV: {e}"))));
            }
        }
    }
    let first = rows.iter().find_map(|r| r.as_ref().ok()).map(|(_, f)| f.clone()).unwrap_or_default();
    let format = match options.format {
        Some(f) => f,
        None => detect(&first)?,
    };
    let mut records = Vec::with_capacity(rows.len());
    let mut rows = rows.into_iter();
    let header = if format == CsvFormat::Generic {
        match rows.next() {
            Some(Ok((_, names))) => Some(generic::header(&names)?),
            _ => return Err("a generic CSV needs a header row".into()),
        }
    } else {
        None
    };
    for row in rows {
        records.push(match row {
            Err((line, reason)) => (line, Err(reason)),
            Ok((line, fields)) => (
                line,
                match (format, &header) {
                    (CsvFormat::Asterisk, _) => asterisk::record(&fields, false, options.timezone),
                    (CsvFormat::AsteriskExtended, _) => asterisk::record(&fields, true, options.timezone),
                    (CsvFormat::FreeSwitch, _) => freeswitch::record(&fields, options.timezone),
                    (CsvFormat::Generic, Some(names)) => generic::record(names, &fields, options.timezone),
                    (CsvFormat::Generic, None) => Err("no header".into()),
                },
            ),
        });
    }
    Ok(records)
}

/// The 1-based line a byte offset falls on (the reader's own line count is off with CRLF).
fn line_at(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut end = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    // After a CRLF the reader places the next record at its LF.
    while end < bytes.len() && matches!(bytes[end], b'\r' | b'\n') {
        end += 1;
    }
    bytes[..end].iter().filter(|b| **b == b'\n').count() as u64 + 1
}

/// The format of a headerless file by its column count, or a generic one by its header.
fn detect(first: &[String]) -> Result<CsvFormat, String> {
    if first.iter().any(|f| matches!(f.trim(), "src_number" | "dest_number" | "start_time" | "call_id")) {
        return Ok(CsvFormat::Generic);
    }
    match first.len() {
        18 => Ok(CsvFormat::Asterisk),
        21 => Ok(CsvFormat::AsteriskExtended),
        15 => Ok(CsvFormat::FreeSwitch),
        n => Err(format!(
            "cannot tell the format of a {n}-column file; give format=asterisk, asterisk-extended, freeswitch or generic"
        )),
    }
}

/// A local zone-less time as UTC RFC 3339; empty stays absent.
fn local_time(value: &str, field: &str, tz: Tz) -> Result<Option<Value>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y/%m/%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok());
    let Some(naive) = naive else {
        // Already zoned, or epoch seconds: validation reads those as they are.
        return Ok(Some(Value::String(value.to_string())));
    };
    let local = tz
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| format!("{field} {value:?} does not exist in {tz} (skipped by a clock change)"))?;
    Ok(Some(Value::String(local.with_timezone(&chrono::Utc).to_rfc3339())))
}

/// Builds a record object from (field, value) pairs, leaving out empty values.
fn object(
    pairs: impl IntoIterator<Item = (&'static str, Option<Value>)>,
    extra: Map<String, Value>,
) -> Value {
    let mut obj = Map::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            obj.insert(k.to_string(), v);
        }
    }
    if !extra.is_empty() {
        obj.insert("extra".into(), Value::Object(extra));
    }
    Value::Object(obj)
}

/// The calling-number column, kept even when empty: a switch leaves it empty when the caller
/// had no number, which validation stores as a withheld caller rather than a missing field.
fn caller(s: &str) -> Option<Value> {
    Some(Value::String(s.trim().to_string()))
}

fn text(s: &str) -> Option<Value> {
    let s = s.trim();
    (!s.is_empty()).then(|| Value::String(s.to_string()))
}

fn expect_columns(fields: &[String], n: usize, what: &str) -> Result<(), String> {
    if fields.len() == n {
        Ok(())
    } else {
        Err(format!("expected {n} columns for {what}, found {}", fields.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(n: usize) -> Vec<String> {
        vec![String::new(); n]
    }

    #[test]
    fn formats_are_told_by_header_or_column_count() {
        assert_eq!(detect(&fields(18)), Ok(CsvFormat::Asterisk));
        assert_eq!(detect(&fields(21)), Ok(CsvFormat::AsteriskExtended));
        assert_eq!(detect(&fields(15)), Ok(CsvFormat::FreeSwitch));
        assert_eq!(detect(&["call_id".to_string(), "x".to_string()]), Ok(CsvFormat::Generic));
        assert!(detect(&fields(7)).unwrap_err().contains("7-column"));
    }

    #[test]
    fn lines_are_counted_with_either_line_ending() {
        let text = "a\r\nb\r\nc\n";
        assert_eq!(line_at(text, 0), 1);
        assert_eq!(line_at(text, 2), 2);
        assert_eq!(line_at(text, 3), 2);
        assert_eq!(line_at(text, 6), 3);
    }

    #[test]
    fn local_times_become_utc_and_gaps_are_refused() {
        let paris = parse_timezone("Europe/Paris").unwrap();
        assert_eq!(
            local_time("2026-07-01 12:00:00", "start", paris).unwrap(),
            Some(Value::String("2026-07-01T10:00:00+00:00".into()))
        );
        // 02:30 does not exist in Paris on the night clocks go forward.
        assert!(local_time("2026-03-29 02:30:00", "start", paris).unwrap_err().contains("does not exist"));
        assert_eq!(local_time("", "answer", paris).unwrap(), None);
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
