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
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut lines = LineCounter { text, counted_to: 0, line: 1 };
    // Where the reader starts; moved past a row whose quote is never closed, so the rows
    // after it are read as rows again rather than swallowed into its last field.
    let mut offset = 0_usize;
    'file: while offset < text.len() {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&text[offset..]);
        loop {
            let start = reader.position().byte();
            match reader.read_byte_record(&mut record) {
                Ok(false) => break 'file,
                Ok(true) => {
                    let begin = offset + to_usize(record.position().map_or(start, |p| p.byte()));
                    let end = (offset + to_usize(reader.position().byte())).min(text.len());
                    let at = lines.line_at(begin as u64);
                    if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                        continue;
                    }
                    if let Some(next_line) = unclosed_quote(text, begin.min(end), end) {
                        rows.push((at, Err("unreadable CSV: a quoted field is never closed".to_string())));
                        offset = next_line;
                        continue 'file;
                    }
                    rows.push((at, Ok(record.iter().map(|f| decode_field(f, charset)).collect())));
                }
                Err(e) => {
                    let at = match e.position() {
                        Some(p) => lines.line_at((offset + to_usize(p.byte())) as u64),
                        None => lines.line,
                    };
                    rows.push((at, Err(format!("unreadable CSV: {e}"))));
                }
            }
        }
    }
    rows
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Whether the row in `text[begin..end]` opened a quote it never closed, and if so where the
/// line after its first one starts. Such a row has an odd number of quotes and runs over a
/// line end (or to the end of the file); a stray quote inside one unquoted field (`5" pipe`)
/// stays on its line and is read as text.
fn unclosed_quote(text: &[u8], begin: usize, end: usize) -> Option<usize> {
    let raw = &text[begin..end];
    if raw.iter().filter(|b| **b == b'"').count() % 2 == 0 {
        return None;
    }
    let body = raw.strip_suffix(b"\n").map_or(raw, |r| r.strip_suffix(b"\r").unwrap_or(r));
    let first_line_end = body.iter().position(|b| *b == b'\n');
    match first_line_end {
        Some(at) => Some(begin + at + 1),
        None if end >= text.len() => Some(text.len()),
        None => None,
    }
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
    fn rows_after_an_unclosed_quote_are_read_again_and_a_stray_quote_is_text() {
        let good = |n: u32| {
            format!(
                "\"\",\"1\",\"2\",\"d\",\"\",\"c\",\"\",\"a\",\"\",\"2026-01-01 00:00:00\",\"\",\"2026-01-01 00:00:01\",1,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1.{n}\",\"\""
            )
        };
        let broken = good(2).replacen("\"d\"", "\"d", 1);
        let stray = good(4).replacen("\"a\"", "a 5\" pipe", 1);
        let body = format!("{}\n{broken}\n{}\n{stray}\n{}\n", good(1), good(3), good(5));
        let file = read(&body);
        let seen: Vec<(u64, bool)> = file.records.iter().map(|(l, r)| (*l, r.is_ok())).collect();
        assert_eq!(seen, vec![(1, true), (2, false), (3, true), (4, true), (5, true)]);
        assert_eq!(file.records[3].1.as_ref().unwrap()["extra"]["lastapp"], "a 5\" pipe");
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
