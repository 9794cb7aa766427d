//! Importing switch CSV files (a file or a directory) through `POST /cdrs`, the path every
//! other CDR takes: the same validation, the same jobs, the same idempotency.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// asterisk, asterisk-extended, freeswitch or generic; detected when absent.
    #[arg(long)]
    pub format: Option<String>,
    /// The switch the files came from (CSV rows name none).
    #[arg(long)]
    pub source: Option<String>,
    /// IANA time zone of the files' times (default UTC).
    #[arg(long)]
    pub timezone: Option<String>,
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

/// Splits a file into bodies of at most `chunk` rows; a header row is repeated in each.
fn chunks(text: &str, chunk: usize, has_header: bool) -> anyhow::Result<Vec<(usize, String)>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    let header = if has_header && !rows.is_empty() { Some(rows.remove(0)) } else { None };
    let mut out = Vec::new();
    for (i, part) in rows.chunks(chunk.max(1)).enumerate() {
        let mut w = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
        if let Some(h) = &header {
            w.write_record(h)?;
        }
        for r in part {
            w.write_record(r)?;
        }
        out.push((i * chunk.max(1), String::from_utf8(w.into_inner()?)?));
    }
    Ok(out)
}

pub async fn run(url: &str, client: &reqwest::Client, args: &ImportArgs) -> anyhow::Result<Value> {
    let files = files(&args.paths)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    for (k, v) in [("format", &args.format), ("source", &args.source), ("timezone", &args.timezone)] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let mut bodies = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let has_header = args.format.as_deref() == Some("generic")
            || (args.format.is_none()
                && text.lines().next().is_some_and(|l| l.contains("src_number") || l.contains("call_id")));
        for (first_row, body) in chunks(&text, args.chunk, has_header)? {
            bodies.push((file.clone(), first_row, body));
        }
    }
    let total_rows: u64 = bodies.iter().map(|(_, _, b)| b.lines().count() as u64).sum();
    let bar = ProgressBar::new(total_rows);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} rows {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut accepted, mut rejected, mut jobs, mut problems) = (0_u64, 0_u64, Vec::new(), Vec::new());
    for (file, first_row, body) in bodies {
        let rows = body.lines().count() as u64;
        let resp = client
            .post(format!("{url}/cdrs"))
            .query(&query)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        let refused = answer["rejected"].as_array().cloned().unwrap_or_default();
        for r in &refused {
            problems.push(format!(
                "{} (rows from {}): {}: {}",
                display(&file),
                first_row + 1,
                r["field"],
                r["reason"]
            ));
        }
        rejected += refused.len() as u64;
        match status {
            202 => {
                accepted += answer["accepted"].as_u64().unwrap_or(0);
                if let Some(id) = answer["job_id"].as_str() {
                    jobs.push(id.to_string());
                }
            }
            422 => {}
            _ => problems.push(format!("{}: HTTP {status}: {}", display(&file), answer["message"])),
        }
        bar.inc(rows);
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
        "files": files.len(), "accepted": accepted, "rejected": rejected, "jobs": jobs.len(),
        "inserted": args.wait.then_some(inserted), "duplicates": args.wait.then_some(duplicates),
        "failed_jobs": args.wait.then_some(failed), "problems": problems.len(),
    }))
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
