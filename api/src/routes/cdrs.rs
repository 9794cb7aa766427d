//! `POST /cdrs`: validate a batch and enqueue its valid records as one ingest job.

use super::Tag;
use super::cdr_body::{CdrRecord, Documented, JsonBatch, JsonContent, NdjsonContent};
use crate::batch::{BatchError, BatchFormat, read_batch};
use crate::error::{ApiError, DeclaredCharset, ErrorBody, RejectedRecord};
use crate::state::AppState;
use chrono::Utc;
use jobs::cdr::formats::{
    Charset, CsvOptions, GENERIC, Layout, builtin_layout, parse_charset, parse_timezone,
};
use jobs::cdr::{Cdr, RecordError, parse_record};
use jobs::ingest::IngestJob;
use jobs::retention::RetentionPolicy;
use jobs::state::JobStatus;
use poem::Body;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use tracing::info;

pub struct CdrsApi;

/// A batch of CDRs.
#[derive(ApiRequest)]
pub enum CdrBatch {
    /// A JSON array of records, `{"cdrs": [...]}`, or one record object.
    #[oai(content_type = "application/json")]
    Json(Documented<JsonBatch, JsonContent>),
    /// One JSON record per line.
    #[oai(content_type = "application/x-ndjson")]
    Ndjson(Documented<CdrRecord, NdjsonContent>),
    /// A switch's CSV file: Asterisk `cdr_csv` (any settings) or `cdr_custom`, FreeSWITCH
    /// `mod_cdr_csv`, CDR-Stats, a Grandstream UCM export, a saved mapping, or a header row
    /// with this API's field names (see `format`).
    #[oai(content_type = "text/csv")]
    Csv(Binary<Body>),
}

/// The batch was accepted: its valid records are queued as one ingest job.
#[derive(Debug, Object, serde::Serialize, serde::Deserialize)]
pub struct IngestAccepted {
    /// Follow it at `/jobs/{job_id}`.
    pub job_id: String,
    pub status: JobStatus,
    /// Records queued for storage.
    pub accepted: u64,
    /// Records refused, with the field at fault; they will not be stored.
    pub rejected: Vec<RejectedRecord>,
    /// For a CSV body: the layout that read it (named, or detected).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// A job was queued.
#[derive(Debug, Object, serde::Serialize, serde::Deserialize)]
pub struct JobAccepted {
    /// Follow it at `/jobs/{job_id}`.
    pub job_id: String,
    pub status: JobStatus,
}

#[derive(ApiResponse)]
pub enum IngestResponse {
    /// Accepted and durably queued.
    #[oai(status = 202)]
    Accepted(Json<IngestAccepted>, #[oai(header = "Location")] String),
}

/// A request body up to `limit` bytes; 413 beyond it.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    body.into_bytes_limit(limit).await.map_err(|e| match e {
        poem::error::ReadBodyError::PayloadTooLarge => ApiError::too_large(
            crate::error::ErrorCode::BodyTooLarge,
            format!("request body is over {limit} bytes"),
        ),
        other => ApiError::bad_request(crate::error::ErrorCode::UnreadableBody, other.to_string()),
    })
}

/// A request parameter that cannot be used, as the 400 it answers.
pub(crate) fn invalid_parameter(parameter: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(Json(ErrorBody {
        details: Some(serde_json::json!({ "parameter": parameter })),
        ..ErrorBody::new(crate::error::ErrorCode::InvalidParameter, format!("{parameter}: {reason}"))
    }))
}

/// The charset of text that is not UTF-8: the `charset` parameter, else the Content-Type's.
pub(crate) fn declared_charset(
    req: &poem::Request,
    param: Option<&str>,
) -> Result<Option<Charset>, ApiError> {
    let declared =
        param.map(str::to_string).or_else(|| req.extensions().get::<DeclaredCharset>().map(|c| c.0.clone()));
    match declared.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(label) => parse_charset(label).map(Some).map_err(|r| invalid_parameter("charset", r)),
        None => Ok(None),
    }
}

#[OpenApi(tag = "Tag::Cdrs")]
impl CdrsApi {
    /// Submit a batch of CDRs
    ///
    /// Each record is validated at once; the valid ones become one ingest job, answered 202
    /// only after the message broker has durably stored it. Records are kept as the switch
    /// wrote them (parties as text, its own durations and disposition); only what no switch
    /// could have written is refused, naming the record, line and field. Records may use this
    /// API's field names, Asterisk's or FreeSWITCH's (`uniqueid`, `src`, `dst`, `start`,
    /// `answer`, `end`, `accountcode`, ...) or the reference system's shape
    /// (`call_duration`, `call_successful`). Times without a zone are UTC. CSV files are
    /// read by a layout (`format`, or detected: see `GET /mappings`).
    #[oai(path = "/cdrs", method = "post")]
    #[allow(clippy::too_many_arguments)]
    async fn post_cdrs(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        /// `source` for records that do not name one (the switch or tenant that sent them).
        source: Query<Option<String>>,
        /// For CSV: the layout's name (`GET /mappings` lists the built-in and saved ones);
        /// detected from the header row or the shape of the rows when absent.
        format: Query<Option<String>>,
        /// For CSV: the IANA time zone of the file's zone-less times (default: the layout's,
        /// else UTC).
        timezone: Query<Option<String>>,
        /// The character set of text that is not UTF-8 (e.g. `windows-1251`); the
        /// Content-Type's `charset` parameter works too. Default: UTF-8, and Windows-1252 for
        /// any field that is not UTF-8.
        charset: Query<Option<String>>,
        body: CdrBatch,
    ) -> Result<IngestResponse, ApiError> {
        let limits = &state.limits;
        let charset = declared_charset(req, charset.0.as_deref())?;
        let (format, body) = match body {
            CdrBatch::Json(b) => (BatchFormat::Json, b.body),
            CdrBatch::Ndjson(b) => (BatchFormat::Ndjson, b.body),
            CdrBatch::Csv(b) => {
                (BatchFormat::Csv(Box::new(csv_options(&state, format.0, timezone.0).await?)), b.0)
            }
        };
        let bytes = read_body(body, limits.max_body_bytes).await?;
        let default_source = source.0.unwrap_or_else(|| limits.default_source.clone());
        let max_records = limits.max_batch_records;
        let retention = limits.retention;
        let (received, cdrs, rejected, layout) = tokio::task::spawn_blocking(move || {
            validate(format, &bytes, charset, max_records, &default_source, &retention)
        })
        .await
        .map_err(|e| ApiError::unavailable("validator", e))??;

        jobs::metrics::count_records("received", received);
        jobs::metrics::count_records("rejected", rejected.len() as u64);
        let rejected: Vec<RejectedRecord> = rejected.into_iter().map(Into::into).collect();
        if cdrs.is_empty() {
            return Err(ApiError::Unprocessable(Json(ErrorBody {
                rejected: Some(rejected),
                details: layout.map(|l| serde_json::json!({ "format": l })),
                ..ErrorBody::new(crate::error::ErrorCode::InvalidRecords, "no record in the batch is valid")
            })));
        }

        let job = IngestJob {
            job_id: jobs::new_job_id(),
            enqueued_at: Utc::now(),
            received,
            rejected: rejected.len() as u64,
            cdrs,
        };
        let accepted = job.cdrs.len() as u64;
        let enqueuer = state.enqueuer();
        enqueuer.check_backlog().await?;
        enqueuer.enqueue(&job).await?;
        info!(job_id = %job.job_id, received, accepted, rejected = rejected.len(), format = ?layout, "ingest job enqueued");
        let location = format!("/jobs/{}", job.job_id);
        Ok(IngestResponse::Accepted(
            Json(IngestAccepted {
                job_id: job.job_id,
                status: JobStatus::Enqueued,
                accepted,
                rejected,
                format: layout,
            }),
            location,
        ))
    }
}

/// How to read a CSV body: the layout the request names (built-in or saved), or the saved
/// ones to detect among; the zone of its times.
async fn csv_options(
    state: &AppState,
    format: Option<String>,
    timezone: Option<String>,
) -> Result<CsvOptions, ApiError> {
    let timezone = match timezone.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(name) => Some(parse_timezone(name).map_err(|r| invalid_parameter("timezone", r))?),
        None => None,
    };
    let format = format.map(|f| f.trim().to_string()).filter(|f| !f.is_empty());
    let mut options = CsvOptions { timezone, ..CsvOptions::default() };
    match format {
        Some(name) => {
            let layout = match builtin_layout(&name) {
                Some(layout) => Some(layout),
                // Its fields come from the file's header row when it is read.
                None if name == GENERIC => Some(Layout::default()),
                None => {
                    state.mappings.get(&name).await.map_err(|e| ApiError::unavailable("postgresql", e))?
                }
            };
            let layout = layout.ok_or_else(|| {
                invalid_parameter("format", format!("no layout named {name:?}; GET /mappings lists them"))
            })?;
            options.layout = Some((name, layout));
        }
        None => {
            options.saved =
                state.mappings.list().await.map_err(|e| ApiError::unavailable("postgresql", e))?;
        }
    }
    Ok(options)
}

type Validated = (u64, Vec<Cdr>, Vec<RecordError>, Option<String>);

/// Reads and validates the whole batch; CPU-bound, so it runs off the async threads.
fn validate(
    format: BatchFormat,
    bytes: &[u8],
    charset: Option<Charset>,
    max_records: usize,
    default_source: &str,
    retention: &RetentionPolicy,
) -> Result<Validated, ApiError> {
    let batch = read_batch(format, bytes, charset).map_err(|e| match e {
        BatchError::Malformed(m) => ApiError::bad_request(crate::error::ErrorCode::MalformedBody, m),
        BatchError::WrongShape(m) => ApiError::bad_request(crate::error::ErrorCode::WrongShape, m),
        BatchError::Format(m) => invalid_parameter("format", m),
        BatchError::Empty => {
            ApiError::bad_request(crate::error::ErrorCode::EmptyBatch, "the batch has no records")
        }
    })?;
    let records = batch.records;
    if records.len() > max_records {
        return Err(ApiError::too_large(
            crate::error::ErrorCode::TooManyRecords,
            format!("{} records is over the limit of {max_records} per batch", records.len()),
        ));
    }
    let received = records.len() as u64;
    let mut cdrs = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    let now = Utc::now();
    for (index, (line, raw)) in records.iter().enumerate() {
        let parsed = match raw {
            Ok(value) => {
                parse_record(index, value, default_source).and_then(|cdr| kept(index, cdr, retention, now))
            }
            Err(reason) => Err(unreadable(index, reason)),
        };
        match parsed {
            Ok(cdr) => cdrs.push(cdr),
            Err(mut e) => {
                if let Some(line) = line {
                    e.reason = format!("line {line}: {}", e.reason);
                }
                rejected.push(e);
            }
        }
    }
    Ok((received, cdrs, rejected, batch.layout))
}

/// A record retention would delete at once is refused, naming its start.
pub fn kept(
    index: usize,
    cdr: Cdr,
    retention: &RetentionPolicy,
    now: chrono::DateTime<Utc>,
) -> Result<Cdr, RecordError> {
    match retention.refusal(cdr.start_time, now) {
        None => Ok(cdr),
        Some(reason) => {
            Err(RecordError { index, call_id: Some(cdr.call_id.clone()), field: "start_time".into(), reason })
        }
    }
}

fn unreadable(index: usize, reason: &str) -> RecordError {
    RecordError { index, call_id: None, field: "record".into(), reason: reason.to_string() }
}
