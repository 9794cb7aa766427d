//! Query latency: each named request repeated, percentiles reported.

use crate::stats::{ms, percentile};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// Times each query is sent.
    #[arg(long, default_value_t = 200)]
    pub repeat: usize,
}

pub async fn run(url: &str, args: &QueryArgs) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    // A source and a destination prefix that exist, taken from the data itself.
    let first: Value = client.get(format!("{url}/search?limit=1")).send().await?.json().await?;
    let item = &first["items"][0];
    let source = item["source"].as_str().unwrap_or("pbx-1").to_string();
    let dest: String = item["dest_number"].as_str().unwrap_or("+44").chars().take(5).collect();
    let src = item["src_number"].as_str().unwrap_or("+1").to_string();
    let now = chrono::Utc::now();
    let week_ago = (now - chrono::Duration::days(7)).to_rfc3339();
    let now = now.to_rfc3339();

    // A cursor 200 pages deep, for the deep-page query.
    let mut cursor = String::new();
    for _ in 0..200 {
        let page: Value = client
            .get(format!("{url}/search"))
            .query(
                &[("limit", "100"), ("cursor", cursor.as_str())]
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .collect::<Vec<_>>(),
            )
            .send()
            .await?
            .json()
            .await?;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }

    let queries: Vec<(&str, String)> = vec![
        ("search_selective", format!("/search?src_number={}&source={source}&limit=50", urlencode(&src))),
        ("search_prefix", format!("/search?dest_number={}*&limit=50", urlencode(&dest))),
        ("search_deep_cursor", format!("/search?limit=100&cursor={cursor}")),
        (
            "stats_week_hourly",
            format!("/stats?from={}&to={}&interval=hour", urlencode(&week_ago), urlencode(&now)),
        ),
    ];
    let mut results = serde_json::Map::new();
    for (name, path) in queries {
        let mut samples = Vec::with_capacity(args.repeat);
        let mut failures = 0;
        for _ in 0..args.repeat {
            let t = Instant::now();
            let ok = client
                .get(format!("{url}{path}"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            samples.push(t.elapsed());
            failures += usize::from(!ok);
        }
        samples.sort();
        results.insert(
            name.to_string(),
            json!({
                "p50_ms": ms(percentile(&samples, 50.0)),
                "p99_ms": ms(percentile(&samples, 99.0)),
                "failures": failures,
                "mean_ms": ms(Some(samples.iter().sum::<Duration>() / samples.len().max(1) as u32)),
            }),
        );
    }
    Ok(Value::Object(results))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
