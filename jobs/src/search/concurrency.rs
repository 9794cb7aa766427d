//! Peak concurrent calls: the most calls in progress at once within a window, which is what
//! trunks and licences are sized by.
//!
//! A call is in progress from its start (inclusive) to its end (exclusive). The count at an
//! instant is the calls already in progress when the window opened, plus the starts, minus
//! the ends seen since. The engine returns starts and ends per time slice (two date
//! histograms over fields every document already has, in the same request as the other
//! statistics); the running sum is taken here. The count is sampled at the end of every
//! slice, the way switches report channel usage; slices are one second for windows up to
//! almost three hours and grow with the window so that at most [`MAX_SAMPLES`] are taken.

use super::filters::Filters;
use chrono::{DateTime, Duration, Utc};
use poem_openapi::Object;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Most samples (histogram slices) one window is cut into.
pub const MAX_SAMPLES: i64 = 10_000;
/// Slice lengths in seconds, finest first.
const SLICES: [i64; 18] =
    [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400];

/// The busiest moment of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct PeakConcurrency {
    /// Calls in progress at once.
    pub calls: u64,
    /// The first sampled instant with that many calls in progress (UTC).
    pub at: DateTime<Utc>,
    /// Seconds between samples: calls shorter than this may fall between two samples.
    pub resolution_seconds: i64,
}

/// The sampling step for a window: the finest slice that keeps the sample count bounded.
pub fn resolution(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    let span = u64::try_from((to - from).num_seconds()).unwrap_or(0).max(1);
    let samples = MAX_SAMPLES.unsigned_abs();
    let seconds = SLICES
        .iter()
        .map(|slice| slice.unsigned_abs())
        .find(|slice| span.div_ceil(*slice) <= samples)
        .unwrap_or_else(|| span.div_ceil(samples).div_ceil(86_400) * 86_400);
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

/// The search whose answer [`peak`] reads: calls overlapping [`from`, `to`) under the other
/// filters, with the starts and ends inside the window per slice.
pub fn search(filters: &Filters, from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    let others = Filters { from: None, to: None, ..filters.clone() }.to_query();
    let slice = format!("{}s", resolution(from, to));
    let histogram = |field: &str| json!({ "date_histogram": { "field": field, "fixed_interval": slice, "min_doc_count": 1 } });
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": { "bool": { "filter": [
            others,
            { "range": { "start_time": { "lt": to.to_rfc3339() } } },
            { "range": { "ends_at": { "gt": from.to_rfc3339() } } }
        ] } },
        "aggs": {
            "in_progress_at_open": { "filter": { "range": { "start_time": { "lt": from.to_rfc3339() } } } },
            "starts": {
                "filter": { "range": { "start_time": { "gte": from.to_rfc3339() } } },
                "aggs": { "slices": histogram("start_time") }
            },
            "ends": {
                "filter": { "range": { "ends_at": { "lt": to.to_rfc3339() } } },
                "aggs": { "slices": histogram("ends_at") }
            }
        }
    })
}

/// For a window open on either side: the first matching call's start and the last one's
/// end, read by [`bounds`].
pub fn bounds_search(filters: &Filters) -> Value {
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": filters.to_query(),
        "aggs": {
            "first_start": { "min": { "field": "start_time" } },
            "last_end": { "max": { "field": "ends_at" } }
        }
    })
}

/// The span of the matching calls: the first start, and the last end widened by a second
/// (a window excludes its end); `None` when no call matches.
pub fn bounds(response: &Value) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let millis = |name: &str| response["aggregations"][name]["value"].as_f64().map(|v| v as i64);
    let from = DateTime::from_timestamp_millis(millis("first_start")?)?;
    let to = DateTime::from_timestamp_millis(millis("last_end")?)? + Duration::seconds(1);
    (from < to).then_some((from, to))
}

/// Folds the answer to [`search`] into the peak; `None` when no call was in progress.
pub fn peak(response: &Value, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<PeakConcurrency> {
    let aggs = &response["aggregations"];
    let mut deltas: BTreeMap<i64, i64> = BTreeMap::new();
    for (name, sign) in [("starts", 1), ("ends", -1)] {
        for bucket in aggs[name]["slices"]["buckets"].as_array().into_iter().flatten() {
            if let (Some(key), Some(n)) = (bucket["key"].as_i64(), bucket["doc_count"].as_i64()) {
                *deltas.entry(key).or_default() += sign * n;
            }
        }
    }
    let step = Duration::seconds(resolution(from, to));
    let mut in_progress = aggs["in_progress_at_open"]["doc_count"].as_i64().unwrap_or(0);
    let mut best = (in_progress, from);
    for (key, delta) in deltas {
        in_progress += delta;
        let sampled = DateTime::from_timestamp_millis(key).map_or(to, |start| (start + step).min(to));
        if in_progress > best.0 {
            best = (in_progress, sampled);
        }
    }
    let calls = u64::try_from(best.0).ok().filter(|n| *n > 0)?;
    Some(PeakConcurrency { calls, at: best.1, resolution_seconds: step.num_seconds() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn the_resolution_keeps_the_samples_bounded() {
        let from = t("2026-03-01T00:00:00Z");
        assert_eq!(resolution(from, from + Duration::hours(2)), 1);
        assert_eq!(resolution(from, from + Duration::days(1)), 10);
        assert_eq!(resolution(from, from + Duration::weeks(1)), 120);
        assert_eq!(resolution(from, from + Duration::days(3650)), 43_200);
        assert_eq!(resolution(from, from + Duration::days(100_000)), 86_400 * 10);
        for days in [1, 7, 31, 365, 3650] {
            let step = resolution(from, from + Duration::days(days));
            assert!(days * 86_400 / step <= MAX_SAMPLES, "{days} days at {step}s");
        }
    }

    fn slices(buckets: &[(&str, i64)]) -> Value {
        let b: Vec<Value> =
            buckets.iter().map(|(k, n)| json!({ "key": t(k).timestamp_millis(), "doc_count": n })).collect();
        json!({ "slices": { "buckets": b } })
    }

    #[test]
    fn the_peak_is_the_highest_running_count() {
        let (from, to) = (t("2026-03-01T10:00:00Z"), t("2026-03-01T11:00:00Z"));
        let mut starts = slices(&[("2026-03-01T10:00:05Z", 3), ("2026-03-01T10:00:09Z", 2)]);
        starts["doc_count"] = json!(5);
        let response = json!({ "aggregations": {
            "in_progress_at_open": { "doc_count": 2 },
            "starts": starts,
            "ends": slices(&[("2026-03-01T10:00:05Z", 1), ("2026-03-01T10:00:07Z", 4), ("2026-03-01T10:00:09Z", 1)])
        } });
        // 2 at the open; +3-1 → 4 at :06; -4 → 0 at :08; +2-1 → 1 at :10.
        let p = peak(&response, from, to).unwrap();
        assert_eq!((p.calls, p.at, p.resolution_seconds), (4, t("2026-03-01T10:00:06Z"), 1));
    }

    #[test]
    fn calls_in_progress_when_the_window_opens_count_and_an_idle_window_has_no_peak() {
        let (from, to) = (t("2026-03-01T10:00:00Z"), t("2026-03-01T11:00:00Z"));
        let open = json!({ "aggregations": { "in_progress_at_open": { "doc_count": 7 },
            "starts": slices(&[]), "ends": slices(&[("2026-03-01T10:30:00Z", 7)]) } });
        let p = peak(&open, from, to).unwrap();
        assert_eq!((p.calls, p.at), (7, from));
        let idle = json!({ "aggregations": { "in_progress_at_open": { "doc_count": 0 },
            "starts": slices(&[]), "ends": slices(&[]) } });
        assert_eq!(peak(&idle, from, to), None);
    }
}
