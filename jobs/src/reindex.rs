//! Rebuilding the search index from PostgreSQL with zero downtime.
//!
//! The table is streamed in id order into a new physical index while the alias keeps
//! serving the old one; rows stored or indexed meanwhile are caught up; then the alias
//! moves to the new index in one atomic step and the old index is deleted.

use crate::search::{SearchError, SearchIndex};
use crate::state::{JobCounts, JobKind, JobState, JobStore};
use chrono::{DateTime, Utc};
use entities::cdrs;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tracing::{info, warn};

/// Only one rebuild runs at a time; this lease names it.
pub const LEASE: &str = "reindex";
const LEASE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Rows stored or indexed this close before the rebuild started are caught up again:
/// a transaction can commit a little after the `ingested_at` it stamped.
const CATCH_UP_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
const CHUNK_RETRIES: u32 = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReindexJob {
    pub job_id: String,
    pub enqueued_at: DateTime<Utc>,
}

impl ReindexJob {
    pub fn new() -> Self {
        ReindexJob { job_id: crate::new_job_id(), enqueued_at: Utc::now() }
    }

    pub fn initial_state(&self) -> JobState {
        JobState::enqueued(self.job_id.clone(), JobKind::Reindex, JobCounts::default(), self.enqueued_at)
    }
}

impl Default for ReindexJob {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReindexError {
    #[error("a rebuild is already running (job {0})")]
    AlreadyRunning(String),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Search(#[from] SearchError),
    #[error("job state store: {0}")]
    JobState(#[from] redis::RedisError),
    #[error("Elasticsearch refused {0} rows")]
    Refused(usize),
}

/// Claims the rebuild lease for a new job, unless a live rebuild holds it.
pub async fn claim(jobs: &JobStore, job: &ReindexJob) -> Result<(), ReindexError> {
    match jobs.try_lease(LEASE, &job.job_id, LEASE_TTL).await? {
        Ok(()) => Ok(()),
        Err(holder) => {
            let live = match jobs.get(&holder).await? {
                Some(state) => !state.status.is_final(),
                None => false,
            };
            if live {
                return Err(ReindexError::AlreadyRunning(holder));
            }
            jobs.force_lease(LEASE, &job.job_id, LEASE_TTL).await?;
            Ok(())
        }
    }
}

#[derive(Clone)]
pub struct ReindexRunner {
    pub db: DatabaseConnection,
    pub jobs: JobStore,
    pub search: SearchIndex,
    /// Where a message that is not a rebuild job is parked for inspection.
    pub publisher: crate::queue::Publisher,
    pub chunk: u64,
}

impl ReindexRunner {
    /// Runs the whole rebuild; the job's state shows progress in `counts.indexed`.
    pub async fn run(&self, job: &ReindexJob) -> Result<u64, ReindexError> {
        self.jobs.start_attempt(&job.initial_state()).await?;
        let result = self.rebuild(job).await;
        match &result {
            Ok(n) => {
                let counts = JobCounts { indexed: *n, ..JobCounts::default() };
                self.jobs.mark_succeeded(&job.job_id, &counts).await?;
                crate::metrics::count_job("reindex", "succeeded");
                info!(job_id = %job.job_id, indexed = n, "reindex succeeded");
            }
            Err(e) => {
                self.jobs.mark_failed(&job.job_id, &e.to_string()).await?;
                crate::metrics::count_job("reindex", "failed");
                warn!(job_id = %job.job_id, error = %e, "reindex failed");
            }
        }
        if let Err(e) = self.jobs.release_lease(LEASE, &job.job_id).await {
            warn!(error = %e, "could not release the reindex lease");
        }
        result
    }

    async fn rebuild(&self, job: &ReindexJob) -> Result<u64, ReindexError> {
        let started = Utc::now();
        let target = format!("{}-{}", self.search.alias(), job.job_id);
        // An interrupted earlier attempt of this job may have left a partial index.
        self.search.delete_index(&target).await?;
        self.search.create_index(&target, false).await?;

        let mut last_id = 0_i64;
        let mut total = 0_u64;
        loop {
            let rows = cdrs::Entity::find()
                .filter(cdrs::Column::Id.gt(last_id))
                .order_by_asc(cdrs::Column::Id)
                .limit(self.chunk)
                .all(&self.db)
                .await?;
            let Some(last) = rows.last() else { break };
            last_id = last.id;
            total += self.write_chunk(&target, &rows).await?;
            self.jobs.add_indexed(&job.job_id, rows.len() as u64).await?;
        }
        self.catch_up(&target, started).await?;
        self.search.refresh(Some(&target)).await?;
        let old = self.search.alias_targets().await?.unwrap_or_default();
        let old: Vec<String> = old.into_iter().filter(|i| *i != target).collect();
        self.search.swap_alias(&old, &target).await?;
        // Rows written to the old index between the catch-up and the swap.
        self.catch_up(&target, started).await?;
        for index in &old {
            self.search.delete_index(index).await?;
        }
        info!(job_id = %job.job_id, index = %target, replaced = ?old, rows = total, "alias swapped");
        Ok(total)
    }

    /// Re-writes rows stored or indexed since the rebuild began.
    async fn catch_up(&self, target: &str, started: DateTime<Utc>) -> Result<(), ReindexError> {
        let since = started - CATCH_UP_MARGIN;
        let mut last_id = 0_i64;
        loop {
            let rows = cdrs::Entity::find()
                .filter(cdrs::Column::Id.gt(last_id))
                .filter(Expr::cust_with_values(
                    "job_id IN (SELECT job_id FROM ingest_batches WHERE committed_at >= $1 OR indexed_at >= $1)",
                    [since],
                ))
                .order_by_asc(cdrs::Column::Id)
                .limit(self.chunk)
                .all(&self.db)
                .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            last_id = last.id;
            self.write_chunk(target, &rows).await?;
        }
    }

    /// Writes one chunk, retrying what the engine refuses for now.
    async fn write_chunk(&self, target: &str, rows: &[cdrs::Model]) -> Result<u64, ReindexError> {
        let mut pending: Vec<cdrs::Model> = rows.to_vec();
        let mut written = 0;
        for attempt in 0..=CHUNK_RETRIES {
            let outcome = match self.search.bulk_index(Some(target), &pending).await {
                Ok(o) => o,
                Err(e) if e.is_transient() && attempt < CHUNK_RETRIES => {
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            written += outcome.indexed.len() as u64;
            if !outcome.rejected.is_empty() {
                return Err(ReindexError::Refused(outcome.rejected.len()));
            }
            if outcome.retryable.is_empty() {
                return Ok(written);
            }
            let retry: std::collections::HashSet<i64> = outcome.retryable.iter().map(|(id, _)| *id).collect();
            pending.retain(|r| retry.contains(&r.id));
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(ReindexError::Search(SearchError::Status {
            status: 429,
            body: "rows still refused after retries".into(),
        }))
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 * 2_u64.pow(attempt.min(7)))
}
