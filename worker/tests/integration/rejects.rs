//! Bad input gets a clear 4xx naming the record and field; nothing invalid is stored.

use crate::common::{TestApp, answered_cdr, batch};
use api::cli::Limits;
use poem::http::StatusCode;
use serde_json::{Value, json};

async fn error_body(resp: poem::test::TestResponse) -> Value {
    resp.json().await.value().deserialize::<Value>()
}

#[tokio::test]
async fn invalid_records_are_listed_and_valid_ones_stored() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let mut bad_number = answered_cdr(2);
    bad_number["duration"] = json!(-1);
    let mut backwards = answered_cdr(3);
    backwards["end_time"] = json!("2026-03-01T09:00:00+02:00");
    let body = json!([answered_cdr(1), bad_number, backwards, "not a record"]);
    let accepted = app.ingest(&body).await;
    assert_eq!(accepted["accepted"], 1);
    let rejected = accepted["rejected"].as_array().expect("rejected list");
    let summary: Vec<(u64, &str, Option<&str>)> = rejected
        .iter()
        .map(|r| {
            (r["index"].as_u64().expect("index"), r["field"].as_str().expect("field"), r["call_id"].as_str())
        })
        .collect();
    assert_eq!(
        summary,
        vec![(1, "duration", Some("call-2")), (2, "end_time", Some("call-3")), (3, "record", None)]
    );
    assert!(rejected.iter().all(|r| !r["reason"].as_str().unwrap_or("").is_empty()));

    let job = app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    assert_eq!(job["counts"]["received"], 4);
    assert_eq!(job["counts"]["rejected"], 3);
    assert_eq!(job["counts"]["inserted"], 1);
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE call_id = 'call-1'").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn refusals_use_the_shared_error_body_and_status() {
    let limits = Limits { max_batch_records: 5, max_body_bytes: 4096, ..Limits::default() };
    let app = TestApp::with_limits(limits).await;

    let mut bad = answered_cdr(1);
    bad["billsec"] = json!(-3);
    let resp = app.post_json(&json!([bad, {"src_number": "1"}])).await;
    resp.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let body = error_body(resp).await;
    assert_eq!(body["code"], "invalid_records");
    let fields: Vec<&str> =
        body["rejected"].as_array().expect("list").iter().filter_map(|r| r["field"].as_str()).collect();
    assert_eq!(fields, vec!["billsec", "start_time"]);

    let resp = app.post_raw("application/json", b"[{\"call_id\": ".to_vec()).await;
    resp.assert_status(StatusCode::BAD_REQUEST);
    let body = error_body(resp).await;
    assert_eq!(body["code"], "malformed_body");
    assert!(body["message"].as_str().expect("message").contains("JSON"));

    for (payload, code) in [
        (b"[]".to_vec(), "empty_batch"),
        (b"\"x\"".to_vec(), "wrong_shape"),
        // Not UTF-8: decoded as Windows-1252 (`[ÿ]`), which is not JSON.
        (vec![b'[', 0xff, b']'], "malformed_body"),
    ] {
        let resp = app.post_raw("application/json", payload).await;
        resp.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(error_body(resp).await["code"], code);
    }

    let resp = app.post_json(&batch(0..6)).await;
    resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_body(resp).await["code"], "too_many_records");

    let huge = json!([{ "extra": { "blob": "x".repeat(5000) } }]);
    let resp = app.post_json(&huge).await;
    resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_body(resp).await["code"], "body_too_large");

    let resp = app.post_raw("text/plain", b"hello".to_vec()).await;
    resp.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_body(resp).await["code"], "unsupported_media_type");

    let resp = app.client.get("/jobs/01h0000000000000000000000").send().await;
    resp.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(error_body(resp).await["code"], "not_found");

    let resp = app.client.get("/no/such/route").send().await;
    resp.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(error_body(resp).await["code"], "not_found");

    // Nothing refused reached the database.
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 0);
    app.cleanup().await;
}
