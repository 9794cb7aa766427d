//! `GET /sync-status`, `POST /reindex` and `POST /rollups/rebuild`: how the stores derived
//! from PostgreSQL stand, and rebuilding them.

use super::Tag;
use crate::error::{ApiError, ErrorBody};
use crate::routes::cdrs::JobAccepted;
use crate::state::AppState;
use jobs::reindex::{ReindexError, ReindexJob, claim};
use jobs::search::ParamError;
use jobs::state::JobStatus;
use jobs::sync::SyncStatus;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

pub struct SyncApi;

#[derive(ApiResponse)]
pub enum SyncResponse {
    /// The comparison, in sync or not.
    #[oai(status = 200)]
    Ok(Json<SyncStatus>),
}

#[derive(ApiResponse)]
pub(crate) enum ReindexResponse {
    /// The rebuild is queued; follow it at the Location.
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>, #[oai(header = "Location")] String),
}

#[OpenApi(tag = "Tag::Sync")]
impl SyncApi {
    /// Compare PostgreSQL with the search index
    ///
    /// `backlog` counts rows stored but not yet searchable. Always 200: being behind is a
    /// state to report, not an error.
    #[oai(path = "/sync-status", method = "get")]
    async fn sync_status(&self, state: Data<&AppState>) -> Result<SyncResponse, ApiError> {
        jobs::sync::status(&state.db, &state.search, &state.jobs)
            .await
            .map(|s| SyncResponse::Ok(Json(s)))
            .map_err(|e| match e {
                jobs::sync::SyncError::Database(e) => ApiError::unavailable("postgres", e),
                jobs::sync::SyncError::Search(e) => ApiError::unavailable("elasticsearch", e),
                jobs::sync::SyncError::JobState(e) => ApiError::unavailable("redis", e),
                other => ApiError::unavailable("sync", other),
            })
    }

    /// Rebuild the search index from PostgreSQL
    ///
    /// Streams every row (or, with `month`, one month's) into new indices, one per month,
    /// then moves the `cdrs` alias and each month's write alias to them atomically; searches
    /// answer completely throughout. 409 while another rebuild runs. An index built before
    /// months (one for all of them) takes a rebuild of all months first: a month's rebuild
    /// then ends `failed` with `conflict`.
    #[oai(path = "/reindex", method = "post")]
    async fn reindex(
        &self,
        state: Data<&AppState>,
        /// Only this month (`YYYY-MM`, UTC) is rebuilt.
        month: poem_openapi::param::Query<Option<String>>,
    ) -> Result<ReindexResponse, ApiError> {
        let job = match month.0.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
            None => ReindexJob::new(),
            Some(text) => {
                let first = chrono::NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
                    .ok()
                    .filter(|_| text.len() == 7)
                    .ok_or_else(|| {
                        ApiError::parameter(ParamError::new("month", "expected YYYY-MM, e.g. 2026-11"))
                    })?;
                ReindexJob::month(first)
            }
        };
        start_rebuild(&state, job).await
    }

    /// Rebuild the KPI rollups from PostgreSQL
    ///
    /// Recomputes the pre-aggregated sums `/stats` answers from, over the whole history or
    /// the UTC days `[from, to)` (`YYYY-MM-DD` or midnight RFC 3339), from the stored rows:
    /// after rows were deleted by hand, for instance. Ingest waits while it runs (one
    /// transaction); `/stats` keeps answering with the sums as they were until it commits.
    /// 409 while another rollup rebuild runs.
    #[oai(path = "/rollups/rebuild", method = "post")]
    async fn rebuild_rollups(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        /// First UTC day rebuilt (inclusive).
        #[oai(name = "from")]
        _from: poem_openapi::param::Query<Option<String>>,
        /// UTC day the rebuild stops before (exclusive; a plain date is that day's midnight).
        #[oai(name = "to")]
        _to: poem_openapi::param::Query<Option<String>>,
    ) -> Result<ReindexResponse, ApiError> {
        let pairs = ApiError::query_pairs(req)?;
        let mut bounds = [None, None];
        for (name, value) in pairs.iter().filter(|(_, v)| !v.trim().is_empty()) {
            let slot = match name.as_str() {
                "from" => 0,
                "to" => 1,
                other => {
                    return Err(ApiError::parameter(ParamError::new(
                        other,
                        "unknown parameter; known: from, to",
                    )));
                }
            };
            // A plain date names its midnight, for `to` as for `from`.
            let filters = jobs::search::parse_filters(&[("from".to_string(), value.clone())], &[])
                .map_err(|e| ApiError::parameter(ParamError::new(name, e.reason)))?;
            bounds[slot] = filters.from;
        }
        let window =
            jobs::rollups::rebuild::RebuildWindow::new(bounds[0], bounds[1]).map_err(ApiError::parameter)?;
        start_rebuild(&state, ReindexJob::rollups(window)).await
    }
}

/// Records, claims and publishes a rebuild job; 409 while one of its kind runs.
pub(crate) async fn start_rebuild(state: &AppState, job: ReindexJob) -> Result<ReindexResponse, ApiError> {
    state.jobs.create(&job.initial_state()).await.map_err(|e| ApiError::unavailable("redis", e))?;
    if let Err(e) = claim(&state.jobs, &job).await {
        let _ = state.jobs.delete(&job.job_id).await;
        return Err(match e {
            ReindexError::AlreadyRunning(other) => ApiError::Conflict(Json(ErrorBody {
                details: Some(serde_json::json!({ "job_id": other })),
                ..ErrorBody::new(
                    crate::error::ErrorCode::ReindexRunning,
                    format!("a rebuild is already running: /jobs/{other}"),
                )
            })),
            other => ApiError::unavailable("redis", other),
        });
    }
    let published = jobs::job::publish(&state.publisher, &job).await;
    if let Err(e) = published {
        let _ = state.jobs.release_lease(job.lease(), &job.job_id).await;
        let _ = state.jobs.delete(&job.job_id).await;
        return Err(ApiError::unavailable("rabbitmq", e));
    }
    let location = format!("/jobs/{}", job.job_id);
    Ok(ReindexResponse::Accepted(
        Json(JobAccepted { job_id: job.job_id, status: JobStatus::Enqueued }),
        location,
    ))
}
