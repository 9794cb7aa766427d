//! The index job: rows committed in PostgreSQL, written into the search index.
//!
//! Rows are read from PostgreSQL (the source of truth), not carried in the message, and
//! their batch is marked `indexed_at` only after Elasticsearch accepted every row; the
//! document id is the row id, so any repeat overwrites instead of duplicating. Rows the
//! engine refuses for good are recorded in `index_failures` and the job is dead-lettered.

use crate::error_code::ErrorCode;
use crate::metrics;
use crate::queue::{PublishError, Publisher};
use crate::search::{SearchError, SearchIndex, WriteTo};
use crate::state::{JobCounts, JobKind, JobState, JobStore, Settled};
use chrono::{DateTime, Utc};
use entities::{cdrs, index_failures, ingest_batches};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

/// The kind an index job's state shows.
pub const KIND: &str = "index";

/// The message body of an index job: the rows one ingest job stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexJob {
    pub job_id: String,
    pub enqueued_at: DateTime<Utc>,
    pub ingest_job_id: String,
}

impl IndexJob {
    pub fn new(ingest_job_id: &str) -> Self {
        IndexJob {
            job_id: crate::new_job_id(),
            enqueued_at: Utc::now(),
            ingest_job_id: ingest_job_id.to_string(),
        }
    }

    pub fn initial_state(&self) -> JobState {
        JobState::enqueued(self.job_id.clone(), JobKind::new(KIND), JobCounts::default(), self.enqueued_at)
    }
}
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error("database unavailable: {0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Search(#[from] SearchError),
    #[error("job state store unavailable: {0}")]
    JobState(#[from] redis::RedisError),
    #[error("could not publish: {0}")]
    Publish(#[from] PublishError),
    #[error("{count} rows refused for now by Elasticsearch, first: {first}")]
    ItemsRetryable { count: usize, first: String },
    #[error("the search alias was missing; it has been re-created")]
    AliasRecovered,
}

impl IndexError {
    fn is_transient(&self) -> bool {
        match self {
            IndexError::Search(e) => e.is_transient(),
            IndexError::Database(e) => crate::store::is_transient(e),
            _ => true,
        }
    }

    /// The code a client sees in the job's state.
    pub fn code(&self) -> ErrorCode {
        match self {
            IndexError::Database(e) if crate::store::is_transient(e) => ErrorCode::DatabaseUnavailable,
            IndexError::Database(_) => ErrorCode::DatabaseRefused,
            IndexError::Search(e) if e.is_transient() => ErrorCode::SearchUnavailable,
            IndexError::Search(_) => ErrorCode::SearchRefused,
            IndexError::JobState(_) => ErrorCode::StateUnavailable,
            IndexError::Publish(_) => ErrorCode::BrokerUnavailable,
            IndexError::ItemsRetryable { .. } | IndexError::AliasRecovered => ErrorCode::SearchUnavailable,
        }
    }
}

/// Records the job's state and publishes it; used after an ingest commit and by the sweeper.
/// `Ok` names the job when it is queued, or may be (a publish the broker never confirmed).
pub async fn enqueue(
    publisher: &Publisher,
    jobs: &JobStore,
    ingest_job_id: &str,
) -> Result<String, IndexError> {
    let job = IndexJob::new(ingest_job_id);
    match crate::job::enqueue_keeping_unconfirmed(jobs, publisher, &job, &job.initial_state()).await {
        Ok(()) => {}
        // Sent, but the broker went away before confirming it: the message may be queued or
        // lost, and its state stays `enqueued`. The job is still named to the caller, which
        // links it to the batch, so the sweeper republishes this same job if it never runs
        // rather than queue another and leave this one `enqueued` for good.
        Err(crate::job::EnqueueError::Publish(e @ PublishError::Unconfirmed(_))) => {
            tracing::warn!(job_id = %job.job_id, error = %e, "index job not confirmed; the sweeper republishes it if it never runs");
        }
        Err(crate::job::EnqueueError::State(e)) => return Err(IndexError::JobState(e)),
        Err(crate::job::EnqueueError::Publish(e)) => return Err(IndexError::Publish(e)),
    }
    Ok(job.job_id)
}

/// Publishes an index job's message (again, for the sweeper: same id, same state).
pub async fn publish(publisher: &Publisher, job: &IndexJob) -> Result<(), IndexError> {
    crate::job::publish(publisher, job).await.map_err(Into::into)
}

#[derive(Clone)]
pub struct IndexRunner {
    pub db: DatabaseConnection,
    pub jobs: JobStore,
    pub search: SearchIndex,
    pub publisher: Publisher,
    pub max_attempts: u32,
    /// Rows per bulk request.
    pub chunk: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexResult {
    Indexed(u64),
    /// Out of attempts for now; the sync sweeper queues the batch again later.
    Deferred,
    Failed,
}

impl IndexRunner {
    /// One attempt. `Ok`: acknowledge (done, deferred to the sweeper, or failed for good
    /// and dead-lettered). `Err`: retry.
    pub async fn run(&self, job: &IndexJob, attempt: u32) -> Result<IndexResult, IndexError> {
        let (_, parked) = self.jobs.begin_attempt(&job.initial_state(), attempt, self.max_attempts).await;
        if let Some(reason) = parked {
            self.dead_letter(job, ErrorCode::DeliveryLimit, &reason).await?;
            return Ok(IndexResult::Failed);
        }
        let mut indexed = 0;
        let mut refused: Vec<(i64, String)> = Vec::new();
        let started = std::time::Instant::now();
        let outcome = self.index_all(job, &mut indexed, &mut refused).await;
        match outcome {
            Ok(()) if refused.is_empty() => {
                let counts = match self.jobs.get(&job.job_id).await {
                    Ok(Some(state)) => {
                        JobCounts { indexed: state.counts.indexed.max(indexed), ..JobCounts::default() }
                    }
                    _ => JobCounts { indexed, ..JobCounts::default() },
                };
                self.jobs.settle(&job.job_id, Settled::Succeeded(counts)).await;
                metrics::count_records("indexed", indexed);
                metrics::count_job("index", "succeeded");
                metrics::metrics()
                    .job_seconds
                    .with_label_values(&["index"])
                    .observe(started.elapsed().as_secs_f64());
                info!(job_id = %job.job_id, indexed, "index job succeeded");
                crate::crash::point("index-before-ack");
                Ok(IndexResult::Indexed(indexed))
            }
            Ok(()) => {
                let reason = format!(
                    "Elasticsearch refused {} rows for good (first: row {} — {})",
                    refused.len(),
                    refused[0].0,
                    refused[0].1
                );
                self.dead_letter(job, ErrorCode::SearchRefused, &reason).await?;
                Ok(IndexResult::Failed)
            }
            Err(e) if !e.is_transient() => {
                self.dead_letter(job, e.code(), &format!("permanent error: {e}")).await?;
                Ok(IndexResult::Failed)
            }
            Err(e) if attempt >= self.max_attempts => {
                // The rows stay unindexed in PostgreSQL, where the sync sweeper finds them and
                // publishes this job again: it is not failed, only waiting.
                let reason = format!(
                    "gave up for now after {attempt} attempts ({e}); the sync sweeper queues it again"
                );
                if let Err(se) = self.jobs.mark_retrying(&job.job_id, e.code(), &reason).await {
                    warn!(job_id = %job.job_id, error = %se, "could not record the deferred state");
                }
                metrics::count_job("index", "deferred");
                warn!(job_id = %job.job_id, reason, "index job deferred to the sweeper");
                Ok(IndexResult::Deferred)
            }
            Err(e) => {
                warn!(job_id = %job.job_id, attempt, error = %e, "index attempt failed; will retry");
                if let Err(re) = self.jobs.mark_retrying(&job.job_id, e.code(), &e.to_string()).await {
                    warn!(job_id = %job.job_id, error = %re, "could not record retrying state");
                }
                Err(e)
            }
        }
    }

    /// Writes every row of the batch, in id order and in chunks, then marks the batch
    /// indexed. A retry starts over: the document ids make that harmless. A batch already
    /// marked indexed (a second copy of the job, from the sweeper or a redelivery) is done.
    async fn index_all(
        &self,
        job: &IndexJob,
        indexed: &mut u64,
        refused: &mut Vec<(i64, String)>,
    ) -> Result<(), IndexError> {
        let (done, revision) = batch_indexed(&self.db, &job.ingest_job_id).await?;
        if done {
            return Ok(());
        }
        if let Err(e) = self.jobs.reset_indexed(&job.job_id).await {
            warn!(job_id = %job.job_id, error = %e, "could not reset the indexed count");
        }
        let mut last_id = 0_i64;
        loop {
            let rows = cdrs::Entity::find()
                .filter(cdrs::Column::JobId.eq(job.ingest_job_id.as_str()))
                .filter(cdrs::Column::Id.gt(last_id))
                .order_by_asc(cdrs::Column::Id)
                .limit(self.chunk)
                .all(&self.db)
                .await?;
            let Some(last) = rows.last() else { break };
            last_id = last.id;
            let outcome = self.search.bulk_index(WriteTo::Live, &rows).await?;
            for month in &outcome.months_created {
                let reset = reset_month_batches(&self.db, *month).await?;
                if reset > 0 {
                    error!(%month, batches = reset, "a month's search index was missing; its batches are due again");
                }
            }
            if outcome.alias_missing {
                if self.search.recover_alias().await? {
                    let reset = reset_all_batches(&self.db).await?;
                    error!(
                        batches = reset,
                        "every batch is due for indexing again into the re-created alias"
                    );
                }
                return Err(IndexError::AliasRecovered);
            }
            if let Some((_, first)) = outcome.retryable.first() {
                return Err(IndexError::ItemsRetryable {
                    count: outcome.retryable.len(),
                    first: first.clone(),
                });
            }
            crate::crash::point("index-after-bulk");
            let n = outcome.indexed.len() as u64;
            *indexed += n;
            if let Err(e) = self.jobs.add_indexed(&job.job_id, n).await {
                warn!(job_id = %job.job_id, error = %e, "could not record indexing progress");
            }
            clear_failures(&self.db, &outcome.indexed).await?;
            for (id, reason) in &outcome.rejected {
                record_failure(&self.db, *id, &job.job_id, reason).await?;
            }
            refused.extend(outcome.rejected);
        }
        if !mark_batch_indexed(&self.db, &job.ingest_job_id, revision).await? {
            info!(job_id = %job.job_id, batch = %job.ingest_job_id, "batch re-rated while indexed; left due for its next index job");
        }
        crate::crash::point("index-after-mark");
        if let Err(e) = self.jobs.touch_last_indexed().await {
            warn!(error = %e, "could not record when rows last reached the index");
        }
        Ok(())
    }

    /// Ends a job for good: its message goes to the dead-letter queue (where an operator's
    /// retry finds it) and its state to `failed`.
    pub async fn dead_letter(&self, job: &IndexJob, code: ErrorCode, reason: &str) -> Result<(), IndexError> {
        let body = serde_json::to_vec(job)
            .map_err(|e| PublishError::NotConfirmed(format!("unserialisable index job: {e}")))?;
        let queue = &crate::job::queue_of::<IndexJob>(&self.publisher);
        self.publisher.dead_letter(queue, &job.job_id, &body, code, reason).await?;
        self.jobs.settle(&job.job_id, Settled::Failed(code, reason.to_string())).await;
        metrics::count_job("index", "failed");
        error!(job_id = %job.job_id, reason, "index job failed; dead-lettered");
        Ok(())
    }
}

/// Whether every row of an ingest batch is in the index already, and the batch's revision
/// (the re-rates that changed it) as of now.
async fn batch_indexed(db: &DatabaseConnection, ingest_job_id: &str) -> Result<(bool, i32), DbErr> {
    let batch = ingest_batches::Entity::find_by_id(ingest_job_id.to_string()).one(db).await?;
    Ok(batch.map_or((false, 0), |b| (b.indexed_at.is_some(), b.revision)))
}

/// Makes every batch due for indexing again (after the alias had to be re-created empty).
async fn reset_all_batches(db: &DatabaseConnection) -> Result<u64, DbErr> {
    ingest_batches::Entity::update_many()
        .col_expr(ingest_batches::Column::IndexedAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(ingest_batches::Column::Inserted.gt(0))
        .exec(db)
        .await
        .map(|r| r.rows_affected)
}

/// Makes the indexed batches with rows in `month` due again: the month's index was
/// created just now, so whatever they wrote into an earlier one is gone.
async fn reset_month_batches(db: &DatabaseConnection, month: chrono::NaiveDate) -> Result<u64, DbErr> {
    let start = crate::retention::month_start(month);
    let end = crate::retention::month_start(crate::store::partitions::add_months(month, 1));
    let sql = "UPDATE ingest_batches SET indexed_at = NULL WHERE indexed_at IS NOT NULL AND job_id IN \
               (SELECT DISTINCT job_id FROM cdrs WHERE start_time >= $1 AND start_time < $2)";
    let done = db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [start.into(), end.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// Forgets earlier refusals of rows the index has now accepted.
pub async fn clear_failures(db: &impl sea_orm::ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    index_failures::Entity::delete_many()
        .filter(index_failures::Column::CdrId.is_in(ids.iter().copied()))
        .exec(db)
        .await
        .map(|_| ())
}

/// Marks an ingest batch as present in the index, unless a re-rate changed its rows since
/// the rows were read at `revision`: then it stays due, for the index job the re-rate queued
/// (or the sweeper). Returns whether it was marked.
pub async fn mark_batch_indexed(
    db: &DatabaseConnection,
    ingest_job_id: &str,
    revision: i32,
) -> Result<bool, DbErr> {
    ingest_batches::Entity::update_many()
        .col_expr(ingest_batches::Column::IndexedAt, Expr::current_timestamp())
        .filter(ingest_batches::Column::JobId.eq(ingest_job_id))
        .filter(ingest_batches::Column::Revision.eq(revision))
        .exec(db)
        .await
        .map(|done| done.rows_affected > 0)
}

/// Records a row the index refused for good (kept until the row indexes or a rebuild runs).
pub async fn record_failure(
    db: &impl sea_orm::ConnectionTrait,
    cdr_id: i64,
    job_id: &str,
    reason: &str,
) -> Result<(), DbErr> {
    let failure = index_failures::ActiveModel {
        cdr_id: Set(cdr_id),
        job_id: Set(job_id.to_string()),
        error: Set(reason.to_string()),
        failed_at: Set(Utc::now()),
    };
    index_failures::Entity::insert(failure)
        .on_conflict(
            OnConflict::column(index_failures::Column::CdrId)
                .update_columns([
                    index_failures::Column::Error,
                    index_failures::Column::JobId,
                    index_failures::Column::FailedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

impl crate::job::Job for IndexJob {
    const QUEUE: &'static str = "index";
    const KINDS: &'static [&'static str] = &[KIND];
    const RETRIED: bool = true;
    type Runner = IndexRunner;

    fn runner(env: &crate::job::WorkerEnv) -> IndexRunner {
        IndexRunner {
            db: env.db.clone(),
            jobs: env.jobs.clone(),
            search: env.search.clone(),
            publisher: env.publisher.clone(),
            max_attempts: env.settings.max_attempts,
            chunk: env.settings.index_chunk,
        }
    }

    fn concurrency(settings: &crate::job::WorkerSettings) -> usize {
        settings.index_concurrency
    }

    fn prefetch(settings: &crate::job::WorkerSettings) -> u16 {
        settings.prefetch
    }

    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn initial_state(&self) -> JobState {
        self.initial_state()
    }

    async fn run(&self, runner: &IndexRunner, attempt: u32) -> Result<(), crate::job::AttemptError> {
        runner.run(self, attempt).await.map(|_| ()).map_err(Into::into)
    }
    // A crash marks the job failed (the default): its rows stay unindexed and the sync
    // sweeper offers them again.
}
