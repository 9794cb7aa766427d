//! How long reading a large switch file takes: an Asterisk Master.csv of a given size,
//! generated in memory, read row by row (layout detection, decoding, line counting) and
//! validated record by record, as `POST /cdrs` does.

use jobs::cdr::formats::{CsvOptions, read_csv};
use serde_json::{Value, json};
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct ParseArgs {
    /// Size of the generated file in MiB.
    #[arg(long, default_value_t = 16)]
    pub mib: usize,
    /// Times to read it; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
}

fn master_csv(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 512);
    let mut n = 0_u64;
    while out.len() < bytes {
        let row = format!(
            "\"acme\",\"{src}\",\"{dst}\",\"from-internal\",\"\"\"Caller {n}\"\" <{src}>\",\"SIP/{src}-{n:08x}\",\"SIP/trunk-{n:08x}\",\"Dial\",\"SIP/trunk/{dst},30\",\"2026-03-01 10:{m:02}:{s:02}\",\"2026-03-01 10:{m:02}:{s2:02}\",\"2026-03-01 11:{m:02}:{s:02}\",3600,{bill},\"ANSWERED\",\"DOCUMENTATION\",\"1772359200.{n}\",\"\"\r\n",
            src = 1000 + n % 9000,
            dst = 4420_7000_0000 + n,
            m = n % 60,
            s = (n / 60) % 50,
            s2 = (n / 60) % 50 + 5,
            bill = 3595,
        );
        out.extend_from_slice(row.as_bytes());
        n += 1;
    }
    out
}

pub fn run(args: &ParseArgs) -> anyhow::Result<Value> {
    let body = master_csv(args.mib * 1024 * 1024);
    let mut read_ms = Vec::new();
    let mut validate_ms = Vec::new();
    let mut rows = 0;
    for _ in 0..args.repeat.max(1) {
        let t0 = Instant::now();
        let file = read_csv(&body, &CsvOptions::default()).map_err(anyhow::Error::msg)?;
        let t1 = Instant::now();
        let mut valid = 0;
        for (index, (_, record)) in file.records.iter().enumerate() {
            if let Ok(value) = record
                && jobs::cdr::parse_record(index, value, "bench").is_ok()
            {
                valid += 1;
            }
        }
        anyhow::ensure!(valid == file.records.len(), "{} of {} rows valid", valid, file.records.len());
        rows = valid;
        read_ms.push(t1.duration_since(t0).as_secs_f64() * 1000.0);
        validate_ms.push(t1.elapsed().as_secs_f64() * 1000.0);
    }
    read_ms.sort_by(f64::total_cmp);
    validate_ms.sort_by(f64::total_cmp);
    let median = |v: &[f64]| (v[v.len() / 2] * 10.0).round() / 10.0;
    Ok(json!({
        "bytes": body.len(),
        "rows": rows,
        "read_ms": median(&read_ms),
        "validate_ms": median(&validate_ms),
        "total_ms": median(&read_ms) + median(&validate_ms),
    }))
}
