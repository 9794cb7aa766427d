//! The body of `POST /cdrs` as the OpenAPI document describes it.
//!
//! The body is read raw and validated record by record (so a refusal names its record and
//! field, and one bad record does not refuse the batch), yet clients and fuzzers deserve the
//! record's shape in the schema: [`Documented`] reads the body untouched while announcing
//! the schema of `T`.

use chrono::{DateTime, Utc};
use poem::{Body, Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{Example, Type};
use poem_openapi::{Object, Union};
use std::marker::PhantomData;

/// A raw request body documented as `T` under the content type `C`.
pub struct Documented<T, C> {
    pub body: Body,
    _shape: PhantomData<fn() -> (T, C)>,
}

/// A content type, as a type.
pub trait ContentType: Send {
    const NAME: &'static str;
}

pub struct JsonContent;
impl ContentType for JsonContent {
    const NAME: &'static str = "application/json";
}

pub struct NdjsonContent;
impl ContentType for NdjsonContent {
    const NAME: &'static str = "application/x-ndjson";
}

impl<T: Type, C: ContentType> Payload for Documented<T, C> {
    const CONTENT_TYPE: &'static str = C::NAME;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type, C: ContentType> ParsePayload for Documented<T, C> {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Documented { body: body.take()?, _shape: PhantomData })
    }
}

/// One call as this API names its fields. Switches' own names are accepted too (`uniqueid`,
/// `src`, `dst`, `start`, `answer`, `end`, `accountcode`, FreeSWITCH's `uuid`,
/// `caller_id_number`, `destination_number`, `*_stamp`), as is the reference system's
/// `call_duration`; other fields are kept in `extra`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct CdrRecord {
    /// Unique per `source`: posting it again stores nothing new.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub call_id: String,
    /// The switch or tenant; the `source` query parameter, or `default`, when absent.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub source: Option<String>,
    /// Digits with an optional leading `+`; `*` and `#` for service codes. Empty, or
    /// `anonymous`, `unknown`, `restricted`, `private`, `unavailable`, `withheld`, for a
    /// caller without a number: stored as `anonymous`.
    #[oai(validator(pattern = r"^\+?[0-9*#]{1,31}$"))]
    pub src_number: String,
    /// Digits with an optional leading `+`; `*` and `#` for service codes.
    #[oai(validator(pattern = r"^\+?[0-9*#]{1,31}$"))]
    pub dest_number: String,
    /// RFC 3339; a time without a zone is UTC.
    pub start_time: DateTime<Utc>,
    /// Absent or null when the call was not answered.
    pub answer_time: Option<DateTime<Utc>>,
    /// At or after `start_time`; may be left out when `duration` is given.
    pub end_time: Option<DateTime<Utc>>,
    /// Seconds from start to end; derived from the times when absent.
    #[oai(validator(minimum(value = "0")))]
    pub duration: Option<i32>,
    /// Seconds from answer to end; derived from the times when absent.
    #[oai(validator(minimum(value = "0")))]
    pub billsec: Option<i32>,
    /// `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED` or `CONGESTION` (switch spellings such as
    /// `NO_ANSWER` too); derived from the answer time when absent.
    #[oai(validator(pattern = "^(ANSWERED|NO ANSWER|BUSY|FAILED|CONGESTION)$"))]
    pub disposition: Option<String>,
    pub call_successful: Option<bool>,
    /// Q.850 cause, e.g. `NORMAL_CLEARING`.
    #[oai(validator(max_length = 128))]
    pub hangup_cause: Option<String>,
    #[oai(validator(max_length = 128))]
    pub direction: Option<String>,
    #[oai(validator(max_length = 128))]
    pub account_code: Option<String>,
    /// Anything else worth keeping with the call.
    pub extra: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

impl Example for CdrRecord {
    fn example() -> Self {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).unwrap_or_default();
        CdrRecord {
            call_id: "1709287200.42".into(),
            source: Some("pbx-lon-1".into()),
            src_number: "+442071234567".into(),
            dest_number: "+14155550100".into(),
            start_time: at("2026-03-01T10:00:00Z"),
            answer_time: Some(at("2026-03-01T10:00:07Z")),
            end_time: Some(at("2026-03-01T10:02:07Z")),
            duration: Some(127),
            billsec: Some(120),
            disposition: Some("ANSWERED".into()),
            call_successful: Some(true),
            hangup_cause: Some("NORMAL_CLEARING".into()),
            direction: Some("outbound".into()),
            account_code: Some("acme".into()),
            extra: None,
        }
    }
}

/// Records wrapped in an object.
#[derive(Debug, Object)]
pub struct CdrEnvelope {
    pub cdrs: Vec<CdrRecord>,
}

/// A JSON batch: an array of records, `{"cdrs": [...]}`, or one record.
#[derive(Debug, Union)]
pub enum JsonBatch {
    Records(Vec<CdrRecord>),
    Envelope(CdrEnvelope),
    Record(Box<CdrRecord>),
}
