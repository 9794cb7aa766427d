//! Running an export: a point in time on the search index, paged into a file.

use super::write::Encoder;
use super::{ExportJob, ExportProgress, ExportSettings};
use crate::error_code::ErrorCode;
use crate::search::{CdrDocument, ParamError, SearchError, SearchIndex};
use crate::state::{JobCounts, JobStatus, JobStore};
use chrono::Utc;
use elasticsearch::http::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

/// One page of the snapshot as the engine answers it, read straight into typed documents.
#[derive(serde::Deserialize)]
struct Page {
    pit_id: Option<String>,
    hits: Hits,
}

#[derive(serde::Deserialize)]
struct Hits {
    total: Option<Total>,
    hits: Vec<Hit>,
}

#[derive(serde::Deserialize)]
struct Total {
    value: u64,
}

#[derive(serde::Deserialize)]
struct Hit {
    #[serde(rename = "_source")]
    source: CdrDocument,
    sort: Value,
}

/// How long the snapshot lives between two pages.
const KEEP_ALIVE: &str = "5m";

/// What an export needs; shared by all worker tasks.
#[derive(Clone)]
pub struct ExportRunner {
    pub jobs: JobStore,
    pub search: SearchIndex,
    pub settings: ExportSettings,
    /// Attempts per delivery before a transient failure is final.
    pub max_attempts: u32,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("{0}")]
    Search(#[from] SearchError),
    #[error("writing the export file: {0}")]
    Io(#[from] std::io::Error),
    #[error("job state store unavailable: {0}")]
    JobState(#[from] redis::RedisError),
    #[error("{}: {}", .0.parameter, .0.reason)]
    Query(ParamError),
    #[error("the search index returned a document export cannot read: {0}")]
    Document(String),
}

impl ExportError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ExportError::Search(e) if e.is_transient() => ErrorCode::SearchUnavailable,
            ExportError::Search(_) => ErrorCode::SearchRefused,
            ExportError::Io(_) => ErrorCode::StorageUnavailable,
            ExportError::JobState(_) => ErrorCode::StateUnavailable,
            ExportError::Query(_) => ErrorCode::InvalidParameter,
            ExportError::Document(_) => ErrorCode::InternalError,
        }
    }
}

impl ExportRunner {
    /// One attempt. `Ok`: acknowledge (the file is ready, or the export failed for good and
    /// says why). `Err`: try again later from the start.
    pub async fn run(&self, job: &ExportJob, attempt: u32) -> Result<(), ExportError> {
        if let Some(state) = self.jobs.get(&job.job_id).await?
            && state.status == JobStatus::Succeeded
        {
            // Finished by an earlier delivery whose acknowledgement was lost.
            return Ok(());
        }
        let (total, parked) = self.jobs.begin_attempt(&job.initial_state(), attempt, self.max_attempts).await;
        if let Some(reason) = parked {
            return self.fail(job, ErrorCode::DeliveryLimit, &reason).await;
        }
        match self.settings.expire(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => info!(files = n, "expired exports deleted"),
            Err(e) => warn!(error = %e, "could not delete expired exports"),
        }
        let started = std::time::Instant::now();
        match self.write(job).await {
            Ok(done) => {
                self.jobs.set_detail(&job.job_id, &done).await?;
                let counts = JobCounts { received: done.rows, ..JobCounts::default() };
                self.jobs.mark_succeeded(&job.job_id, &counts).await?;
                crate::metrics::count_job(super::KIND, "succeeded");
                crate::metrics::metrics()
                    .job_seconds
                    .with_label_values(&[super::KIND])
                    .observe(started.elapsed().as_secs_f64());
                info!(job_id = %job.job_id, rows = done.rows, bytes = done.bytes, attempts = total, "export written");
                Ok(())
            }
            Err(e) if e.code().is_transient() && attempt < self.max_attempts => {
                warn!(job_id = %job.job_id, attempt, error = %e, "export attempt failed; will start over");
                self.jobs.mark_retrying(&job.job_id, e.code(), &e.to_string()).await?;
                Err(e)
            }
            Err(e) => self.fail(job, e.code(), &e.to_string()).await,
        }
    }

    async fn fail(&self, job: &ExportJob, code: ErrorCode, reason: &str) -> Result<(), ExportError> {
        if let Err(e) = tokio::fs::remove_file(self.settings.partial(&job.job_id, job.format)).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(job_id = %job.job_id, error = %e, "could not delete a failed export's partial file");
        }
        self.jobs.mark_failed(&job.job_id, code, reason).await?;
        crate::metrics::count_job(super::KIND, "failed");
        warn!(job_id = %job.job_id, reason, "export failed");
        Ok(())
    }

    /// Writes the whole file from a new snapshot; returns what it wrote.
    async fn write(&self, job: &ExportJob) -> Result<ExportProgress, ExportError> {
        let filters = job.filters().map_err(ExportError::Query)?;
        tokio::fs::create_dir_all(&self.settings.dir).await?;
        let partial = self.settings.partial(&job.job_id, job.format);
        let mut file = tokio::fs::File::create(&partial).await?;
        let opened = self
            .search
            .request(Method::Post, &format!("/{}/_pit?keep_alive={KEEP_ALIVE}", self.search.alias()), None)
            .await?;
        let mut pit = opened["id"].as_str().unwrap_or_default().to_string();
        let mut progress = ExportProgress::start(job);
        let mut hash = Sha256::new();
        let written =
            self.pages(job, &filters.to_query(), &mut pit, &mut file, &mut hash, &mut progress).await;
        if let Err(e) = self.search.request(Method::Delete, "/_pit", Some(json!({ "id": pit }))).await {
            warn!(job_id = %job.job_id, error = %e, "could not close the export's point in time; it expires by itself");
        }
        written?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&partial, self.settings.file(&job.job_id, job.format)).await?;
        progress.sha256 = Some(hex::encode(hash.finalize()));
        progress.download = Some(format!("/exports/{}/download", job.job_id));
        progress.expires_at = Some(Utc::now() + self.settings.ttl());
        Ok(progress)
    }

    /// Pages through the snapshot `pit` in start-time order, writing and hashing every page.
    async fn pages(
        &self,
        job: &ExportJob,
        query: &Value,
        pit: &mut String,
        file: &mut tokio::fs::File,
        hash: &mut Sha256,
        progress: &mut ExportProgress,
    ) -> Result<(), ExportError> {
        let mut encoder = Encoder::new(job.format, job.columns.clone())?;
        let page = usize::try_from(self.settings.page_rows).unwrap_or(5_000);
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": page,
                "query": query,
                "pit": { "id": pit.as_str(), "keep_alive": KEEP_ALIVE },
                "sort": [{ "start_time": { "order": "asc" } }, { "id": { "order": "asc" } }],
                "track_total_hits": after.is_none(),
            });
            if let Some(a) = &after {
                body["search_after"] = a.clone();
            }
            let response: Page = self.search.request_as(Method::Post, "/_search", Some(body)).await?;
            if let Some(id) = response.pit_id {
                *pit = id;
            }
            if after.is_none() {
                progress.expected = response.hits.total.map(|t| t.value);
            }
            let hits = response.hits.hits;
            for hit in &hits {
                let row =
                    serde_json::to_value(&hit.source).map_err(|e| ExportError::Document(e.to_string()))?;
                encoder.row(&row)?;
            }
            if let Some(last) = hits.last() {
                after = Some(last.sort.clone());
            }
            let bytes = encoder.take()?;
            hash.update(&bytes);
            file.write_all(&bytes).await?;
            progress.rows += hits.len() as u64;
            progress.bytes += bytes.len() as u64;
            if let Err(e) = self.jobs.set_detail(&job.job_id, &*progress).await {
                warn!(job_id = %job.job_id, error = %e, "could not record export progress");
            }
            crate::crash::point("export-after-page");
            if hits.len() < page {
                break;
            }
        }
        let last = encoder.finish()?;
        hash.update(&last);
        file.write_all(&last).await?;
        progress.bytes += last.len() as u64;
        Ok(())
    }
}
