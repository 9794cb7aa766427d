//! `/stats` from the rollups and from the search index give the same figures: generated
//! requests are asked of both, over sums still pending, folded, and a mix of the two.

use crate::common::{TestApp, eventually};
use chrono::{DateTime, Duration, TimeZone, Utc};
use jobs::rollups::plan::plan;
use jobs::rollups::read::RollupStats;
use jobs::search::{Filters, Interval, StatsRequest};
use poem::http::StatusCode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

const SOURCES: [&str; 3] = ["pbx-a", "pbx-b", "pbx-c"];
const ACCOUNTS: [&str; 3] = ["acme", "globex", "initech"];
const DISPOSITIONS: [&str; 5] = ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 27, 0, 0, 0).single().expect("time")
}

/// Calls over ten days, at any second, with every rollup dimension varied (and left out).
fn calls(range: std::ops::Range<u64>) -> Value {
    let rows = range
        .map(|i| {
            let r = i.wrapping_mul(2_654_435_761) >> 7;
            let disposition = DISPOSITIONS[(r % 5) as usize];
            let talk = if disposition == "ANSWERED" { (r % 613) as i64 + 1 } else { 0 };
            let ring = (r % 23) as i64 + 1;
            let start = base() + Duration::seconds(((i * 104_729) % (10 * 86_400)) as i64);
            let answer = (talk > 0).then(|| (start + Duration::seconds(ring)).to_rfc3339());
            let mut cdr = json!({
                "call_id": format!("paths-{i}"), "source": SOURCES[(r / 5 % 3) as usize],
                "src_number": format!("+1555{:04}", r % 97), "dest_number": format!("+44{:08}", r % 9973),
                "start_time": start.to_rfc3339(), "answer_time": answer,
                "end_time": (start + Duration::seconds(ring + talk)).to_rfc3339(),
                "disposition": disposition,
                "hangup_cause": if disposition == "FAILED" && r % 2 == 0 { "CALL_REJECTED" } else { "NORMAL_CLEARING" },
            });
            if r % 7 != 0 {
                cdr["direction"] = json!(["inbound", "outbound"][(r / 15 % 2) as usize]);
            }
            if r % 9 != 0 {
                cdr["account_code"] = json!(ACCOUNTS[(r / 30 % 3) as usize]);
            }
            cdr
        })
        .collect();
    Value::Array(rows)
}

/// A bound on whole minutes (whole hours half the time), or none.
fn bound() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    prop_oneof![
        1 => Just(None),
        2 => (0_i64..12 * 24).prop_map(|h| Some(base() - Duration::days(1) + Duration::hours(h))),
        2 => (0_i64..12 * 24 * 60).prop_map(|m| Some(base() - Duration::days(1) + Duration::minutes(m))),
    ]
}

/// A window: two bounds drawn apart, or a short one (at most 166 minutes, which the index
/// samples every second for peak concurrency), on whole hours or not (peak concurrency over
/// whole hours reads hour summaries only).
fn window() -> impl Strategy<Value = (Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    prop_oneof![
        1 => (bound(), bound()),
        1 => (0_i64..11 * 24, 1_i64..=2).prop_map(|(h, len)| {
            let from = base() - Duration::days(1) + Duration::hours(h);
            (Some(from), Some(from + Duration::hours(len)))
        }),
        2 => (0_i64..11 * 24 * 60, 1_i64..=166).prop_map(|(m, len)| {
            let from = base() - Duration::days(1) + Duration::minutes(m);
            (Some(from), Some(from + Duration::minutes(len)))
        }),
    ]
}

fn requests() -> impl Strategy<Value = Option<StatsRequest>> {
    let pick = |values: &'static [&'static str]| prop_oneof![2 => Just(None), 3 => proptest::sample::select(values).prop_map(|v| Some(v.to_string()))];
    (
        pick(&["pbx-a", "pbx-b", "pbx-c", "nowhere"]),
        pick(&["inbound", "outbound"]),
        proptest::sample::subsequence(DISPOSITIONS.to_vec(), 0..=2),
        prop_oneof![3 => Just(None), 1 => pick(&["acme", "globex", "initech", "nobody"])],
        window(),
        (proptest::bool::weighted(0.4), proptest::bool::weighted(0.8)),
        proptest::option::of(proptest::sample::select(vec![
            Interval::Minute,
            Interval::Hour,
            Interval::Day,
            Interval::Week,
            Interval::Month,
        ])),
    )
        .prop_map(|(source, direction, dispositions, account, (a, b), (peak, per_source), interval)| {
            let (from, to) = match (a, b) {
                (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                (Some(a), Some(b)) if a == b => (Some(a), None),
                other => other,
            };
            let filters = Filters {
                source,
                direction,
                dispositions: dispositions.iter().filter_map(|d| d.parse().ok()).collect(),
                account_code: account,
                from,
                to,
                ..Filters::default()
            };
            // Peak concurrency is mostly asked per source (and then answerable).
            let filters = if peak && per_source {
                Filters { direction: None, dispositions: Vec::new(), account_code: None, ..filters }
            } else {
                filters
            };
            let mut request = StatsRequest::new(filters, interval, 0).ok()?;
            request.peak = peak;
            Some(request)
        })
}

/// Two answers equal but for who gave them (ratios to a rounding error).
fn assert_same(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{at}: {x} vs {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> =
                x.keys().chain(y.keys()).filter(|k| *k != "answered_by").collect();
            for k in keys {
                assert_same(&x[k], &y[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert_same(p, q, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// Whether the index samples peak concurrency every second for this request's window.
fn sampled_every_second(request: &StatsRequest) -> bool {
    let f = &request.filters;
    f.from.zip(f.to).is_some_and(|(from, to)| jobs::search::concurrency::resolution(from, to) == 1)
}

/// Asks generated requests of both paths; returns how many the rollups answered, and of
/// those how many peaks were compared exactly.
async fn compare(app: &TestApp, seed: u8, cases: usize) -> (usize, usize) {
    let rollups = RollupStats::new(app.db.clone());
    let index = app.search();
    let mut runner = TestRunner::new_with_rng(
        proptest::test_runner::Config::default(),
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let strategy = requests();
    let (mut answered, mut exact_peaks) = (0, 0);
    for _ in 0..cases {
        let Some(request) = strategy.new_tree(&mut runner).expect("a request").current() else { continue };
        let Ok(p) = plan(&request) else { continue };
        let from_rollups = rollups.stats(&request, &p).await.expect("rollups answer");
        let from_index = index.stats(&request).await.expect("index answers");
        let (mut r, mut i) = (json!(from_rollups), json!(from_index));
        assert_eq!(r["answered_by"], "rollups");
        let at = format!("{:?} peak={}", request.filters, request.peak);
        if request.peak && !sampled_every_second(&request) {
            // The index samples long windows coarsely; the rollups count every second, so
            // they can only see as many calls at once or more.
            let calls = |v: &mut Value| v.as_object_mut().and_then(|o| o.remove("peak_concurrent_calls"));
            let (exact, sampled) = (calls(&mut r), calls(&mut i));
            let n = |v: &Option<Value>| v.as_ref().and_then(|p| p["calls"].as_u64()).unwrap_or(0);
            assert!(n(&exact) >= n(&sampled), "{at}: {exact:?} < {sampled:?}");
        }
        exact_peaks += usize::from(
            request.peak && sampled_every_second(&request) && !r["peak_concurrent_calls"].is_null(),
        );
        assert_same(&r, &i, &at);
        answered += 1;
    }
    (answered, exact_peaks)
}

async fn wait_pending(app: &TestApp, empty: bool) {
    eventually(std::time::Duration::from_secs(30), "pending rollup sums", || async {
        let n = app.count("SELECT count(*) FROM kpi_pending").await;
        if (n == 0) == empty { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
}

async fn load(app: &TestApp, rows: Value) {
    let accepted = app.ingest(&rows).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
}

#[tokio::test]
async fn rollups_and_index_give_the_same_stats_for_generated_requests() {
    let mut app = TestApp::new().await;
    // Folds only on the hour's timer, ingest's pauses aside: the sums stay pending.
    let folds_hourly = [("CDR_ROLLUP_FOLD_MS", "3600000"), ("CDR_ROLLUP_FOLD_ON_PAUSE", "false")]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    app.worker_env.extend(folds_hourly.clone());
    app.start_worker().await;
    load(&app, calls(0..700)).await;
    load(&app, calls(700..1400)).await;
    app.wait_in_sync(std::time::Duration::from_secs(60)).await;
    app.search().refresh(None).await.expect("refresh");
    wait_pending(&app, false).await;
    // Everything still pending.
    let (answered, peaks) = compare(&app, 1, 150).await;
    assert!(answered >= 50, "only {answered} of 150 requests were answerable from the rollups");
    assert!(peaks >= 5, "only {peaks} peaks compared at one-second resolution");

    // Everything folded.
    app.stop_worker().await;
    app.worker_env.retain(|e| !folds_hourly.contains(e));
    app.start_worker().await;
    wait_pending(&app, true).await;
    let settled = "SELECT count(*) FROM kpi_second_hour WHERE NOT dirty";
    eventually(std::time::Duration::from_secs(30), "peak summaries settled", || async {
        let dirty = app.count("SELECT count(*) FROM kpi_second_hour WHERE dirty").await;
        if dirty == 0 { Ok(()) } else { Err(dirty.to_string()) }
    })
    .await;
    assert!(app.count(settled).await > 0);
    let (answered, peaks) = compare(&app, 2, 150).await;
    assert!(answered >= 50 && peaks >= 5, "{answered} answered, {peaks} peaks");

    // Folded and pending at once.
    app.stop_worker().await;
    app.worker_env.extend(folds_hourly.clone());
    app.start_worker().await;
    load(&app, calls(1400..2000)).await;
    app.wait_in_sync(std::time::Duration::from_secs(60)).await;
    app.search().refresh(None).await.expect("refresh");
    wait_pending(&app, false).await;
    let (answered, peaks) = compare(&app, 3, 150).await;
    assert!(answered >= 50 && peaks >= 5, "{answered} answered, {peaks} peaks");
    app.assert_rollups_match_rows().await;

    // Over HTTP: which path answered is said, and why the index did.
    let get = |q: &'static str| {
        let app = &app;
        async move {
            let resp = app.client.get(q).send().await;
            let status = resp.0.status();
            (status, resp.json().await.value().deserialize::<Value>())
        }
    };
    let (status, s) = get("/stats?from=2026-02-28T10:00:00Z&to=2026-03-03T00:00:00Z&source=pbx-b").await;
    assert_eq!((status, &s["answered_by"]), (StatusCode::OK, &json!("rollups")), "{s}");
    assert!(s.get("fallback_reason").is_none(), "{s}");
    assert!(s["total_calls"].as_u64().expect("calls") > 0);
    let (_, fallback) =
        get("/stats?from=2026-02-28T10:00:00Z&to=2026-03-03T00:00:00Z&source=pbx-b&min_billsec=0").await;
    assert_eq!(fallback["answered_by"], "index");
    assert_eq!(fallback["fallback_reason"], "min_billsec is not a rollup dimension");
    assert_eq!(fallback["total_calls"], s["total_calls"], "min_billsec=0 keeps every call");
    let (_, ranked) = get("/stats?top=3").await;
    assert_eq!(
        (&ranked["answered_by"], ranked["top_destinations"].as_array().map(Vec::len)),
        (&json!("index"), Some(3))
    );
    let (_, plain) = get("/stats").await;
    assert_eq!(plain["answered_by"], "rollups");
    assert_eq!(plain["total_calls"], 2000);
    assert_eq!(plain["top_destinations"], json!([]), "rankings only when asked");
    app.cleanup().await;
}
