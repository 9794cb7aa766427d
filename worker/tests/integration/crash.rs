//! A worker killed at each step of ingest, index and rebuild (crash points compiled in by
//! the `failpoints` feature the tests turn on): once a fresh worker has taken over, every
//! accepted CDR is stored once and indexed once, the alias serves one complete index, and
//! every job's state is final and right.

use crate::common::{TestApp, batch, eventually};
use elasticsearch::http::Method;
use serde_json::Value;
use std::time::Duration;

const ROWS: usize = 2500;
const DIE_WITHIN: Duration = Duration::from_secs(60);

/// What must hold once the pipeline has settled after a crash.
async fn assert_settled(app: &TestApp, ingest_job_id: &str, rows: usize) {
    let job = app.wait_succeeded(ingest_job_id).await;
    assert_eq!(job["counts"]["received"], rows, "{job}");
    assert_eq!(job["counts"]["inserted"], rows, "counts of the commit that stored the batch: {job}");
    assert_eq!(job["counts"]["duplicates"], 0, "{job}");
    let rows = i64::try_from(rows).expect("rows");
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, rows, "every accepted CDR stored");
    assert_eq!(
        app.count("SELECT count(DISTINCT (source, call_id, record_key)) FROM cdrs").await,
        rows,
        "none stored twice"
    );
    let status = app.wait_in_sync(Duration::from_secs(90)).await;
    assert_eq!(status["index_count"], rows, "indexed once: {status}");
    assert_eq!(status["refused"], 0, "{status}");
    assert_eq!(app.count("SELECT count(*) FROM ingest_batches WHERE indexed_at IS NULL").await, 0);
    let index_job = app.job(ingest_job_id).await.expect("job")["index_job_id"].as_str().map(str::to_string);
    let index_job = index_job.expect("the ingest job names its index job");
    let index_state = app.wait_succeeded(&index_job).await;
    assert_eq!(index_state["kind"], "index");
    assert_serving_complete_indices(app, rows).await;
    app.assert_rollups_match_rows().await;
}

/// The alias exists and serves month indices only, one per month, which hold every row
/// between them; answers them, sorted.
async fn assert_serving_complete_indices(app: &TestApp, rows: i64) -> Vec<String> {
    let search = app.search();
    let mut targets = search.alias_targets().await.expect("alias").expect("the alias exists");
    targets.sort();
    let months: Vec<_> = targets.iter().map(|i| search.month_of_index(i)).collect();
    assert!(months.iter().all(Option::is_some), "month indices only: {targets:?}");
    let mut distinct = months.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), months.len(), "one index per month: {targets:?}");
    search.refresh(None).await.expect("refresh");
    assert_eq!(search.count(None).await.expect("count"), u64::try_from(rows).expect("rows"));
    targets
}

/// Indices named for this test's alias.
async fn indices(app: &TestApp) -> Vec<String> {
    let search = app.search();
    let listed = search
        .request(Method::Get, &format!("/_cat/indices/{}-*?format=json&h=index", search.alias()), None)
        .await
        .expect("cat indices");
    let mut names: Vec<String> = listed
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["index"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Posts a batch to a worker that dies at `point`, then lets a healthy worker finish.
async fn ingest_crash(point: &str) {
    let mut app = TestApp::new().await;
    app.start_crashing_worker(point).await;
    let accepted = app.ingest(&batch(0..ROWS)).await;
    let job_id = accepted["job_id"].as_str().expect("job id").to_string();
    let died = app.wait_worker_died(DIE_WITHIN).await;
    assert!(!died.success(), "the worker aborted at {point}: {died:?}");
    app.start_worker().await;
    assert_settled(&app, &job_id, ROWS).await;
    app.cleanup().await;
}

#[tokio::test]
async fn crash_before_the_batch_is_stored() {
    ingest_crash("ingest-before-store").await;
}

#[tokio::test]
async fn crash_after_the_batch_committed() {
    ingest_crash("ingest-after-commit").await;
}

#[tokio::test]
async fn crash_after_the_index_job_was_queued() {
    ingest_crash("ingest-after-index-queued").await;
}

#[tokio::test]
async fn crash_before_the_ingest_job_is_acknowledged() {
    ingest_crash("ingest-before-ack").await;
}

#[tokio::test]
async fn crash_after_a_bulk_write_before_the_batch_is_marked() {
    ingest_crash("index-after-bulk").await;
}

#[tokio::test]
async fn crash_after_the_batch_is_marked_indexed() {
    ingest_crash("index-after-mark").await;
}

#[tokio::test]
async fn crash_before_the_index_job_is_acknowledged() {
    ingest_crash("index-before-ack").await;
}

/// Indexes a batch, then starts a rebuild on a worker that dies at `point`: the alias
/// serves a complete index the moment it died, and a healthy worker finishes the same job.
async fn reindex_crash(point: &str) {
    let mut app = TestApp::new().await;
    app.worker_env.push(("CDR_INDEX_CHUNK".into(), "500".into()));
    app.start_worker().await;
    let accepted = app.ingest(&batch(0..ROWS)).await;
    let ingest_job = accepted["job_id"].as_str().expect("job id").to_string();
    assert_settled(&app, &ingest_job, ROWS).await;
    app.kill_worker().await;
    let rows = i64::try_from(ROWS).expect("rows");

    app.start_crashing_worker(point).await;
    let resp = app.client.post("/reindex").send().await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let started: Value = resp.json().await.value().deserialize();
    let job_id = started["job_id"].as_str().expect("job id").to_string();
    let died = app.wait_worker_died(DIE_WITHIN).await;
    assert!(!died.success(), "the worker aborted at {point}: {died:?}");
    // Whatever step it died at, searches are answered from complete indices.
    assert_serving_complete_indices(&app, rows).await;

    app.start_worker().await;
    let done = app.wait_succeeded(&job_id).await;
    assert_eq!(done["kind"], "reindex");
    assert_eq!(done["counts"]["refused"], 0, "{done}");
    let serving = assert_serving_complete_indices(&app, rows).await;
    // Every row starts in March 2026: the rebuild made that month's index alone.
    let target = format!("{}-2026-03-{job_id}", app.settings.index_alias);
    assert_eq!(serving, std::slice::from_ref(&target), "the alias moved to the rebuilt index");
    // The index it replaced is gone; nothing else is left behind.
    let left = eventually(Duration::from_secs(30), "old indices deleted", || async {
        let left = indices(&app).await;
        if left == [target.clone()] { Ok(left) } else { Err(format!("{left:?}")) }
    })
    .await;
    assert_eq!(left, [target]);
    let status = app.wait_in_sync(Duration::from_secs(60)).await;
    assert_eq!(status["index_count"], rows);
    // A second rebuild may start: the lease was released.
    let again = app.client.post("/reindex").send().await;
    again.assert_status(poem::http::StatusCode::ACCEPTED);
    app.cleanup().await;
}

#[tokio::test]
async fn rebuild_crash_after_creating_its_index() {
    reindex_crash("reindex-after-create").await;
}

#[tokio::test]
async fn rebuild_crash_between_chunks() {
    reindex_crash("reindex-after-chunk").await;
}

#[tokio::test]
async fn rebuild_crash_just_before_the_alias_swap() {
    reindex_crash("reindex-before-swap").await;
}

#[tokio::test]
async fn rebuild_crash_just_after_the_alias_swap() {
    reindex_crash("reindex-after-swap").await;
}

#[tokio::test]
async fn rebuild_crash_after_deleting_the_old_index() {
    reindex_crash("reindex-after-delete").await;
}

#[tokio::test]
async fn rebuild_crash_before_its_acknowledgement() {
    reindex_crash("reindex-before-ack").await;
}

/// A rollup rebuild killed just before its commit leaves the sums as they were; the next
/// worker runs it again to the end.
#[tokio::test]
async fn rollup_rebuild_crash_before_its_commit() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let accepted = app.ingest(&batch(0..ROWS)).await;
    let job_id = accepted["job_id"].as_str().expect("job id").to_string();
    app.wait_succeeded(&job_id).await;
    app.count("WITH d AS (DELETE FROM cdrs WHERE call_id LIKE 'call-1%' RETURNING 1) SELECT count(*) FROM d")
        .await;
    let left = app.count("SELECT count(*) FROM cdrs").await;
    app.stop_worker().await;
    app.start_crashing_worker("rollup-rebuild-before-commit").await;
    let resp = app.client.post("/rollups/rebuild").send().await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let rebuild = resp.json().await.value().deserialize::<Value>();
    let died = app.wait_worker_died(DIE_WITHIN).await;
    assert!(!died.success(), "{died:?}");
    assert_eq!(
        app.count(jobs::rollups::TOTAL_SQL).await,
        i64::try_from(ROWS).expect("rows"),
        "nothing of the rebuild committed"
    );
    app.start_worker().await;
    app.wait_succeeded(rebuild["job_id"].as_str().expect("id")).await;
    assert_eq!(app.count(jobs::rollups::TOTAL_SQL).await, left);
    app.assert_rollups_match_rows().await;
    app.cleanup().await;
}

/// A worker killed while folding (every cuboid and minute row written, the commit not
/// reached) leaves the sums pending, counted once by readers; the next worker folds them.
#[tokio::test]
async fn crash_while_folding_rollups() {
    let mut app = TestApp::new().await;
    app.start_crashing_worker("rollup-fold-before-commit").await;
    let accepted = app.ingest(&batch(0..ROWS)).await;
    let job_id = accepted["job_id"].as_str().expect("job id").to_string();
    let died = app.wait_worker_died(DIE_WITHIN).await;
    assert!(!died.success(), "{died:?}");
    assert!(app.count("SELECT count(*) FROM kpi_pending").await > 0, "the fold's delete rolled back");
    assert_eq!(app.count("SELECT count(*) FROM kpi_minute").await, 0, "and its upserts with it");
    app.start_worker().await;
    eventually(Duration::from_secs(60), "pending sums folded by the next worker", || async {
        match app.count("SELECT count(*) FROM kpi_pending").await {
            0 => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;
    assert_settled(&app, &job_id, ROWS).await;
    assert_eq!(
        app.count("SELECT sum(attempts)::int8 FROM kpi_day").await,
        i64::try_from(ROWS).expect("rows")
    );
    app.cleanup().await;
}

/// A message that kills every worker that takes it is parked after a bounded number of
/// deliveries, with the reason and code in its state, instead of being delivered forever.
#[tokio::test]
async fn a_message_that_kills_every_worker_ends_in_its_dead_letter_queue() {
    let mut app = TestApp::new().await;
    app.worker_env.retain(|(k, _)| k != "CDR_MAX_ATTEMPTS");
    app.worker_env.push(("CDR_MAX_ATTEMPTS".into(), "2".into()));
    let accepted = app.ingest(&batch(0..10)).await;
    let job_id = accepted["job_id"].as_str().expect("job id").to_string();
    let allowance = 2 + jobs::queue::REDELIVERY_ALLOWANCE;
    for delivery in 1..=allowance {
        app.start_crashing_worker("ingest-before-store").await;
        let died = app.wait_worker_died(DIE_WITHIN).await;
        assert!(!died.success(), "delivery {delivery} killed the worker");
    }
    // The next delivery is refused before it can kill anything.
    app.start_crashing_worker("ingest-before-store").await;
    let job = app.wait_job(&job_id, Duration::from_secs(60), |j| j["status"] == "failed").await;
    assert_eq!(job["error_code"], "delivery_limit", "{job}");
    assert!(app.worker.as_mut().expect("worker").try_wait().expect("status").is_none(), "it kept running");
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 0);
    let listed: Value = app.client.get("/jobs?status=failed").send().await.json().await.value().deserialize();
    assert_eq!(listed["items"][0]["id"], job_id.as_str());
    // Replayed once the bug is gone, it is stored.
    app.kill_worker().await;
    app.start_worker().await;
    let resp = app.client.post(format!("/jobs/{job_id}/retry")).send().await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    app.wait_succeeded(&job_id).await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 10);
    app.cleanup().await;
}
