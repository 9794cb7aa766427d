//! The ingest job: one accepted `POST /cdrs` batch, stored in PostgreSQL exactly once.

use crate::cdr::Cdr;
use crate::error_code::ErrorCode;
use crate::metrics;
use crate::queue::{PublishError, Publisher};
use crate::state::{JobCounts, JobKind, JobState, JobStore, Settled};
use crate::store::{CdrStore, StoreOutcome, is_transient};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

/// The kind an ingest job's state shows.
pub const KIND: &str = "ingest";

/// The message body of an ingest job: what the API validated, ready to store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestJob {
    pub job_id: String,
    pub enqueued_at: DateTime<Utc>,
    /// Records in the batch as posted, valid or not.
    pub received: u64,
    /// Records the API refused.
    pub rejected: u64,
    pub cdrs: Vec<Cdr>,
}

impl IngestJob {
    /// The state this job starts in, also used to recreate lost state.
    pub fn initial_state(&self) -> JobState {
        JobState::enqueued(
            self.job_id.clone(),
            JobKind::new(KIND),
            JobCounts { received: self.received, rejected: self.rejected, ..JobCounts::default() },
            self.enqueued_at,
        )
    }
}

/// Why an attempt did not finish. Only transient errors reach the caller: permanent ones
/// are dead-lettered and recorded inside [`IngestRunner::run`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("database unavailable: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("job state store unavailable: {0}")]
    JobState(#[from] redis::RedisError),
    #[error("could not dead-letter the job: {0}")]
    DeadLetter(#[from] PublishError),
}

/// Everything an ingest attempt needs; shared by all worker tasks.
#[derive(Clone)]
pub struct IngestRunner {
    pub store: CdrStore,
    pub jobs: JobStore,
    pub publisher: Publisher,
    /// Attempts per delivery before a transient failure is treated as final.
    pub max_attempts: u32,
}

/// How an attempt ended, for the caller's logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestResult {
    Stored(StoreOutcome),
    DeadLettered,
}

impl IngestError {
    /// The code a client sees in the job's state.
    pub fn code(&self) -> ErrorCode {
        match self {
            IngestError::Database(e) if is_transient(e) => ErrorCode::DatabaseUnavailable,
            IngestError::Database(_) => ErrorCode::DatabaseRefused,
            IngestError::JobState(_) => ErrorCode::StateUnavailable,
            IngestError::DeadLetter(_) => ErrorCode::BrokerUnavailable,
        }
    }
}

impl IngestRunner {
    /// Runs one attempt. `Ok` means the message may be acknowledged: the batch is committed,
    /// or it has been dead-lettered with its error. `Err` means try again later; the job
    /// state then shows `retrying`.
    ///
    /// Whether a message is acknowledged depends only on the durable stores (PostgreSQL for
    /// a batch, the dead-letter queue for a failure): job state in Redis is written on the
    /// way but never decides it. A batch that committed while Redis was down is acknowledged;
    /// `GET /jobs/{id}` then reads its outcome from PostgreSQL.
    pub async fn run(&self, job: &IngestJob, attempt: u32) -> Result<IngestResult, IngestError> {
        let (total_attempts, parked) =
            self.jobs.begin_attempt(&job.initial_state(), attempt, self.max_attempts).await;
        if let Some(reason) = parked {
            return self.dead_letter(job, ErrorCode::DeliveryLimit, &reason, total_attempts).await;
        }
        let started = std::time::Instant::now();
        crate::crash::point("ingest-before-store");
        match self.store.store_batch(&job.job_id, &job.cdrs).await {
            Ok(outcome) => {
                crate::crash::point("ingest-after-commit");
                let counts = JobCounts {
                    received: job.received,
                    rejected: job.rejected,
                    inserted: outcome.inserted,
                    duplicates: outcome.duplicates,
                    ..JobCounts::default()
                };
                if outcome.inserted > 0 {
                    self.enqueue_indexing(job).await;
                }
                crate::crash::point("ingest-after-index-queued");
                self.jobs.settle(&job.job_id, Settled::Succeeded(counts)).await;
                if !outcome.replayed {
                    metrics::count_records("inserted", outcome.inserted);
                    metrics::count_records("duplicate", outcome.duplicates);
                }
                metrics::count_job("ingest", "succeeded");
                metrics::metrics()
                    .job_seconds
                    .with_label_values(&["ingest"])
                    .observe(started.elapsed().as_secs_f64());
                info!(
                    job_id = %job.job_id,
                    inserted = outcome.inserted,
                    duplicates = outcome.duplicates,
                    replayed = outcome.replayed,
                    attempts = total_attempts,
                    "ingest job succeeded"
                );
                crate::crash::point("ingest-before-ack");
                Ok(IngestResult::Stored(outcome))
            }
            Err(e) if !is_transient(&e) => {
                let reason = format!("permanent database error: {e}");
                self.dead_letter(job, ErrorCode::DatabaseRefused, &reason, total_attempts).await
            }
            Err(e) if attempt >= self.max_attempts => {
                let reason = format!("gave up after {attempt} attempts: {e}");
                self.dead_letter(job, ErrorCode::DatabaseUnavailable, &reason, total_attempts).await
            }
            Err(e) => {
                warn!(job_id = %job.job_id, attempt, error = %e, "ingest attempt failed; will retry");
                if let Err(re) =
                    self.jobs.mark_retrying(&job.job_id, ErrorCode::DatabaseUnavailable, &e.to_string()).await
                {
                    warn!(job_id = %job.job_id, error = %re, "could not record retrying state");
                }
                Err(e.into())
            }
        }
    }

    /// Queues the index job for the rows this job stored. Best effort: if it cannot be
    /// queued, the rows wait unindexed in PostgreSQL and the sync sweeper queues them.
    async fn enqueue_indexing(&self, job: &IngestJob) {
        match crate::indexing::enqueue(&self.publisher, &self.jobs, &job.job_id).await {
            Ok(index_job_id) => {
                if let Err(e) = self.jobs.set_index_job(&job.job_id, &index_job_id).await {
                    warn!(job_id = %job.job_id, error = %e, "could not link the index job");
                }
            }
            Err(e) => {
                warn!(job_id = %job.job_id, error = %e, "could not queue indexing; the sweeper will")
            }
        }
    }

    /// Ends a job for good: dead-letters its message with the reason and marks it `failed`.
    /// `Err` when the dead-letter queue could not be written; the message must then go back
    /// to its queue rather than be acknowledged.
    pub async fn dead_letter(
        &self,
        job: &IngestJob,
        code: ErrorCode,
        reason: &str,
        attempts: u32,
    ) -> Result<IngestResult, IngestError> {
        let body = serde_json::to_vec(job).map_err(|e| {
            IngestError::DeadLetter(PublishError::NotConfirmed(format!("unserialisable job: {e}")))
        })?;
        let queue = &crate::job::queue_of::<IngestJob>(&self.publisher);
        self.publisher.dead_letter(queue, &job.job_id, &body, code, reason).await?;
        // The dead-letter queue holds the job now: acknowledge even if Redis is down.
        self.jobs.settle(&job.job_id, Settled::Failed(code, reason.to_string())).await;
        metrics::count_job("ingest", "failed");
        error!(job_id = %job.job_id, attempts, reason, "ingest job failed; dead-lettered");
        Ok(IngestResult::DeadLettered)
    }
}

impl crate::job::Job for IngestJob {
    const QUEUE: &'static str = "ingest";
    const KINDS: &'static [&'static str] = &[KIND];
    const RETRIED: bool = true;
    type Runner = IngestRunner;

    fn runner(env: &crate::job::WorkerEnv) -> IngestRunner {
        IngestRunner {
            store: CdrStore::with_catalogue(env.db.clone(), env.catalogue.clone()),
            jobs: env.jobs.clone(),
            publisher: env.publisher.clone(),
            max_attempts: env.settings.max_attempts,
        }
    }

    fn concurrency(settings: &crate::job::WorkerSettings) -> usize {
        settings.concurrency
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

    async fn run(&self, runner: &IngestRunner, attempt: u32) -> Result<(), crate::job::AttemptError> {
        runner.run(self, attempt).await.map(|_| ()).map_err(Into::into)
    }

    /// Kept for inspection in the dead-letter queue.
    async fn crashed(
        &self,
        runner: &IngestRunner,
        _env: &crate::job::WorkerEnv,
        reason: &str,
        attempt: u32,
    ) -> Result<(), crate::job::AttemptError> {
        runner
            .dead_letter(self, ErrorCode::InternalError, reason, attempt)
            .await
            .map(|_| ())
            .map_err(Into::into)
    }
}
