//! Posting generated batches at a target rate, measuring request latency and, for a sample
//! of records, the time from the 202 to the record being returned by `/search`. Optionally
//! writes which CDRs were accepted and which refused, for checks that compare sets of call
//! ids rather than counts (`scripts/soak`).

use crate::generator::Generator;
use crate::stats::{ms, percentile};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Debug, Clone, clap::Args)]
pub struct PostArgs {
    /// Offered load in CDRs per second; 0 for as fast as the API takes them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// CDRs to send (ignored with --duration).
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Seconds to keep sending, instead of --count.
    #[arg(long)]
    pub duration: Option<u64>,
    #[arg(long, default_value_t = 1000)]
    pub batch_size: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Distinct switches the CDRs come from.
    #[arg(long, default_value_t = 5)]
    pub sources: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Measure freshness on one record of every N batches (0: never).
    #[arg(long, default_value_t = 0)]
    pub freshness_every: u64,
    /// Calls end within this many hours before now.
    #[arg(long, default_value_t = 24 * 7)]
    pub spread_hours: i64,
    /// Calls end in the order they are sent, evenly over the spread (as a switch writes
    /// them), instead of at random within it.
    #[arg(long)]
    pub in_order: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Send a batch answered 429 (the queue is full) again after its `Retry-After`, so the
    /// load goes at the pace the pipeline takes instead of losing batches.
    #[arg(long)]
    pub retry_throttled: bool,
    /// Write `source<TAB>call_id` of every CDR in a batch answered 202 to this file, a line
    /// each, as the answers come.
    #[arg(long, value_name = "PATH")]
    pub accepted_ids: Option<PathBuf>,
    /// Write `source<TAB>call_id<TAB>status` of every CDR in a batch not answered 202 to this
    /// file; status is the HTTP status, or `error` when no answer came.
    #[arg(long, value_name = "PATH")]
    pub refused_ids: Option<PathBuf>,
}

/// A file of `(source, call_id)` lines, shared by the posting tasks.
struct IdFile {
    path: PathBuf,
    out: std::sync::Mutex<std::io::BufWriter<std::fs::File>>,
}

impl IdFile {
    fn create(path: Option<&Path>) -> anyhow::Result<Option<Arc<IdFile>>> {
        let Some(path) = path else { return Ok(None) };
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        let out = std::sync::Mutex::new(std::io::BufWriter::with_capacity(1 << 16, file));
        Ok(Some(Arc::new(IdFile { path: path.to_path_buf(), out })))
    }

    /// One line per CDR, with `status` as a third column when given.
    fn write(&self, ids: &[(String, String)], status: Option<&str>) -> anyhow::Result<()> {
        let mut out =
            self.out.lock().map_err(|_| anyhow::anyhow!("{}: a writer panicked", self.path.display()))?;
        for (source, call_id) in ids {
            let written = match status {
                Some(status) => writeln!(out, "{source}\t{call_id}\t{status}"),
                None => writeln!(out, "{source}\t{call_id}"),
            };
            written.map_err(|e| anyhow::anyhow!("writing {}: {e}", self.path.display()))?;
        }
        Ok(())
    }

    fn finish(&self) -> anyhow::Result<()> {
        let mut out =
            self.out.lock().map_err(|_| anyhow::anyhow!("{}: a writer panicked", self.path.display()))?;
        out.flush().map_err(|e| anyhow::anyhow!("writing {}: {e}", self.path.display()))
    }
}

#[derive(Default)]
struct Tally {
    offered: u64,
    accepted: u64,
    refused: u64,
    errors: u64,
    latencies: Vec<Duration>,
    freshness: Vec<Duration>,
    statuses: std::collections::BTreeMap<u16, u64>,
}

pub async fn run(url: &str, client: &reqwest::Client, args: &PostArgs) -> anyhow::Result<Value> {
    let run_id = format!("load{}-{}", args.seed, Utc::now().timestamp_millis());
    let mut generator =
        Generator::new(args.seed, &run_id, args.sources, chrono::Duration::hours(args.spread_hours));
    if args.in_order {
        generator = generator.in_order(args.count);
    }
    let generator = Arc::new(Mutex::new(generator));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let accepted_ids = IdFile::create(args.accepted_ids.as_deref())?;
    let refused_ids = IdFile::create(args.refused_ids.as_deref())?;
    let total_batches = match args.duration {
        Some(_) => u64::MAX,
        None => args.count.div_ceil(args.batch_size.max(1)),
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(if args.duration.is_some() { 0 } else { args.count });
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} CDRs {per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let started = Instant::now();
    let deadline = args.duration.map(|s| started + Duration::from_secs(s));
    let next_batch = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let probes: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, generator, tally, bar, next_batch, probes) = (
            client.clone(),
            generator.clone(),
            tally.clone(),
            bar.clone(),
            next_batch.clone(),
            probes.clone(),
        );
        let (accepted_ids, refused_ids) = (accepted_ids.clone(), refused_ids.clone());
        let (url, args) = (url.to_string(), args.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next_batch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if b >= total_batches || deadline.is_some_and(|d| Instant::now() >= d) {
                    return anyhow::Ok(());
                }
                let size = match args.duration {
                    Some(_) => args.batch_size,
                    None => args.batch_size.min(args.count - b * args.batch_size),
                };
                // Keep to the offered rate: batch b is due at b × size / rate seconds.
                if args.rate > 0 {
                    let due =
                        started + Duration::from_secs_f64((b * args.batch_size) as f64 / args.rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let (records, probe) = {
                    let mut g = generator.lock().await;
                    let now = Utc::now();
                    let records: Vec<(String, Value)> = (0..size).map(|_| g.next_cdr(now)).collect();
                    let probe = records.last().map(|(id, _)| id.clone());
                    (records.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), probe)
                };
                let ids: Vec<(String, String)> = if accepted_ids.is_some() || refused_ids.is_some() {
                    records
                        .iter()
                        .map(|r| {
                            let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                            (field("source"), field("call_id"))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let body = serde_json::to_vec(&records).unwrap_or_default();
                let mut sent = Instant::now();
                let mut resp = client
                    .post(format!("{url}/cdrs"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                while args.retry_throttled
                    && let Ok(r) = &resp
                    && r.status().as_u16() == 429
                {
                    let wait = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(wait.clamp(1, 10))).await;
                    sent = Instant::now();
                    resp = client
                        .post(format!("{url}/cdrs"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                }
                let latency = sent.elapsed();
                match resp.as_ref().map(|r| r.status().as_u16()) {
                    Ok(202) => {
                        if let Some(file) = &accepted_ids {
                            file.write(&ids, None)?;
                        }
                    }
                    status => {
                        if let Some(file) = &refused_ids {
                            let status = status.map_or_else(|_| "error".to_string(), |s| s.to_string());
                            file.write(&ids, Some(&status))?;
                        }
                    }
                }
                let mut t = tally.lock().await;
                t.offered += size;
                t.latencies.push(latency);
                match resp {
                    Ok(r) if r.status().as_u16() == 202 => {
                        *t.statuses.entry(202).or_default() += 1;
                        t.accepted += size;
                        drop(t);
                        // Probed beside the load, so offering keeps to its rate.
                        if args.freshness_every > 0
                            && b % args.freshness_every == 0
                            && let Some(call_id) = probe
                        {
                            let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
                            probes.lock().await.push(tokio::spawn(async move {
                                if let Some(f) =
                                    wait_searchable(&client, &url, &call_id, sent + latency).await
                                {
                                    tally.lock().await.freshness.push(f);
                                }
                            }));
                        }
                    }
                    Ok(r) => {
                        *t.statuses.entry(r.status().as_u16()).or_default() += 1;
                        t.refused += size;
                    }
                    Err(_) => {
                        t.errors += 1;
                        t.refused += size;
                    }
                }
                bar.inc(size);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    for file in [&accepted_ids, &refused_ids].into_iter().flatten() {
        file.finish()?;
    }
    for probe in probes.lock().await.drain(..) {
        probe.await?;
    }
    bar.finish_and_clear();
    let mut t = tally.lock().await;
    t.latencies.sort();
    t.freshness.sort();
    Ok(json!({
        "offered": t.offered,
        "accepted": t.accepted,
        "refused": t.refused,
        "transport_errors": t.errors,
        "statuses": t.statuses,
        "seconds": elapsed.as_secs_f64(),
        "cdrs_per_second": t.accepted as f64 / elapsed.as_secs_f64().max(1e-9),
        "request_ms_p50": ms(percentile(&t.latencies, 50.0)),
        "request_ms_p99": ms(percentile(&t.latencies, 99.0)),
        "freshness_samples": t.freshness.len(),
        "freshness_ms_p50": ms(percentile(&t.freshness, 50.0)),
        "freshness_ms_p99": ms(percentile(&t.freshness, 99.0)),
        "run_id": run_id,
    }))
}

/// Polls `/search` for one call id until it is returned; the time since `accepted_at`.
async fn wait_searchable(
    client: &reqwest::Client,
    url: &str,
    call_id: &str,
    accepted_at: Instant,
) -> Option<Duration> {
    let give_up = accepted_at + Duration::from_secs(120);
    while Instant::now() < give_up {
        let resp =
            client.get(format!("{url}/search")).query(&[("call_id", call_id), ("limit", "1")]).send().await;
        if let Ok(r) = resp
            && let Ok(page) = r.json::<Value>().await
            && page["total"].as_u64() == Some(1)
        {
            return Some(accepted_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
