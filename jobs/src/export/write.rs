//! Rows encoded as a file's bytes, page by page, so a page is all a job ever holds.

use super::Format;
use flate2::write::GzEncoder;
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Bytes the encoding layers have produced and the file has not received yet.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<u8>>>);

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("export buffer poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Layers {
    Csv(csv::Writer<Pending>),
    CsvGz(csv::Writer<GzEncoder<Pending>>),
    Ndjson(Pending),
}

/// Encodes rows (CDR documents as `/search` returns them) into one format's bytes.
pub struct Encoder {
    columns: Vec<String>,
    layers: Layers,
    out: Pending,
}

impl Encoder {
    /// An encoder for `columns` in `format`; a CSV starts with its header row.
    pub fn new(format: Format, columns: Vec<String>) -> std::io::Result<Self> {
        let out = Pending::default();
        let mut layers = match format {
            Format::Csv => Layers::Csv(csv::Writer::from_writer(out.clone())),
            Format::CsvGz => Layers::CsvGz(csv::Writer::from_writer(GzEncoder::new(
                out.clone(),
                flate2::Compression::fast(),
            ))),
            Format::Ndjson => Layers::Ndjson(out.clone()),
        };
        match &mut layers {
            Layers::Csv(w) => w.write_record(&columns)?,
            Layers::CsvGz(w) => w.write_record(&columns)?,
            Layers::Ndjson(_) => {}
        }
        Ok(Encoder { columns, layers, out })
    }

    /// Adds one row.
    pub fn row(&mut self, doc: &Value) -> std::io::Result<()> {
        match &mut self.layers {
            Layers::Csv(w) => w.write_record(self.columns.iter().map(|c| cell(&doc[c.as_str()])))?,
            Layers::CsvGz(w) => w.write_record(self.columns.iter().map(|c| cell(&doc[c.as_str()])))?,
            Layers::Ndjson(w) => {
                w.write_all(b"{")?;
                for (i, c) in self.columns.iter().enumerate() {
                    if i > 0 {
                        w.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *w, c)?;
                    w.write_all(b":")?;
                    serde_json::to_writer(&mut *w, &doc[c.as_str()])?;
                }
                w.write_all(b"}\n")?;
            }
        }
        Ok(())
    }

    /// The bytes ready for the file since the last call.
    pub fn take(&mut self) -> std::io::Result<Vec<u8>> {
        match &mut self.layers {
            Layers::Csv(w) => w.flush()?,
            Layers::CsvGz(w) => w.flush()?,
            Layers::Ndjson(_) => {}
        }
        let mut pending = self.out.0.lock().map_err(|_| std::io::Error::other("export buffer poisoned"))?;
        Ok(std::mem::take(&mut *pending))
    }

    /// The last bytes of the file (the gzip trailer, for one).
    pub fn finish(mut self) -> std::io::Result<Vec<u8>> {
        let mut last = self.take()?;
        if let Layers::CsvGz(w) = self.layers {
            let gz = w.into_inner().map_err(|e| std::io::Error::other(e.to_string()))?;
            gz.finish()?;
            last.extend(
                self.out.0.lock().map_err(|_| std::io::Error::other("export buffer poisoned"))?.drain(..),
            );
        }
        Ok(last)
    }
}

/// A value as a CSV cell: text as it is, numbers and flags as JSON writes them, an absent
/// value empty, objects (the switch's extra fields) as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Read;

    fn rows() -> Vec<Value> {
        vec![
            json!({"call_id": "a,1", "billsec": 30, "extra": {"x": "y"}, "answer_time": null}),
            json!({"call_id": "b \"q\"", "billsec": 0, "extra": {}, "answer_time": "2026-03-01T10:00:00Z"}),
        ]
    }

    fn encode(format: Format) -> Vec<u8> {
        let columns = ["call_id", "billsec", "answer_time", "extra"].map(String::from).to_vec();
        let mut e = Encoder::new(format, columns).expect("encoder");
        let mut bytes = Vec::new();
        for r in rows() {
            e.row(&r).expect("row");
            bytes.extend(e.take().expect("take"));
        }
        bytes.extend(e.finish().expect("finish"));
        bytes
    }

    #[test]
    fn csv_quotes_what_needs_it_and_leaves_absent_values_empty() {
        let text = String::from_utf8(encode(Format::Csv)).expect("utf-8");
        assert_eq!(
            text,
            "call_id,billsec,answer_time,extra\n\"a,1\",30,,\"{\"\"x\"\":\"\"y\"\"}\"\n\"b \"\"q\"\"\",0,2026-03-01T10:00:00Z,{}\n"
        );
    }

    #[test]
    fn gzip_holds_the_same_csv() {
        let mut plain = String::new();
        flate2::read::GzDecoder::new(encode(Format::CsvGz).as_slice())
            .read_to_string(&mut plain)
            .expect("gunzip");
        assert_eq!(plain.as_bytes(), encode(Format::Csv));
    }

    #[test]
    fn ndjson_keeps_the_columns_in_order_with_their_json_types() {
        let text = String::from_utf8(encode(Format::Ndjson)).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"call_id":"a,1","billsec":30,"answer_time":null,"extra":{"x":"y"}}"#);
        let second: Value = serde_json::from_str(lines[1]).expect("json");
        assert_eq!(second["billsec"], 0);
    }
}
