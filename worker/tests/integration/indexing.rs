//! Stored rows reach the search index exactly once, whatever is lost on the way.

use crate::common::{TestApp, batch};
use elasticsearch::http::Method;
use jobs::store::CdrStore;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn after_an_ingest_job_its_index_job_makes_every_row_searchable() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let accepted = app.ingest(&batch(0..1200)).await;
    let job = app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    let index_job_id = job["index_job_id"].as_str().expect("ingest job names its index job").to_string();
    let index_job = app.wait_succeeded(&index_job_id).await;
    assert_eq!(index_job["kind"], "index");
    assert_eq!(index_job["counts"]["indexed"], 1200);

    let search = app.search();
    search.refresh(None).await.expect("refresh");
    let ids: Vec<String> = (0..1200).map(|n| format!("call-{n}")).collect();
    let found = search
        .request(
            Method::Post,
            &format!("/{}/_search", search.alias()),
            Some(json!({ "size": 0, "track_total_hits": true, "query": { "terms": { "call_id": ids } } })),
        )
        .await
        .expect("search");
    assert_eq!(found["hits"]["total"]["value"], 1200);
    assert_eq!(search.count(None).await.expect("count"), 1200);
    assert_eq!(app.count("SELECT count(*) FROM ingest_batches WHERE indexed_at IS NULL").await, 0);
    let status = app.wait_in_sync(Duration::from_secs(10)).await;
    assert_eq!(status["database_count"], 1200);
    assert_eq!(status["index_count"], 1200);
    assert!(status["last_indexed_at"].is_string());
    app.cleanup().await;
}

#[tokio::test]
async fn rows_whose_index_job_was_lost_are_found_by_the_sweeper() {
    let mut app = TestApp::new().await;
    // Rows committed with no index job at all: the state a crash between storing and
    // queueing indexing, or a purged index queue, leaves behind.
    let cdrs: Vec<_> = (0..700)
        .map(|n| jobs::cdr::parse_record(n, &crate::common::answered_cdr(n), "s").expect("valid"))
        .collect();
    CdrStore::new(app.db.clone()).store_batch("lost-index-job", &cdrs).await.expect("store");

    let behind = app.sync_status().await;
    assert_eq!(behind["database_count"], 700);
    assert_eq!(behind["backlog"], 700);
    assert_eq!(behind["in_sync"], false);
    assert!(behind["oldest_unindexed_age_seconds"].as_f64().expect("age") >= 0.0);

    app.start_worker().await;
    let after = app.wait_in_sync(Duration::from_secs(60)).await;
    assert_eq!(after["backlog"], 0);
    assert_eq!(after["index_count"], 700);
    assert!(after["oldest_unindexed_age_seconds"].is_null());
    app.cleanup().await;
}

#[tokio::test]
async fn reindex_swaps_the_alias_while_searches_keep_complete_answers() {
    const ROWS: u64 = 12_000;
    let mut app = TestApp::new().await;
    app.worker_env.push(("CDR_INDEX_CHUNK".into(), "1000".into()));
    app.start_worker().await;
    for b in 0..3 {
        let accepted = app.ingest(&batch(b * 4000..(b + 1) * 4000)).await;
        app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    }
    app.wait_in_sync(Duration::from_secs(60)).await;
    let search = app.search();
    let before = search.alias_targets().await.expect("alias").expect("alias exists");

    // Searches run throughout the rebuild; every one must see every row.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (search, stop) = (search.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answers = 0_u64;
            // A search every 5 ms at most: a steady stream of readers, not a busy loop.
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                pace.tick().await;
                let n = search.count(None).await.expect("a search failed during the rebuild");
                assert_eq!(n, ROWS, "a search saw a partial index");
                answers += 1;
            }
            answers
        })
    };

    let resp = app.client.post("/reindex").send().await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let body = resp.json().await.value().deserialize::<serde_json::Value>();
    let id = body["job_id"].as_str().expect("id").to_string();
    let second = app.client.post("/reindex").send().await;
    second.assert_status(poem::http::StatusCode::CONFLICT);
    let conflict = second.json().await.value().deserialize::<serde_json::Value>();
    assert_eq!(conflict["code"], "reindex_running");

    let job = app.wait_succeeded(&id).await;
    assert_eq!(job["kind"], "reindex");
    assert_eq!(job["counts"]["indexed"], ROWS);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = watcher.await.expect("searches kept answering");
    assert!(answers > 0);

    let after = search.alias_targets().await.expect("alias").expect("alias exists");
    // Every row starts in March 2026: one month, one index.
    assert_eq!(after, vec![format!("{}-2026-03-{id}", search.alias())]);
    for old in &before {
        let gone = search.request(Method::Head, &format!("/{old}"), None).await;
        assert!(gone.is_err(), "old index {old} still exists");
    }
    assert_eq!(search.count(None).await.expect("count"), ROWS);
    // Another rebuild may start once this one is done.
    app.client.post("/reindex").send().await.assert_status(poem::http::StatusCode::ACCEPTED);
    app.cleanup().await;
}

/// A month's rebuild replaces that month's index alone; writes to the month then land in
/// its new index, and a month that had no index gets one with the mapping.
#[tokio::test]
async fn a_months_rebuild_replaces_that_months_index_alone() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let in_month = |n: usize, start: &str| {
        let mut cdr = crate::common::answered_cdr(n);
        cdr["start_time"] = serde_json::json!(start);
        let fields = cdr.as_object_mut().expect("object");
        fields.remove("answer_time");
        fields.remove("end_time");
        cdr["duration"] = serde_json::json!(30);
        cdr
    };
    let rows: Vec<_> = (0..30)
        .map(|n| in_month(n, if n % 3 == 0 { "2026-02-10T10:00:00Z" } else { "2026-03-10T10:00:00Z" }))
        .collect();
    let accepted = app.ingest(&serde_json::Value::Array(rows)).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    app.wait_in_sync(Duration::from_secs(60)).await;
    let search = app.search();
    let mut before = search.alias_targets().await.expect("alias").expect("alias exists");
    before.sort();
    let alias = search.alias().to_string();
    assert!(before.contains(&format!("{alias}-2026-02-initial")), "{before:?}");
    assert!(before.contains(&format!("{alias}-2026-03-initial")), "{before:?}");

    let bad = app.client.post("/reindex?month=2026-3").send().await;
    bad.assert_status(poem::http::StatusCode::BAD_REQUEST);
    let resp = app.client.post("/reindex?month=2026-03").send().await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let id = resp.json().await.value().deserialize::<serde_json::Value>()["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let job = app.wait_succeeded(&id).await;
    assert_eq!(job["counts"]["indexed"], 20, "March's rows alone: {job}");
    let mut after = search.alias_targets().await.expect("alias").expect("alias exists");
    after.sort();
    let expected: Vec<String> = before
        .iter()
        .map(|i| {
            if i.starts_with(&format!("{alias}-2026-03-")) {
                format!("{alias}-2026-03-{id}")
            } else {
                i.clone()
            }
        })
        .collect();
    assert_eq!(after, expected);
    let gone = search.request(Method::Head, &format!("/{alias}-2026-03-initial"), None).await;
    assert!(gone.is_err(), "March's old index is deleted");
    assert_eq!(search.count(None).await.expect("count"), 30);

    // March's writes now go to its new index; April gets an index of its own.
    let more = app
        .ingest(&serde_json::json!([
            in_month(100, "2026-03-20T10:00:00Z"),
            in_month(101, "2026-04-02T10:00:00Z")
        ]))
        .await;
    app.wait_succeeded(more["job_id"].as_str().expect("id")).await;
    app.wait_in_sync(Duration::from_secs(60)).await;
    search.refresh(None).await.expect("refresh");
    assert_eq!(search.count(Some(&format!("{alias}-2026-03-{id}"))).await.expect("count"), 21);
    let april =
        search.request(Method::Get, &format!("/{alias}-2026-04/_mapping"), None).await.expect("April");
    let index = april.as_object().and_then(|m| m.values().next()).expect("one index");
    assert_eq!(index["mappings"]["dynamic"], "strict", "{april}");
    app.cleanup().await;
}
