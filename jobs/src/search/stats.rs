//! `/stats`: telecom KPIs over a filtered window, in one Elasticsearch request.
//!
//! Definitions, as the industry uses them:
//! - ASR (answer-seizure ratio) = answered / attempts;
//! - ACD (average call duration) = Σ billsec of answered calls / answered calls;
//! - NER (network effectiveness ratio) = (answered + busy + no answer + rejected by the
//!   callee) / attempts, i.e. the calls the network delivered to the callee's decision;
//! - total minutes = Σ billsec / 60.

use super::concurrency::{self, PeakConcurrency};
use super::filters::{Filters, ParamError};
use super::{SearchError, SearchIndex};
use crate::cdr::Disposition;
use chrono::{DateTime, Datelike, Duration, Utc};
use elasticsearch::http::Method;
use poem_openapi::Object;
use poem_openapi::types::MaybeUndefined;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Most histogram buckets one request may ask for.
pub const MAX_BUCKETS: i64 = 10_000;
/// Per-number rankings are asked for (`top=N`): they are computed from the CDRs themselves,
/// so a request without them can be answered from the rollups.
pub const DEFAULT_TOP: usize = 0;
pub const MAX_TOP: usize = 100;
/// Q.850 cause for a call the callee actively refused: an effective attempt whatever its
/// disposition (NER counts it), here and in the rollups.
pub const REJECTED_BY_CALLEE: &str = "CALL_REJECTED";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn parse(value: &str) -> Result<Interval, ParamError> {
        match value {
            "minute" => Ok(Interval::Minute),
            "hour" => Ok(Interval::Hour),
            "day" => Ok(Interval::Day),
            "week" => Ok(Interval::Week),
            "month" => Ok(Interval::Month),
            _ => Err(ParamError::new(
                "interval",
                format!("unknown interval {value:?}; use minute, hour, day, week or month"),
            )),
        }
    }

    /// The name clients use, also PostgreSQL's `date_trunc` unit and the engine's calendar interval.
    pub fn name(self) -> &'static str {
        match self {
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    fn approx(self) -> Duration {
        match self {
            Interval::Minute => Duration::minutes(1),
            Interval::Hour => Duration::hours(1),
            Interval::Day => Duration::days(1),
            Interval::Week => Duration::weeks(1),
            Interval::Month => Duration::days(28),
        }
    }

    /// The start of the histogram bucket holding `t` (UTC; weeks start on Monday, as the
    /// engine's calendar weeks do).
    pub fn floor(self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let day = t.date_naive();
        let start = match self {
            Interval::Minute => {
                return DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(60), 0);
            }
            Interval::Hour => {
                return DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(3600), 0);
            }
            Interval::Day => day,
            Interval::Week => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
            Interval::Month => day.with_day(1)?,
        };
        Some(start.and_hms_opt(0, 0, 0)?.and_utc())
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Interval::Month => start.checked_add_months(chrono::Months::new(1)),
            other => start.checked_add_signed(other.approx()),
        }
    }

    /// A bucket size that gives a readable histogram for a window.
    pub fn for_window(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Interval {
        let Some(span) = from.zip(to).map(|(f, t)| t - f) else {
            return Interval::Day;
        };
        if span <= Duration::hours(3) {
            Interval::Minute
        } else if span <= Duration::days(3) {
            Interval::Hour
        } else if span <= Duration::days(92) {
            Interval::Day
        } else if span <= Duration::days(730) {
            Interval::Week
        } else {
            Interval::Month
        }
    }
}

#[derive(Debug, Clone)]
pub struct StatsRequest {
    pub filters: Filters,
    pub interval: Interval,
    pub top: usize,
    /// Whether to measure peak concurrency: two more passes over the window's calls, so
    /// asked for rather than always paid.
    pub peak: bool,
    /// Dimensions to break the window down by (`breakdown=`), of [`BREAKDOWNS`].
    pub breakdowns: Vec<String>,
}

impl StatsRequest {
    /// Reads `breakdown=` (comma-separated or repeated values of [`BREAKDOWNS`]).
    pub fn parse_breakdowns<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<String>, ParamError> {
        let mut out: Vec<String> = Vec::new();
        for part in values.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
            if !BREAKDOWNS.contains(&part) {
                return Err(ParamError::new(
                    "breakdown",
                    format!("unknown dimension {part:?}; known: {}", BREAKDOWNS.join(", ")),
                ));
            }
            if !out.iter().any(|o| o == part) {
                out.push(part.to_string());
            }
        }
        Ok(out)
    }

    /// Refuses a histogram too fine for its window before asking the engine.
    pub fn new(filters: Filters, interval: Option<Interval>, top: usize) -> Result<Self, ParamError> {
        let interval = interval.unwrap_or_else(|| Interval::for_window(filters.from, filters.to));
        if let (Some(from), Some(to)) = (filters.from, filters.to) {
            let buckets = (to - from).num_seconds() / interval.approx().num_seconds().max(1);
            if buckets > MAX_BUCKETS {
                return Err(ParamError::new(
                    "interval",
                    format!(
                        "{} gives {buckets} buckets for this window; at most {MAX_BUCKETS}",
                        interval.name()
                    ),
                ));
            }
        }
        if top > MAX_TOP {
            return Err(ParamError::new("top", format!("must be between 0 and {MAX_TOP}")));
        }
        Ok(StatsRequest { filters, interval, top, peak: false, breakdowns: Vec::new() })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct HistogramBucket {
    /// Start of the bucket (UTC).
    pub start: DateTime<Utc>,
    pub calls: u64,
    pub answered: u64,
    /// Answer-seizure ratio of the bucket; null without attempts.
    #[oai(nullable)]
    pub asr: Option<f64>,
    /// Average billable seconds of the bucket's answered calls; null without answered calls.
    #[oai(nullable)]
    pub acd: Option<f64>,
    pub total_billsec: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct NumberStats {
    pub number: String,
    pub calls: u64,
    pub answered: u64,
    pub total_billsec: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct Stats {
    /// Call attempts in the window.
    pub total_calls: u64,
    pub answered_calls: u64,
    /// Attempts that were not answered (busy, no answer, failed, congestion).
    pub failed_calls: u64,
    /// Answer-seizure ratio in [0, 1]; null without attempts.
    #[oai(nullable)]
    pub asr: Option<f64>,
    /// Average billable seconds of answered calls; null without answered calls.
    #[oai(nullable)]
    pub acd: Option<f64>,
    /// Network effectiveness ratio in [0, 1]; null without attempts.
    #[oai(nullable)]
    pub ner: Option<f64>,
    pub total_billsec: u64,
    pub total_minutes: f64,
    /// Mean seconds from start to end over all attempts; null without attempts.
    #[oai(nullable)]
    pub avg_duration: Option<f64>,
    /// The histogram's bucket size.
    pub interval: String,
    pub histogram: Vec<HistogramBucket>,
    /// Most-called numbers, with `top=N` (empty otherwise).
    pub top_destinations: Vec<NumberStats>,
    /// Most-calling numbers, with `top=N` (empty otherwise).
    pub top_sources: Vec<NumberStats>,
    /// Attempts per disposition; every disposition is listed, zero or not.
    pub by_disposition: BTreeMap<String, u64>,
    /// What the customers were charged (sell side), a decimal string in `currency`.
    pub revenue: String,
    /// What the carriers charged (buy side), a decimal string in `currency`.
    pub cost: String,
    /// `revenue - cost`.
    pub margin: String,
    /// Calls priced on each side (`sell`, `buy`).
    pub rated_calls: RatedCalls,
    /// Calls not priced on each side: no deck applied, no prefix matched, or no E.164
    /// destination. Never counted as zero cost silently.
    pub unrated_calls: RatedCalls,
    /// With `breakdown=dest_country`: calls and money per destination country (`""`: no
    /// country), most calls first; the first `top` with `top=N`, all otherwise.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_dest_country: Option<Vec<Breakdown>>,
    /// With `breakdown=dest_type`: the same per destination number type.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_dest_type: Option<Vec<Breakdown>>,
    /// With `peak=true`: the most calls in progress at once in the window (calls that
    /// started before it and were still up count too); null when no call was in progress.
    #[oai(nullable, skip_serializing_if = "MaybeUndefined::is_undefined")]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub peak_concurrent_calls: MaybeUndefined<PeakConcurrency>,
    /// Where the figures came from: `rollups` (pre-aggregated sums, constant cost) or
    /// `index` (the CDRs themselves). Both give the same figures for the same request.
    pub answered_by: AnsweredBy,
    /// With `answered_by: index`, why the rollups could not answer.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// A count per side of the price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Object)]
pub struct RatedCalls {
    pub sell: u64,
    pub buy: u64,
}

/// One value of a breakdown dimension and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct Breakdown {
    pub key: String,
    pub calls: u64,
    pub answered: u64,
    pub total_billsec: u64,
    pub revenue: String,
    pub cost: String,
    pub margin: String,
}

/// Which store answered a `/stats` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, poem_openapi::Enum)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum AnsweredBy {
    Rollups,
    Index,
}

/// The sums every non-ranking `/stats` figure is computed from, whichever store gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub calls: u64,
    pub answered: u64,
    /// Answered, busy, no answer or rejected by the callee (NER's numerator).
    pub effective: u64,
    pub billsec: u64,
    pub answered_billsec: u64,
    /// Mean duration over all attempts; `None` without attempts.
    pub avg_duration: Option<f64>,
    pub sell_rated: u64,
    pub buy_rated: u64,
    pub sell_cost: Decimal,
    pub buy_cost: Decimal,
}

/// A sum of costs in millionths, as the index keeps them, back to a decimal.
fn from_micros(v: &Value) -> Decimal {
    v["value"].as_f64().map(|x| Decimal::new(x.round() as i64, 6)).unwrap_or_default()
}

/// A cost as the API writes it: six decimal places.
pub fn money(d: Decimal) -> String {
    format!("{:.6}", d)
}

impl HistogramBucket {
    pub fn new(start: DateTime<Utc>, calls: u64, answered: u64, answered_billsec: u64, billsec: u64) -> Self {
        HistogramBucket {
            start,
            calls,
            answered,
            asr: ratio(answered, calls),
            acd: (answered > 0).then(|| answered_billsec as f64 / answered as f64),
            total_billsec: billsec,
        }
    }
}

impl Stats {
    /// The figures of a window from its sums; rankings and peak are added by the caller.
    pub fn from_totals(
        t: Totals,
        interval: Interval,
        histogram: Vec<HistogramBucket>,
        by_disposition: BTreeMap<String, u64>,
        answered_by: AnsweredBy,
    ) -> Stats {
        let mut all: BTreeMap<String, u64> =
            Disposition::ALL.iter().map(|d| (d.as_str().to_string(), 0)).collect();
        all.extend(by_disposition);
        Stats {
            total_calls: t.calls,
            answered_calls: t.answered,
            failed_calls: t.calls.saturating_sub(t.answered),
            asr: ratio(t.answered, t.calls),
            acd: (t.answered > 0).then(|| t.answered_billsec as f64 / t.answered as f64),
            ner: ratio(t.effective, t.calls),
            total_billsec: t.billsec,
            total_minutes: t.billsec as f64 / 60.0,
            avg_duration: if t.calls > 0 { t.avg_duration } else { None },
            interval: interval.name().to_string(),
            histogram,
            top_destinations: Vec::new(),
            top_sources: Vec::new(),
            by_disposition: all,
            revenue: money(t.sell_cost),
            cost: money(t.buy_cost),
            margin: money(t.sell_cost - t.buy_cost),
            rated_calls: RatedCalls { sell: t.sell_rated, buy: t.buy_rated },
            unrated_calls: RatedCalls {
                sell: t.calls.saturating_sub(t.sell_rated),
                buy: t.calls.saturating_sub(t.buy_rated),
            },
            by_dest_country: None,
            by_dest_type: None,
            peak_concurrent_calls: MaybeUndefined::Undefined,
            answered_by,
            fallback_reason: None,
        }
    }
}

fn answered_filter() -> Value {
    json!({ "term": { "disposition": Disposition::Answered.as_str() } })
}

fn per_number(field: &str, top: usize) -> Value {
    json!({
        "terms": { "field": field, "size": top, "order": [{ "_count": "desc" }, { "_key": "asc" }] },
        "aggs": {
            "answered": { "filter": answered_filter() },
            "billsec": { "sum": { "field": "billsec" } }
        }
    })
}

/// Every value of `field` (the `top` most called with `top > 0`), with calls, answered calls,
/// billable seconds and money; a missing value is `""`.
fn breakdown(field: &str, top: usize) -> Value {
    let size = if top > 0 { top } else { MAX_BREAKDOWN };
    json!({
        "terms": { "field": field, "size": size, "missing": "", "order": [{ "_count": "desc" }, { "_key": "asc" }] },
        "aggs": {
            "answered": { "filter": answered_filter() },
            "billsec": { "sum": { "field": "billsec" } },
            "sell_cost": { "sum": { "field": "sell_cost_micros" } },
            "buy_cost": { "sum": { "field": "buy_cost_micros" } }
        }
    })
}

/// Values a full breakdown lists at most (every country in the world fits).
pub const MAX_BREAKDOWN: usize = 1000;

/// The dimensions `breakdown=` accepts.
pub const BREAKDOWNS: [&str; 2] = ["dest_country", "dest_type"];

fn breakdowns(agg: &Value) -> Option<Vec<Breakdown>> {
    let buckets = agg["buckets"].as_array()?;
    Some(
        buckets
            .iter()
            .map(|b| {
                let (sell, buy) = (from_micros(&b["sell_cost"]), from_micros(&b["buy_cost"]));
                Breakdown {
                    key: b["key"].as_str().unwrap_or_default().to_string(),
                    calls: count(b),
                    answered: count(&b["answered"]),
                    total_billsec: sum(&b["billsec"]),
                    revenue: money(sell),
                    cost: money(buy),
                    margin: money(sell - buy),
                }
            })
            .collect(),
    )
}

/// The searches of one `/stats` call. They go out as one `_msearch`, which the engine runs
/// concurrently: on a small machine the whole answer then takes about as long as its
/// slowest part instead of the sum of all parts.
fn searches(request: &StatsRequest) -> Vec<Value> {
    let f = &request.filters;
    let mut histogram = json!({
        "field": "start_time",
        "calendar_interval": request.interval.name(),
        "min_doc_count": 0,
        "time_zone": "UTC"
    });
    if let (Some(from), Some(to)) = (f.from, f.to) {
        histogram["extended_bounds"] = json!({
            "min": from.timestamp_millis(),
            "max": (to - Duration::milliseconds(1)).timestamp_millis()
        });
    }
    let search = |aggs: Value, total: bool| json!({ "size": 0, "track_total_hits": total, "query": f.to_query(), "aggs": aggs });
    let mut all = vec![
        search(
            json!({
                "answered": {
                    "filter": answered_filter(),
                    "aggs": { "billsec": { "sum": { "field": "billsec" } } }
                },
                "effective": {
                    "filter": { "bool": { "minimum_should_match": 1, "should": [
                        { "terms": { "disposition": [
                            Disposition::Answered.as_str(), Disposition::Busy.as_str(), Disposition::NoAnswer.as_str()
                        ] } },
                        { "term": { "hangup_cause": REJECTED_BY_CALLEE } }
                    ] } }
                },
                "billsec": { "sum": { "field": "billsec" } },
                "duration": { "avg": { "field": "duration" } },
                "sell_rated": { "filter": { "term": { "sell_rating": "rated" } } },
                "buy_rated": { "filter": { "term": { "buy_rating": "rated" } } },
                "sell_cost": { "sum": { "field": "sell_cost_micros" } },
                "buy_cost": { "sum": { "field": "buy_cost_micros" } },
                "by_disposition": { "terms": { "field": "disposition", "size": 16 } }
            }),
            true,
        ),
        search(
            json!({
                "histogram": {
                    "date_histogram": histogram,
                    "aggs": {
                        "answered": {
                            "filter": answered_filter(),
                            "aggs": { "billsec": { "sum": { "field": "billsec" } } }
                        },
                        "billsec": { "sum": { "field": "billsec" } }
                    }
                }
            }),
            false,
        ),
    ];
    if request.top > 0 {
        all.push(search(json!({ "top_destinations": per_number("dest_number", request.top) }), false));
        all.push(search(json!({ "top_sources": per_number("src_number", request.top) }), false));
    }
    for (name, field) in [("by_dest_country", "dest_country"), ("by_dest_type", "dest_type")] {
        if request.breakdowns.iter().any(|b| b == field) {
            all.push(search(json!({ name: breakdown(field, request.top) }), false));
        }
    }
    all
}

/// One `_msearch` answer that failed, as the error it is.
fn failed(response: &Value) -> Result<(), SearchError> {
    match response.get("error") {
        Some(e) => {
            let status = response["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(500);
            Err(SearchError::Status { status, body: e.to_string() })
        }
        None => Ok(()),
    }
}

/// Folds the searches' answers into one: the first one's total, everyone's aggregations.
fn merge(responses: &[Value]) -> Result<Value, SearchError> {
    let mut aggregations = serde_json::Map::new();
    for r in responses {
        failed(r)?;
        if let Some(Value::Object(aggs)) = r.get("aggregations") {
            aggregations.extend(aggs.clone());
        }
    }
    let total = responses.first().map(|r| r["hits"]["total"].clone()).unwrap_or(Value::Null);
    Ok(json!({ "hits": { "total": total }, "aggregations": aggregations }))
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn count(v: &Value) -> u64 {
    v["doc_count"].as_u64().unwrap_or(0)
}

fn sum(v: &Value) -> u64 {
    v["value"].as_f64().map(|x| x.round().max(0.0) as u64).unwrap_or(0)
}

fn numbers(agg: &Value) -> Vec<NumberStats> {
    agg["buckets"]
        .as_array()
        .map(|b| {
            b.iter()
                .map(|bucket| NumberStats {
                    number: bucket["key"].as_str().unwrap_or_default().to_string(),
                    calls: count(bucket),
                    answered: count(&bucket["answered"]),
                    total_billsec: sum(&bucket["billsec"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse(request: &StatsRequest, response: &Value) -> Stats {
    let aggs = &response["aggregations"];
    let totals = Totals {
        calls: response["hits"]["total"]["value"].as_u64().unwrap_or(0),
        answered: count(&aggs["answered"]),
        effective: count(&aggs["effective"]),
        billsec: sum(&aggs["billsec"]),
        answered_billsec: sum(&aggs["answered"]["billsec"]),
        avg_duration: aggs["duration"]["value"].as_f64(),
        sell_rated: count(&aggs["sell_rated"]),
        buy_rated: count(&aggs["buy_rated"]),
        sell_cost: from_micros(&aggs["sell_cost"]),
        buy_cost: from_micros(&aggs["buy_cost"]),
    };
    let by_disposition = aggs["by_disposition"]["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| Some((b["key"].as_str()?.to_string(), count(b))))
        .collect();
    let histogram = aggs["histogram"]["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            let start = DateTime::from_timestamp_millis(b["key"].as_i64()?)?;
            Some(HistogramBucket::new(
                start,
                count(b),
                count(&b["answered"]),
                sum(&b["answered"]["billsec"]),
                sum(&b["billsec"]),
            ))
        })
        .collect();
    let mut stats =
        Stats::from_totals(totals, request.interval, histogram, by_disposition, AnsweredBy::Index);
    stats.top_destinations = numbers(&aggs["top_destinations"]);
    stats.top_sources = numbers(&aggs["top_sources"]);
    stats.by_dest_country = breakdowns(&aggs["by_dest_country"]);
    stats.by_dest_type = breakdowns(&aggs["by_dest_type"]);
    stats
}

/// Whether a peak-concurrency answer can be read. An index built before call ends were
/// aggregatable refuses the question; everything else in `/stats` still holds, so the peak
/// is reported unknown rather than failing the whole answer.
fn usable(answer: &Value) -> Result<bool, SearchError> {
    match failed(answer) {
        Ok(()) => Ok(true),
        Err(SearchError::Status { body, .. }) if body.contains("fielddata") => {
            tracing::warn!("peak concurrency needs an index rebuilt by this version (POST /reindex)");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

impl SearchIndex {
    /// One `_msearch` of concurrent searches. Peak concurrency over a window open on either
    /// side needs a second request: its bounds come from the first answer.
    pub async fn stats(&self, request: &StatsRequest) -> Result<Stats, SearchError> {
        let f = &request.filters;
        let window = f.from.zip(f.to);
        let mut all = searches(request);
        if request.peak {
            all.push(match window {
                Some((from, to)) => concurrency::search(f, from, to),
                None => concurrency::bounds_search(f),
            });
        }
        let mut responses = self.msearch(&all).await?;
        let peak_answer = if request.peak { responses.pop() } else { None };
        let mut stats = parse(request, &merge(&responses)?);
        let Some(mut answer) = peak_answer else { return Ok(stats) };
        stats.peak_concurrent_calls = MaybeUndefined::Null;
        let window = match window {
            Some(w) => Some(w),
            None => {
                if !usable(&answer)? {
                    return Ok(stats);
                }
                // The bounds the request gives win over those of its calls.
                let bounds = concurrency::bounds(&answer)
                    .map(|(first, last)| (f.from.unwrap_or(first), f.to.unwrap_or(last)))
                    .filter(|(from, to)| from < to);
                if let Some((from, to)) = bounds {
                    answer =
                        self.msearch(&[concurrency::search(f, from, to)]).await?.pop().unwrap_or_default();
                }
                bounds
            }
        };
        if let Some((from, to)) = window
            && usable(&answer)?
        {
            stats.peak_concurrent_calls = MaybeUndefined::from_opt_null(concurrency::peak(&answer, from, to));
        }
        Ok(stats)
    }

    async fn msearch(&self, searches: &[Value]) -> Result<Vec<Value>, SearchError> {
        let mut body = String::new();
        for search in searches {
            body.push_str("{}\n");
            body.push_str(&search.to_string());
            body.push('\n');
        }
        let path = format!("/{}/_msearch?max_concurrent_searches=5", self.alias());
        let response = self.raw(Method::Post, &path, Some(body)).await?;
        match response["responses"].as_array() {
            Some(r) if r.len() == searches.len() => Ok(r.clone()),
            _ => Err(SearchError::Status { status: 502, body: "malformed _msearch answer".to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_follows_the_window() {
        let t = |h: i64| Some(DateTime::<Utc>::UNIX_EPOCH + Duration::hours(h));
        assert_eq!(Interval::for_window(t(0), t(2)), Interval::Minute);
        assert_eq!(Interval::for_window(t(0), t(48)), Interval::Hour);
        assert_eq!(Interval::for_window(t(0), t(24 * 7)), Interval::Day);
        assert_eq!(Interval::for_window(t(0), t(24 * 365)), Interval::Week);
        assert_eq!(Interval::for_window(t(0), t(24 * 3650)), Interval::Month);
        assert_eq!(Interval::for_window(None, t(5)), Interval::Day);
    }

    #[test]
    fn too_many_buckets_and_bad_top_are_refused() {
        let filters = Filters {
            from: Some(DateTime::<Utc>::UNIX_EPOCH),
            to: Some(DateTime::<Utc>::UNIX_EPOCH + Duration::days(365)),
            ..Filters::default()
        };
        let e = StatsRequest::new(filters.clone(), Some(Interval::Minute), 10).unwrap_err();
        assert_eq!(e.parameter, "interval");
        assert_eq!(StatsRequest::new(filters.clone(), None, MAX_TOP + 1).unwrap_err().parameter, "top");
        assert!(StatsRequest::new(filters.clone(), None, 0).is_ok(), "no rankings");
        assert!(StatsRequest::new(filters, None, 10).is_ok());
    }

    #[test]
    fn an_empty_window_gives_zeros_and_nulls() {
        let request = StatsRequest::new(Filters::default(), None, 10).unwrap();
        let empty = json!({ "hits": { "total": { "value": 0 } }, "aggregations": {
            "answered": { "doc_count": 0, "billsec": { "value": 0.0 } },
            "effective": { "doc_count": 0 }, "billsec": { "value": 0.0 }, "duration": { "value": null },
            "by_disposition": { "buckets": [] }, "histogram": { "buckets": [] },
            "top_destinations": { "buckets": [] }, "top_sources": { "buckets": [] } } });
        let s = parse(&request, &empty);
        assert_eq!((s.total_calls, s.asr, s.acd, s.ner, s.avg_duration), (0, None, None, None, None));
        assert_eq!(s.total_minutes, 0.0);
        assert_eq!(s.by_disposition.len(), 5);
        assert!(s.by_disposition.values().all(|n| *n == 0));
    }
}
