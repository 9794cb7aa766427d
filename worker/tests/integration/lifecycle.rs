//! The real failure paths of jobs, end to end: out of attempts, deferred to the sweeper,
//! rows the index refuses, a missing alias, a worker stopped mid-job.

use crate::common::{TestApp, answered_cdr, batch};
use elasticsearch::http::Method;
use poem::http::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::time::Duration;

fn low_attempts(app: &mut TestApp) {
    app.worker_env.retain(|(k, _)| k != "CDR_MAX_ATTEMPTS");
    app.worker_env.push(("CDR_MAX_ATTEMPTS".into(), "2".into()));
}

async fn sql(app: &TestApp, statement: &str) {
    app.db.execute_unprepared(statement).await.expect(statement);
}

async fn failed_ids(app: &TestApp) -> Vec<String> {
    let listed: Value = app.client.get("/jobs?status=failed").send().await.json().await.value().deserialize();
    listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|j| j["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn an_ingest_job_out_of_attempts_is_dead_lettered_and_replays_once_the_database_is_back() {
    let mut app = TestApp::new().await;
    low_attempts(&mut app);
    app.start_worker().await;
    // The database fails every insert for now (a server that cannot take connections).
    sql(
        &app,
        "CREATE FUNCTION outage() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected outage' USING ERRCODE = '57P03'; END $$; \
         CREATE TRIGGER outage BEFORE INSERT ON cdrs FOR EACH STATEMENT EXECUTE FUNCTION outage();",
    )
    .await;
    let accepted = app.ingest(&batch(0..30)).await;
    let job_id = accepted["job_id"].as_str().expect("id").to_string();
    let job = app.wait_job(&job_id, Duration::from_secs(60), |j| j["status"] == "failed").await;
    assert_eq!(job["error_code"], "database_unavailable", "{job}");
    assert!(job["error"].as_str().expect("error").contains("gave up after 2 attempts"), "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert!(failed_ids(&app).await.contains(&job_id));
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 0);
    let counts = app.get_json("/jobs/counts").await;
    assert_eq!((counts["failed"].as_u64(), counts["succeeded"].as_u64()), (Some(1), Some(0)), "{counts}");

    sql(&app, "DROP TRIGGER outage ON cdrs").await;
    let resp = app.client.post(format!("/jobs/{job_id}/retry")).send().await;
    resp.assert_status(StatusCode::ACCEPTED);
    let done = app.wait_succeeded(&job_id).await;
    assert_eq!(done["counts"]["inserted"], 30);
    assert_eq!(done["error_code"], Value::Null);
    assert!(!failed_ids(&app).await.contains(&job_id));
    app.wait_in_sync(Duration::from_secs(60)).await;
    // The ingest job and its index job succeeded; nothing is failed any more.
    let counts = app.get_json("/jobs/counts").await;
    assert_eq!(counts["failed"], 0, "{counts}");
    assert!(counts["succeeded"].as_u64().unwrap_or(0) >= 2, "{counts}");
    app.cleanup().await;
}

/// Counts by status follow every transition a job makes, and forget a job deleted.
#[tokio::test]
async fn job_counts_follow_each_status_change() {
    use jobs::state::{JobCounts, JobKind, JobState, JobStatus};
    let app = TestApp::new().await;
    let store = jobs::state::JobStore::connect(&app.settings.redis_url, &app.name, Duration::from_secs(600))
        .await
        .expect("redis");
    let counts = || async {
        let counts = store.status_counts().await.expect("counts");
        JobStatus::ALL.map(|s| counts.iter().find(|(c, _)| *c == s).map_or(u64::MAX, |(_, n)| *n))
    };
    let job = |id: &str| {
        JobState::enqueued(
            id.into(),
            JobKind::new(jobs::ingest::KIND),
            JobCounts::default(),
            chrono::Utc::now(),
        )
    };
    let code = jobs::error_code::ErrorCode::DatabaseUnavailable;
    // enqueued, processing, retrying, succeeded, failed
    store.create(&job("a")).await.expect("create");
    store.create(&job("b")).await.expect("create");
    assert_eq!(counts().await, [2, 0, 0, 0, 0]);
    store.start_attempt(&job("a")).await.expect("start");
    assert_eq!(counts().await, [1, 1, 0, 0, 0]);
    store.start_attempt(&job("a")).await.expect("a second attempt");
    assert_eq!(counts().await, [1, 1, 0, 0, 0], "a second attempt is not a second job");
    store.mark_retrying("a", code, "down").await.expect("retrying");
    assert_eq!(counts().await, [1, 0, 1, 0, 0]);
    store.mark_succeeded("a", &JobCounts::default()).await.expect("succeeded");
    assert_eq!(counts().await, [1, 0, 0, 1, 0]);
    store.mark_failed("a", code, "late").await.expect("refused transition");
    assert_eq!(counts().await, [1, 0, 0, 1, 0], "a succeeded job stays succeeded");
    store.mark_failed("b", code, "gave up").await.expect("failed");
    assert_eq!(counts().await, [0, 0, 0, 1, 1]);
    store.mark_requeued("b").await.expect("requeued");
    assert_eq!(counts().await, [1, 0, 0, 1, 0]);
    store.delete("b").await.expect("delete");
    assert_eq!(counts().await, [0, 0, 0, 1, 0]);
    let api = app.get_json("/jobs/counts").await;
    assert_eq!((api["succeeded"].as_u64(), api["enqueued"].as_u64()), (Some(1), Some(0)), "{api}");
    app.cleanup().await;
}

#[tokio::test]
async fn an_index_job_out_of_attempts_waits_for_the_sweeper_instead_of_failing() {
    let mut app = TestApp::new().await;
    low_attempts(&mut app);
    // Nothing listens here: every index attempt finds the engine unreachable.
    app.worker_env.push(("ELASTICSEARCH_URL".into(), "http://127.0.0.1:9".into()));
    app.start_worker().await;
    let accepted = app.ingest(&batch(0..40)).await;
    let ingest = app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    let index_job = ingest["index_job_id"].as_str().expect("index job").to_string();
    let waiting = app
        .wait_job(&index_job, Duration::from_secs(60), |j| {
            j["error"].as_str().is_some_and(|e| e.contains("gave up for now"))
        })
        .await;
    assert_eq!(waiting["status"], "retrying", "not failed: the sweeper redoes it: {waiting}");
    assert_eq!(waiting["error_code"], "search_unavailable");
    assert!(failed_ids(&app).await.is_empty(), "a job that will be redone is not listed as failed");
    let retry = app.client.post(format!("/jobs/{index_job}/retry")).send().await;
    retry.assert_status(StatusCode::CONFLICT);

    // The engine is back: the sweeper publishes the same job again, and it succeeds.
    app.kill_worker().await;
    app.worker_env.pop();
    app.start_worker().await;
    let done = app.wait_succeeded(&index_job).await;
    assert_eq!(done["counts"]["indexed"], 40, "{done}");
    let status = app.wait_in_sync(Duration::from_secs(60)).await;
    assert_eq!(status["index_count"], 40);
    app.cleanup().await;
}

#[tokio::test]
async fn rows_the_index_refuses_are_reported_and_cleared_by_a_rebuild() {
    let mut app = TestApp::new().await;
    // An index whose mapping refuses the account codes (a mapping made by hand, wrongly),
    // in place of the one the API created.
    let search = app.search();
    let alias = app.settings.index_alias.clone();
    search.request(Method::Delete, &format!("/{alias}-*"), None).await.expect("delete the index");
    search
        .request(
            Method::Put,
            &format!("/{alias}-initial"),
            Some(json!({
                "mappings": { "dynamic": "strict", "properties": { "account_code": { "type": "long" } } },
                "aliases": { alias.clone(): {} }
            })),
        )
        .await
        .expect("create the wrongly mapped index");
    app.start_worker().await;
    // Odd rows carry an account code the index refuses; even rows carry none.
    let rows: Vec<Value> = (0..20)
        .map(|n| {
            let mut cdr = answered_cdr(n);
            if n % 2 == 0 {
                cdr.as_object_mut().expect("object").remove("account_code");
            }
            cdr
        })
        .collect();
    let accepted = app.ingest(&Value::Array(rows)).await;
    let ingest = app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    let index_job = ingest["index_job_id"].as_str().expect("index job").to_string();
    let failed = app.wait_job(&index_job, Duration::from_secs(60), |j| j["status"] == "failed").await;
    assert_eq!(failed["error_code"], "search_refused", "{failed}");
    assert_eq!(app.count("SELECT count(*) FROM index_failures").await, 10);
    let status = app.sync_status().await;
    assert_eq!(status["refused"], 10, "{status}");
    assert_eq!(status["in_sync"], false);

    // A rebuild builds a correctly mapped index: every row goes in, the refusals are gone.
    let resp = app.client.post("/reindex").send().await;
    resp.assert_status(StatusCode::ACCEPTED);
    let started: Value = resp.json().await.value().deserialize();
    let rebuilt = app.wait_succeeded(started["job_id"].as_str().expect("id")).await;
    assert_eq!(rebuilt["counts"]["indexed"], 20, "{rebuilt}");
    assert_eq!(rebuilt["counts"]["refused"], 0, "{rebuilt}");
    assert_eq!(app.count("SELECT count(*) FROM index_failures").await, 0);
    let status = app.wait_in_sync(Duration::from_secs(60)).await;
    assert_eq!(status["refused"], 0);
    assert_eq!(status["index_count"], 20);
    app.cleanup().await;
}

#[tokio::test]
async fn a_missing_alias_is_recreated_with_the_mapping_and_every_batch_indexed_again() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let first = app.ingest(&batch(0..100)).await;
    app.wait_succeeded(first["job_id"].as_str().expect("id")).await;
    app.wait_in_sync(Duration::from_secs(60)).await;
    // The engine loses the index (and the alias with it).
    let search = app.search();
    search
        .request(Method::Delete, &format!("/{}-*", app.settings.index_alias), None)
        .await
        .expect("delete the index");
    assert!(search.alias_targets().await.expect("alias").is_none());

    let second = app.ingest(&batch(100..150)).await;
    app.wait_succeeded(second["job_id"].as_str().expect("id")).await;
    let status = app.wait_in_sync(Duration::from_secs(90)).await;
    assert_eq!(status["index_count"], 150, "every batch indexed again: {status}");
    // Re-created through the alias with the real mapping, not guessed by the engine.
    let mapping = search
        .request(Method::Get, &format!("/{}/_mapping", app.settings.index_alias), None)
        .await
        .expect("mapping");
    let index = mapping.as_object().expect("indices").values().next().expect("one index");
    assert_eq!(index["mappings"]["dynamic"], "strict", "{index}");
    assert_eq!(index["mappings"]["properties"]["src_number"]["type"], "keyword");
    app.cleanup().await;
}

#[tokio::test]
async fn sigterm_during_a_job_lets_it_finish_and_stores_it_once() {
    let mut app = TestApp::new().await;
    // Each insert takes three seconds: the job is mid-way when the signal comes.
    sql(
        &app,
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$; \
         CREATE TRIGGER slow BEFORE INSERT ON cdrs FOR EACH STATEMENT EXECUTE FUNCTION slow();",
    )
    .await;
    app.start_worker().await;
    let accepted = app.ingest(&batch(0..25)).await;
    let job_id = accepted["job_id"].as_str().expect("id").to_string();
    app.wait_job(&job_id, Duration::from_secs(30), |j| j["status"] == "processing").await;
    let exit = app.stop_worker().await;
    assert!(exit.success(), "clean exit: {exit:?}");
    let job = app.job(&job_id).await.expect("job");
    assert_eq!(job["status"], "succeeded", "finished before the worker left: {job}");
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 25);
    app.start_worker().await;
    app.wait_in_sync(Duration::from_secs(60)).await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 25, "stored once");
    app.cleanup().await;
}

/// Acknowledgement follows the durable store: a batch that commits while the worker's Redis
/// is gone is acknowledged (not redelivered forever), and its state is read from PostgreSQL.
#[tokio::test]
async fn a_batch_committed_while_redis_is_down_is_acknowledged_and_its_state_catches_up() {
    let mut app = TestApp::new().await;
    // The worker's Redis is a private server this test stops; the API keeps its own.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut private = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start a private redis-server");
    let url = format!("redis://127.0.0.1:{port}/0");
    crate::common::eventually(Duration::from_secs(10), "private redis answers", || async {
        let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
        let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
        redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(|e| e.to_string())
    })
    .await;
    app.worker_env.push(("REDIS_URL".into(), url));
    app.start_worker().await;
    let warm = app.ingest(&batch(0..5)).await;
    crate::common::eventually(Duration::from_secs(30), "warm-up stored", || async {
        let n = app.count("SELECT count(*) FROM cdrs").await;
        if n == 5 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    private.kill().await.expect("stop the private redis");

    let accepted = app.ingest(&batch(5..205)).await;
    let job_id = accepted["job_id"].as_str().expect("id").to_string();
    crate::common::eventually(Duration::from_secs(60), "batch stored with Redis down", || async {
        let n = app.count("SELECT count(*) FROM cdrs").await;
        if n == 205 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    // Acknowledged: once the worker is gone, nothing is left in the queue to redeliver.
    let exit = app.stop_worker().await;
    assert!(exit.success(), "{exit:?}");
    let topology = jobs::queue::Topology::new(&app.name);
    let publisher = jobs::queue::Publisher::new(&app.settings.amqp_url, topology.clone());
    assert_eq!(publisher.queue_depth(&topology.queue("ingest")).await.expect("depth"), 0);
    // The state the API holds never heard from the worker; PostgreSQL has the outcome.
    let job = app.wait_job(&job_id, Duration::from_secs(30), |j| j["status"] == "succeeded").await;
    assert_eq!(job["counts"]["inserted"], 200, "{job}");
    assert_eq!(app.job(warm["job_id"].as_str().expect("id")).await.expect("warm")["counts"]["inserted"], 5);
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 205, "stored once");
    app.cleanup().await;
}
