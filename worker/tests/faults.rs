//! Tests that stop a shared service. They live in their own test binary (cargo runs it
//! before `integration`, whose tests each wait for the API to be ready) and take a lock so
//! they never overlap each other.

mod common;

use common::{TestApp, batch, eventually, workspace_dir};
use std::time::Duration;

static SERVICE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn services(action: &str, name: &str) {
    let status = std::process::Command::new(workspace_dir().join("scripts/services"))
        .args([action, name])
        .status()
        .expect("run scripts/services");
    assert!(status.success(), "scripts/services {action} {name} failed");
}

/// Starts the service again even when the test fails half-way.
struct Restart(&'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        services("start", self.0);
    }
}

#[tokio::test]
async fn a_job_waiting_on_a_stopped_database_retries_then_succeeds() {
    let _serial = SERVICE_LOCK.lock().await;
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let warm = app.ingest(&batch(0..5)).await;
    app.wait_succeeded(warm["job_id"].as_str().expect("id")).await;

    let restart = Restart("postgres");
    services("stop", "postgres");
    let accepted = app.ingest(&batch(5..1005)).await;
    let id = accepted["job_id"].as_str().expect("id").to_string();
    let retrying = app.wait_job(&id, Duration::from_secs(60), |j| j["status"] == "retrying").await;
    assert!(!retrying["error"].as_str().unwrap_or("").is_empty(), "{retrying}");
    drop(restart);

    let job = app.wait_succeeded(&id).await;
    assert_eq!(job["counts"]["inserted"], 1000);
    assert!(job["attempts"].as_u64().expect("attempts") >= 2, "{job}");
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 1005);
    app.cleanup().await;
}

#[tokio::test]
async fn a_broker_restart_loses_no_job_and_both_sides_reconnect() {
    let _serial = SERVICE_LOCK.lock().await;
    let mut app = TestApp::new().await;
    // Queued while no worker runs: must survive the broker restart on disk.
    let queued = app.ingest(&batch(0..100)).await;

    let restart = Restart("rabbitmq");
    services("stop", "rabbitmq");
    let resp = app.post_json(&batch(100..110)).await;
    resp.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
    resp.assert_header_exist("Retry-After");
    drop(restart);

    app.start_worker().await;
    app.wait_succeeded(queued["job_id"].as_str().expect("id")).await;
    let after = app.ingest(&batch(100..200)).await;
    app.wait_succeeded(after["job_id"].as_str().expect("id")).await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 200);

    // A worker already connected when the broker goes away reconnects by itself.
    let restart = Restart("rabbitmq");
    services("stop", "rabbitmq");
    drop(restart);
    let last = app.ingest(&batch(200..300)).await;
    app.wait_succeeded(last["job_id"].as_str().expect("id")).await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 300);
    app.cleanup().await;
}

#[tokio::test]
async fn with_elasticsearch_stopped_index_jobs_retry_and_the_index_converges() {
    let _serial = SERVICE_LOCK.lock().await;
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let warm = app.ingest(&batch(0..10)).await;
    app.wait_succeeded(warm["job_id"].as_str().expect("id")).await;
    app.wait_in_sync(Duration::from_secs(30)).await;

    let restart = Restart("elasticsearch");
    services("stop", "elasticsearch");
    let accepted = app.ingest(&batch(10..3010)).await;
    let ingest = app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    // Storing does not wait for the index.
    assert_eq!(ingest["counts"]["inserted"], 3000);
    let index_job_id = ingest["index_job_id"].as_str().expect("index job").to_string();
    let retrying = app.wait_job(&index_job_id, Duration::from_secs(60), |j| j["status"] == "retrying").await;
    assert!(!retrying["error"].as_str().unwrap_or("").is_empty(), "{retrying}");
    drop(restart);

    app.wait_succeeded(&index_job_id).await;
    let status = app.wait_in_sync(Duration::from_secs(120)).await;
    assert_eq!(status["database_count"], 3010);
    assert_eq!(status["index_count"], 3010);
    // Exactly the PostgreSQL rows: no document twice, none missing.
    let search = app.search();
    let distinct = search
        .request(
            elasticsearch::http::Method::Post,
            &format!("/{}/_search", search.alias()),
            Some(serde_json::json!({
                "size": 0,
                "aggs": { "ids": { "cardinality": { "field": "call_id", "precision_threshold": 40000 } } }
            })),
        )
        .await
        .expect("search");
    assert_eq!(distinct["aggregations"]["ids"]["value"], 3010);
    app.cleanup().await;
}

#[tokio::test]
async fn readiness_names_a_stopped_dependency_and_recovers() {
    let _serial = SERVICE_LOCK.lock().await;
    let app = TestApp::new().await;
    app.client.get("/readyz").send().await.assert_status_is_ok();
    let restart = Restart("redis");
    services("stop", "redis");
    let resp = app.client.get("/readyz").send().await;
    resp.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
    resp.assert_header_exist("Retry-After");
    let body = resp.json().await.value().deserialize::<serde_json::Value>();
    assert_eq!(body["details"]["dependency"], "redis", "{body}");
    drop(restart);
    eventually(Duration::from_secs(30), "readyz did not recover", || async {
        let status = app.client.get("/readyz").send().await.0.status();
        if status.is_success() { Ok(()) } else { Err(status.to_string()) }
    })
    .await;
    app.cleanup().await;
}

/// The fault-injection soak, shortened: steady load while a worker is killed, RabbitMQ
/// restarted, Elasticsearch and PostgreSQL stopped and Redis restarted; nothing lost,
/// nothing twice, everything indexed, no refusal but 429/503.
#[tokio::test]
async fn a_short_soak_with_every_fault_loses_nothing() {
    let _serial = SERVICE_LOCK.lock().await;
    let bin_dir =
        std::path::Path::new(env!("CARGO_BIN_EXE_cdr-worker")).parent().expect("bin dir").to_path_buf();
    assert!(bin_dir.join("cdr-load").exists(), "cdr-load is built with the workspace's tests");
    let out = tokio::process::Command::new(workspace_dir().join("scripts/soak"))
        .env("SOAK_SECS", "45")
        .env("SOAK_RATE", "500")
        .env("SOAK_ES_DOWN_SECS", "5")
        .env("SOAK_PG_DOWN_SECS", "3")
        .env("SOAK_BIN_DIR", &bin_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run scripts/soak");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "{report}");
    assert!(report.contains("verdict: PASS"), "{report}");
    assert!(report.contains("lost 0") && report.contains("duplicates 0"), "{report}");
}
