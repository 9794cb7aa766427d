//! Retention: the dry run, the run, a run killed half-way, and the schedule with two workers.

use crate::common::{TestApp, answered_cdr, eventually};
use chrono::{Months, NaiveDate, Utc};
use jobs::store::partitions::{add_months, month_of, partition_name};
use serde_json::{Value, json};
use std::time::Duration;

const RAW_MONTHS: u32 = 12;
const ROLLUP_MONTHS: u32 = 24;

/// Calls `n..n + count` on the 10th of the month `months` before this one, at noon UTC.
fn calls(months_ago: u32, n: usize, count: usize) -> Vec<Value> {
    let this = month_of(Utc::now());
    let day = this.checked_sub_months(Months::new(months_ago)).expect("a month") + chrono::Days::new(9);
    let start = day.and_hms_opt(12, 0, 0).expect("noon").and_utc();
    (n..n + count)
        .map(|i| {
            let mut cdr = answered_cdr(i);
            let fields = cdr.as_object_mut().expect("object");
            fields.remove("answer_time");
            fields.remove("end_time");
            cdr["start_time"] = json!((start + chrono::Duration::minutes(i as i64)).to_rfc3339());
            cdr["duration"] = json!(60);
            cdr["billsec"] = json!(45);
            cdr
        })
        .collect()
}

fn month_ago(months: u32) -> NaiveDate {
    add_months(month_of(Utc::now()), -(months as i32))
}

fn retention_month_start(months: u32) -> chrono::DateTime<Utc> {
    jobs::retention::month_start(month_ago(months))
}

/// An app whose workers keep CDRs for [`RAW_MONTHS`] and rollups for [`ROLLUP_MONTHS`]; the
/// API itself keeps no retention, so old records can be stored for retention to find.
async fn app_with_retention() -> TestApp {
    let mut app = TestApp::new().await;
    app.worker_env.push(("CDR_RETENTION_MONTHS".into(), RAW_MONTHS.to_string()));
    app.worker_env.push(("CDR_ROLLUP_RETENTION_MONTHS".into(), ROLLUP_MONTHS.to_string()));
    app
}

/// 3 calls 30 months ago (past both retentions), 4 calls 15 months ago (CDRs expired, rollups
/// kept), 5 two months ago and 2 this month; and one call in progress as the rollups' oldest
/// month kept begins, which starts in a month whose rollups expire.
async fn load(app: &TestApp) {
    let mut all = calls(30, 0, 3);
    let mut spanning = answered_cdr(900);
    let fields = spanning.as_object_mut().expect("object");
    fields.remove("answer_time");
    fields.remove("end_time");
    spanning["start_time"] =
        json!((retention_month_start(ROLLUP_MONTHS) - chrono::Duration::seconds(30)).to_rfc3339());
    spanning["duration"] = json!(60);
    spanning["billsec"] = json!(60);
    all.push(spanning);
    all.extend(calls(15, 100, 4));
    all.extend(calls(2, 200, 5));
    all.extend(calls(0, 300, 2));
    let body = app.ingest(&Value::Array(all)).await;
    app.wait_succeeded(body["job_id"].as_str().expect("id")).await;
    app.wait_in_sync(Duration::from_secs(60)).await;
    eventually(Duration::from_secs(30), "rollup sums folded", || async {
        let n = app.count("SELECT count(*) FROM kpi_pending").await;
        if n == 0 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
}

async fn run(app: &TestApp, query: &str) -> Value {
    let resp = app.client.post(format!("/retention{query}")).send().await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let body = resp.json().await.value().deserialize::<Value>();
    app.wait_succeeded(body["job_id"].as_str().expect("id")).await
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    app.client.get(path).send().await.json().await.value().deserialize::<Value>()
}

async fn exists(app: &TestApp, month: NaiveDate) -> bool {
    app.count(&format!("SELECT count(*) FROM pg_class WHERE relname = '{}'", partition_name(month))).await
        == 1
}

async fn rollup_days_before(app: &TestApp, month: NaiveDate) -> i64 {
    app.count(&format!("SELECT count(*) FROM kpi_day WHERE bucket < '{month}T00:00:00Z'")).await
}

#[tokio::test]
async fn a_dry_run_lists_what_would_go_and_the_run_removes_only_that() {
    let mut app = app_with_retention().await;
    app.start_worker().await;
    load(&app).await;
    let (raw_first, rollup_first) = (month_ago(RAW_MONTHS), month_ago(ROLLUP_MONTHS));
    let days_kept_before =
        rollup_days_before(&app, raw_first).await - rollup_days_before(&app, rollup_first).await;
    assert!(days_kept_before > 0, "the load has rollups between both cut-offs");

    let dry = run(&app, "?dry_run=true").await;
    let report = &dry["retention"];
    assert_eq!((&dry["kind"], &report["dry_run"]), (&json!("retention"), &json!(true)), "{dry}");
    assert_eq!(report["raw_kept_from"], json!(raw_first.to_string()), "{dry}");
    assert_eq!(report["rollups_kept_from"], json!(rollup_first.to_string()), "{dry}");
    let listed: Vec<(String, i64)> = report["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| (p["partition"].as_str().unwrap_or_default().to_string(), p["rows"].as_i64().unwrap_or(-1)))
        .collect();
    let expected = vec![
        (partition_name(month_ago(30)), 3),
        (partition_name(month_ago(ROLLUP_MONTHS + 1)), 1),
        (partition_name(month_ago(15)), 4),
    ];
    assert_eq!(listed, expected, "{dry}");
    assert_eq!(report["index_documents"], 8, "{dry}");
    let search = app.search();
    let expired_indices: Vec<String> =
        [30, ROLLUP_MONTHS + 1, 15].iter().map(|m| search.month_index(month_ago(*m), "initial")).collect();
    assert_eq!(report["indices"], json!(expired_indices), "{dry}");
    assert!(report["rollup_rows"].as_u64().unwrap_or(0) > 0, "{dry}");
    // Nothing changed.
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 15);
    assert!(exists(&app, month_ago(30)).await && exists(&app, month_ago(15)).await);
    assert!(rollup_days_before(&app, rollup_first).await > 0);

    let done = run(&app, "").await;
    let report = &done["retention"];
    assert_eq!(report["dry_run"], false, "{done}");
    assert_eq!(report["partitions"][2]["rows"], 4, "{done}");
    assert_eq!(report["index_documents"], 8, "{done}");
    assert_eq!(report["indices"], json!(expired_indices), "{done}");
    for index in &expired_indices {
        let gone = search.request(elasticsearch::http::Method::Head, &format!("/{index}"), None).await;
        assert!(gone.is_err(), "{index} is deleted");
    }
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 7, "only the expired months went");
    assert!(!exists(&app, month_ago(30)).await && !exists(&app, month_ago(15)).await);
    assert!(
        exists(&app, month_ago(2)).await && exists(&app, month_ago(0)).await,
        "months kept are untouched"
    );
    for ahead in 1..=2 {
        assert!(
            exists(&app, add_months(month_of(Utc::now()), ahead)).await,
            "partition {ahead} months ahead"
        );
    }
    // The index and the stored total follow the rows.
    let status = app.wait_in_sync(Duration::from_secs(30)).await;
    assert_eq!((&status["database_count"], &status["index_count"]), (&json!(7), &json!(7)), "{status}");
    assert_eq!(app.count(jobs::rollups::TOTAL_SQL).await, 7);
    // Rollups go by their own, longer retention: the 15-month-old calls still count in /stats.
    assert_eq!(rollup_days_before(&app, rollup_first).await, 0);
    assert_eq!(rollup_days_before(&app, raw_first).await, days_kept_before);
    let from = month_ago(15);
    let to = add_months(from, 1);
    let stats = get_json(&app, &format!("/stats?from={from}T00:00:00Z&to={to}T00:00:00Z")).await;
    assert_eq!((&stats["answered_by"], &stats["total_calls"]), (&json!("rollups"), &json!(4)), "{stats}");
    // Peak concurrency at the oldest rollup month kept still counts the call in progress as
    // it began: the deleted hours' net change is carried, not lost.
    let first_day = rollup_first.succ_opt().expect("a day");
    let peak =
        get_json(&app, &format!("/stats?from={rollup_first}T00:00:00Z&to={first_day}T00:00:00Z&peak=true"))
            .await;
    assert_eq!(
        (&peak["answered_by"], &peak["peak_concurrent_calls"]["calls"]),
        (&json!("rollups"), &json!(1)),
        "{peak}"
    );

    // A second run finds nothing more to remove.
    let again = run(&app, "").await;
    assert_eq!(again["retention"]["partitions"], json!([]), "{again}");
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 7);
    app.cleanup().await;
}

#[tokio::test]
async fn a_run_killed_between_detaching_and_dropping_finishes_on_redelivery() {
    let mut app = app_with_retention().await;
    app.start_crashing_worker("retention-after-detach").await;
    load(&app).await;
    let resp = app.client.post("/retention").send().await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let id = resp.json().await.value().deserialize::<Value>()["job_id"].as_str().expect("id").to_string();
    app.wait_worker_died(Duration::from_secs(60)).await;
    // Detached, not yet dropped: the rows are out of `cdrs` but the table is still there.
    assert!(exists(&app, month_ago(30)).await);

    app.start_worker().await;
    let job = app.wait_succeeded(&id).await;
    assert!(job["attempts"].as_u64().unwrap_or(0) >= 2, "{job}");
    assert!(!exists(&app, month_ago(30)).await && !exists(&app, month_ago(15)).await);
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 7);
    assert_eq!(app.count(jobs::rollups::TOTAL_SQL).await, 7, "the total lowered once per month dropped");
    let status = app.wait_in_sync(Duration::from_secs(30)).await;
    assert_eq!(status["index_count"], 7, "{status}");
    app.cleanup().await;
}

/// Every worker follows the schedule; each tick must still run once for the deployment.
#[tokio::test]
async fn the_schedule_queues_each_tick_once_with_two_workers() {
    let mut app = app_with_retention().await;
    app.worker_env.push(("CDR_RETENTION_SCHEDULE".into(), "*/2 * * * * *".into()));
    app.worker_env.push(("CDR_LOG_JSON".into(), "true".into()));
    app.start_worker().await;
    app.start_another_worker().await;
    let log = app.worker_log();
    // The retention job ids of the log lines whose message is `what`.
    let ids = |what: &str| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["fields"]["message"] == what && l["fields"]["queue"] == "maintenance")
            .filter_map(|l| l["fields"]["job_id"].as_str().map(str::to_string))
            .collect::<Vec<String>>()
    };
    let queued =
        eventually(Duration::from_secs(60), "four ticks queued, and seen by both workers", || async {
            let queued = ids("scheduled job queued for this tick");
            let deferred = ids("scheduled job of this tick already queued by another worker");
            if queued.len() >= 4 && !deferred.is_empty() {
                Ok(queued)
            } else {
                Err(format!("{queued:?} {deferred:?}"))
            }
        })
        .await;
    let mut distinct = queued.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), queued.len(), "a tick was queued twice: {queued:?}");
    for id in queued.iter().take(3) {
        let job = app.wait_succeeded(id).await;
        assert_eq!((&job["kind"], &job["attempts"]), (&json!("retention"), &json!(1)), "ran once: {job}");
    }
    app.cleanup().await;
}
