//! The CSV files switches write, turned into raw records for the same validation JSON
//! batches go through.
//!
//! A file is read by a [`Layout`]: named by the request, matched by its header row, or told
//! from the shape of its rows. Bytes that are not UTF-8 are decoded field by field (see
//! [`decode`]), so one odd byte in a caller's name never costs a file. Each record keeps the
//! line it starts on, counted in one pass.

mod builtin;
mod decode;
mod detect;
pub mod freeswitch_json;
mod layout;
mod times;

pub use builtin::{Builtin, all as builtin_layouts, find as builtin_layout};
pub use decode::{Charset, decode_field, parse_charset, to_utf8};
pub use detect::SAMPLE_ROWS;
pub use layout::{Identity, Layout, MAPPABLE_FIELDS, Resolved};

use chrono_tz::Tz;
use serde_json::Value;

/// A record read from one CSV row, or why the row could not be read.
pub type CsvRecord = Result<Value, String>;

/// The name `format=generic` and header detection give a header row of this API's names.
pub const GENERIC: &str = "generic";

/// How to read a CSV body.
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// The layout the request named (`format`), with its name; detected when `None`.
    pub layout: Option<(String, Layout)>,
    /// Zone of the file's zone-less times; the layout's, or UTC, when `None`.
    pub timezone: Option<Tz>,
    /// The declared character set of bytes that are not UTF-8.
    pub charset: Option<Charset>,
    /// Saved layouts, tried before the built-in ones when detecting.
    pub saved: Vec<(String, Layout)>,
}

/// A file read: the layout that read it and every row's record with its line.
#[derive(Debug)]
pub struct CsvFile {
    pub layout: String,
    pub records: Vec<(u64, CsvRecord)>,
}

pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?}; use an IANA name such as Europe/Paris"))
}

/// One CSV row: its first line, its decoded fields, or why it cannot be read.
type Row = (u64, Result<Vec<String>, String>);

/// Reads every row, each with the line it starts on. `Err` when the file as a whole cannot
/// be read (its layout cannot be told, or the named one does not fit its header).
pub fn read_csv(body: &[u8], options: &CsvOptions) -> Result<CsvFile, String> {
    let text = to_utf8(body);
    let mut rows = split_rows(&text, options.charset);
    let sample: Vec<Vec<String>> =
        rows.iter().filter_map(|(_, r)| r.as_ref().ok()).take(detect::SAMPLE_ROWS).cloned().collect();
    if sample.is_empty() && !rows.is_empty() {
        // No row can be read at all: each is refused with its line, whatever the layout.
        let records = rows.into_iter().map(|(line, row)| (line, row.map(|_| Value::Null))).collect();
        return Ok(CsvFile { layout: "unreadable".into(), records });
    }
    let (name, resolved, header) = match &options.layout {
        Some((name, layout)) => {
            let (resolved, header) = detect::bind(name, layout, sample.first())?;
            (name.clone(), resolved, header)
        }
        None => detect::detect(&sample, &options.saved)?,
    };
    if header && let Some(at) = rows.iter().position(|(_, r)| r.is_ok()) {
        let _header = rows.remove(at);
    }
    let records = rows
        .into_iter()
        .map(|(line, row)| (line, row.and_then(|fields| resolved.record(&fields, options.timezone))))
        .collect();
    Ok(CsvFile { layout: name, records })
}

/// Splits the text into rows of decoded fields, skipping blank lines. Lines are counted
/// incrementally from one row to the next, so a file of any size is counted in one pass.
fn split_rows(text: &[u8], charset: Option<Charset>) -> Vec<Row> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text);
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut lines = LineCounter { text, counted_to: 0, line: 1 };
    loop {
        let start = reader.position().byte();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let begin = record.position().map_or(start, |p| p.byte());
                let end = reader.position().byte();
                let at = lines.line_at(begin);
                if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                    continue;
                }
                let raw = &text[usize::try_from(begin).unwrap_or(0).min(text.len())
                    ..usize::try_from(end).unwrap_or(0).min(text.len())];
                if raw.iter().filter(|b| **b == b'"').count() % 2 == 1 {
                    rows.push((at, Err("unreadable CSV: a quoted field is never closed".to_string())));
                    continue;
                }
                rows.push((at, Ok(record.iter().map(|f| decode_field(f, charset)).collect())));
            }
            Err(e) => {
                let at = match e.position() {
                    Some(p) => lines.line_at(p.byte()),
                    None => lines.line,
                };
                rows.push((at, Err(format!("unreadable CSV: {e}"))));
            }
        }
    }
    rows
}

/// The line of a byte offset, counted on from the last offset asked about: offsets come in
/// order, so the whole text is scanned once.
struct LineCounter<'a> {
    text: &'a [u8],
    counted_to: usize,
    line: u64,
}

impl LineCounter<'_> {
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut byte = usize::try_from(byte).unwrap_or(usize::MAX).min(self.text.len());
        // After a CRLF (and blank lines) the reader places a record at a line ending before it.
        while byte < self.text.len() && matches!(self.text[byte], b'\r' | b'\n') {
            byte += 1;
        }
        if byte > self.counted_to {
            self.line += self.text[self.counted_to..byte].iter().filter(|b| **b == b'\n').count() as u64;
            self.counted_to = byte;
        }
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> CsvFile {
        read_csv(body.as_bytes(), &CsvOptions::default()).unwrap()
    }

    #[test]
    fn lines_are_counted_with_either_line_ending_and_blank_lines() {
        let row = "\"\",\"1\",\"2\",\"d\",\"\",\"c\",\"\",\"a\",\"\",\"2026-01-01 00:00:00\",\"\",\"2026-01-01 00:00:01\",1,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1.1\",\"\"";
        let body = format!("{row}\r\n\r\n{row}\n\"multi\nline\",{}\n", &row[3..]);
        let file = read(&body);
        assert_eq!(file.layout, "asterisk");
        let lines: Vec<u64> = file.records.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![1, 3, 4]);
    }

    #[test]
    fn an_unterminated_quote_refuses_its_row_only() {
        let good = "\"\",\"1\",\"2\",\"d\",\"\",\"c\",\"\",\"a\",\"\",\"2026-01-01 00:00:00\",\"\",\"2026-01-01 00:00:01\",1,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1.1\",\"\"";
        let body = format!("{good}\n{}\"\n", &good[..good.len() - 2]);
        let file = read(&body);
        assert!(file.records[0].1.is_ok());
        let (line, err) = &file.records[1];
        assert_eq!(*line, 2);
        assert!(err.as_ref().unwrap_err().contains("never closed"));
    }

    #[test]
    fn a_big_file_is_counted_in_linear_time() {
        let row = "\"\",\"1\",\"2\",\"d\",\"\",\"c\",\"\",\"a\",\"\",\"2026-01-01 00:00:00\",\"\",\"2026-01-01 00:00:01\",1,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1.1\",\"\"\n";
        let body = row.repeat(50_000);
        let file = read(&body);
        assert_eq!(file.records.len(), 50_000);
        assert_eq!(file.records.last().map(|(l, _)| *l), Some(50_000));
    }
}
