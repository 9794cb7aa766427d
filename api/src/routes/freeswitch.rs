//! `POST /cdrs/freeswitch`: the URL FreeSWITCH's mod_json_cdr posts each call's CDR to.
//!
//! Point `url` in `json_cdr.conf.xml` here (with `cred` set to `<any user>:<ingest token>`).
//! The module counts any 2xx as delivered; anything else it retries (`retries`, `delay`) and
//! then spools to `err-log-dir`. So a 2xx is sent only once the CDR is durably queued, a CDR
//! no switch could have written is refused 4xx naming its field, and an overloaded or
//! unreachable dependency answers 429/503, which the module retries.

use super::Tag;
use super::cdr_body::{Documented, JsonContent};
use super::cdrs::{IngestAccepted, IngestResponse, declared_charset, read_body};
use crate::error::{ApiError, ErrorBody, RejectedRecord};
use crate::state::AppState;
use jobs::cdr::formats::freeswitch_json::{self, ValueEncoding};
use jobs::cdr::parse_record;
use jobs::state::JobStatus;
use poem::Body;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiRequest, Object, OpenApi};
use std::collections::BTreeMap;

/// The largest mod_json_cdr document taken: a long call's variables, app log and call flow
/// run to tens of kilobytes.
const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

pub struct FreeswitchApi;

/// The parts of a mod_json_cdr document this API reads; every variable is kept.
#[derive(Debug, Object)]
pub struct FreeswitchCdr {
    /// Channel variables: `uuid`, `start_uepoch`, `answer_uepoch`, `end_uepoch`, `duration`,
    /// `billsec`, `hangup_cause`, `accountcode`, `direction`, `bridge_uuid`, ...
    pub variables: BTreeMap<String, String>,
    /// Caller profiles, newest first (an object in versions before 1.6).
    pub callflow: Option<serde_json::Value>,
    pub switchname: Option<String>,
}

/// One channel's CDR, in any of mod_json_cdr's `encode` modes.
#[derive(ApiRequest)]
pub enum FreeswitchBody {
    /// `encode` off (the module's default): the JSON document.
    #[oai(content_type = "application/json")]
    Json(Documented<FreeswitchCdr, JsonContent>),
    /// `encode=true`: `cdr=` and the URL-encoded document. (With `disable-100-continue`
    /// the module labels a raw JSON body this way too: the body is read by what it holds.)
    #[oai(content_type = "application/x-www-form-urlencoded")]
    Form(Binary<Body>),
    /// `encode=base64`: `cdr=` and the base64 document.
    #[oai(content_type = "application/x-www-form-base64-encoded")]
    Base64(Binary<Body>),
}

#[OpenApi(tag = "Tag::Cdrs")]
impl FreeswitchApi {
    /// Receive a FreeSWITCH mod_json_cdr post
    ///
    /// One CDR per request, as FreeSWITCH's `mod_json_cdr` sends it at the end of each call
    /// (raw, `encode=true` or `encode=base64`; `encode-values` on or off). Records posted
    /// within a few milliseconds of each other share one ingest job; each request is
    /// answered 202 only once the job holding its CDR is durably queued. Authenticate with a
    /// bearer token, or HTTP Basic (`cred` = any user name and an ingest token).
    #[oai(path = "/cdrs/freeswitch", method = "post")]
    #[allow(clippy::too_many_arguments)]
    async fn post_freeswitch(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        /// The channel's uuid, which mod_json_cdr appends to its URL; used when the
        /// document names none.
        uuid: Query<Option<String>>,
        /// The switch or tenant; default: the document's `switchname`, else the server's
        /// default source.
        source: Query<Option<String>>,
        /// Whether variable values are URL-encoded (`encode-values`); told from the
        /// document when absent.
        encode_values: Query<Option<bool>>,
        /// The character set of text that is not UTF-8 (default Windows-1252).
        charset: Query<Option<String>>,
        body: FreeswitchBody,
    ) -> Result<IngestResponse, ApiError> {
        let charset = declared_charset(req, charset.0.as_deref())?;
        let body = match body {
            FreeswitchBody::Json(b) => b.body,
            FreeswitchBody::Form(b) | FreeswitchBody::Base64(b) => b.0,
        };
        let bytes = read_body(body, MAX_DOCUMENT_BYTES).await?;
        let doc = freeswitch_json::document(&bytes, charset)
            .map_err(|m| ApiError::bad_request(crate::error::ErrorCode::MalformedBody, m))?;
        let encoding = match encode_values.0 {
            Some(true) => ValueEncoding::Encoded,
            Some(false) => ValueEncoding::Plain,
            None => ValueEncoding::Detect,
        };
        let uuid = uuid.0.filter(|u| !u.trim().is_empty());
        let record = freeswitch_json::record(&doc, encoding, uuid.as_deref())
            .map_err(|m| ApiError::bad_request(crate::error::ErrorCode::WrongShape, m))?;
        // mod_json_cdr appends `?uuid=...` even to a URL that has a query already
        // (`...?source=fs1` arrives as `source=fs1?uuid=...`).
        let source = source
            .0
            .map(|s| s.split("?uuid=").next().unwrap_or_default().to_string())
            .filter(|s| !s.trim().is_empty())
            .or_else(|| doc["switchname"].as_str().map(str::to_string))
            .unwrap_or_else(|| state.limits.default_source.clone());
        jobs::metrics::count_records("received", 1);
        let checked = parse_record(0, &record, &source)
            .and_then(|cdr| super::cdrs::kept(0, cdr, &state.limits.retention, chrono::Utc::now()));
        let cdr = match checked {
            Ok(cdr) => cdr,
            Err(e) => {
                jobs::metrics::count_records("rejected", 1);
                return Err(ApiError::Unprocessable(Json(ErrorBody {
                    rejected: Some(vec![RejectedRecord::from(e)]),
                    ..ErrorBody::new(crate::error::ErrorCode::InvalidRecords, "the CDR cannot be stored")
                })));
            }
        };
        let job_id = state.batcher.submit(cdr).await?;
        let location = format!("/jobs/{job_id}");
        Ok(IngestResponse::Accepted(
            Json(IngestAccepted {
                job_id,
                status: JobStatus::Enqueued,
                accepted: 1,
                rejected: vec![],
                format: None,
            }),
            location,
        ))
    }
}
