//! Keeping the search index converged on PostgreSQL.
//!
//! PostgreSQL is the source of truth and every ingest batch records whether its rows reached
//! the index (`ingest_batches.indexed_at`), so the gap is a query. The sweeper re-queues
//! batches that should have been indexed by now, whatever lost them: an index job dropped,
//! Elasticsearch down for an hour, a worker killed between storing and indexing.

use crate::indexing::{IndexJob, enqueue};
use crate::queue::Publisher;
use crate::search::{SearchError, SearchIndex};
use crate::state::{JobStatus, JobStore};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use serde::Serialize;
use std::time::Duration;
use tracing::{info, warn};

const BACKLOG_SQL: &str = "SELECT coalesce(sum(inserted), 0)::int8 AS backlog, min(committed_at) AS oldest \
     FROM ingest_batches WHERE indexed_at IS NULL";
const REFUSED_SQL: &str = "SELECT count(*) AS refused FROM index_failures";
const DUE_SQL: &str = "SELECT job_id FROM ingest_batches WHERE indexed_at IS NULL \
     AND committed_at < now() - make_interval(secs => $1) \
     AND (swept_at IS NULL OR swept_at < now() - make_interval(secs => $1)) \
     ORDER BY committed_at LIMIT $2";
const SWEPT_SQL: &str = "UPDATE ingest_batches SET swept_at = now() WHERE job_id = $1";

/// PostgreSQL and the index compared.
#[derive(Debug, Clone, Serialize, PartialEq, poem_openapi::Object)]
pub struct SyncStatus {
    /// Rows in PostgreSQL (kept by the KPI rollups: a lookup, not a scan).
    pub database_count: u64,
    /// Documents in the index (as of its last refresh, about a second behind).
    pub index_count: u64,
    /// Rows in PostgreSQL not yet in the index (waiting, or refused for good).
    pub backlog: u64,
    /// Of the backlog, rows the index refused for good (listed in `index_failures`, their
    /// index jobs failed with the reason).
    pub refused: u64,
    /// Age of the oldest row waiting, in seconds; null when nothing waits.
    #[oai(nullable)]
    pub oldest_unindexed_age_seconds: Option<f64>,
    /// True when nothing waits and the counts agree.
    pub in_sync: bool,
    /// When rows last reached the index; null until some have.
    #[oai(nullable)]
    pub last_indexed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Search(#[from] SearchError),
    #[error("job state store: {0}")]
    JobState(#[from] redis::RedisError),
}

pub async fn status(
    db: &DatabaseConnection,
    search: &SearchIndex,
    jobs: &JobStore,
) -> Result<SyncStatus, SyncError> {
    let backend = db.get_database_backend();
    let (total, backlog, refused, index_count, last) = tokio::join!(
        db.query_one_raw(Statement::from_string(backend, crate::rollups::TOTAL_SQL)),
        db.query_one_raw(Statement::from_string(backend, BACKLOG_SQL)),
        db.query_one_raw(Statement::from_string(backend, REFUSED_SQL)),
        search.count(None),
        jobs.last_indexed_at(),
    );
    let total: i64 = total?.map(|r| r.try_get("", "total")).transpose()?.unwrap_or(0);
    let backlog_row = backlog?;
    let waiting: i64 = backlog_row.as_ref().map(|r| r.try_get("", "backlog")).transpose()?.unwrap_or(0);
    let oldest: Option<DateTime<Utc>> =
        backlog_row.as_ref().map(|r| r.try_get("", "oldest")).transpose()?.flatten();
    let refused: i64 = refused?.map(|r| r.try_get("", "refused")).transpose()?.unwrap_or(0);
    // No alias (the engine lost it; the next index job re-creates it): nothing is searchable.
    let index_count = match index_count {
        Err(SearchError::Status { status: 404, .. }) => 0,
        other => other?,
    };
    let database_count = u64::try_from(total).unwrap_or(0);
    let refused = u64::try_from(refused).unwrap_or(0);
    let backlog = u64::try_from(waiting).unwrap_or(0) + refused;
    Ok(SyncStatus {
        database_count,
        index_count,
        backlog,
        refused,
        oldest_unindexed_age_seconds: oldest
            .map(|t| ((Utc::now() - t).num_milliseconds().max(0) as f64) / 1000.0),
        in_sync: backlog == 0 && database_count == index_count,
        last_indexed_at: last?,
    })
}

/// Rows stored but not yet searchable; cheap enough to sample on every metrics scrape.
pub async fn backlog(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), BACKLOG_SQL)).await?;
    let waiting: i64 = row.map(|r| r.try_get("", "backlog")).transpose()?.unwrap_or(0);
    Ok(u64::try_from(waiting).unwrap_or(0))
}

/// Refreshes the gauges that describe shared state, each check bounded by a timeout.
pub async fn sample_gauges(db: &DatabaseConnection, publisher: &Publisher, jobs: &JobStore) {
    let timeout = Duration::from_secs(2);
    let m = crate::metrics::metrics();
    if let Ok(Ok(n)) = tokio::time::timeout(timeout, backlog(db)).await {
        m.index_backlog.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    if let Ok(Ok(rules)) = tokio::time::timeout(timeout, crate::alerts::store::firing(db)).await {
        m.alert_firing.reset();
        for (rule, firing) in rules {
            m.alert_firing.with_label_values(&[rule.as_str()]).set(i64::from(firing));
        }
    }
    if let Ok(Ok(counts)) = tokio::time::timeout(timeout, jobs.status_counts()).await {
        for (status, n) in counts {
            m.jobs_in_status.with_label_values(&[status.as_str()]).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    for queue in publisher.topology().queues() {
        for name in [queue.clone(), crate::queue::Topology::dead(&queue)] {
            if let Ok(Ok(stats)) = tokio::time::timeout(timeout, publisher.queue_stats(&name)).await {
                m.queue_depth.with_label_values(&[name.as_str()]).set(i64::from(stats.messages));
                m.queue_consumers.with_label_values(&[name.as_str()]).set(i64::from(stats.consumers));
            }
        }
    }
}

/// Periodically re-queues rows that have waited longer than `grace`.
#[derive(Clone)]
pub struct Sweeper {
    pub db: DatabaseConnection,
    pub jobs: JobStore,
    pub publisher: Publisher,
    /// How long a row may wait for its own index job before the sweeper steps in.
    pub grace: Duration,
    /// Batches queued per sweep at most; the rest waits for the next sweep.
    pub max_jobs_per_sweep: u64,
    /// Who this sweeper is when it holds the lease (one per process).
    pub holder: String,
}

/// What a sweep decided for one waiting batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Its index job is running or was just queued: leave it.
    InFlight,
    /// Its index job failed for good and waits in the dead-letter queue for an operator.
    Failed,
    /// Its index job gave up for now or went quiet: publish the same job again.
    Republish,
    /// No index job is known (lost before it was queued, or its state expired): a new one.
    New,
}

impl Sweeper {
    /// A sweeper for this process.
    pub fn new(db: DatabaseConnection, jobs: JobStore, publisher: Publisher, grace: Duration) -> Self {
        Sweeper { db, jobs, publisher, grace, max_jobs_per_sweep: 100, holder: crate::new_job_id() }
    }

    /// How long the lease outlives its holder's last renewal.
    fn lease_ttl(&self) -> Duration {
        self.grace.max(Duration::from_secs(30))
    }

    /// One sweep. Returns the batches queued. One process sweeps at a time (it holds and
    /// renews a lease; a killed holder loses it after its TTL). Due are batches unindexed for
    /// longer than the grace whatever the index queue holds, each offered again at most once
    /// per grace period; a batch whose index job is still at work is left alone.
    pub async fn sweep_once(&self) -> Result<u64, SyncError> {
        if !self.jobs.hold_lease("sweep", &self.holder, self.lease_ttl()).await? {
            return Ok(0);
        }
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                DUE_SQL,
                [
                    self.grace.as_secs_f64().into(),
                    i64::try_from(self.max_jobs_per_sweep).unwrap_or(100).into(),
                ],
            ))
            .await?;
        let mut queued = 0;
        for row in rows {
            let ingest_job_id: String = row.try_get("", "job_id")?;
            let (decision, index_job) = self.decide(&ingest_job_id).await?;
            let published = match (decision, index_job) {
                (Decision::Republish, Some(job)) => {
                    let sent =
                        crate::indexing::publish(&self.publisher, &job).await.map(|()| job.job_id.clone());
                    if sent.is_ok() {
                        self.jobs.mark_requeued(&job.job_id).await?;
                    }
                    sent.map(Some)
                }
                (Decision::New, _) | (Decision::Republish, None) => {
                    let sent = enqueue(&self.publisher, &self.jobs, &ingest_job_id).await;
                    if let Ok(id) = &sent {
                        self.jobs.set_index_job(&ingest_job_id, id).await?;
                    }
                    sent.map(Some)
                }
                (Decision::InFlight | Decision::Failed, _) => Ok(None),
            };
            match published {
                Ok(Some(index_job_id)) => {
                    queued += 1;
                    info!(batch = %ingest_job_id, index_job = %index_job_id, "sweeper queued a waiting batch");
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(error = %e, "sweeper could not queue an index job");
                    break;
                }
            }
            self.db
                .execute_raw(Statement::from_sql_and_values(backend, SWEPT_SQL, [ingest_job_id.into()]))
                .await?;
        }
        if queued > 0 {
            info!(batches = queued, "sweeper queued batches waiting for the index");
        }
        Ok(queued)
    }

    /// What to do with a waiting batch, from its index job's state.
    async fn decide(&self, ingest_job_id: &str) -> Result<(Decision, Option<IndexJob>), SyncError> {
        let Some(index_job_id) = self.jobs.get(ingest_job_id).await?.and_then(|s| s.index_job_id) else {
            return Ok((Decision::New, None));
        };
        let Some(state) = self.jobs.get(&index_job_id).await? else {
            return Ok((Decision::New, None));
        };
        let job = IndexJob {
            job_id: index_job_id,
            enqueued_at: state.enqueued_at,
            ingest_job_id: ingest_job_id.to_string(),
        };
        let quiet_since = state.updated_at.unwrap_or(state.enqueued_at);
        let quiet = Utc::now() - quiet_since > chrono::Duration::from_std(self.grace).unwrap_or_default();
        let decision = match state.status {
            JobStatus::Failed => Decision::Failed,
            // Its batch was made due again (a re-created alias): a new job does it.
            JobStatus::Succeeded => return Ok((Decision::New, None)),
            JobStatus::Enqueued | JobStatus::Processing | JobStatus::Retrying if !quiet => Decision::InFlight,
            JobStatus::Enqueued | JobStatus::Processing | JobStatus::Retrying => Decision::Republish,
        };
        Ok((decision, Some(job)))
    }

    /// Sweeps every `every` until `stop` resolves, then gives the lease up so another
    /// process takes over at once.
    pub async fn run(self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.sweep_once().await {
                warn!(error = %e, "sync sweep failed");
            }
        }
        if let Err(e) = self.jobs.release_lease("sweep", &self.holder).await {
            warn!(error = %e, "could not release the sweep lease");
        }
    }
}
