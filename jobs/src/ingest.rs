//! The ingest job: one accepted `POST /cdrs` batch, stored in PostgreSQL exactly once.

use crate::cdr::Cdr;
use crate::queue::{Outgoing, PublishError, Publisher};
use crate::state::{JobCounts, JobKind, JobState, JobStore};
use crate::store::{CdrStore, StoreOutcome, is_transient};
use chrono::{DateTime, Utc};
use lapin::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

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
        let mut state = JobState::enqueued(
            self.job_id.clone(),
            JobKind::Ingest,
            JobCounts {
                received: self.received,
                rejected: self.rejected,
                ..JobCounts::default()
            },
        );
        state.enqueued_at = self.enqueued_at;
        state
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

impl IngestRunner {
    /// Runs one attempt. `Ok` means the message may be acknowledged: the batch is committed,
    /// or it has been dead-lettered with its error. `Err` means try again later; the job
    /// state then shows `retrying`.
    pub async fn run(&self, job: &IngestJob, attempt: u32) -> Result<IngestResult, IngestError> {
        let total_attempts = match self.jobs.start_attempt(&job.initial_state()).await {
            Ok(n) => n,
            Err(e) => {
                warn!(job_id = %job.job_id, error = %e, "could not record attempt start");
                attempt
            }
        };
        match self.store.store_batch(&job.job_id, &job.cdrs).await {
            Ok(outcome) => {
                let counts = JobCounts {
                    received: job.received,
                    rejected: job.rejected,
                    inserted: outcome.inserted,
                    duplicates: outcome.duplicates,
                };
                self.jobs.mark_succeeded(&job.job_id, &counts).await?;
                info!(
                    job_id = %job.job_id,
                    inserted = outcome.inserted,
                    duplicates = outcome.duplicates,
                    replayed = outcome.replayed,
                    attempts = total_attempts,
                    "ingest job succeeded"
                );
                Ok(IngestResult::Stored(outcome))
            }
            Err(e) if !is_transient(&e) => {
                self.dead_letter(
                    job,
                    &format!("permanent database error: {e}"),
                    total_attempts,
                )
                .await
            }
            Err(e) if attempt >= self.max_attempts => {
                let reason = format!("gave up after {attempt} attempts: {e}");
                self.dead_letter(job, &reason, total_attempts).await
            }
            Err(e) => {
                warn!(job_id = %job.job_id, attempt, error = %e, "ingest attempt failed; will retry");
                if let Err(re) = self.jobs.mark_retrying(&job.job_id, &e.to_string()).await {
                    warn!(job_id = %job.job_id, error = %re, "could not record retrying state");
                }
                Err(e.into())
            }
        }
    }

    /// Ends a job for good: dead-letters its message with the reason and marks it `failed`.
    /// `Err` when the dead-letter queue or the state store could not be written; the message
    /// must then go back to its queue rather than be acknowledged.
    pub async fn dead_letter(
        &self,
        job: &IngestJob,
        reason: &str,
        attempts: u32,
    ) -> Result<IngestResult, IngestError> {
        let body = serde_json::to_vec(job).map_err(|e| {
            IngestError::DeadLetter(PublishError::NotConfirmed(format!(
                "unserialisable job: {e}"
            )))
        })?;
        let mut headers = FieldTable::default();
        headers.insert("x-cdr-error".into(), AMQPValue::LongString(reason.into()));
        headers.insert("x-cdr-attempts".into(), AMQPValue::LongUInt(attempts));
        self.publisher
            .publish(Outgoing {
                queue: &self.publisher.topology().ingest_dead,
                message_id: &job.job_id,
                body: &body,
                headers,
            })
            .await?;
        self.jobs.mark_failed(&job.job_id, reason).await?;
        error!(job_id = %job.job_id, attempts, reason, "ingest job failed; dead-lettered");
        Ok(IngestResult::DeadLettered)
    }

    /// Dead-letters a message whose body is not an ingest job at all. Its job id, when the
    /// body still carries one, is marked `failed` so a client following it learns why.
    pub async fn dead_letter_unreadable(
        &self,
        body: &[u8],
        reason: &str,
    ) -> Result<(), IngestError> {
        let job_id = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("job_id")
                    .and_then(|id| id.as_str())
                    .map(str::to_string)
            });
        let mut headers = FieldTable::default();
        headers.insert("x-cdr-error".into(), AMQPValue::LongString(reason.into()));
        self.publisher
            .publish(Outgoing {
                queue: &self.publisher.topology().ingest_dead,
                message_id: job_id.as_deref().unwrap_or("unreadable"),
                body,
                headers,
            })
            .await?;
        if let Some(id) = &job_id {
            self.jobs.mark_failed(id, reason).await?;
        }
        error!(
            job_id = job_id.as_deref().unwrap_or("-"),
            reason, "unreadable ingest message dead-lettered"
        );
        Ok(())
    }
}
