//! Accepted batches end up in PostgreSQL exactly once, with the right values.

use crate::common::{TestApp, answered_cdr, batch};
use serde_json::json;

#[tokio::test]
async fn a_batch_is_stored_with_utc_times_and_derived_fields() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let unanswered = json!({
        "uniqueid": "ast-1709287200.42", "source": "pbx-test", "src": "100", "dst": "*97",
        "start": "2026-03-01 08:30:00", "end": "2026-03-01 08:30:20", "disposition": "NO ANSWER"
    });
    let reference = json!({
        "src_number": "5551234", "dest_number": "5556789", "call_duration": 42,
        "call_successful": true, "start_time": "2026-03-01T09:00:00Z",
        "end_time": "2026-03-01T09:00:42Z", "timestamp": "2026-03-01T09:00:43Z"
    });
    let accepted = app.ingest(&json!({ "cdrs": [answered_cdr(1), unanswered, reference] })).await;
    assert_eq!(accepted["status"], "enqueued");
    assert_eq!(accepted["accepted"], 3);
    assert_eq!(accepted["rejected"], json!([]));
    let id = accepted["job_id"].as_str().expect("job id");

    let job = app.wait_succeeded(id).await;
    assert_eq!(job["kind"], "ingest");
    assert_eq!(
        job["counts"],
        json!({"received": 3, "rejected": 0, "inserted": 3, "duplicates": 0, "indexed": 0, "refused": 0})
    );
    assert!(job["attempts"].as_u64() >= Some(1));
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());

    // +02:00 input is stored as UTC.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE call_id = 'call-1' AND start_time = '2026-03-01T08:00:00Z'
             AND answer_time = '2026-03-01T08:00:07Z' AND end_time = '2026-03-01T08:02:07Z'
             AND duration = 127 AND billsec = 120 AND disposition = 'ANSWERED' AND call_successful
             AND source = 'pbx-test' AND src_number = '+14155550001' AND dest_number = '44207000001'
             AND hangup_cause = 'NORMAL_CLEARING' AND direction = 'outbound' AND account_code = 'acme'
             AND job_id = '{id}'"
                .replace("{id}", id)
                .as_str()
        )
        .await,
        1
    );
    // Zone-less input is UTC; an unanswered call has no answer time and no billsec.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE call_id = 'ast-1709287200.42' AND dest_number = '*97'
             AND start_time = '2026-03-01T08:30:00Z' AND answer_time IS NULL AND duration = 20
             AND billsec = 0 AND NOT call_successful AND disposition = 'NO ANSWER'
             AND hangup_cause IS NULL"
        )
        .await,
        1
    );
    // The reference shape: derived call id, talk time from call_duration, unknown fields kept,
    // no answer time invented.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE call_id LIKE 'derived-%' AND source = 'default'
             AND duration = 42 AND billsec = 42 AND disposition = 'ANSWERED'
             AND answer_time IS NULL AND extra->>'timestamp' = '2026-03-01T09:00:43Z'"
        )
        .await,
        1
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_same_batch_twice_is_stored_once_and_counted_as_duplicates() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let body = batch(0..500);
    let first = app.ingest(&body).await;
    app.wait_succeeded(first["job_id"].as_str().expect("id")).await;
    let second = app.ingest(&body).await;
    let job = app.wait_succeeded(second["job_id"].as_str().expect("id")).await;
    assert_eq!(job["counts"]["inserted"], 0);
    assert_eq!(job["counts"]["duplicates"], 500);
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 500);
    app.cleanup().await;
}

#[tokio::test]
async fn ndjson_batches_and_charset_parameters_are_accepted() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let lines: String = (0..3).map(|n| format!("{}\r\n", answered_cdr(n))).collect();
    let resp = app.post_raw("application/x-ndjson", lines.into_bytes()).await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let body = resp.json().await.value().deserialize::<serde_json::Value>();
    app.wait_succeeded(body["job_id"].as_str().expect("id")).await;

    let resp = app
        .post_raw("Application/JSON; charset=utf-8", serde_json::to_vec(&batch(10..12)).expect("json"))
        .await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let body = resp.json().await.value().deserialize::<serde_json::Value>();
    app.wait_succeeded(body["job_id"].as_str().expect("id")).await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 5);
    app.cleanup().await;
}

#[tokio::test]
async fn the_worker_stops_cleanly_on_sigterm() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let accepted = app.ingest(&batch(0..10)).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    let status = app.stop_worker().await;
    assert!(status.success(), "{status:?}");
    app.cleanup().await;
}

/// Two deliveries of one job racing (a broker redelivery while the first worker still
/// runs): the rows go in once and both report the counts of the commit that stored them.
#[tokio::test]
async fn two_deliveries_of_one_job_racing_store_it_once() {
    let app = TestApp::new().await;
    let records: Vec<_> = (0..2_000).map(answered_cdr).collect();
    let (parsed, errors) = jobs::cdr::parse_records(&records, "pbx-test");
    assert!(errors.is_empty(), "{errors:?}");
    let cdrs: Vec<_> = parsed.into_iter().map(|(_, cdr)| cdr).collect();
    let store = jobs::store::CdrStore::new(app.db.clone());
    let (a, b) = tokio::join!(store.store_batch("job-race", &cdrs), store.store_batch("job-race", &cdrs));
    let (a, b) = (a.expect("first delivery"), b.expect("second delivery"));
    assert_eq!((a.inserted, a.duplicates), (2_000, 0));
    assert_eq!((b.inserted, b.duplicates), (2_000, 0));
    assert!(a.replayed != b.replayed, "exactly one delivery committed: {a:?} {b:?}");
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 2_000);
    assert_eq!(app.count("SELECT count(*) FROM ingest_batches WHERE job_id = 'job-race'").await, 1);
    app.cleanup().await;
}
