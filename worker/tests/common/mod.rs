//! Test harness: a fresh database, namespace (queues and Redis keys) and worker process per
//! test, against the real PostgreSQL, Redis and RabbitMQ that `scripts/services up` starts.
#![allow(dead_code)]

pub mod browser;

use api::cli::Limits;
use api::state::AppState;
use jobs::config::ServiceSettings;
use poem::EndpointExt;
use poem::endpoint::BoxEndpoint;
use poem::test::{TestClient, TestResponse};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Pause between two looks at something a test waits for.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `probe` until it returns `Ok`, failing the test after `timeout` with `what` and
/// the last thing the probe saw. Every wait in the tests goes through here.
pub async fn eventually<T, Fut>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(start.elapsed() < timeout, "{what} in {timeout:?}; last seen: {seen}"),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The body of a response that must have `status`; on any other, a panic that shows the
/// body, so a failure says which dependency or field was at fault.
pub async fn json_with_status(resp: TestResponse, status: poem::http::StatusCode, what: &str) -> Value {
    let got = resp.0.status();
    let body = resp.0.into_body().into_string().await.unwrap_or_default();
    assert_eq!(got, status, "{what} answered {got}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what} answered non-JSON ({e}): {body}"))
}

/// Waits until the API reports every dependency ready, so a test starts from a system that
/// can take work (a broker that has just booted declares its queues slowly at first).
async fn wait_ready(client: &TestClient<BoxEndpoint<'static, poem::Response>>) {
    eventually(Duration::from_secs(120), "the API did not become ready", || async {
        let resp = client.get("/readyz").send().await;
        let status = resp.0.status();
        let body = resp.0.into_body().into_string().await.unwrap_or_default();
        if status.is_success() { Ok(()) } else { Err(format!("{status}: {body}")) }
    })
    .await
}

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn admin_url() -> String {
    env_or("DATABASE_URL", "postgres://cdr:cdr@127.0.0.1:5432/cdr")
}

pub fn url_with_db(base: &str, db: &str) -> String {
    let (prefix, _) = base.rsplit_once('/').expect("DATABASE_URL has a database name");
    format!("{prefix}/{db}")
}

pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of `../shared/real-cdrs/`: real switch output, read where it lies, never copied.
pub fn real_file(name: &str) -> Vec<u8> {
    let path = workspace_dir().join("..").join("shared").join("real-cdrs").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (the shared real-cdrs folder)", path.display()))
}

/// One test's private slice of the real services.
pub struct TestApp {
    pub name: String,
    pub settings: ServiceSettings,
    pub client: TestClient<BoxEndpoint<'static, poem::Response>>,
    pub db: DatabaseConnection,
    pub worker: Option<Child>,
    /// Workers beside `worker`, for tests of several at once.
    pub more_workers: Vec<Child>,
    pub worker_env: Vec<(String, String)>,
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_limits(Limits::default()).await
    }

    pub async fn with_limits(limits: Limits) -> TestApp {
        Self::build(limits, api::auth::Auth::disabled()).await
    }

    /// An app whose API requires these `role:token` pairs.
    pub async fn with_auth(spec: &str) -> TestApp {
        Self::build(Limits::default(), api::auth::Auth::from_spec(spec, true).expect("token spec")).await
    }

    pub async fn build(mut limits: Limits, auth: api::auth::Auth) -> TestApp {
        let name = format!("t{}", ulid::Ulid::new().to_string().to_lowercase());
        // The API serves exports from where this test's workers write them.
        limits.exports.dir = Self::export_dir_of(&name);
        let limits_dir = limits.exports.dir.clone();
        let admin = Database::connect(admin_url()).await.expect("PostgreSQL is up (scripts/services up)");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        let settings = ServiceSettings {
            database_url: url_with_db(&admin_url(), &name),
            amqp_url: env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            redis_url: env_or("REDIS_URL", "redis://127.0.0.1:6379/0"),
            elasticsearch_url: env_or("ELASTICSEARCH_URL", "http://127.0.0.1:9200"),
            namespace: name.clone(),
            index_alias: format!("{name}-cdrs"),
            job_ttl_secs: 3600,
            db_pool_size: 8,
        };
        let mut state = AppState::connect(&settings, limits).await.expect("API state");
        state.auth = auth;
        let db = jobs::db::connect(&settings.database_url, 4).await.expect("test db");
        let endpoint = api::app(state).map_to_response().boxed();
        let client = TestClient::new(endpoint);
        wait_ready(&client).await;
        TestApp {
            name,
            client,
            db,
            settings,
            worker: None,
            more_workers: Vec::new(),
            worker_env: vec![
                ("CDR_RETRY_MIN_MS".into(), "100".into()),
                ("CDR_RETRY_MAX_MS".into(), "1000".into()),
                ("CDR_MAX_ATTEMPTS".into(), "1000".into()),
                ("CDR_SWEEP_INTERVAL_SECS".into(), "1".into()),
                ("CDR_SWEEP_GRACE_SECS".into(), "2".into()),
                ("CDR_ROLLUP_FOLD_MS".into(), "300".into()),
                ("CDR_WORKER_HTTP_ADDR".into(), "127.0.0.1:0".into()),
                ("CDR_EXPORT_DIR".into(), limits_dir.display().to_string()),
            ],
        }
    }

    /// Starts a real `cdr-worker` process for this test's namespace and database.
    pub async fn start_worker(&mut self) {
        self.worker = Some(self.spawn_worker());
    }

    /// Starts one more worker beside the others.
    pub async fn start_another_worker(&mut self) {
        let child = self.spawn_worker();
        self.more_workers.push(child);
    }

    fn export_dir_of(name: &str) -> PathBuf {
        workspace_dir().join("target").join("test-exports").join(name)
    }

    /// Publishes, past the API's validation, ingest job `id` holding one record the database
    /// refuses (an end before its start, against a CHECK constraint), with its state.
    pub async fn publish_refused_job(&self, id: &str) -> jobs::queue::Publisher {
        let mut cdr = jobs::cdr::parse_record(0, &answered_cdr(1), "s").expect("valid");
        cdr.end_time = Some(cdr.start_time - chrono::Duration::seconds(100));
        let job = jobs::ingest::IngestJob {
            job_id: id.into(),
            enqueued_at: chrono::Utc::now(),
            received: 1,
            rejected: 0,
            cdrs: vec![cdr],
        };
        let store =
            jobs::state::JobStore::connect(&self.settings.redis_url, &self.name, Duration::from_secs(600))
                .await
                .expect("redis");
        store.create(&job.initial_state()).await.expect("state");
        let topology = jobs::queue::Topology::new(&self.name);
        let publisher = jobs::queue::Publisher::new(&self.settings.amqp_url, topology.clone());
        let body = serde_json::to_vec(&job).expect("json");
        publisher
            .publish(jobs::queue::Outgoing {
                queue: &topology.queue("ingest"),
                message_id: id,
                body: &body,
                headers: Default::default(),
            })
            .await
            .expect("publish");
        publisher
    }

    /// Where this test's exports are written.
    pub fn export_dir(&self) -> PathBuf {
        Self::export_dir_of(&self.name)
    }

    /// The log file every worker of this test appends to.
    pub fn worker_log(&self) -> PathBuf {
        workspace_dir().join("target").join("test-logs").join(format!("{}-worker.log", self.name))
    }

    fn spawn_worker(&self) -> Child {
        let log_dir = workspace_dir().join("target").join("test-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{}-worker.log", self.name)))
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdr-worker"));
        cmd.env("DATABASE_URL", &self.settings.database_url)
            .env("AMQP_URL", &self.settings.amqp_url)
            .env("REDIS_URL", &self.settings.redis_url)
            .env("CDR_NAMESPACE", &self.name)
            .env("ELASTICSEARCH_URL", &self.settings.elasticsearch_url)
            .env("CDR_INDEX_ALIAS", &self.settings.index_alias)
            .env("CDR_DB_POOL_SIZE", "4")
            .env("RUST_LOG", "info")
            .envs(self.worker_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true);
        cmd.spawn().expect("spawn cdr-worker")
    }

    /// SIGKILL: the process gets no chance to finish or acknowledge anything.
    pub async fn kill_worker(&mut self) {
        if let Some(mut child) = self.worker.take() {
            child.start_kill().expect("kill worker");
            child.wait().await.expect("reap worker");
        }
    }

    /// Starts a worker that aborts the moment it reaches crash point `point` (see
    /// `jobs::crash`), as a `kill -9` at exactly that step would.
    pub async fn start_crashing_worker(&mut self, point: &str) {
        self.start_worker_with_failpoints(&format!("{point}=return")).await;
    }

    /// Starts a worker with a whole `FAILPOINTS` setting, e.g. `point=2*off->return` to
    /// abort at the third time `point` is reached.
    pub async fn start_worker_with_failpoints(&mut self, spec: &str) {
        self.worker_env.push(("FAILPOINTS".into(), spec.to_string()));
        self.start_worker().await;
        self.worker_env.pop();
    }

    /// Waits for the running worker to die by itself (at its crash point).
    pub async fn wait_worker_died(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.worker.take().expect("a worker runs");
        tokio::time::timeout(timeout, child.wait())
            .await
            .expect("the worker reached its crash point in time")
            .expect("worker exit status")
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop_worker(&mut self) -> std::process::ExitStatus {
        let mut child = self.worker.take().expect("a worker runs");
        let pid = child.id().expect("worker pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("send SIGTERM");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("worker exits within 60 s of SIGTERM")
            .expect("worker exit status")
    }

    pub async fn post_json(&self, body: &Value) -> TestResponse {
        self.client
            .post("/cdrs")
            .content_type("application/json")
            .body(serde_json::to_vec(body).expect("json"))
            .send()
            .await
    }

    pub async fn post_raw(&self, content_type: &str, body: impl Into<Vec<u8>>) -> TestResponse {
        self.client.post("/cdrs").content_type(content_type).body(body.into()).send().await
    }

    /// Posts a batch that must be accepted; returns the 202 body.
    pub async fn ingest(&self, body: &Value) -> Value {
        let resp = self.post_json(body).await;
        json_with_status(resp, poem::http::StatusCode::ACCEPTED, "POST /cdrs").await
    }

    /// GETs `path`, which must answer 200; returns its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.client.get(path).send().await;
        json_with_status(resp, poem::http::StatusCode::OK, path).await
    }

    pub async fn job(&self, id: &str) -> Option<Value> {
        let resp = self.client.get(format!("/jobs/{id}")).send().await;
        if resp.0.status() == poem::http::StatusCode::NOT_FOUND {
            return None;
        }
        resp.assert_status_is_ok();
        Some(resp.json().await.value().deserialize::<Value>())
    }

    /// Polls the job until `done` holds for its state, or panics after `timeout`.
    pub async fn wait_job(&self, id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        eventually(timeout, &format!("job {id} did not get there"), || async {
            match self.job(id).await {
                Some(job) if done(&job) => Ok(job),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    pub async fn wait_succeeded(&self, id: &str) -> Value {
        let job = self
            .wait_job(id, Duration::from_secs(90), |j| j["status"] == "succeeded" || j["status"] == "failed")
            .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        job
    }

    /// Asserts every KPI rollup cuboid (folded, plus the pending sums regrouped into it)
    /// holds exactly the sums of the stored rows, bucket by bucket, and that the rollup
    /// total is the row count.
    pub async fn assert_rollups_match_rows(&self) {
        let raw = format!(
            "SELECT {} FROM cdrs GROUP BY {}",
            jobs::rollups::SUMS_OF_ROWS,
            jobs::rollups::DIMENSIONS
        );
        let sums = jobs::rollups::SUM_COLUMNS
            .iter()
            .map(|c| format!("coalesce(sum({c}), 0)::numeric"))
            .collect::<Vec<_>>()
            .join(", ");
        let columns = jobs::rollups::SUM_COLUMNS.join(", ");
        for cuboid in &jobs::rollups::CUBOIDS {
            let (key, truncated, table) =
                (cuboid.key().join(", "), cuboid.key_from_minutes().join(", "), cuboid.table);
            let positions = cuboid.key_positions();
            let expected = format!("SELECT {truncated}, {sums} FROM ({raw}) r GROUP BY {positions}");
            // A bucket whose calls all moved out (a re-rate changed their destination) sums to
            // nothing, as no bucket does.
            let nothing = jobs::rollups::SUM_COLUMNS
                .iter()
                .map(|c| format!("coalesce(sum({c}), 0) <> 0"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let stored = format!(
                "SELECT {key}, {sums} FROM (SELECT {key}, {columns} FROM {table} \
                 UNION ALL SELECT {truncated}, {columns} FROM ({}) p) x GROUP BY {positions} HAVING {nothing}",
                jobs::rollups::pending_rows("TRUE")
            );
            let differing = self
                .count(&format!(
                    "SELECT count(*) FROM ((({expected}) EXCEPT ({stored})) UNION ALL (({stored}) EXCEPT ({expected}))) d"
                ))
                .await;
            assert_eq!(differing, 0, "{table} buckets that differ from the stored rows' sums");
        }
        // Per-second counts (folded plus pending) are those of the rows; every hour's net
        // change is its seconds' sum, and every settled hour's highest running count is right.
        let expected = jobs::rollups::events_of_rows("true");
        let stored = format!(
            "SELECT source, second, sum(delta)::int AS delta, sum(ends_on)::int AS ends_on FROM ( \
             {} UNION ALL {}) x GROUP BY 1, 2 \
             HAVING sum(delta) <> 0 OR sum(ends_on) <> 0",
            jobs::rollups::second_rows("true"),
            jobs::rollups::pending_events("TRUE")
        );
        let expected = format!("SELECT * FROM ({expected}) e WHERE delta <> 0 OR ends_on <> 0");
        let differing = self
            .count(&format!(
                "SELECT count(*) FROM ((({expected}) EXCEPT ({stored})) UNION ALL (({stored}) EXCEPT ({expected}))) d"
            ))
            .await;
        assert_eq!(differing, 0, "per-second counts that differ from the stored rows'");
        // Every minute row's seconds are distinct and ascending, as readers and the fold assume.
        let unordered = "SELECT count(*) FROM kpi_second_minute k WHERE cardinality(k.slots) <> cardinality(k.delta) \
                         OR cardinality(k.slots) <> cardinality(k.ends_on) OR EXISTS (SELECT 1 FROM generate_subscripts(k.slots, 1) i \
                         WHERE k.slots[i] NOT BETWEEN 0 AND 59 OR (i > 1 AND k.slots[i] <= k.slots[i - 1]))";
        assert_eq!(
            self.count(unordered).await,
            0,
            "minute rows whose seconds are not distinct and ascending"
        );
        let nets = format!(
            "SELECT count(*) FROM (SELECT source, date_trunc('hour', second, 'UTC') AS bucket, sum(delta) AS net \
             FROM ({}) k GROUP BY 1, 2) s FULL JOIN kpi_second_hour h USING (source, bucket) \
             WHERE coalesce(s.net, 0) <> coalesce(h.net, 0)",
            jobs::rollups::second_rows("true")
        );
        assert_eq!(self.count(&nets).await, 0, "hours whose net change is not their seconds' sum");
        let rises = format!(
            "SELECT count(*) FROM kpi_second_hour h LEFT JOIN LATERAL ( \
             SELECT second, sum(delta) OVER (ORDER BY second) AS run FROM ({}) k \
             ORDER BY run DESC, second LIMIT 1) r ON true \
             WHERE NOT h.dirty AND (h.rise <> coalesce(r.run, 0) OR h.rise_at IS DISTINCT FROM r.second)",
            jobs::rollups::second_rows(
                "k.source = h.source AND k.minute >= h.bucket AND k.minute < h.bucket + interval '1 hour'"
            )
        );
        assert_eq!(self.count(&rises).await, 0, "settled hours whose highest running count is wrong");
        let total = self.count(jobs::rollups::TOTAL_SQL).await;
        assert_eq!(total, self.count("SELECT count(*) FROM cdrs").await, "rollup total");
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql.to_string()))
            .await
            .expect("query")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a count")
    }

    /// Serves an API for this test's services on a free loopback port, for tools that need
    /// a socket; returns its base URL once it answers, and the server task.
    pub async fn serve_api(
        &self,
        auth: api::auth::Auth,
    ) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let mut state = AppState::connect(&self.settings, Limits::default()).await.expect("state");
        state.auth = auth;
        let server = tokio::spawn(
            poem::Server::new(poem::listener::TcpListener::bind(format!("127.0.0.1:{port}")))
                .run(api::app(state).map_to_response()),
        );
        let base = format!("http://127.0.0.1:{port}");
        eventually(Duration::from_secs(10), &format!("the API never answered on {base}"), || async {
            reqwest::get(format!("{base}/healthz")).await.map(drop).map_err(|e| e.to_string())
        })
        .await;
        (base, server)
    }

    pub fn search(&self) -> jobs::search::SearchIndex {
        jobs::search::SearchIndex::new(&self.settings.elasticsearch_url, &self.settings.index_alias)
            .expect("search client")
    }

    pub async fn sync_status(&self) -> Value {
        let resp = self.client.get("/sync-status").send().await;
        let status = resp.0.status();
        let body = resp.json().await.value().deserialize::<Value>();
        assert_eq!(status, poem::http::StatusCode::OK, "/sync-status: {body}");
        body
    }

    /// Polls `/sync-status` until the index holds exactly the PostgreSQL rows.
    pub async fn wait_in_sync(&self, timeout: Duration) -> Value {
        // A 503 while the engine settles (a shard being allocated) is "not yet", not a failure.
        eventually(timeout, "index did not converge", || async {
            let resp = self.client.get("/sync-status").send().await;
            let ok = resp.0.status() == poem::http::StatusCode::OK;
            let status = resp.json().await.value().deserialize::<Value>();
            if ok && status["in_sync"] == true { Ok(status) } else { Err(status.to_string()) }
        })
        .await
    }

    /// Drops this test's database, queues and indices.
    pub async fn cleanup(mut self) {
        self.kill_worker().await;
        for mut child in std::mem::take(&mut self.more_workers) {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.db.clone().close().await.ok();
        let _ = std::fs::remove_dir_all(self.export_dir());
        let search = self.search();
        let _ = search
            .request(elasticsearch::http::Method::Delete, &format!("/{}*", self.settings.index_alias), None)
            .await;
        let _ = search
            .request(
                elasticsearch::http::Method::Delete,
                &format!("/_index_template/{}", self.settings.index_alias),
                None,
            )
            .await;
        if let Ok(admin) = Database::connect(admin_url()).await {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .await;
        }
        let conn = lapin::Connection::connect(&self.settings.amqp_url, Default::default()).await;
        if let Ok(conn) = conn
            && let Ok(ch) = conn.create_channel().await
        {
            let t = jobs::queue::Topology::new(&self.name);
            for q in t.queues() {
                for name in [q.clone(), jobs::queue::Topology::dead(&q)] {
                    let _ = ch.queue_delete(name.as_str().into(), Default::default()).await;
                }
            }
            let _ = ch.exchange_delete(t.dead_letter_exchange.as_str().into(), Default::default()).await;
        }
    }
}

/// A realistic answered call; `n` makes the call id unique.
pub fn answered_cdr(n: usize) -> Value {
    serde_json::json!({
        "call_id": format!("call-{n}"),
        "source": "pbx-test",
        "src_number": format!("+1415555{:04}", n % 10_000),
        "dest_number": format!("44207{:06}", n % 1_000_000),
        "start_time": "2026-03-01T10:00:00+02:00",
        "answer_time": "2026-03-01T10:00:07+02:00",
        "end_time": "2026-03-01T10:02:07+02:00",
        "disposition": "ANSWERED",
        "hangup_cause": "NORMAL_CLEARING",
        "direction": "outbound",
        "account_code": "acme"
    })
}

pub fn batch(range: std::ops::Range<usize>) -> Value {
    Value::Array(range.map(answered_cdr).collect())
}
