//! The one table of error codes, shared by HTTP error bodies and failed or retrying jobs.
//!
//! A client that follows a batch sees the same vocabulary whether the API refused it at once
//! or a worker gave up on it later, and can branch on the code instead of parsing messages.
//! Codes are stable: new ones may be added, existing ones are never renamed.

use poem_openapi::Enum;
use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// PostgreSQL could not be reached or failed for now; retried.
    DatabaseUnavailable,
    /// PostgreSQL refused the data for good (a constraint, a value out of range).
    DatabaseRefused,
    /// Elasticsearch could not be reached, or answered 429/5xx; retried.
    SearchUnavailable,
    /// Elasticsearch refused rows for good (a mapping or parsing error); the rows are listed in `index_failures` and reported by `/sync-status`.
    SearchRefused,
    /// Redis (job state) could not be reached.
    StateUnavailable,
    /// RabbitMQ could not be reached, or did not confirm a message.
    BrokerUnavailable,
    /// Another dependency is down for now; retry later.
    Unavailable,
    /// A queued message was not the job its queue carries.
    UnreadableMessage,
    /// A message was delivered again and again without any attempt finishing (the process running it died each time): it was parked instead of being delivered forever.
    DeliveryLimit,
    /// A bug: the request or attempt panicked. Retrying will not help.
    InternalError,
    /// Too much work is waiting; retry after `Retry-After` seconds.
    Overloaded,
    /// Refused by a rate limit; retry later.
    TooManyRequests,
    /// The request is malformed.
    BadRequest,
    /// The body is not the JSON or CSV it claims to be.
    MalformedBody,
    /// The body could not be read (its transfer failed or its text is not in a known charset).
    UnreadableBody,
    /// The body is well-formed but not shaped like a batch or a CDR.
    WrongShape,
    /// The batch holds no record.
    EmptyBatch,
    /// A query parameter is invalid; `details.parameter` names it.
    InvalidParameter,
    /// The search engine refused the query for what the client sent.
    InvalidQuery,
    /// Records in the request cannot be stored (each named with its field in `rejected`).
    InvalidRecords,
    /// A column mapping cannot be used.
    InvalidMapping,
    /// The request is well-formed but cannot be processed.
    Unprocessable,
    /// No such resource.
    NotFound,
    /// The route exists, the method does not (`Allow` lists those that do).
    MethodNotAllowed,
    /// The request conflicts with work in progress.
    Conflict,
    /// The job is not failed with its message in a dead-letter queue.
    NotRetryable,
    /// A rebuild is already running (`details.job_id`).
    ReindexRunning,
    /// The request is over a size limit.
    PayloadTooLarge,
    /// The body is over `CDR_MAX_BODY_BYTES`.
    BodyTooLarge,
    /// The batch is over `CDR_MAX_BATCH_RECORDS`.
    TooManyRecords,
    /// The content type is not one the route takes.
    UnsupportedMediaType,
    /// A credential is missing or wrong.
    Unauthorized,
    /// The credential's role may not do this.
    Forbidden,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 33] = [
        ErrorCode::DatabaseUnavailable,
        ErrorCode::DatabaseRefused,
        ErrorCode::SearchUnavailable,
        ErrorCode::SearchRefused,
        ErrorCode::StateUnavailable,
        ErrorCode::BrokerUnavailable,
        ErrorCode::Unavailable,
        ErrorCode::UnreadableMessage,
        ErrorCode::DeliveryLimit,
        ErrorCode::InternalError,
        ErrorCode::Overloaded,
        ErrorCode::TooManyRequests,
        ErrorCode::BadRequest,
        ErrorCode::MalformedBody,
        ErrorCode::UnreadableBody,
        ErrorCode::WrongShape,
        ErrorCode::EmptyBatch,
        ErrorCode::InvalidParameter,
        ErrorCode::InvalidQuery,
        ErrorCode::InvalidRecords,
        ErrorCode::InvalidMapping,
        ErrorCode::Unprocessable,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::NotRetryable,
        ErrorCode::ReindexRunning,
        ErrorCode::PayloadTooLarge,
        ErrorCode::BodyTooLarge,
        ErrorCode::TooManyRecords,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::DatabaseUnavailable => "database_unavailable",
            ErrorCode::DatabaseRefused => "database_refused",
            ErrorCode::SearchUnavailable => "search_unavailable",
            ErrorCode::SearchRefused => "search_refused",
            ErrorCode::StateUnavailable => "state_unavailable",
            ErrorCode::BrokerUnavailable => "broker_unavailable",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::UnreadableMessage => "unreadable_message",
            ErrorCode::DeliveryLimit => "delivery_limit",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::UnreadableBody => "unreadable_body",
            ErrorCode::WrongShape => "wrong_shape",
            ErrorCode::EmptyBatch => "empty_batch",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidRecords => "invalid_records",
            ErrorCode::InvalidMapping => "invalid_mapping",
            ErrorCode::Unprocessable => "unprocessable",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotRetryable => "not_retryable",
            ErrorCode::ReindexRunning => "reindex_running",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::TooManyRecords => "too_many_records",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status this code is answered with when a request meets it directly.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::DatabaseUnavailable => 503,
            ErrorCode::DatabaseRefused => 422,
            ErrorCode::SearchUnavailable => 503,
            ErrorCode::SearchRefused => 422,
            ErrorCode::StateUnavailable => 503,
            ErrorCode::BrokerUnavailable => 503,
            ErrorCode::Unavailable => 503,
            ErrorCode::UnreadableMessage => 400,
            ErrorCode::DeliveryLimit => 500,
            ErrorCode::InternalError => 500,
            ErrorCode::Overloaded => 429,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::BadRequest => 400,
            ErrorCode::MalformedBody => 400,
            ErrorCode::UnreadableBody => 400,
            ErrorCode::WrongShape => 400,
            ErrorCode::EmptyBatch => 400,
            ErrorCode::InvalidParameter => 400,
            ErrorCode::InvalidQuery => 400,
            ErrorCode::InvalidRecords => 422,
            ErrorCode::InvalidMapping => 422,
            ErrorCode::Unprocessable => 422,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::NotRetryable => 409,
            ErrorCode::ReindexRunning => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::TooManyRecords => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
        }
    }

    /// Whether the same work may succeed later without anyone changing anything.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::DatabaseUnavailable
                | ErrorCode::SearchUnavailable
                | ErrorCode::StateUnavailable
                | ErrorCode::BrokerUnavailable
                | ErrorCode::Unavailable
                | ErrorCode::Overloaded
                | ErrorCode::TooManyRequests
        )
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
        for code in ErrorCode::ALL {
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
