//! Job state in Redis: what `GET /jobs/{id}` answers.
//!
//! One hash per job, rewritten field by field as the job moves
//! `enqueued → processing → (retrying →)* succeeded | failed`, and expiring a configurable
//! time after its last change so Redis never grows without bound.

use crate::error_code::ErrorCode;
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// A job's kind, as the module of its job type names it: `ingest`, `index`, `reindex`,
/// `rollup_rebuild`, `rerate`, `retention`, `export` (every kind registered in
/// [`crate::job::registry`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::NewType)]
#[serde(transparent)]
pub struct JobKind(pub String);

impl JobKind {
    pub fn new(kind: &str) -> Self {
        JobKind(kind.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(s: &str) -> Option<Self> {
        Some(JobKind::new(s))
    }
}

impl PartialEq<&str> for JobKind {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum JobStatus {
    Enqueued,
    Processing,
    Retrying,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Enqueued => "enqueued",
            JobStatus::Processing => "processing",
            JobStatus::Retrying => "retrying",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    /// Every status, in the order a job moves through them.
    pub const ALL: [JobStatus; 5] =
        [Self::Enqueued, Self::Processing, Self::Retrying, Self::Succeeded, Self::Failed];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the job has reached a final state.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// Record counts of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct JobCounts {
    /// Records in the batch as posted.
    pub received: u64,
    /// Records refused by validation at the API (listed in the 202 answer).
    pub rejected: u64,
    /// Records newly stored in PostgreSQL.
    pub inserted: u64,
    /// Records already stored before (same `source` and `call_id`), not stored again.
    pub duplicates: u64,
    /// Records written into the search index (index and reindex jobs).
    pub indexed: u64,
    /// Records the search index refused for good (index and reindex jobs): listed in
    /// `index_failures`, counted by `/sync-status`, written again by the next rebuild.
    #[serde(default)]
    pub refused: u64,
}

/// A job as clients follow it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct JobState {
    pub id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    /// Processing attempts so far, across redeliveries, since the job was last queued.
    pub attempts: u32,
    pub enqueued_at: DateTime<Utc>,
    /// When the first attempt started; null while enqueued.
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the job succeeded or failed; null until then.
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
    /// When the state last changed.
    #[oai(nullable)]
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    pub counts: JobCounts,
    /// The last error: why the job is retrying, or why it failed.
    #[oai(nullable)]
    pub error: Option<String>,
    /// The last error's code, from the same table as the API's error codes.
    #[oai(nullable)]
    #[serde(default)]
    pub error_code: Option<ErrorCode>,
    /// For an ingest job: the index job that makes its records searchable.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_job_id: Option<String>,
    /// For a retention job: what it removed or, dry, would remove.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<crate::retention::RetentionReport>,
    /// For a re-rate: calls read and changed so far.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerate: Option<crate::rating::rerate::RerateProgress>,
    /// What the job's own kind reports as it goes (an export's rows, bytes and file), as
    /// its module writes it.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl JobState {
    pub fn enqueued(id: String, kind: JobKind, counts: JobCounts, enqueued_at: DateTime<Utc>) -> Self {
        JobState {
            id,
            kind,
            status: JobStatus::Enqueued,
            attempts: 0,
            enqueued_at,
            started_at: None,
            finished_at: None,
            updated_at: Some(enqueued_at),
            counts,
            error: None,
            error_code: None,
            index_job_id: None,
            retention: None,
            rerate: None,
            detail: None,
        }
    }
}

/// Which current statuses a state change may start from. Deliveries race (a redelivered
/// copy, a late `retrying` from an attempt that lost its connection): state only ever moves
/// forward, so a client never sees a finished job become unfinished again.
#[derive(Debug, Clone, Copy)]
enum Transition {
    /// Into a non-final status: only from a non-final one.
    Forward,
    /// Into a final status: from anything but `succeeded` (which is never undone; writing it
    /// again refreshes its counts).
    Finish,
    /// Back to `enqueued` after a new publish: from `failed` or `retrying` only.
    Requeue,
}

impl Transition {
    fn allowed_from(self) -> &'static str {
        match self {
            Transition::Forward => "enqueued,processing,retrying",
            Transition::Finish => "enqueued,processing,retrying,failed,succeeded-if-succeeded",
            Transition::Requeue => "failed,retrying",
        }
    }
}

/// KEYS[1] the job, KEYS[2] the prefix of the per-status sets; ARGV: allowed-from list, ttl,
/// then field/value pairs, the first being `status`/<new status>. A missing hash may always
/// be written (its state was lost). The job moves to the set of its new status.
const TRANSITION: &str = r"
local current = redis.call('HGET', KEYS[1], 'status')
local new = ARGV[4]
if current then
  local ok = false
  for s in string.gmatch(ARGV[1], '[^,]+') do
    if s == current or (s == 'succeeded-if-succeeded' and current == 'succeeded' and new == 'succeeded') then
      ok = true
    end
  end
  if not ok then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
if current ~= new then
  local now = redis.call('TIME')
  if current then redis.call('ZREM', KEYS[2] .. current, KEYS[1]) end
  redis.call('ZADD', KEYS[2] .. new, now[1] * 1000 + math.floor(now[2] / 1000), KEYS[1])
end
return 1
";

/// KEYS[1] the job, KEYS[2] the prefix of the per-status sets; ARGV: kind, enqueued_at,
/// received, rejected, now, ttl. Returns attempts.
const START_ATTEMPT: &str = r"
redis.call('HSETNX', KEYS[1], 'kind', ARGV[1])
redis.call('HSETNX', KEYS[1], 'enqueued_at', ARGV[2])
redis.call('HSETNX', KEYS[1], 'received', ARGV[3])
redis.call('HSETNX', KEYS[1], 'rejected', ARGV[4])
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[5])
redis.call('HSET', KEYS[1], 'updated_at', ARGV[5])
local current = redis.call('HGET', KEYS[1], 'status')
if current ~= 'succeeded' and current ~= 'failed' then
  redis.call('HSET', KEYS[1], 'status', 'processing')
  if current ~= 'processing' then
    local now = redis.call('TIME')
    if current then redis.call('ZREM', KEYS[2] .. current, KEYS[1]) end
    redis.call('ZADD', KEYS[2] .. 'processing', now[1] * 1000 + math.floor(now[2] / 1000), KEYS[1])
  end
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[6])
return attempts
";

/// KEYS[1] the lease; ARGV: holder, ttl in ms. 1 when `holder` holds it afterwards.
const HOLD_LEASE: &str = r"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// The scripts, hashed once.
struct Scripts {
    transition: redis::Script,
    start_attempt: redis::Script,
    hold_lease: redis::Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| Scripts {
        transition: redis::Script::new(TRANSITION),
        start_attempt: redis::Script::new(START_ATTEMPT),
        hold_lease: redis::Script::new(HOLD_LEASE),
    });
    &SCRIPTS
}

/// A final state to write once Redis answers again ([`JobStore::settle_later`]).
#[derive(Debug, Clone)]
pub enum Settled {
    Succeeded(JobCounts),
    Failed(ErrorCode, String),
}

/// Reads and writes job state. Cloning is cheap: the connection manager is shared and
/// reconnects on its own after Redis restarts.
#[derive(Clone)]
pub struct JobStore {
    conn: ConnectionManager,
    prefix: String,
    ttl_secs: i64,
}

impl JobStore {
    pub async fn connect(url: &str, namespace: &str, ttl: Duration) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(JobStore {
            conn,
            prefix: format!("{namespace}:job:"),
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        })
    }

    /// How long a job's state is kept after its last change.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.ttl_secs).unwrap_or(0))
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    async fn write(&self, id: &str, fields: &[(&str, String)]) -> redis::RedisResult<()> {
        let key = self.key(id);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(&key, fields)
            .ignore()
            .expire(&key, self.ttl_secs)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// Records a new job, before its message is published.
    pub async fn create(&self, job: &JobState) -> redis::RedisResult<()> {
        let mut fields = vec![
            ("kind", job.kind.as_str().to_string()),
            ("status", job.status.as_str().to_string()),
            ("attempts", job.attempts.to_string()),
            ("enqueued_at", job.enqueued_at.to_rfc3339()),
            ("updated_at", Utc::now().to_rfc3339()),
        ];
        fields.extend(count_fields(&job.counts));
        let key = self.key(&job.id);
        let mut pipe = redis::pipe();
        pipe.atomic().hset_multiple(&key, &fields).ignore().expire(&key, self.ttl_secs).ignore();
        for status in JobStatus::ALL {
            let set = self.status_set(status);
            if status == job.status {
                pipe.zadd(set, &key, Utc::now().timestamp_millis()).ignore();
            } else {
                pipe.zrem(set, &key).ignore();
            }
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    /// Forgets a job whose message never reached the broker.
    pub async fn delete(&self, id: &str) -> redis::RedisResult<()> {
        let key = self.key(id);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        for status in JobStatus::ALL {
            pipe.zrem(self.status_set(status), &key).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    /// The prefix of the per-status sets: `<prefix><status>` holds the keys of the jobs in
    /// that status, scored by when they entered it, so counts by status cost one `ZCARD`
    /// each instead of a scan of every job. The transition scripts append the status.
    fn status_prefix(&self) -> String {
        format!("{}status:", self.meta_prefix())
    }

    fn status_set(&self, status: JobStatus) -> String {
        format!("{}{}", self.status_prefix(), status.as_str())
    }

    /// How many jobs are in each status, among those whose status changed within the state
    /// TTL (older entries are trimmed here: their states have expired).
    pub async fn status_counts(&self) -> redis::RedisResult<Vec<(JobStatus, u64)>> {
        let oldest = Utc::now().timestamp_millis().saturating_sub(self.ttl_secs.saturating_mul(1000));
        let mut pipe = redis::pipe();
        pipe.atomic();
        for status in JobStatus::ALL {
            let set = self.status_set(status);
            pipe.zrembyscore(&set, "-inf", format!("({oldest}")).ignore().zcard(&set);
        }
        let mut conn = self.conn.clone();
        let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok(JobStatus::ALL.into_iter().zip(counts).collect())
    }

    /// Marks an attempt as started; returns the attempt number across all deliveries.
    /// `template` recreates the hash if it expired or Redis lost it. A job already final
    /// (a redelivered copy of a job that succeeded) keeps its status.
    pub async fn start_attempt(&self, template: &JobState) -> redis::RedisResult<u32> {
        let key = self.key(&template.id);
        let mut conn = self.conn.clone();
        let now = Utc::now().to_rfc3339();
        scripts()
            .start_attempt
            .key(&key)
            .key(self.status_prefix())
            .arg(template.kind.as_str())
            .arg(template.enqueued_at.to_rfc3339())
            .arg(template.counts.received)
            .arg(template.counts.rejected)
            .arg(&now)
            .arg(self.ttl_secs)
            .invoke_async(&mut conn)
            .await
    }

    /// Moves a job to `to` with `fields`, unless its current status forbids it (see
    /// [`Transition`]). Returns whether the write happened.
    async fn transition(
        &self,
        id: &str,
        to: JobStatus,
        rule: Transition,
        fields: &[(&str, String)],
    ) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        let mut script = scripts().transition.prepare_invoke();
        script
            .key(self.key(id))
            .key(self.status_prefix())
            .arg(rule.allowed_from())
            .arg(self.ttl_secs)
            .arg("status")
            .arg(to.as_str());
        script.arg("updated_at").arg(Utc::now().to_rfc3339());
        for (k, v) in fields {
            script.arg(*k).arg(v);
        }
        let written: i64 = script.invoke_async(&mut conn).await?;
        Ok(written == 1)
    }

    pub async fn mark_retrying(&self, id: &str, code: ErrorCode, error: &str) -> redis::RedisResult<()> {
        let fields = [("error", error.to_string()), ("error_code", code.as_str().to_string())];
        self.transition(id, JobStatus::Retrying, Transition::Forward, &fields).await.map(drop)
    }

    pub async fn mark_succeeded(&self, id: &str, counts: &JobCounts) -> redis::RedisResult<()> {
        let mut fields = vec![
            ("finished_at", Utc::now().to_rfc3339()),
            ("error", String::new()),
            ("error_code", String::new()),
        ];
        fields.extend(count_fields(counts));
        self.transition(id, JobStatus::Succeeded, Transition::Finish, &fields).await.map(drop)
    }

    pub async fn mark_failed(&self, id: &str, code: ErrorCode, error: &str) -> redis::RedisResult<()> {
        let fields = [
            ("finished_at", Utc::now().to_rfc3339()),
            ("error", error.to_string()),
            ("error_code", code.as_str().to_string()),
        ];
        if !self.transition(id, JobStatus::Failed, Transition::Finish, &fields).await? {
            return Ok(());
        }
        // The index of failed jobs lives no longer than the jobs it lists: entries older than
        // the state TTL are trimmed, and the key expires a TTL after the latest failure.
        let now = Utc::now().timestamp_millis();
        let oldest = now.saturating_sub(self.ttl_secs.saturating_mul(1000));
        let key = self.failed_key();
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .zadd(&key, id, now)
            .ignore()
            .zrembyscore(&key, "-inf", format!("({oldest}"))
            .ignore()
            .expire(&key, self.ttl_secs)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// Starts an attempt for a worker: the attempt number across deliveries (this delivery's
    /// own count when Redis cannot say), and, when the job has started more attempts than
    /// `max_attempts` plus [`crate::queue::REDELIVERY_ALLOWANCE`], why it must be parked
    /// instead: every earlier delivery died without finishing.
    pub async fn begin_attempt(
        &self,
        template: &JobState,
        delivery_attempt: u32,
        max_attempts: u32,
    ) -> (u32, Option<String>) {
        let total = match self.start_attempt(template).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(job_id = %template.id, error = %e, "could not record attempt start");
                delivery_attempt
            }
        };
        let parked = (total > max_attempts.saturating_add(crate::queue::REDELIVERY_ALLOWANCE)).then(|| {
            format!(
                "delivered again and again without finishing ({total} attempts started): \
                 the process running it died each time"
            )
        });
        (total, parked)
    }

    /// Writes a job's final state once its work is durable elsewhere (committed, or parked in
    /// a dead-letter queue): now, or, if Redis refuses it, in the background
    /// ([`JobStore::settle_later`]). Never fails: the state is not what decides the work.
    pub async fn settle(&self, id: &str, outcome: Settled) {
        let written = match &outcome {
            Settled::Succeeded(counts) => self.mark_succeeded(id, counts).await,
            Settled::Failed(code, error) => self.mark_failed(id, *code, error).await,
        };
        if let Err(e) = written {
            tracing::warn!(job_id = id, error = %e, "job state will be written when Redis answers");
            self.settle_later(id, outcome);
        }
    }

    /// Writes a final state that Redis refused just now (it was restarting, say) in the
    /// background, retrying for up to a quarter of an hour: the work is done and acknowledged
    /// by then, so only its state is behind. Transitions only move forward, so a late write
    /// never undoes a newer one. Pending writes die with the process; an ingest job's state
    /// is then still read from PostgreSQL by `GET /jobs/{id}`.
    pub fn settle_later(&self, id: &str, outcome: Settled) {
        const MAX_PENDING: usize = 10_000;
        static PENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        if PENDING.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= MAX_PENDING {
            PENDING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            tracing::error!(job_id = id, "too many job states waiting for Redis; this one is dropped");
            return;
        }
        let (store, id) = (self.clone(), id.to_string());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
            let mut pause = Duration::from_millis(500);
            loop {
                let written = match &outcome {
                    Settled::Succeeded(counts) => store.mark_succeeded(&id, counts).await,
                    Settled::Failed(code, error) => store.mark_failed(&id, *code, error).await,
                };
                match written {
                    Ok(()) => break,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        tracing::error!(job_id = %id, error = %e, "gave up writing a job's final state");
                        break;
                    }
                    Err(_) => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(10));
                    }
                }
            }
            PENDING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }

    fn failed_key(&self) -> String {
        format!("{}failed", self.meta_prefix())
    }

    /// Failed jobs, most recent first. Entries whose state has expired are dropped.
    pub async fn failed_jobs(&self, limit: usize) -> redis::RedisResult<Vec<JobState>> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> =
            conn.zrevrange(self.failed_key(), 0, isize::try_from(limit).unwrap_or(isize::MAX) - 1).await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            match self.get(&id).await? {
                Some(job) if job.status == JobStatus::Failed => jobs.push(job),
                _ => conn.zrem::<_, _, ()>(self.failed_key(), &id).await?,
            }
        }
        Ok(jobs)
    }

    /// Puts a job that failed, or gave up for now, back to `enqueued` once its message was
    /// published again (an operator's replay, or the sync sweeper). A job that succeeded
    /// meanwhile stays succeeded. Returns whether the state moved.
    pub async fn mark_requeued(&self, id: &str) -> redis::RedisResult<bool> {
        // Attempts count again from here: the delivery allowance is per queueing.
        let fields = [
            ("finished_at", String::new()),
            ("error", String::new()),
            ("error_code", String::new()),
            ("attempts", "0".to_string()),
        ];
        let moved = self.transition(id, JobStatus::Enqueued, Transition::Requeue, &fields).await?;
        let mut conn = self.conn.clone();
        conn.zrem::<_, _, ()>(self.failed_key(), id).await?;
        Ok(moved)
    }

    /// Adds to a job's `indexed` count as chunks land in the index.
    pub async fn add_indexed(&self, id: &str, n: u64) -> redis::RedisResult<()> {
        let key = self.key(id);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hincr(&key, "indexed", n)
            .ignore()
            .expire(&key, self.ttl_secs)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// Starts an attempt's count of indexed rows from zero (a retry indexes its batch again).
    pub async fn reset_indexed(&self, id: &str) -> redis::RedisResult<()> {
        self.write(id, &[("indexed", "0".to_string())]).await
    }

    /// Keeps a note on a job that a later delivery of it needs (what a rebuild replaces).
    pub async fn set_note(&self, id: &str, name: &str, value: &str) -> redis::RedisResult<()> {
        self.write(id, &[(&format!("note:{name}"), value.to_string())]).await
    }

    pub async fn note(&self, id: &str, name: &str) -> redis::RedisResult<Option<String>> {
        let mut conn = self.conn.clone();
        conn.hget(self.key(id), format!("note:{name}")).await
    }

    /// Keeps what a retention run removed (or would remove) with its state.
    pub async fn set_retention(
        &self,
        id: &str,
        report: &crate::retention::RetentionReport,
    ) -> redis::RedisResult<()> {
        self.write(id, &[("retention", serde_json::to_string(report).unwrap_or_default())]).await
    }

    /// Keeps a re-rate's progress with its state.
    pub async fn set_rerate(
        &self,
        id: &str,
        progress: &crate::rating::rerate::RerateProgress,
    ) -> redis::RedisResult<()> {
        self.write(id, &[("rerate", serde_json::to_string(progress).unwrap_or_default())]).await
    }

    /// Keeps what a job's own kind reports (see [`JobState::detail`]).
    pub async fn set_detail(&self, id: &str, detail: &impl Serialize) -> redis::RedisResult<()> {
        self.write(id, &[("detail", serde_json::to_string(detail).unwrap_or_default())]).await
    }

    /// Links an ingest job to the index job that follows it.
    pub async fn set_index_job(&self, id: &str, index_job_id: &str) -> redis::RedisResult<()> {
        self.write(id, &[("index_job_id", index_job_id.to_string())]).await
    }

    /// Remembers when rows last reached the index (for `GET /sync-status`).
    pub async fn touch_last_indexed(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        conn.set::<_, _, ()>(format!("{}last_indexed_at", self.meta_prefix()), Utc::now().to_rfc3339()).await
    }

    pub async fn last_indexed_at(&self) -> redis::RedisResult<Option<DateTime<Utc>>> {
        let mut conn = self.conn.clone();
        let v: Option<String> = conn.get(format!("{}last_indexed_at", self.meta_prefix())).await?;
        Ok(v.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|t| t.with_timezone(&Utc)))
    }

    /// Takes a named lease if free; returns who holds it otherwise.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> redis::RedisResult<Result<(), String>> {
        let key = format!("{}lease:{name}", self.meta_prefix());
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .query_async(&mut conn)
            .await?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        let current: Option<String> = conn.get(&key).await?;
        Ok(Err(current.unwrap_or_default()))
    }

    /// Takes a named lease for `holder` unless a job that is still running holds it; a lease
    /// left by a finished (or forgotten) job is taken over. `Err` names the running holder.
    pub async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> redis::RedisResult<Result<(), String>> {
        let Err(current) = self.try_lease(name, holder, ttl).await? else { return Ok(Ok(())) };
        let live = match self.get(&current).await? {
            Some(state) => !state.status.is_final(),
            None => false,
        };
        if live {
            return Ok(Err(current));
        }
        self.force_lease(name, holder, ttl).await?;
        Ok(Ok(()))
    }

    /// Releases a lease, only if `holder` still holds it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> redis::RedisResult<()> {
        let key = format!("{}lease:{name}", self.meta_prefix());
        let mut conn = self.conn.clone();
        redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
        )
        .key(key)
        .arg(holder)
        .invoke_async::<()>(&mut conn)
        .await
    }

    /// Hands a lease to a new holder regardless of the old one (used to take over a lease
    /// whose holder is known to be finished).
    pub async fn force_lease(&self, name: &str, holder: &str, ttl: Duration) -> redis::RedisResult<()> {
        let key = format!("{}lease:{name}", self.meta_prefix());
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(&key)
            .arg(holder)
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .query_async::<()>(&mut conn)
            .await
    }

    /// Takes a named lease if free, or extends it if `holder` holds it already; `false`
    /// when another holder has it. A holder that stops renewing loses the lease after `ttl`,
    /// so a killed process never blocks the work for longer than that.
    pub async fn hold_lease(&self, name: &str, holder: &str, ttl: Duration) -> redis::RedisResult<bool> {
        let key = format!("{}lease:{name}", self.meta_prefix());
        let mut conn = self.conn.clone();
        let held: i64 = scripts()
            .hold_lease
            .key(key)
            .arg(holder)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }

    fn meta_prefix(&self) -> String {
        self.prefix.trim_end_matches("job:").to_string()
    }

    pub async fn get(&self, id: &str) -> redis::RedisResult<Option<JobState>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> = conn.hgetall(self.key(id)).await?;
        Ok(from_hash(id, &map))
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await
    }
}

fn count_fields(c: &JobCounts) -> Vec<(&'static str, String)> {
    vec![
        ("received", c.received.to_string()),
        ("rejected", c.rejected.to_string()),
        ("inserted", c.inserted.to_string()),
        ("duplicates", c.duplicates.to_string()),
        ("indexed", c.indexed.to_string()),
        ("refused", c.refused.to_string()),
    ]
}

fn from_hash(id: &str, map: &HashMap<String, String>) -> Option<JobState> {
    let status = JobStatus::parse(map.get("status")?)?;
    let kind = match map.get("kind") {
        Some(k) => JobKind::parse(k)?,
        None => JobKind::new(crate::ingest::KIND),
    };
    let time = |k: &str| {
        map.get(k)
            .filter(|s| !s.is_empty())
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let num = |k: &str| map.get(k).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    Some(JobState {
        id: id.to_string(),
        kind,
        status,
        attempts: u32::try_from(num("attempts")).unwrap_or(u32::MAX),
        enqueued_at: time("enqueued_at").unwrap_or_else(Utc::now),
        started_at: time("started_at"),
        finished_at: time("finished_at"),
        updated_at: time("updated_at"),
        counts: JobCounts {
            received: num("received"),
            rejected: num("rejected"),
            inserted: num("inserted"),
            duplicates: num("duplicates"),
            indexed: num("indexed"),
            refused: num("refused"),
        },
        error: map.get("error").filter(|s| !s.is_empty()).cloned(),
        error_code: map.get("error_code").and_then(|s| ErrorCode::parse(s)),
        index_job_id: map.get("index_job_id").filter(|s| !s.is_empty()).cloned(),
        retention: map.get("retention").and_then(|s| serde_json::from_str(s).ok()),
        rerate: map.get("rerate").and_then(|s| serde_json::from_str(s).ok()),
        detail: map.get("detail").and_then(|s| serde_json::from_str(s).ok()),
    })
}
