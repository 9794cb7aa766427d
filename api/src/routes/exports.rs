//! `POST /exports` and `GET /exports/{id}/download`: every CDR a `/search` query matches,
//! written to a file by an export job.

use super::Tag;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::routes::cdrs::JobAccepted;
use crate::state::AppState;
use jobs::export::{ExportJob, ExportProgress, Format};
use jobs::state::JobStatus;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, OpenApi};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub struct ExportsApi;

#[derive(ApiResponse)]
pub enum ExportAccepted {
    /// The export is queued: follow it at the Location (`detail` shows rows and bytes as
    /// they are written, then the file's SHA-256 and where to download it).
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum Download {
    /// The whole file.
    #[oai(status = 200)]
    Whole(
        Binary<poem::Body>,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "ETag")] String,
    ),
    /// The part of the file `Range` asked for (a download resumed).
    #[oai(status = 206)]
    Part(
        Binary<poem::Body>,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Content-Range")] String,
        #[oai(header = "ETag")] String,
    ),
}

fn error(code: ErrorCode, message: String) -> ApiError {
    let body = Json(ErrorBody::new(code, message));
    match code.http_status() {
        410 => ApiError::Gone(body),
        416 => ApiError::RangeNotSatisfiable(body),
        _ => ApiError::Conflict(body),
    }
}

/// A single `bytes=` range of a file of `size` bytes, as `(first, last)` inclusive: `a-b`,
/// `a-` or `-n` (the last n bytes). `None` when it cannot be served.
fn byte_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (first, last) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (size.saturating_sub(n), size - 1)
    } else {
        let first: u64 = a.parse().ok()?;
        let last = if b.is_empty() { size - 1 } else { b.parse::<u64>().ok()?.min(size - 1) };
        (first, last)
    };
    (first <= last && first < size).then_some((first, last))
}

#[OpenApi(tag = "Tag::Exports")]
impl ExportsApi {
    /// Export CDRs
    ///
    /// Takes the `/search` filters (the same names, values and meaning) plus `format`
    /// (`csv`, the default; `csv.gz`; `ndjson`) and `columns` (comma-separated, default all:
    /// the fields `/search` returns). Queues an export job that writes every matching CDR,
    /// from a consistent snapshot of the index, in start-time order; follow it at the
    /// Location, then download it from `/exports/{id}/download`. An unknown parameter is a
    /// 400.
    #[allow(clippy::too_many_arguments, unused_variables)]
    #[oai(path = "/exports", method = "post")]
    async fn create_export(
        &self,
        state: Data<&AppState>,
        req: &Request,
        source: Query<Option<String>>,
        src_number: Query<Option<String>>,
        dest_number: Query<Option<String>>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        min_duration: Query<Option<String>>,
        max_duration: Query<Option<String>>,
        min_billsec: Query<Option<String>>,
        disposition: Query<Vec<String>>,
        call_successful: Query<Option<String>>,
        direction: Query<Option<String>>,
        account_code: Query<Option<String>>,
        call_id: Query<Option<String>>,
        dest_e164: Query<Option<String>>,
        dest_country: Query<Option<String>>,
        dest_type: Query<Option<String>>,
        /// `csv` (the default), `csv.gz` or `ndjson`.
        format: Query<Option<String>>,
        /// Comma-separated columns, in the order wanted (default: every field `/search` returns).
        columns: Query<Option<String>>,
    ) -> Result<ExportAccepted, ApiError> {
        let pairs = ApiError::query_pairs(req)?;
        let job = ExportJob::from_query(&pairs).map_err(ApiError::parameter)?;
        jobs::job::enqueue(&state.jobs, &state.publisher, &job, &job.initial_state()).await.map_err(|e| {
            match e {
                jobs::job::EnqueueError::State(e) => ApiError::unavailable("redis", e),
                other => ApiError::unavailable("rabbitmq", other),
            }
        })?;
        tracing::info!(job_id = %job.job_id, format = job.format.as_str(), "export queued");
        let location = format!("/jobs/{}", job.job_id);
        Ok(ExportAccepted::Accepted(
            Json(JobAccepted { job_id: job.job_id, status: JobStatus::Enqueued }),
            location,
        ))
    }

    /// Download an export
    ///
    /// The finished file of export `id`. `Range: bytes=…` resumes an interrupted download
    /// (206); the `ETag` is the file's SHA-256, as `/jobs/{id}` gives it. 409 while the
    /// export runs or if it failed; 410 once the file was deleted (`CDR_EXPORT_TTL_HOURS`).
    #[oai(path = "/exports/:id/download", method = "get")]
    async fn download(
        &self,
        state: Data<&AppState>,
        id: Path<String>,
        #[oai(name = "Range")] range: Header<Option<String>>,
    ) -> Result<Download, ApiError> {
        let not_found = || ApiError::not_found(format!("no export {:?}", id.0));
        if id.0.len() > 64 || !id.0.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(not_found());
        }
        let job = state.jobs.get(&id.0).await.map_err(|e| ApiError::unavailable("redis", e))?;
        let Some(job) = job.filter(|j| j.kind == jobs::export::KIND) else { return Err(not_found()) };
        let progress: Option<ExportProgress> =
            job.detail.clone().and_then(|d| serde_json::from_value(d).ok());
        let (JobStatus::Succeeded, Some(progress)) = (job.status, progress) else {
            return Err(error(
                ErrorCode::ExportNotReady,
                format!("export {} is {}; follow it at /jobs/{}", job.id, job.status.as_str(), job.id),
            ));
        };
        let format = Format::parse(&progress.format).ok_or_else(not_found)?;
        let path = state.limits.exports.file(&job.id, format);
        if progress.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
            // Past its time: gone now, whether or not an export has swept it yet.
            if let Err(e) = tokio::fs::remove_file(&path).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(job_id = %job.id, error = %e, "could not delete an expired export");
            }
            return Err(error(ErrorCode::ExportExpired, format!("export {} expired", job.id)));
        }
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(error(
                    ErrorCode::ExportExpired,
                    format!("export {} was deleted after it expired", job.id),
                ));
            }
            Err(e) => return Err(ApiError::unavailable("export storage", e)),
        };
        let size = file.metadata().await.map_err(|e| ApiError::unavailable("export storage", e))?.len();
        let etag = format!("\"{}\"", progress.sha256.unwrap_or_default());
        let content_type = format.content_type().to_string();
        let Some(range) = range.0 else {
            let name = format!("attachment; filename=\"cdrs-{}.{}\"", job.id, format.as_str());
            return Ok(Download::Whole(
                Binary(poem::Body::from_async_read(file)),
                content_type,
                size,
                name,
                "bytes".into(),
                etag,
            ));
        };
        let Some((first, last)) = byte_range(&range, size) else {
            return Err(error(
                ErrorCode::RangeNotSatisfiable,
                format!("Range {range:?} is not one range within the file's {size} bytes"),
            ));
        };
        file.seek(std::io::SeekFrom::Start(first))
            .await
            .map_err(|e| ApiError::unavailable("export storage", e))?;
        let length = last - first + 1;
        Ok(Download::Part(
            Binary(poem::Body::from_async_read(file.take(length))),
            content_type,
            length,
            format!("bytes {first}-{last}/{size}"),
            etag,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges_resume_a_download_or_are_refused() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(byte_range("bytes=500-", 1000), Some((500, 999)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=900-5000", 1000), Some((900, 999)));
        for refused in ["bytes=1000-", "bytes=5-2", "bytes=0-1,5-6", "items=0-1", "bytes=a-b"] {
            assert_eq!(byte_range(refused, 1000), None, "{refused}");
        }
        assert_eq!(byte_range("bytes=0-0", 0), None);
    }
}
