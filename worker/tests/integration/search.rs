//! `/search` and `/stats` against real Elasticsearch, on a generated dataset whose expected
//! answers are computed here, independently of the code under test.

use crate::common::TestApp;
use chrono::{DateTime, Duration, TimeZone, Utc};
use poem::http::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone)]
struct Rec {
    call_id: String,
    source: &'static str,
    src: String,
    dest: String,
    start: DateTime<Utc>,
    duration: i64,
    billsec: i64,
    disposition: &'static str,
    hangup: Option<&'static str>,
    direction: &'static str,
    account: &'static str,
}

const N: usize = 600;

/// A query string and the records it must match.
type FilterCase = (&'static str, Box<dyn Fn(&Rec) -> bool>);

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("time")
}

fn dataset() -> Vec<Rec> {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    (0..N)
        .map(|i| {
            let r = next();
            let disposition = match r % 10 {
                0..=5 => "ANSWERED",
                6 => "NO ANSWER",
                7 => "BUSY",
                8 => "FAILED",
                _ => "CONGESTION",
            };
            let ring = (next() % 30) as i64 + 1;
            let talk = if disposition == "ANSWERED" { (next() % 900) as i64 + 1 } else { 0 };
            let prefix = ["4420", "4421", "331", "1415"][(next() % 4) as usize];
            Rec {
                call_id: format!("gen-{i}"),
                source: ["pbx-a", "pbx-b", "pbx-c"][(next() % 3) as usize],
                src: format!("+1555{:04}", next() % 30),
                dest: format!("{prefix}{:04}", next() % 12),
                start: base() + Duration::seconds(((i as i64) * 7919) % (3 * 86_400)),
                duration: ring + talk,
                billsec: talk,
                disposition,
                hangup: (disposition == "FAILED" && next() % 2 == 0).then_some("CALL_REJECTED"),
                direction: if next() % 2 == 0 { "inbound" } else { "outbound" },
                account: ["acme", "globex"][(next() % 2) as usize],
            }
        })
        .collect()
}

fn to_json(r: &Rec) -> Value {
    let answer = (r.billsec > 0).then(|| (r.start + Duration::seconds(r.duration - r.billsec)).to_rfc3339());
    json!({
        "call_id": r.call_id, "source": r.source, "src_number": r.src, "dest_number": r.dest,
        "start_time": r.start.to_rfc3339(), "answer_time": answer,
        "end_time": (r.start + Duration::seconds(r.duration)).to_rfc3339(),
        "disposition": r.disposition, "hangup_cause": r.hangup, "direction": r.direction,
        "account_code": r.account
    })
}

async fn loaded() -> (TestApp, Vec<Rec>) {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let data = dataset();
    for chunk in data.chunks(200) {
        let body = Value::Array(chunk.iter().map(to_json).collect());
        let accepted = app.ingest(&body).await;
        assert_eq!(accepted["accepted"], chunk.len());
        app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    }
    app.wait_in_sync(std::time::Duration::from_secs(60)).await;
    app.search().refresh(None).await.expect("refresh");
    (app, data)
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let resp = app.client.get(path).send().await;
    let status = resp.0.status();
    (status, resp.json().await.value().deserialize::<Value>())
}

/// Every page of a search, following the cursor.
async fn all_pages(app: &TestApp, query: &str, limit: usize) -> (u64, Vec<Value>) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/search?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get(app, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let total = page["total"].as_u64().expect("total");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (total, items),
        }
    }
    panic!("paging did not end");
}

fn ids(items: &[Value]) -> HashSet<String> {
    items.iter().map(|i| i["call_id"].as_str().expect("call_id").to_string()).collect()
}

fn expected(data: &[Rec], keep: impl Fn(&Rec) -> bool) -> HashSet<String> {
    data.iter().filter(|r| keep(r)).map(|r| r.call_id.clone()).collect()
}

#[tokio::test]
async fn search_filters_sorts_and_pages() {
    let (app, data) = loaded().await;
    let day2 = base() + Duration::days(1);
    let cases: Vec<FilterCase> = vec![
        ("source=pbx-b", Box::new(|r| r.source == "pbx-b")),
        ("src_number=%2B15550007", Box::new(|r| r.src == "+15550007")),
        ("dest_number=4420*", Box::new(|r| r.dest.starts_with("4420"))),
        ("dest_number=33100*", Box::new(|r| r.dest.starts_with("33100"))),
        ("dest_number=14150003", Box::new(|r| r.dest == "14150003")),
        (
            "from=2026-03-02T00:00:00Z&to=2026-03-02T12:00:00Z",
            Box::new(move |r| r.start >= day2 && r.start < day2 + Duration::hours(12)),
        ),
        (
            "start_date=2026-03-02&end_date=2026-03-02",
            Box::new(move |r| r.start >= day2 && r.start < day2 + Duration::days(1)),
        ),
        ("min_duration=300", Box::new(|r| r.duration >= 300)),
        ("max_duration=20", Box::new(|r| r.duration <= 20)),
        ("min_billsec=600", Box::new(|r| r.billsec >= 600)),
        (
            "disposition=BUSY&disposition=failed",
            Box::new(|r| r.disposition == "BUSY" || r.disposition == "FAILED"),
        ),
        ("disposition=NO%20ANSWER", Box::new(|r| r.disposition == "NO ANSWER")),
        ("call_successful=true", Box::new(|r| r.disposition == "ANSWERED")),
        ("call_successful=false", Box::new(|r| r.disposition != "ANSWERED")),
        ("direction=inbound", Box::new(|r| r.direction == "inbound")),
        ("account_code=globex", Box::new(|r| r.account == "globex")),
        ("call_id=gen-17", Box::new(|r| r.call_id == "gen-17")),
        (
            "source=pbx-a&dest_number=44*&from=2026-03-01&to=2026-03-02&disposition=ANSWERED&min_billsec=100",
            Box::new(|r| {
                r.source == "pbx-a"
                    && r.dest.starts_with("44")
                    && r.start < base() + Duration::days(2)
                    && r.disposition == "ANSWERED"
                    && r.billsec >= 100
            }),
        ),
    ];
    for (query, keep) in cases {
        let want = expected(&data, keep);
        assert!(!want.is_empty(), "dataset has no match for {query}");
        let (total, items) = all_pages(&app, query, 1000).await;
        assert_eq!(total as usize, want.len(), "{query}");
        assert_eq!(ids(&items), want, "{query}");
    }

    // No hit is an empty 200.
    let (status, page) = get(&app, "/search?dest_number=999999").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (page["total"].clone(), page["items"].clone(), page["next_cursor"].clone()),
        (json!(0), json!([]), Value::Null)
    );

    // Default: 50 newest first.
    let (_, page) = get(&app, "/search").await;
    assert_eq!(page["total"], N);
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 50);
    let mut newest: Vec<DateTime<Utc>> = data.iter().map(|r| r.start).collect();
    newest.sort_by(|a, b| b.cmp(a));
    let got: Vec<DateTime<Utc>> =
        items.iter().map(|i| i["start_time"].as_str().expect("t").parse().expect("time")).collect();
    assert_eq!(got, newest[..50].to_vec());

    // Paging through everything in small pages: no gaps, no repeats, order kept.
    for sort in ["billsec:desc", "duration:asc", "start_time:asc"] {
        let (total, items) = all_pages(&app, &format!("sort={sort}"), 37).await;
        assert_eq!(total as usize, N);
        assert_eq!(items.len(), N, "{sort}");
        assert_eq!(ids(&items).len(), N, "{sort}: repeats");
        let (field, order) = sort.split_once(':').expect("sort");
        let keys: Vec<String> = items
            .iter()
            .map(|i| match &i[field] {
                Value::Number(n) => format!("{:012}", n.as_i64().expect("n")),
                v => v.as_str().expect("s").to_string(),
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{sort}");
    }

    // Stored values come back whole.
    let (_, page) = get(&app, "/search?src_number=%2B15550007&limit=1&sort=duration:desc").await;
    let item = &page["items"][0];
    let rec = data.iter().find(|r| r.call_id == item["call_id"]).expect("known call");
    assert_eq!(item["dest_number"], rec.dest.as_str());
    assert_eq!(item["billsec"], rec.billsec);
    assert_eq!(item["disposition"], rec.disposition);
    app.cleanup().await;
}

#[tokio::test]
async fn stats_compute_every_kpi() {
    let (app, data) = loaded().await;
    let close = |a: &Value, b: f64| (a.as_f64().expect("number") - b).abs() < 1e-9;

    // The whole dataset.
    let (status, s) = get(&app, "/stats?top=5").await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let total = data.len() as f64;
    let answered: Vec<&Rec> = data.iter().filter(|r| r.disposition == "ANSWERED").collect();
    let effective = data
        .iter()
        .filter(|r| {
            matches!(r.disposition, "ANSWERED" | "BUSY" | "NO ANSWER") || r.hangup == Some("CALL_REJECTED")
        })
        .count();
    let billsec: i64 = data.iter().map(|r| r.billsec).sum();
    assert_eq!(s["total_calls"], N);
    assert_eq!(s["answered_calls"], answered.len());
    assert_eq!(s["failed_calls"], N - answered.len());
    assert!(close(&s["asr"], answered.len() as f64 / total));
    assert!(close(&s["acd"], billsec as f64 / answered.len() as f64));
    assert!(close(&s["ner"], effective as f64 / total));
    assert_eq!(s["total_billsec"], billsec);
    assert!(close(&s["total_minutes"], billsec as f64 / 60.0));
    assert!(close(&s["avg_duration"], data.iter().map(|r| r.duration).sum::<i64>() as f64 / total));
    for d in ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"] {
        assert_eq!(s["by_disposition"][d], data.iter().filter(|r| r.disposition == d).count(), "{d}");
    }
    let by_dest: fn(&Rec) -> String = |r| r.dest.clone();
    let by_src: fn(&Rec) -> String = |r| r.src.clone();
    for (field, key) in [("top_destinations", by_dest), ("top_sources", by_src)] {
        let mut per: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
        for r in &data {
            let e = per.entry(key(r)).or_default();
            e.0 += 1;
            e.1 += u64::from(r.disposition == "ANSWERED");
            e.2 += r.billsec;
        }
        let mut ranked: Vec<(String, (u64, u64, i64))> = per.into_iter().collect();
        ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
        let want: Vec<Value> = ranked[..5]
            .iter()
            .map(|(n, (c, a, b))| json!({"number": n, "calls": c, "answered": a, "total_billsec": b}))
            .collect();
        assert_eq!(s[field], Value::Array(want), "{field}");
    }

    // A six-hour window by the hour, with one source.
    let from = base() + Duration::hours(30);
    let to = from + Duration::hours(6);
    let (_, s) =
        get(&app, "/stats?source=pbx-c&from=2026-03-02T06:00:00Z&to=2026-03-02T12:00:00Z&interval=hour")
            .await;
    let window: Vec<&Rec> =
        data.iter().filter(|r| r.source == "pbx-c" && r.start >= from && r.start < to).collect();
    assert_eq!(s["total_calls"], window.len());
    assert_eq!(s["interval"], "hour");
    let buckets = s["histogram"].as_array().expect("histogram");
    assert_eq!(buckets.len(), 6);
    for (h, bucket) in buckets.iter().enumerate() {
        let start = from + Duration::hours(h as i64);
        let inside: Vec<&&Rec> =
            window.iter().filter(|r| r.start >= start && r.start < start + Duration::hours(1)).collect();
        let ans: Vec<&&&Rec> = inside.iter().filter(|r| r.disposition == "ANSWERED").collect();
        assert_eq!(bucket["start"].as_str().expect("start").parse::<DateTime<Utc>>().expect("t"), start);
        assert_eq!(bucket["calls"], inside.len());
        assert_eq!(bucket["answered"], ans.len());
        assert_eq!(bucket["total_billsec"], inside.iter().map(|r| r.billsec).sum::<i64>());
        if inside.is_empty() {
            assert!(bucket["asr"].is_null());
        } else {
            assert!(close(&bucket["asr"], ans.len() as f64 / inside.len() as f64));
        }
        if ans.is_empty() {
            assert!(bucket["acd"].is_null());
        } else {
            assert!(close(
                &bucket["acd"],
                ans.iter().map(|r| r.billsec).sum::<i64>() as f64 / ans.len() as f64
            ));
        }
    }

    // An empty window: zeros, and nulls where a ratio is undefined.
    let (status, s) = get(&app, "/stats?from=2030-01-01&to=2030-01-02").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["total_calls"], 0);
    assert_eq!(s["total_billsec"], 0);
    assert_eq!(s["total_minutes"], 0.0);
    for ratio in ["asr", "acd", "ner", "avg_duration"] {
        assert!(s[ratio].is_null(), "{ratio}: {s}");
    }
    // A plain date as `to` includes that day: two days, by the hour.
    assert_eq!(s["interval"], "hour");
    assert_eq!(s["histogram"].as_array().expect("h").len(), 48);
    app.cleanup().await;
}

#[tokio::test]
async fn bad_parameters_are_400s_naming_the_parameter() {
    let app = TestApp::new().await;
    let cases = [
        ("/search?colour=red", "colour"),
        ("/search?from=last-tuesday", "from"),
        ("/search?start_date=2026-13-01", "start_date"),
        ("/search?from=2026-03-02&to=2026-03-01", "from"),
        ("/search?min_duration=abc", "min_duration"),
        ("/search?max_duration=-3", "max_duration"),
        ("/search?min_billsec=1e9", "min_billsec"),
        ("/search?limit=0", "limit"),
        ("/search?limit=5000", "limit"),
        ("/search?sort=price", "sort"),
        ("/search?cursor=not-a-cursor", "cursor"),
        ("/search?disposition=HUNG", "disposition"),
        ("/search?call_successful=maybe", "call_successful"),
        ("/search?dest_number=*", "dest_number"),
        ("/stats?interval=fortnight", "interval"),
        ("/stats?top=101", "top"),
        ("/stats?from=2020-01-01&to=2026-01-01&interval=minute", "interval"),
        ("/stats?sort=duration", "sort"),
    ];
    for (path, parameter) in cases {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["code"], "invalid_parameter", "{path}");
        assert_eq!(body["details"]["parameter"], parameter, "{path}: {body}");
        assert!(body["message"].as_str().expect("message").starts_with(parameter), "{path}");
    }
    app.cleanup().await;
}

/// Peak concurrent calls: calls up when the window opens count, a call ending at an instant
/// is no longer up at it, and the busiest instant is named.
#[tokio::test]
async fn stats_report_peak_concurrent_calls() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let at = |h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).single().expect("time");
    let call = |id: &str, start: DateTime<Utc>, seconds: i64| {
        json!({
            "call_id": id, "source": "pbx-p", "src_number": "+15550100", "dest_number": "442070000",
            "start_time": start.to_rfc3339(), "answer_time": start.to_rfc3339(),
            "end_time": (start + Duration::seconds(seconds)).to_rfc3339(), "disposition": "ANSWERED"
        })
    };
    let mut calls = vec![call("up-at-open", at(9, 58, 0), 7 * 60)];
    calls.extend((0..5).map(|i| call(&format!("burst-{i}"), at(10, 10, i), 100)));
    calls.push(call("long", at(10, 10, 30), 570));
    calls.push(call("late", at(10, 30, 0), 10));
    // Ends exactly when "late" starts: not up at the same time.
    calls.push(call("handover", at(10, 29, 50), 10));
    let accepted = app.ingest(&Value::Array(calls)).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    app.wait_in_sync(std::time::Duration::from_secs(60)).await;
    app.search().refresh(None).await.expect("refresh");

    let peak = |s: &Value| s["peak_concurrent_calls"].clone();
    let (status, s) = get(&app, "/stats?peak=true&from=2026-03-01T10:00:00Z&to=2026-03-01T11:00:00Z").await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["total_calls"], 8, "the call up at the open started before the window");
    assert_eq!(peak(&s), json!({ "calls": 6, "at": "2026-03-01T10:10:31+00:00", "resolution_seconds": 1 }));

    // An open window runs from the first start to the last end.
    let (_, s) = get(&app, "/stats?peak=true&source=pbx-p").await;
    assert_eq!(peak(&s), json!({ "calls": 6, "at": "2026-03-01T10:10:31+00:00", "resolution_seconds": 1 }));

    // Only the call that was already up.
    let (_, s) = get(&app, "/stats?peak=1&from=2026-03-01T10:00:00Z&to=2026-03-01T10:06:00Z").await;
    assert_eq!(s["total_calls"], 0);
    assert_eq!(peak(&s), json!({ "calls": 1, "at": "2026-03-01T10:00:00+00:00", "resolution_seconds": 1 }));

    // "handover" ends as "late" starts: one call up at a time.
    let (_, s) = get(&app, "/stats?peak=true&from=2026-03-01T10:25:00Z&to=2026-03-01T10:45:00Z").await;
    assert_eq!(peak(&s)["calls"], 1, "{s}");

    // Every answer so far came from the rollups: exact at one second for any window.
    assert_eq!(s["answered_by"], "rollups", "{s}");
    let (_, s) = get(&app, "/stats?peak=true&from=2026-02-26&to=2026-03-05").await;
    assert_eq!(peak(&s), json!({ "calls": 6, "at": "2026-03-01T10:10:31+00:00", "resolution_seconds": 1 }));
    // From the index, a week is sampled every two minutes, as a switch polled for channel
    // usage would be: the 100-second burst starts and ends between two samples.
    let (_, s) = get(&app, "/stats?peak=true&from=2026-02-26&to=2026-03-05&min_billsec=0").await;
    assert_eq!(s["answered_by"], "index", "{s}");
    assert_eq!(peak(&s), json!({ "calls": 1, "at": "2026-03-01T10:00:00+00:00", "resolution_seconds": 120 }));
    // Both agree where the index samples every second.
    let (_, s) =
        get(&app, "/stats?peak=true&from=2026-03-01T10:00:00Z&to=2026-03-01T11:00:00Z&min_billsec=0").await;
    assert_eq!(peak(&s), json!({ "calls": 6, "at": "2026-03-01T10:10:31+00:00", "resolution_seconds": 1 }));

    let (_, s) = get(&app, "/stats?peak=true&from=2030-01-01&to=2030-01-02").await;
    assert!(s.as_object().expect("object").contains_key("peak_concurrent_calls"));
    assert!(peak(&s).is_null());
    let (_, s) = get(&app, "/stats?peak=true&source=nowhere").await;
    assert!(peak(&s).is_null());
    // Not asked for: not measured, and not in the answer.
    let (_, s) = get(&app, "/stats?from=2026-03-01T10:00:00Z&to=2026-03-01T11:00:00Z").await;
    assert!(!s.as_object().expect("object").contains_key("peak_concurrent_calls"), "{s}");
    let (status, s) = get(&app, "/stats?peak=maybe").await;
    assert_eq!((status, &s["details"]["parameter"]), (StatusCode::BAD_REQUEST, &json!("peak")));
    app.cleanup().await;
}

/// An index built by an earlier release's mapping (call ends without doc values, none of
/// the fields added since): the worker adds the new fields in place, so `/stats` answers in
/// full and calls indexed since count in the peak.
#[tokio::test]
async fn stats_still_answer_on_an_index_built_by_an_earlier_mapping() {
    use elasticsearch::http::Method;
    let mut app = TestApp::new().await;
    let search = app.search();
    search.ensure().await.expect("alias");
    let current = search.alias_targets().await.expect("targets").expect("an index behind the alias");
    let mut mapping =
        search.request(Method::Get, &format!("/{}/_mapping", current[0]), None).await.expect("mapping")
            [&current[0]]["mappings"]
            .clone();
    mapping["properties"]["end_time"] = json!({ "type": "date", "doc_values": false });
    mapping["properties"]["dest_number"] = json!({ "type": "keyword" });
    for added in ["ends_at", "record_key", "disposition_raw", "linked_id", "caller_withheld"] {
        mapping["properties"].as_object_mut().expect("properties").remove(added);
    }
    let legacy = format!("{}-legacy", search.alias());
    search
        .request(Method::Put, &format!("/{legacy}"), Some(json!({ "mappings": mapping })))
        .await
        .expect("legacy index");
    search.swap_alias(&current, &legacy).await.expect("alias to the legacy index");
    search.delete_index(&current[0]).await.expect("old index gone");

    app.start_worker().await;
    let accepted = app.ingest(&crate::common::batch(0..20)).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    app.wait_in_sync(std::time::Duration::from_secs(60)).await;
    search.refresh(None).await.expect("refresh");

    for query in ["/stats", "/stats?peak=true", "/stats?peak=true&from=2026-03-01&to=2026-03-02"] {
        let (status, s) = get(&app, query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {s}");
        assert_eq!(s["total_calls"], 20, "{query}");
    }
    let (_, s) = get(&app, "/stats?peak=true").await;
    assert_eq!(s["peak_concurrent_calls"]["calls"], 20, "{s}");
    let now = search.request(Method::Get, &format!("/{legacy}/_mapping"), None).await.expect("mapping");
    let properties = &now[&legacy]["mappings"]["properties"];
    assert_eq!(properties["ends_at"]["type"], "date", "{properties}");
    assert_eq!(properties["end_time"]["doc_values"], false, "the earlier field is left as it was");
    assert_eq!(properties["dest_number"]["eager_global_ordinals"], true, "updated in place: {properties}");
    app.cleanup().await;
}
