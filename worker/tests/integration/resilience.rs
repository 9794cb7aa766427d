//! Nothing lost, nothing stored twice: worker crashes, broker outages, poison jobs.

use crate::common::{TestApp, batch, eventually};
use api::cli::Limits;
use api::state::AppState;
use jobs::queue::Outgoing;
use poem::IntoEndpoint;
use poem::http::StatusCode;
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn a_worker_killed_mid_job_loses_and_duplicates_nothing() {
    const BATCHES: usize = 8;
    const PER_BATCH: usize = 10_000;
    let mut app = TestApp::new().await;
    app.worker_env.push(("CDR_WORKER_CONCURRENCY".into(), "2".into()));
    let mut ids = Vec::new();
    for b in 0..BATCHES {
        let accepted = app.ingest(&batch(b * PER_BATCH..(b + 1) * PER_BATCH)).await;
        ids.push(accepted["job_id"].as_str().expect("id").to_string());
    }
    app.start_worker().await;
    // Kill it once some work is committed but not all of it.
    let stored = eventually(Duration::from_secs(60), "worker never stored anything", || async {
        let stored = app.count("SELECT count(*) FROM cdrs").await;
        if stored > 0 { Ok(stored) } else { Err("no row".to_string()) }
    })
    .await;
    assert!(stored < (BATCHES * PER_BATCH) as i64, "worker finished before it could be killed");
    app.kill_worker().await;
    app.start_worker().await;

    let mut inserted = 0;
    for id in &ids {
        let job = app.wait_succeeded(id).await;
        inserted += job["counts"]["inserted"].as_u64().expect("inserted");
    }
    let total = (BATCHES * PER_BATCH) as i64;
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, total);
    assert_eq!(app.count("SELECT count(DISTINCT (source, call_id)) FROM cdrs").await, total);
    // Each job reports the rows it stored, even when redelivered after its commit.
    assert_eq!(inserted, total as u64);
    app.cleanup().await;
}

#[tokio::test]
async fn broker_unreachable_answers_503_and_leaves_no_job_behind() {
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    let state = AppState::connect(&settings, Limits::default()).await.expect("state");
    let client = poem::test::TestClient::new(api::app(state).into_endpoint());
    let resp = client
        .post("/cdrs")
        .content_type("application/json")
        .body(serde_json::to_vec(&batch(0..3)).expect("json"))
        .send()
        .await;
    resp.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    resp.assert_header("Retry-After", "5");
    let body = resp.json().await.value().deserialize::<Value>();
    assert_eq!(body["code"], "broker_unavailable");

    let redis = redis::Client::open(settings.redis_url.as_str()).expect("redis");
    let mut conn = redis.get_multiplexed_async_connection().await.expect("redis conn");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:job:*", settings.namespace))
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.is_empty(), "job state left behind: {keys:?}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_job_the_database_refuses_is_dead_lettered_with_its_error() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    // Bypass the API's validation: an end before the start violates a CHECK constraint.
    let publisher = app.publish_refused_job("poison-1").await;
    let topology = jobs::queue::Topology::new(&app.name);

    let state = app
        .wait_job("poison-1", Duration::from_secs(60), |j| {
            j["status"] == "failed" || j["status"] == "succeeded"
        })
        .await;
    assert_eq!(state["status"], "failed");
    assert!(state["error"].as_str().expect("error").contains("permanent"), "{state}");
    // Kept, not dropped: the message waits in the dead-letter queue.
    dead_letters(&publisher, &topology.queue("ingest"), 1).await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn unreadable_messages_are_dead_lettered_and_do_not_stall_the_pool() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let topology = jobs::queue::Topology::new(&app.name);
    let publisher = jobs::queue::Publisher::new(&app.settings.amqp_url, topology.clone());
    for (id, body) in [("garbage", &b"not json"[..]), ("wrong-shape", &b"{\"job_id\":\"wrong-shape\"}"[..])] {
        publisher
            .publish(Outgoing {
                queue: &topology.queue("ingest"),
                message_id: id,
                body,
                headers: Default::default(),
            })
            .await
            .expect("publish");
    }
    for queue in [&topology.queue("index"), &topology.queue("reindex")] {
        publisher
            .publish(Outgoing {
                queue,
                message_id: "garbage",
                body: b"not json",
                headers: Default::default(),
            })
            .await
            .expect("publish");
    }
    let accepted = app.ingest(&batch(0..10)).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 10);
    for (queue, parked) in
        [(&topology.queue("ingest"), 2), (&topology.queue("index"), 1), (&topology.queue("reindex"), 1)]
    {
        dead_letters(&publisher, queue, parked).await;
    }
    app.cleanup().await;
}

/// Waits until `queue`'s dead-letter queue holds `expected` messages.
async fn dead_letters(publisher: &jobs::queue::Publisher, queue: &str, expected: u32) {
    let dead = jobs::queue::Topology::dead(queue);
    eventually(Duration::from_secs(10), &format!("{dead} never held {expected} messages"), || async {
        let depth = publisher.queue_depth(&dead).await.expect("depth");
        if depth == expected { Ok(()) } else { Err(format!("{depth} messages")) }
    })
    .await;
}
