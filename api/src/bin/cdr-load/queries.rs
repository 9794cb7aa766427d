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

pub async fn run(url: &str, client: &reqwest::Client, args: &QueryArgs) -> anyhow::Result<Value> {
    // A source and a destination prefix that exist, taken from the data itself.
    let first: Value = client.get(format!("{url}/search?limit=1")).send().await?.json().await?;
    let item = &first["items"][0];
    let source = item["source"].as_str().unwrap_or("pbx-1").to_string();
    let dest: String = item["dest_number"].as_str().unwrap_or("+44").chars().take(5).collect();
    let src = item["src_number"].as_str().unwrap_or("+1").to_string();
    let account = item["account_code"].as_str().unwrap_or("acct-1").to_string();
    let now = chrono::Utc::now();
    let week_ago = (now - chrono::Duration::days(7)).to_rfc3339();
    // Windows on whole minutes and hours, which the KPI rollups answer.
    let minute =
        chrono::DateTime::from_timestamp(now.timestamp() - now.timestamp().rem_euclid(60), 0).unwrap_or(now);
    let hour = chrono::DateTime::from_timestamp(now.timestamp() - now.timestamp().rem_euclid(3600), 0)
        .unwrap_or(now);
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

    // Each repetition shifts the window by a second, so no answer comes from a cache.
    let shifted = |i: usize, t: &str| -> String {
        let t: chrono::DateTime<chrono::Utc> = t.parse().unwrap_or_default();
        urlencode(&(t - chrono::Duration::seconds(i as i64)).to_rfc3339())
    };
    type Query<'a> = (&'a str, Box<dyn Fn(usize) -> String + 'a>);
    // A 30-day request on whole minutes (whole hours with `by_hour`) with `params`; its
    // `i`-th repetition lies `offset + i` steps back (a minute or an hour each, for the same
    // reason), so each request has windows of its own.
    let monthly = |offset: usize, by_hour: bool, params: String| -> Box<dyn Fn(usize) -> String> {
        Box::new(move |i| {
            let (unit, step) = if by_hour {
                (hour, chrono::Duration::hours(1))
            } else {
                (minute, chrono::Duration::minutes(1))
            };
            let to = unit - step * (i + offset) as i32;
            let from = urlencode(&(to - chrono::Duration::days(30)).to_rfc3339());
            format!("/stats?from={from}&to={}&{params}", urlencode(&to.to_rfc3339()))
        })
    };
    let queries: Vec<Query<'_>> = vec![
        (
            "search_selective",
            Box::new(|i| {
                format!(
                    "/search?src_number={}&source={source}&to={}&limit=50",
                    urlencode(&src),
                    shifted(i, &now)
                )
            }),
        ),
        (
            "search_prefix",
            Box::new(|i| {
                format!("/search?dest_number={}*&to={}&limit=50", urlencode(&dest), shifted(i, &now))
            }),
        ),
        ("search_deep_cursor", Box::new(|_| format!("/search?limit=100&cursor={cursor}"))),
        (
            "stats_week_hourly",
            Box::new(|i| {
                format!("/stats?from={}&to={}&interval=hour", shifted(i, &week_ago), shifted(i, &now))
            }),
        ),
        ("stats_month_daily_rollups", monthly(0, false, "interval=day".into())),
        (
            "stats_month_hourly_one_source_rollups",
            monthly(1000, false, format!("interval=hour&source={source}")),
        ),
        (
            "stats_month_daily_one_account_rollups",
            monthly(0, true, format!("interval=day&account_code={}", urlencode(&account))),
        ),
        (
            "stats_month_daily_one_source_with_peak_rollups",
            monthly(3000, false, format!("interval=day&source={source}&peak=true")),
        ),
        ("stats_month_daily_min_billsec_index", monthly(2000, false, "interval=day&min_billsec=1".into())),
        (
            "stats_week_hourly_with_peak",
            Box::new(|i| {
                // Windows of their own: the plain /stats runs must not have warmed its cache.
                format!(
                    "/stats?from={}&to={}&interval=hour&peak=true",
                    shifted(i + 10_000, &week_ago),
                    shifted(i + 10_000, &now)
                )
            }),
        ),
    ];
    let mut results = serde_json::Map::new();
    for (name, path_for) in queries {
        let first: Value = client.get(format!("{url}{}", path_for(0))).send().await?.json().await?;
        let matched = first["total"].as_u64().or(first["total_calls"].as_u64()).unwrap_or(0);
        let answered_by = first["answered_by"].clone();
        let mut samples = Vec::with_capacity(args.repeat);
        let mut failures = 0;
        for i in 0..args.repeat {
            let path = path_for(i);
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
                "matched": matched,
                "answered_by": answered_by,
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
