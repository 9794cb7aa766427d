//! `POST /retention`: a retention run now, or a dry run listing what it would remove.

use super::Tag;
use crate::error::ApiError;
use crate::routes::cdrs::JobAccepted;
use crate::state::AppState;
use jobs::retention::MaintenanceJob;
use jobs::state::JobStatus;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

pub struct RetentionApi;

#[derive(ApiResponse)]
pub enum RetentionResponse {
    /// The run is queued; follow it at the Location: its `retention` field lists what it
    /// removed (or, dry, would remove).
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>, #[oai(header = "Location")] String),
}

#[OpenApi(tag = "Tag::Sync")]
impl RetentionApi {
    /// Run retention now
    ///
    /// What the daily scheduled run does (`CDR_RETENTION_SCHEDULE`): drops the monthly
    /// partitions of CDRs older than `CDR_RETENTION_MONTHS` with their search documents,
    /// deletes rollup rows older than `CDR_ROLLUP_RETENTION_MONTHS`, and makes the coming
    /// months' partitions. With `dry_run=true` it lists what would go and changes nothing.
    /// One run works at a time: a run queued while another works ends `failed` with code
    /// `conflict`.
    #[oai(path = "/retention", method = "post")]
    async fn run_retention(
        &self,
        state: Data<&AppState>,
        /// List what would go; change nothing.
        dry_run: Query<Option<bool>>,
    ) -> Result<RetentionResponse, ApiError> {
        let job = MaintenanceJob::new(dry_run.0.unwrap_or(false));
        jobs::retention::schedule::queue(&state.jobs, &state.publisher, &job).await.map_err(|e| match e {
            jobs::job::EnqueueError::State(e) => ApiError::unavailable("redis", e),
            other => ApiError::unavailable("rabbitmq", other),
        })?;
        let location = format!("/jobs/{}", job.job_id);
        Ok(RetentionResponse::Accepted(
            Json(JobAccepted { job_id: job.job_id, status: JobStatus::Enqueued }),
            location,
        ))
    }
}
