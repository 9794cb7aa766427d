//! `POST /cdrs`: validate a batch and enqueue its valid records as one ingest job.

use super::Tag;
use super::cdr_body::{CdrRecord, Documented, JsonBatch, JsonContent, NdjsonContent};
use crate::batch::{BatchError, BatchFormat, read_batch};
use crate::error::{ApiError, ErrorBody, RejectedRecord};
use crate::state::AppState;
use chrono::Utc;
use jobs::cdr::formats::{CsvFormat, CsvOptions, parse_timezone};
use jobs::cdr::{Cdr, RecordError, parse_record};
use jobs::ingest::IngestJob;
use jobs::queue::Outgoing;
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
    /// A switch's CSV file: Asterisk `cdr_csv`, FreeSWITCH `mod_cdr_csv`, or a header row
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

#[OpenApi(tag = "Tag::Cdrs")]
impl CdrsApi {
    /// Submit a batch of CDRs
    ///
    /// Each record is validated at once; the valid ones become one ingest job, answered 202
    /// only after the message broker has durably stored it. Records may use this API's field
    /// names, Asterisk's or FreeSWITCH's (`uniqueid`, `src`, `dst`, `start`, `answer`, `end`,
    /// `accountcode`, ...) or the reference system's shape (`call_duration`,
    /// `call_successful`). Times without a zone are UTC.
    #[oai(path = "/cdrs", method = "post")]
    async fn post_cdrs(
        &self,
        state: Data<&AppState>,
        /// `source` for records that do not name one (the switch or tenant that sent them).
        source: Query<Option<String>>,
        /// For CSV: `asterisk`, `asterisk-extended`, `freeswitch` or `generic` (a header row);
        /// detected from the first row when absent.
        format: Query<Option<String>>,
        /// For CSV: the IANA time zone of the file's zone-less times (default UTC).
        timezone: Query<Option<String>>,
        body: CdrBatch,
    ) -> Result<IngestResponse, ApiError> {
        let limits = &state.limits;
        let (format, body) = match body {
            CdrBatch::Json(b) => (BatchFormat::Json, b.body),
            CdrBatch::Ndjson(b) => (BatchFormat::Ndjson, b.body),
            CdrBatch::Csv(b) => {
                let invalid = |parameter: &str, reason: String| {
                    ApiError::BadRequest(Json(ErrorBody {
                        details: Some(serde_json::json!({ "parameter": parameter })),
                        ..ErrorBody::new("invalid_parameter", format!("{parameter}: {reason}"))
                    }))
                };
                let format = format
                    .0
                    .as_deref()
                    .map(str::parse::<CsvFormat>)
                    .transpose()
                    .map_err(|r| invalid("format", r))?;
                let timezone = match timezone.0.as_deref() {
                    Some(name) => parse_timezone(name).map_err(|r| invalid("timezone", r))?,
                    None => CsvOptions::default().timezone,
                };
                (BatchFormat::Csv(CsvOptions { format, timezone }), b.0)
            }
        };
        let bytes = body.into_bytes_limit(limits.max_body_bytes).await.map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => ApiError::too_large(
                "body_too_large",
                format!("request body is over {} bytes", limits.max_body_bytes),
            ),
            other => ApiError::bad_request("unreadable_body", other.to_string()),
        })?;
        let default_source = source.0.unwrap_or_else(|| limits.default_source.clone());
        let max_records = limits.max_batch_records;
        let (received, cdrs, rejected) =
            tokio::task::spawn_blocking(move || validate(format, &bytes, max_records, &default_source))
                .await
                .map_err(|e| ApiError::unavailable("validator", e))??;

        jobs::metrics::count_records("received", received);
        jobs::metrics::count_records("rejected", rejected.len() as u64);
        let rejected: Vec<RejectedRecord> = rejected.into_iter().map(Into::into).collect();
        if cdrs.is_empty() {
            return Err(ApiError::Unprocessable(Json(ErrorBody {
                rejected: Some(rejected),
                ..ErrorBody::new("invalid_records", "no record in the batch is valid")
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
        let ingest_queue = &state.publisher.topology().ingest;
        let waiting = state
            .publisher
            .queue_depth(ingest_queue)
            .await
            .map_err(|e| ApiError::unavailable("rabbitmq", e))?;
        if waiting > limits.max_queue_depth {
            return Err(ApiError::TooManyRequests(
                Json(ErrorBody {
                    details: Some(
                        serde_json::json!({ "queued_jobs": waiting, "limit": limits.max_queue_depth }),
                    ),
                    ..ErrorBody::new(
                        "overloaded",
                        format!("{waiting} batches are waiting to be stored; retry later"),
                    )
                }),
                crate::error::RETRY_AFTER_SECS,
            ));
        }
        let payload = serde_json::to_vec(&job).map_err(|e| ApiError::unavailable("serialiser", e))?;
        state.jobs.create(&job.initial_state()).await.map_err(|e| ApiError::unavailable("redis", e))?;
        let published = state
            .publisher
            .publish(Outgoing {
                queue: &state.publisher.topology().ingest,
                message_id: &job.job_id,
                body: &payload,
                headers: Default::default(),
            })
            .await;
        if let Err(e) = published {
            // Nothing was queued: leave no state claiming otherwise.
            if let Err(de) = state.jobs.delete(&job.job_id).await {
                tracing::warn!(job_id = %job.job_id, error = %de, "could not remove state of unpublished job");
            }
            return Err(ApiError::unavailable("rabbitmq", e));
        }
        info!(job_id = %job.job_id, received, accepted, rejected = rejected.len(), "ingest job enqueued");
        let location = format!("/jobs/{}", job.job_id);
        Ok(IngestResponse::Accepted(
            Json(IngestAccepted { job_id: job.job_id, status: JobStatus::Enqueued, accepted, rejected }),
            location,
        ))
    }
}

type Validated = (u64, Vec<Cdr>, Vec<RecordError>);

/// Reads and validates the whole batch; CPU-bound, so it runs off the async threads.
fn validate(
    format: BatchFormat,
    bytes: &[u8],
    max_records: usize,
    default_source: &str,
) -> Result<Validated, ApiError> {
    let records = read_batch(format, bytes).map_err(|e| match e {
        BatchError::NotUtf8(m) => ApiError::bad_request("invalid_encoding", m),
        BatchError::Malformed(m) => ApiError::bad_request("malformed_body", m),
        BatchError::WrongShape(m) => ApiError::bad_request("wrong_shape", m),
        BatchError::Format(m) => ApiError::BadRequest(Json(ErrorBody {
            details: Some(serde_json::json!({ "parameter": "format" })),
            ..ErrorBody::new("invalid_parameter", format!("format: {m}"))
        })),
        BatchError::Empty => ApiError::bad_request("empty_batch", "the batch has no records"),
    })?;
    if records.len() > max_records {
        return Err(ApiError::too_large(
            "too_many_records",
            format!("{} records is over the limit of {max_records} per batch", records.len()),
        ));
    }
    let received = records.len() as u64;
    let mut cdrs = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for (index, (line, raw)) in records.iter().enumerate() {
        let parsed = match raw {
            Ok(value) => parse_record(index, value, default_source),
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
    Ok((received, cdrs, rejected))
}

fn unreadable(index: usize, reason: &str) -> RecordError {
    RecordError { index, call_id: None, field: "record".into(), reason: reason.to_string() }
}
