//! Queueing an ingest job: the one path by which accepted CDRs become durable.
//!
//! Refused with 429 while too many jobs wait, with 503 when a dependency is down; answered
//! only after the broker confirmed the persistent message. Nothing is left behind when the
//! publish fails: the job state written first is removed again.

use crate::cli::Limits;
use crate::error::{ApiError, ErrorBody};
use jobs::ingest::IngestJob;
use jobs::queue::{Outgoing, PublishError, Publisher};
use jobs::state::JobStore;
use poem_openapi::payload::Json;

/// What queueing a job needs, cheap to clone into background tasks.
#[derive(Clone)]
pub struct Enqueuer {
    pub publisher: Publisher,
    pub jobs: JobStore,
    pub limits: Limits,
}

impl Enqueuer {
    /// Refuses with 429 while more ingest jobs wait than the limit allows.
    pub async fn check_backlog(&self) -> Result<(), ApiError> {
        let ingest_queue = &jobs::job::queue_of::<jobs::ingest::IngestJob>(&self.publisher);
        let waiting = self
            .publisher
            .queue_depth(ingest_queue)
            .await
            .map_err(|e| ApiError::unavailable("rabbitmq", e))?;
        if waiting > self.limits.max_queue_depth {
            return Err(ApiError::TooManyRequests(
                Json(ErrorBody {
                    details: Some(
                        serde_json::json!({ "queued_jobs": waiting, "limit": self.limits.max_queue_depth }),
                    ),
                    ..ErrorBody::new(
                        crate::error::ErrorCode::Overloaded,
                        format!("{waiting} batches are waiting to be stored; retry later"),
                    )
                }),
                crate::error::RETRY_AFTER_SECS,
            ));
        }
        Ok(())
    }

    /// Writes the job's state and publishes it; `Ok` once the broker confirmed it.
    pub async fn enqueue(&self, job: &IngestJob) -> Result<(), ApiError> {
        let payload = serde_json::to_vec(job).map_err(|e| ApiError::unavailable("serialiser", e))?;
        self.jobs.create(&job.initial_state()).await.map_err(|e| ApiError::unavailable("redis", e))?;
        let published = self
            .publisher
            .publish(Outgoing {
                queue: &jobs::job::queue_of::<jobs::ingest::IngestJob>(&self.publisher),
                message_id: &job.job_id,
                body: &payload,
                headers: Default::default(),
            })
            .await;
        if let Err(e) = published {
            // Not queued, or not known to be (a confirm that never came): either way the
            // client is told 503 and resends under a new job. Its state goes; if the message
            // did reach the queue, the worker that takes it writes the state afresh.
            if let Err(de) = self.jobs.delete(&job.job_id).await {
                tracing::warn!(job_id = %job.job_id, error = %de, "could not remove state of unpublished job");
            }
            if matches!(e, PublishError::Unconfirmed(_)) {
                tracing::warn!(job_id = %job.job_id, error = %e, "publish not confirmed; the job may still run");
            }
            return Err(ApiError::unavailable("rabbitmq", e));
        }
        Ok(())
    }
}
