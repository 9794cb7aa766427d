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
/// `src`, `dst`, `start`, `answer`, `end`, `accountcode`, `linkedid`, FreeSWITCH's `uuid`,
/// `caller_id_number`, `destination_number`, `*_stamp`), as is the reference system's
/// `call_duration`; other fields are kept in `extra`. Values are kept as written; only what no
/// switch could have written is refused: no readable start time, negative seconds, an end
/// before the start, a NUL character.
#[derive(Debug, Object)]
#[oai(example)]
pub struct CdrRecord {
    /// The switch's id of the call (Asterisk `uniqueid`, FreeSWITCH `uuid`, a SIP Call-ID).
    /// Derived from the record's content when absent, so a resent record is still
    /// recognised.
    #[oai(validator(max_length = 255))]
    pub call_id: Option<String>,
    /// Tells apart different records that share a call id (legs, rows written after a
    /// transfer). Derived when absent: `seq:<sequence>` from Asterisk's `sequence`, a digest
    /// of the row for an Asterisk `uniqueid`, else empty (the call id alone names the record).
    #[oai(validator(max_length = 255))]
    pub record_key: Option<String>,
    /// Asterisk's `sequence`: with `uniqueid`, what makes a record unique.
    pub sequence: Option<String>,
    /// The switch or tenant; the `source` query parameter, or `default`, when absent.
    #[oai(validator(max_length = 255))]
    pub source: Option<String>,
    /// The calling party as the switch wrote it: digits, a SIP user, an extension, or empty
    /// (a withheld caller, flagged `caller_withheld`, as are `anonymous`, `unknown`,
    /// `restricted`, `private`, `unavailable` and `withheld`).
    #[oai(validator(max_length = 255))]
    pub src_number: Option<String>,
    /// The called party as the switch wrote it: digits, a SIP user, an extension such as `s`
    /// or `*1001`, or empty.
    #[oai(validator(max_length = 255))]
    pub dest_number: Option<String>,
    /// RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or epoch seconds. Required.
    pub start_time: DateTime<Utc>,
    /// Absent or null when the call was not answered.
    pub answer_time: Option<DateTime<Utc>>,
    /// At or after `start_time`; may be left out (some switches write none).
    pub end_time: Option<DateTime<Utc>>,
    /// The switch's seconds from start to end; from the times when absent.
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub duration: Option<i64>,
    /// The switch's billable seconds, kept as given (switches' own figures can differ from
    /// the times by a second or more); from the times when absent.
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub billsec: Option<i64>,
    /// As the switch wrote it. `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED`, `CONGESTION` (any
    /// case, `_` or space) are counted as such; anything else (e.g. `CHANUNAVAIL`) as
    /// `FAILED`, with the value kept. When absent it follows from what happened: answered
    /// when there is an answer time or billable seconds, else from the hangup cause.
    #[oai(validator(max_length = 255))]
    pub disposition: Option<String>,
    pub call_successful: Option<bool>,
    /// Q.850 cause, e.g. `NORMAL_CLEARING` or `16`.
    #[oai(validator(max_length = 255))]
    pub hangup_cause: Option<String>,
    #[oai(validator(max_length = 255))]
    pub direction: Option<String>,
    #[oai(validator(max_length = 255))]
    pub account_code: Option<String>,
    /// Groups the legs of one call (Asterisk's `linkedid`; FreeSWITCH's `bleg_uuid`).
    #[oai(validator(max_length = 255))]
    pub linked_id: Option<String>,
    /// Anything else worth keeping with the call.
    pub extra: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

impl Example for CdrRecord {
    fn example() -> Self {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).unwrap_or_default();
        CdrRecord {
            call_id: Some("1709287200.42".into()),
            record_key: None,
            sequence: None,
            source: Some("pbx-lon-1".into()),
            src_number: Some("+442071234567".into()),
            dest_number: Some("+14155550100".into()),
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
            linked_id: None,
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
