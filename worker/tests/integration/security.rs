//! Who may call what, how the API pushes back, failed jobs and their replay, hostile input.

use crate::common::{TestApp, answered_cdr, batch, eventually};
use api::cli::Limits;
use jobs::ingest::IngestJob;
use jobs::queue::{Outgoing, Topology};
use poem::http::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const INGEST: &str = "ingest-token-0123456789";
const READ: &str = "read-token-0123456789ab";
const ADMIN: &str = "admin-token-0123456789a";

fn tokens() -> String {
    format!("ingest:{INGEST},read:{READ},admin:{ADMIN}")
}

async fn body(resp: poem::test::TestResponse) -> Value {
    resp.json().await.value().deserialize::<Value>()
}

#[tokio::test]
async fn tokens_and_roles_guard_every_route() {
    let app = TestApp::with_auth(&tokens()).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let cdrs = serde_json::to_vec(&batch(0..2)).expect("json");

    let resp = app.client.post("/cdrs").content_type("application/json").body(cdrs.clone()).send().await;
    resp.assert_status(StatusCode::UNAUTHORIZED);
    resp.assert_header("WWW-Authenticate", "Bearer");
    assert_eq!(body(resp).await["code"], "unauthorized");

    let resp = app
        .client
        .post("/cdrs")
        .header("Authorization", bearer("ingest-token-0123456788"))
        .content_type("application/json")
        .body(cdrs.clone())
        .send()
        .await;
    resp.assert_status(StatusCode::UNAUTHORIZED);

    let resp = app
        .client
        .post("/cdrs")
        .header("Authorization", bearer(READ))
        .content_type("application/json")
        .body(cdrs.clone())
        .send()
        .await;
    resp.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(body(resp).await["code"], "forbidden");

    let resp = app
        .client
        .post("/cdrs")
        .header("Authorization", bearer(INGEST))
        .content_type("application/json")
        .body(cdrs)
        .send()
        .await;
    resp.assert_status(StatusCode::ACCEPTED);
    let job = body(resp).await["job_id"].as_str().expect("id").to_string();
    // A producer may follow its own jobs.
    app.client
        .get(format!("/jobs/{job}"))
        .header("Authorization", bearer(INGEST))
        .send()
        .await
        .assert_status_is_ok();

    for (path, token, status) in [
        ("/search", INGEST, StatusCode::FORBIDDEN),
        ("/search", READ, StatusCode::OK),
        ("/stats", ADMIN, StatusCode::OK),
        ("/sync-status", READ, StatusCode::OK),
        ("/jobs?status=failed", READ, StatusCode::OK),
    ] {
        let resp = app.client.get(path).header("Authorization", bearer(token)).send().await;
        assert_eq!(resp.0.status(), status, "{path} with {token}");
    }
    let resp = app.client.post("/reindex").header("Authorization", bearer(READ)).send().await;
    resp.assert_status(StatusCode::FORBIDDEN);
    for open in ["/healthz", "/readyz", "/schema", "/schema/swagger-ui", "/metrics"] {
        let resp = app.client.get(open).send().await;
        assert_eq!(resp.0.status(), StatusCode::OK, "{open} should stay open");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_deep_queue_is_answered_with_429_and_retry_after() {
    let limits = Limits { max_queue_depth: 0, ..Limits::default() };
    let app = TestApp::build(limits, api::auth::Auth::disabled()).await;
    // No worker runs: the first batch waits in the queue, the next one is pushed back.
    app.ingest(&batch(0..5)).await;
    // The broker counts a just-confirmed message a moment later.
    let resp = eventually(Duration::from_secs(10), "never pushed back", || async {
        let resp = app.post_json(&batch(5..10)).await;
        let status = resp.0.status();
        if status == StatusCode::TOO_MANY_REQUESTS { Ok(resp) } else { Err(status.to_string()) }
    })
    .await;
    resp.assert_header("Retry-After", "5");
    assert_eq!(body(resp).await["code"], "overloaded");
    // Single-CDR posts (batched into shared jobs) are pushed back the same way, so
    // FreeSWITCH's mod_json_cdr retries them.
    let doc = jobs::cdr::formats::freeswitch_json::example("pushed-back", "1", "2", 1_700_000_000_000_000, 5);
    let resp = eventually(Duration::from_secs(10), "single posts never pushed back", || async {
        let resp = app
            .client
            .post("/cdrs/freeswitch")
            .content_type("application/json")
            .body(doc.to_string())
            .send()
            .await;
        let status = resp.0.status();
        if status == StatusCode::TOO_MANY_REQUESTS { Ok(resp) } else { Err(status.to_string()) }
    })
    .await;
    resp.assert_header("Retry-After", "5");
    assert_eq!(body(resp).await["code"], "overloaded");
    app.cleanup().await;
}

#[tokio::test]
async fn failed_jobs_are_listed_and_can_be_replayed() {
    let mut app = TestApp::new().await;
    // A valid job that ran out of attempts: its message waits in the dead-letter queue.
    let cdrs: Vec<_> =
        (0..20).map(|n| jobs::cdr::parse_record(n, &answered_cdr(n), "s").expect("valid")).collect();
    let job = IngestJob {
        job_id: jobs::new_job_id(),
        enqueued_at: chrono::Utc::now(),
        received: 20,
        rejected: 0,
        cdrs,
    };
    let store = jobs::state::JobStore::connect(&app.settings.redis_url, &app.name, Duration::from_secs(600))
        .await
        .expect("redis");
    store.create(&job.initial_state()).await.expect("state");
    store
        .mark_failed(
            &job.job_id,
            jobs::error_code::ErrorCode::DatabaseUnavailable,
            "gave up after 10 attempts: database unavailable",
        )
        .await
        .expect("failed");
    // The list of failed jobs expires with them, and forgets failures older than the TTL.
    let mut redis = redis::Client::open(app.settings.redis_url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let failed_key = format!("{}:failed", app.name);
    let ttl: i64 = redis::cmd("TTL").arg(&failed_key).query_async(&mut redis).await.expect("ttl");
    assert!((1..=600).contains(&ttl), "TTL {ttl}");
    let old = chrono::Utc::now().timestamp_millis() - 3_600_000;
    redis::cmd("ZADD")
        .arg(&failed_key)
        .arg(old)
        .arg("long-gone")
        .query_async::<()>(&mut redis)
        .await
        .expect("zadd");
    store
        .mark_failed(
            &job.job_id,
            jobs::error_code::ErrorCode::DatabaseUnavailable,
            "gave up after 10 attempts: database unavailable",
        )
        .await
        .expect("failed");
    let members: Vec<String> =
        redis::cmd("ZRANGE").arg(&failed_key).arg(0).arg(-1).query_async(&mut redis).await.expect("zrange");
    assert!(!members.contains(&"long-gone".to_string()), "{members:?}");
    let topology = Topology::new(&app.name);
    let publisher = jobs::queue::Publisher::new(&app.settings.amqp_url, topology.clone());
    let payload = serde_json::to_vec(&job).expect("json");
    publisher.queue_depth(&topology.queue("ingest")).await.expect("topology declared");
    for (id, body) in [("someone-else", &b"{}"[..]), (job.job_id.as_str(), &payload[..])] {
        publisher
            .publish(Outgoing {
                queue: &Topology::dead(&topology.queue("ingest")),
                message_id: id,
                body,
                headers: Default::default(),
            })
            .await
            .expect("publish");
    }

    let listed = body(app.client.get("/jobs?status=failed").send().await).await;
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], job.job_id.as_str());
    assert!(items[0]["error"].as_str().expect("error").contains("gave up"));
    app.client.get("/jobs?status=running").send().await.assert_status(StatusCode::BAD_REQUEST);

    app.start_worker().await;
    let resp = app.client.post(format!("/jobs/{}/retry", job.job_id)).send().await;
    resp.assert_status(StatusCode::ACCEPTED);
    let done = app.wait_succeeded(&job.job_id).await;
    assert_eq!(done["counts"]["inserted"], 20);
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 20);
    // The other dead message stayed; the replayed one left the dead-letter queue.
    assert_eq!(publisher.queue_depth(&Topology::dead(&topology.queue("ingest"))).await.expect("depth"), 1);
    let listed = body(app.client.get("/jobs?status=failed").send().await).await;
    assert_eq!(listed["items"], json!([]));

    let again = app.client.post(format!("/jobs/{}/retry", job.job_id)).send().await;
    again.assert_status(StatusCode::CONFLICT);
    app.client.post("/jobs/nosuchjob/retry").send().await.assert_status(StatusCode::NOT_FOUND);
    app.cleanup().await;
}

#[tokio::test]
async fn hostile_input_never_gets_a_5xx_and_text_is_stored_verbatim() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let raw_cases: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", br#"[{"duration": 1e400}]"#.to_vec()),
        ("application/json", format!("{}1{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes()),
        ("application/json", b"\xc3\x28".to_vec()),
        ("application/json", b"{\"cdrs\": {\"not\": \"a list\"}}".to_vec()),
        ("application/x-ndjson", b"\x00\x01\x02".to_vec()),
        ("application/xml", b"<cdr/>".to_vec()),
    ];
    for (ct, payload) in raw_cases {
        let resp = app.post_raw(ct, payload).await;
        assert!(resp.0.status().is_client_error(), "{ct}: {}", resp.0.status());
    }
    let mut hostile = Vec::new();
    for (field, value) in [
        ("duration", json!(-5)),
        ("duration", json!(4_294_967_296_i64)),
        ("billsec", json!(1e300)),
        ("start_time", json!("0000-01-01T00:00:00Z")),
        ("end_time", json!("9999-12-31T23:59:59Z")),
        ("src_number", json!({"$gt": ""})),
        ("call_id", json!("x".repeat(300))),
        ("hangup_cause", json!("a\u{0}b")),
    ] {
        let mut cdr = answered_cdr(1);
        cdr[field] = value;
        hostile.push(cdr);
    }
    let resp = app.post_json(&Value::Array(hostile.clone())).await;
    resp.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let refused = body(resp).await;
    assert_eq!(refused["rejected"].as_array().expect("list").len(), hostile.len());

    // Strange but storable text goes in verbatim and comes back escaped as JSON.
    let mut odd = answered_cdr(7);
    odd["account_code"] = json!("'; DROP TABLE cdrs; -- \u{7}\t<script>\u{202e}");
    odd["dest_number"] = json!("1; DROP TABLE cdrs");
    let mut twin = answered_cdr(7);
    twin["hangup_cause"] = json!("SAME_CALL_ID");
    let accepted = app.ingest(&json!([odd.clone(), twin])).await;
    let job = app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    assert_eq!(
        (job["counts"]["inserted"].clone(), job["counts"]["duplicates"].clone()),
        (json!(1), json!(1))
    );
    app.wait_in_sync(Duration::from_secs(30)).await;
    let found = body(app.client.get("/search?call_id=call-7").send().await).await;
    assert_eq!(found["items"][0]["account_code"], odd["account_code"]);
    assert_eq!(found["items"][0]["dest_number"], odd["dest_number"]);
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 1);
    app.cleanup().await;
}
