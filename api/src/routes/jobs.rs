//! `GET /jobs/{id}`: where a job is.

use super::Tag;
use crate::error::{ApiError, ErrorBody};
use crate::routes::cdrs::JobAccepted;
use crate::state::AppState;
use jobs::state::{JobCounts, JobKind, JobState, JobStatus};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

pub struct JobsApi;

/// The job states that are listed: only failed jobs are kept in a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ListedStatus {
    Failed,
}

/// A list of jobs.
#[derive(Debug, Object, serde::Serialize)]
pub struct JobList {
    pub items: Vec<JobState>,
}

#[derive(ApiResponse)]
pub enum JobListResponse {
    /// Matching jobs, most recent first.
    #[oai(status = 200)]
    Ok(Json<JobList>),
}

/// How many jobs are in each status.
#[derive(Debug, Object, serde::Serialize)]
pub struct JobStatusCounts {
    pub enqueued: u64,
    pub processing: u64,
    pub retrying: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// The counts cover jobs whose status changed within this many seconds (the time job
    /// states are kept).
    pub window_seconds: u64,
}

#[derive(ApiResponse)]
pub enum JobCountsResponse {
    /// Jobs by status.
    #[oai(status = 200)]
    Ok(Json<JobStatusCounts>),
}

#[derive(ApiResponse)]
pub enum RetryResponse {
    /// The job's message is back in its queue; follow it at the Location.
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum JobResponse {
    /// The job's current state.
    #[oai(status = 200)]
    Ok(Json<JobState>),
}

/// A job state unchanged for this long may have missed an update (a worker writes its state
/// within milliseconds of committing).
const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

fn stale(job: &JobState) -> bool {
    chrono::Utc::now() - job.updated_at.unwrap_or(job.enqueued_at) > STALE_AFTER
}

/// The state of an ingest job read from its committed batch, written back to Redis so the
/// next read is cheap; `None` when no delivery of it has committed.
async fn committed(
    state: &AppState,
    id: &str,
    known: Option<&JobState>,
) -> Result<Option<JobState>, ApiError> {
    let store = jobs::store::CdrStore::new(state.db.clone());
    // PostgreSQL down too: the state Redis holds is the best answer there is.
    let outcome = match store.committed(id).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::warn!(job_id = id, error = %e, "could not read a job's batch from PostgreSQL");
            return Ok(None);
        }
    };
    let mut job = match known {
        Some(job) => job.clone(),
        None => JobState::enqueued(
            id.to_string(),
            JobKind::new(jobs::ingest::KIND),
            JobCounts::default(),
            chrono::Utc::now(),
        ),
    };
    job.counts.inserted = outcome.inserted;
    job.counts.duplicates = outcome.duplicates;
    if job.counts.received == 0 {
        job.counts.received = outcome.inserted + outcome.duplicates;
    }
    job.status = JobStatus::Succeeded;
    job.error = None;
    job.error_code = None;
    if let Err(e) = state.jobs.mark_succeeded(id, &job.counts).await {
        tracing::warn!(job_id = id, error = %e, "could not write back a committed job's state");
    }
    Ok(Some(job))
}

#[OpenApi(tag = "Tag::Jobs")]
impl JobsApi {
    /// Get a job
    ///
    /// Status is one of `enqueued`, `processing`, `retrying`, `succeeded`, `failed`. Jobs are
    /// kept for a configurable time after their last change (7 days by default).
    #[oai(path = "/jobs/:id", method = "get")]
    async fn get_job(&self, state: Data<&AppState>, id: Path<String>) -> Result<JobResponse, ApiError> {
        if id.0.len() > 64 || !id.0.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ApiError::not_found(format!("no job {:?}", id.0)));
        }
        let job = state.jobs.get(&id.0).await.map_err(|e| ApiError::unavailable("redis", e))?;
        match job {
            Some(job) if job.status.is_final() || job.kind != jobs::ingest::KIND || !stale(&job) => {
                Ok(JobResponse::Ok(Json(job)))
            }
            // An ingest job whose state is behind (Redis was down when its batch committed)
            // or gone: PostgreSQL says whether it committed.
            job => match committed(&state, &id.0, job.as_ref()).await? {
                Some(done) => Ok(JobResponse::Ok(Json(done))),
                None => job
                    .map(|j| JobResponse::Ok(Json(j)))
                    .ok_or_else(|| ApiError::not_found(format!("no job {:?}", id.0))),
            },
        }
    }

    /// Count jobs by status
    ///
    /// Every job whose status changed within the time job states are kept (7 days by
    /// default), by its current status. Exact, and as cheap with a million jobs as with ten.
    #[oai(path = "/jobs/counts", method = "get")]
    async fn job_counts(&self, state: Data<&AppState>) -> Result<JobCountsResponse, ApiError> {
        let counts = state.jobs.status_counts().await.map_err(|e| ApiError::unavailable("redis", e))?;
        let of = |s: JobStatus| counts.iter().find(|(status, _)| *status == s).map_or(0, |(_, n)| *n);
        Ok(JobCountsResponse::Ok(Json(JobStatusCounts {
            enqueued: of(JobStatus::Enqueued),
            processing: of(JobStatus::Processing),
            retrying: of(JobStatus::Retrying),
            succeeded: of(JobStatus::Succeeded),
            failed: of(JobStatus::Failed),
            window_seconds: state.jobs.ttl().as_secs(),
        })))
    }

    /// List failed jobs
    ///
    /// `status=failed` (the only listing kept) gives jobs that failed for good, most recent
    /// first, with their errors; their messages wait in the dead-letter queues.
    #[oai(path = "/jobs", method = "get")]
    async fn list_jobs(
        &self,
        state: Data<&AppState>,
        /// Must be `failed`.
        status: Query<ListedStatus>,
        /// At most this many (1–1000, default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<JobListResponse, ApiError> {
        let Query(ListedStatus::Failed) = status;
        let limit = limit.0.unwrap_or(100);
        let items =
            state.jobs.failed_jobs(limit as usize).await.map_err(|e| ApiError::unavailable("redis", e))?;
        Ok(JobListResponse::Ok(Json(JobList { items })))
    }

    /// Replay a failed job
    ///
    /// Moves the job's message from its dead-letter queue back to its queue and sets it to
    /// `enqueued`. 409 unless the job failed and its message is in the dead-letter queue
    /// (index jobs that gave up are re-queued by the sync sweeper instead).
    #[oai(path = "/jobs/:id/retry", method = "post")]
    async fn retry_job(&self, state: Data<&AppState>, id: Path<String>) -> Result<RetryResponse, ApiError> {
        let job = match state.jobs.get(&id.0).await {
            Ok(Some(job)) => job,
            Ok(None) => return Err(ApiError::not_found(format!("no job {:?}", id.0))),
            Err(e) => return Err(ApiError::unavailable("redis", e)),
        };
        let conflict = |message: String| {
            ApiError::Conflict(Json(ErrorBody {
                ..ErrorBody::new(crate::error::ErrorCode::NotRetryable, message)
            }))
        };
        if job.status != JobStatus::Failed {
            return Err(conflict(format!("job {} is {}, not failed", job.id, job.status.as_str())));
        }
        let Some(queue) = jobs::job::registry::queue_of_kind(job.kind.as_str()) else {
            return Err(conflict(format!(
                "job {} is of no kind this version runs ({})",
                job.id,
                job.kind.as_str()
            )));
        };
        let found = state
            .publisher
            .replay_dead(&state.publisher.topology().queue(queue), &job.id)
            .await
            .map_err(|e| ApiError::unavailable("rabbitmq", e))?;
        if !found {
            return Err(conflict(format!("job {} has no message in the dead-letter queue", job.id)));
        }
        state.jobs.mark_requeued(&job.id).await.map_err(|e| ApiError::unavailable("redis", e))?;
        tracing::info!(job_id = %job.id, "failed job replayed");
        let location = format!("/jobs/{}", job.id);
        Ok(RetryResponse::Accepted(
            Json(JobAccepted { job_id: job.id, status: JobStatus::Enqueued }),
            location,
        ))
    }
}
