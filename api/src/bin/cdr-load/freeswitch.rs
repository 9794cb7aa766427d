//! Posting one CDR per request, as FreeSWITCH's mod_json_cdr does at the end of every call,
//! from several concurrent clients; measures answers per second and request latency. Every
//! 202 means the CDR is durably queued, so answered/s is durable CDRs/s.

use crate::stats::{ms, percentile};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Debug, Clone, clap::Args)]
pub struct FreeswitchArgs {
    /// CDRs to post, one per request.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Clients posting at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// A real mod_json_cdr body to post (its uuid replaced per request); a minimal document
    /// of the module's shape when absent.
    #[arg(long)]
    pub template: Option<std::path::PathBuf>,
    /// `source` of the posted CDRs.
    #[arg(long, default_value = "fs-load")]
    pub source: String,
}

pub async fn run(url: &str, client: &reqwest::Client, args: &FreeswitchArgs) -> anyhow::Result<Value> {
    let template: Value = match &args.template {
        Some(path) => serde_json::from_slice(&std::fs::read(path)?)?,
        None => jobs::cdr::formats::freeswitch_json::example("x", "1001", "1002", 1_700_000_000_000_000, 30),
    };
    let run_id = chrono::Utc::now().timestamp_millis();
    let next = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(args.count as usize)));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let endpoint = format!("{url}/cdrs/freeswitch?source={}", args.source);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, endpoint, template) = (client.clone(), endpoint.clone(), template.clone());
        let (next, latencies, statuses, count) =
            (next.clone(), latencies.clone(), statuses.clone(), args.count);
        tasks.push(tokio::spawn(async move {
            let mut doc = template;
            let mut mine = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let uuid = format!("fsload-{run_id}-{n}");
                doc["variables"]["uuid"] = json!(uuid);
                let body = doc.to_string();
                let t0 = Instant::now();
                let status = match client
                    .post(format!("{endpoint}&uuid={uuid}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(resp) => resp.status().as_u16(),
                    Err(_) => 0,
                };
                mine.push(t0.elapsed());
                *statuses.lock().await.entry(status).or_default() += 1;
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed();
    let mut latencies: Vec<Duration> = std::mem::take(&mut *latencies.lock().await);
    latencies.sort_unstable();
    let statuses = statuses.lock().await.clone();
    let accepted = statuses.get(&202).copied().unwrap_or(0);
    Ok(json!({
        "posted": args.count,
        "accepted": accepted,
        "statuses": statuses,
        "seconds": elapsed.as_secs_f64(),
        "accepted_per_second": (accepted as f64 / elapsed.as_secs_f64()).round(),
        "request_ms_p50": ms(percentile(&latencies, 50.0)),
        "request_ms_p99": ms(percentile(&latencies, 99.0)),
        "body_bytes": template.to_string().len(),
    }))
}
