//! `GET /jobs/{id}`: where a job is.

use super::Tag;
use crate::error::ApiError;
use crate::state::AppState;
use jobs::state::JobState;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

pub struct JobsApi;

#[derive(ApiResponse)]
pub enum JobResponse {
    /// The job's current state.
    #[oai(status = 200)]
    Ok(Json<JobState>),
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
        match state.jobs.get(&id.0).await {
            Ok(Some(job)) => Ok(JobResponse::Ok(Json(job))),
            Ok(None) => Err(ApiError::not_found(format!("no job {:?}", id.0))),
            Err(e) => Err(ApiError::unavailable("redis", e)),
        }
    }
}
