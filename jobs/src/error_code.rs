//! The one table of error codes, shared by HTTP error bodies and failed or retrying jobs.
//!
//! A client that follows a batch sees the same vocabulary whether the API refused it at once
//! or a worker gave up on it later, and can branch on the code instead of parsing messages.
//! Codes are stable: new ones may be added, existing ones are never renamed.

use poem_openapi::Enum;
use serde::{Deserialize, Serialize};

/// Declares the table once: variant, code, HTTP status, transient.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal, $status:literal, $transient:literal;)+) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Enum)]
        #[serde(rename_all = "snake_case")]
        #[oai(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The HTTP status this code is answered with when a request meets it directly.
            pub fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)+
                }
            }

            /// Whether the same work may succeed later without anyone changing anything.
            pub fn is_transient(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $transient,)+
                }
            }
        }
    };
}

error_codes! {
    /// PostgreSQL could not be reached or failed for now; retried.
    DatabaseUnavailable = "database_unavailable", 503, true;
    /// PostgreSQL refused the data for good (a constraint, a value out of range).
    DatabaseRefused = "database_refused", 422, false;
    /// Elasticsearch could not be reached, or answered 429/5xx; retried.
    SearchUnavailable = "search_unavailable", 503, true;
    /// Elasticsearch refused rows for good (a mapping or parsing error); the rows are listed in `index_failures` and reported by `/sync-status`.
    SearchRefused = "search_refused", 422, false;
    /// Redis (job state) could not be reached.
    StateUnavailable = "state_unavailable", 503, true;
    /// RabbitMQ could not be reached, or did not confirm a message.
    BrokerUnavailable = "broker_unavailable", 503, true;
    /// Another dependency is down for now; retry later.
    Unavailable = "unavailable", 503, true;
    /// A queued message was not the job its queue carries.
    UnreadableMessage = "unreadable_message", 400, false;
    /// A message was delivered again and again without any attempt finishing (the process running it died each time): it was parked instead of being delivered forever.
    DeliveryLimit = "delivery_limit", 500, false;
    /// A bug: the request or attempt panicked. Retrying will not help.
    InternalError = "internal_error", 500, false;
    /// Too much work is waiting; retry after `Retry-After` seconds.
    Overloaded = "overloaded", 429, true;
    /// Refused by a rate limit; retry later.
    TooManyRequests = "too_many_requests", 429, true;
    /// The request is malformed.
    BadRequest = "bad_request", 400, false;
    /// The body is not the JSON or CSV it claims to be.
    MalformedBody = "malformed_body", 400, false;
    /// The body could not be read (its transfer failed or its text is not in a known charset).
    UnreadableBody = "unreadable_body", 400, false;
    /// The body is well-formed but not shaped like a batch or a CDR.
    WrongShape = "wrong_shape", 400, false;
    /// The batch holds no record.
    EmptyBatch = "empty_batch", 400, false;
    /// A query parameter is invalid; `details.parameter` names it.
    InvalidParameter = "invalid_parameter", 400, false;
    /// The search engine refused the query for what the client sent.
    InvalidQuery = "invalid_query", 400, false;
    /// Records in the request cannot be stored (each named with its field in `rejected`).
    InvalidRecords = "invalid_records", 422, false;
    /// A column mapping cannot be used.
    InvalidMapping = "invalid_mapping", 422, false;
    /// The request is well-formed but cannot be processed.
    Unprocessable = "unprocessable", 422, false;
    /// No such resource.
    NotFound = "not_found", 404, false;
    /// The route exists, the method does not (`Allow` lists those that do).
    MethodNotAllowed = "method_not_allowed", 405, false;
    /// The request conflicts with work in progress.
    Conflict = "conflict", 409, false;
    /// The job is not failed with its message in a dead-letter queue.
    NotRetryable = "not_retryable", 409, false;
    /// A rebuild is already running (`details.job_id`).
    ReindexRunning = "reindex_running", 409, false;
    /// The request is over a size limit.
    PayloadTooLarge = "payload_too_large", 413, false;
    /// The body is over `CDR_MAX_BODY_BYTES`.
    BodyTooLarge = "body_too_large", 413, false;
    /// The batch is over `CDR_MAX_BATCH_RECORDS`.
    TooManyRecords = "too_many_records", 413, false;
    /// The content type is not one the route takes.
    UnsupportedMediaType = "unsupported_media_type", 415, false;
    /// An alert rule cannot be saved; `details.field` names what to change.
    InvalidRule = "invalid_rule", 422, false;
    /// The export is not finished (or failed): `/jobs/{id}` says how far it is.
    ExportNotReady = "export_not_ready", 409, false;
    /// The export's file was deleted after `CDR_EXPORT_TTL_HOURS`.
    ExportExpired = "export_expired", 410, false;
    /// The `Range` asked for lies outside the file.
    RangeNotSatisfiable = "range_not_satisfiable", 416, false;
    /// A file could not be written or read (the export directory is missing, full or not writable).
    StorageUnavailable = "storage_unavailable", 503, true;
    /// A credential is missing or wrong.
    Unauthorized = "unauthorized", 401, false;
    /// The credential's role may not do this.
    Forbidden = "forbidden", 403, false;
}

impl ErrorCode {
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_serialises_as_written() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).expect("json"), serde_json::json!(code.as_str()));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn codes_are_distinct_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        assert!(ErrorCode::ALL.iter().all(|c| seen.insert(c.as_str())));
        assert!(ErrorCode::ALL.iter().all(|c| (400..600).contains(&c.http_status())));
        assert!(
            ErrorCode::ALL.iter().filter(|c| c.is_transient()).all(|c| matches!(c.http_status(), 429 | 503))
        );
    }
}
