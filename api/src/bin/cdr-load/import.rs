//! Importing switch CSV files (a file or a directory) through `POST /cdrs`, the path every
//! other CDR takes: the same validation, the same jobs, the same idempotency.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The layout (`GET /mappings` lists them); detected by the server when absent.
    #[arg(long)]
    pub format: Option<String>,
    /// The switch the files came from (CSV rows name none).
    #[arg(long)]
    pub source: Option<String>,
    /// IANA time zone of the files' times (default: the layout's, else UTC).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Character set of text that is not UTF-8 (default Windows-1252).
    #[arg(long)]
    pub charset: Option<String>,
    /// Rows per request.
    #[arg(long, default_value_t = 5000)]
    pub chunk: usize,
    /// Wait for every job to finish and report what was stored.
    #[arg(long)]
    pub wait: bool,
    /// Files or directories of files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            out.extend(entries);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The byte offsets where each CSV record of a file starts (and the file's end): chunks are
/// cut there, so every byte is sent as the switch wrote it, quoted newlines included.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut starts = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let at = usize::try_from(reader.position().byte()).unwrap_or(bytes.len());
        match reader.read_byte_record(&mut record) {
            Ok(true) => starts.push(at),
            Ok(false) => break,
            // An unreadable record still goes to the server, which names its line.
            Err(_) => starts.push(at),
        }
    }
    starts.push(bytes.len());
    starts
}

/// One request's worth of a file.
struct Chunk {
    file: PathBuf,
    first_row: usize,
    rows: u64,
    body: Vec<u8>,
}

/// Cuts a file into chunks of at most `chunk` records; with `header`, the first record is
/// repeated at the top of every chunk after the first.
fn chunks(file: &Path, bytes: &[u8], chunk: usize, header: bool) -> Vec<Chunk> {
    let starts = record_starts(bytes);
    let records = starts.len().saturating_sub(1);
    let head: &[u8] = if header && records > 0 { &bytes[starts[0]..starts[1]] } else { &[] };
    let first = usize::from(header && records > 0);
    let mut out = Vec::new();
    let mut at = first;
    while at < records {
        let end = (at + chunk.max(1)).min(records);
        let mut body = head.to_vec();
        if !body.ends_with(b"\n") && !body.is_empty() {
            body.push(b'\n');
        }
        body.extend_from_slice(&bytes[starts[at]..starts[end]]);
        out.push(Chunk { file: file.to_path_buf(), first_row: at, rows: (end - at) as u64, body });
        at = end;
    }
    out
}

/// Whether files in a layout start with a header row, as the server describes the layout.
async fn layout_has_header(url: &str, client: &reqwest::Client, format: &str) -> anyhow::Result<bool> {
    if format == "generic" {
        return Ok(true);
    }
    let resp = client.get(format!("{url}/mappings/{format}")).send().await?;
    anyhow::ensure!(resp.status().is_success(), "format {format:?}: HTTP {}", resp.status());
    let mapping: Value = resp.json().await?;
    Ok(mapping["header"].as_bool().unwrap_or(false))
}

pub async fn run(url: &str, client: &reqwest::Client, args: &ImportArgs) -> anyhow::Result<Value> {
    let files = files(&args.paths)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    for (k, v) in [("source", &args.source), ("timezone", &args.timezone), ("charset", &args.charset)] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} files {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut accepted, mut rejected, mut jobs, mut problems) = (0_u64, 0_u64, Vec::new(), Vec::new());
    let mut rows_sent = 0_u64;
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        // The layout: named, or told by the server from the file's first rows.
        let probe_rows = jobs::cdr::formats::SAMPLE_ROWS;
        let mut format = args.format.clone();
        let probe =
            if format.is_none() { chunks(file, &bytes, probe_rows, false).into_iter().next() } else { None };
        let mut sent_rows = 0_usize;
        if let Some(chunk) = probe {
            sent_rows = chunk.first_row + chunk.rows as usize;
            let mut q = query.clone();
            if let Some(f) = &format {
                q.push(("format", f.clone()));
            }
            let answer = send(url, client, &q, chunk, &mut problems).await?;
            rows_sent += answer.rows;
            accepted += answer.accepted;
            rejected += answer.rejected;
            jobs.extend(answer.job);
            if format.is_none() {
                format = answer.format;
            }
        }
        if let Some(f) = &format {
            let header = layout_has_header(url, client, f).await?;
            for chunk in chunks(file, &bytes, args.chunk, header) {
                if chunk.first_row + (chunk.rows as usize) <= sent_rows {
                    continue;
                }
                let skip = sent_rows.saturating_sub(chunk.first_row);
                let chunk = if skip > 0 { trim_front(chunk, skip, header) } else { chunk };
                let q: Vec<(&str, String)> = query.iter().cloned().chain([("format", f.clone())]).collect();
                let answer = send(url, client, &q, chunk, &mut problems).await?;
                rows_sent += answer.rows;
                accepted += answer.accepted;
                rejected += answer.rejected;
                jobs.extend(answer.job);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (mut inserted, mut duplicates, mut failed) = (0, 0, 0);
    if args.wait {
        for id in &jobs {
            loop {
                let job: Value = client.get(format!("{url}/jobs/{id}")).send().await?.json().await?;
                match job["status"].as_str() {
                    Some("succeeded") => {
                        inserted += job["counts"]["inserted"].as_u64().unwrap_or(0);
                        duplicates += job["counts"]["duplicates"].as_u64().unwrap_or(0);
                        break;
                    }
                    Some("failed") => {
                        failed += 1;
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }
    for p in problems.iter().take(20) {
        eprintln!("{p}");
    }
    Ok(json!({
        "rows": rows_sent,
        "files": files.len(), "accepted": accepted, "rejected": rejected, "jobs": jobs.len(),
        "inserted": args.wait.then_some(inserted), "duplicates": args.wait.then_some(duplicates),
        "failed_jobs": args.wait.then_some(failed), "problems": problems.len(),
    }))
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// A chunk without its first `skip` records (already sent while the layout was told).
fn trim_front(chunk: Chunk, skip: usize, header: bool) -> Chunk {
    let starts = record_starts(&chunk.body);
    let keep_header = usize::from(header);
    let cut = (keep_header + skip).min(starts.len().saturating_sub(1));
    let mut body = if header { chunk.body[starts[0]..starts[1]].to_vec() } else { Vec::new() };
    body.extend_from_slice(&chunk.body[starts[cut]..]);
    Chunk {
        first_row: chunk.first_row + skip,
        rows: chunk.rows.saturating_sub(skip as u64),
        body,
        file: chunk.file,
    }
}

/// What one request did.
struct Sent {
    rows: u64,
    accepted: u64,
    rejected: u64,
    job: Option<String>,
    format: Option<String>,
}

async fn send(
    url: &str,
    client: &reqwest::Client,
    query: &[(&str, String)],
    chunk: Chunk,
    problems: &mut Vec<String>,
) -> anyhow::Result<Sent> {
    let resp = client
        .post(format!("{url}/cdrs"))
        .query(query)
        .header("content-type", "text/csv")
        .body(chunk.body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    let refused = answer["rejected"].as_array().cloned().unwrap_or_default();
    for r in &refused {
        problems.push(format!(
            "{} (rows from {}): {}: {}",
            display(&chunk.file),
            chunk.first_row + 1,
            r["field"],
            r["reason"]
        ));
    }
    let mut sent =
        Sent { rows: chunk.rows, accepted: 0, rejected: refused.len() as u64, job: None, format: None };
    match status {
        202 => {
            sent.accepted = answer["accepted"].as_u64().unwrap_or(0);
            sent.job = answer["job_id"].as_str().map(str::to_string);
            sent.format = answer["format"].as_str().map(str::to_string);
        }
        422 => sent.format = answer["details"]["format"].as_str().map(str::to_string),
        _ => problems.push(format!("{}: HTTP {status}: {}", display(&chunk.file), answer["message"])),
    }
    Ok(sent)
}
