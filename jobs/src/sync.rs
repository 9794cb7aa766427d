//! Keeping the search index converged on PostgreSQL.
//!
//! PostgreSQL is the source of truth and every ingest batch records whether its rows reached
//! the index (`ingest_batches.indexed_at`), so the gap is a query. The sweeper re-queues
//! batches that should have been indexed by now, whatever lost them: an index job dropped,
//! Elasticsearch down for an hour, a worker killed between storing and indexing.

use crate::indexing::enqueue;
use crate::queue::Publisher;
use crate::search::{SearchError, SearchIndex};
use crate::state::JobStore;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use serde::Serialize;
use std::time::Duration;
use tracing::{info, warn};

const BACKLOG_SQL: &str = "SELECT coalesce(sum(inserted), 0)::int8 AS backlog, min(committed_at) AS oldest \
     FROM ingest_batches WHERE indexed_at IS NULL";
const REFUSED_SQL: &str = "SELECT count(*) AS refused FROM index_failures";
const TOTAL_SQL: &str = "SELECT count(*) AS total FROM cdrs";
const DUE_SQL: &str = "SELECT job_id FROM ingest_batches WHERE indexed_at IS NULL \
     AND committed_at < now() - make_interval(secs => $1) ORDER BY committed_at LIMIT $2";

/// PostgreSQL and the index compared.
#[derive(Debug, Clone, Serialize, PartialEq, poem_openapi::Object)]
pub struct SyncStatus {
    /// Rows in PostgreSQL.
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
        db.query_one_raw(Statement::from_string(backend, TOTAL_SQL)),
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
    let index_count = index_count?;
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
pub async fn sample_gauges(db: &DatabaseConnection, publisher: &Publisher) {
    let timeout = Duration::from_secs(2);
    let m = crate::metrics::metrics();
    if let Ok(Ok(n)) = tokio::time::timeout(timeout, backlog(db)).await {
        m.index_backlog.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    for queue in publisher.topology().queues() {
        for name in [queue.to_string(), crate::queue::Topology::dead(queue)] {
            if let Ok(Ok(depth)) = tokio::time::timeout(timeout, publisher.queue_depth(&name)).await {
                m.queue_depth.with_label_values(&[name.as_str()]).set(i64::from(depth));
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
    /// Index jobs (one per waiting batch) queued per sweep at most; the rest waits for the
    /// next sweep.
    pub max_jobs_per_sweep: u64,
}

impl Sweeper {
    /// One sweep. Returns the batches queued. Only one process sweeps at a time, and nothing is
    /// queued while index jobs still wait in the queue, so an outage cannot pile up copies.
    pub async fn sweep_once(&self) -> Result<u64, SyncError> {
        let holder = crate::new_job_id();
        let lease = self.jobs.try_lease("sweep", &holder, self.grace.max(Duration::from_secs(5))).await?;
        if lease.is_err() {
            return Ok(0);
        }
        let waiting = self.publisher.queue_depth(&self.publisher.topology().index).await.unwrap_or(u32::MAX);
        if waiting > 0 {
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
            match enqueue(&self.publisher, &self.jobs, &ingest_job_id).await {
                Ok(_) => queued += 1,
                Err(e) => {
                    warn!(error = %e, "sweeper could not queue an index job");
                    break;
                }
            }
        }
        if queued > 0 {
            info!(batches = queued, "sweeper queued batches waiting for the index");
        }
        Ok(queued)
    }

    /// Sweeps every `every` until `stop` resolves.
    pub async fn run(self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.sweep_once().await {
                warn!(error = %e, "sync sweep failed");
            }
        }
    }
}
