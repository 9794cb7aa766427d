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
    /// Elasticsearch refused rows for good (a mapping or parsing error); the rows are listed
    /// in `index_failures` and reported by `/sync-status`.
    SearchRefused,
    /// Redis (job state) could not be reached.
    StateUnavailable,
    /// RabbitMQ could not be reached, or did not confirm a message.
    BrokerUnavailable,
    /// A queued message was not the job its queue carries.
    UnreadableMessage,
    /// A message was delivered again and again without any attempt finishing (the process
    /// running it died each time): it was parked instead of being delivered forever.
    DeliveryLimit,
    /// A bug: the attempt panicked. Retrying will not help.
    InternalError,
    /// Too much work is waiting; retry later.
    Overloaded,
    /// The request or its body is malformed.
    BadRequest,
    /// Records in the request cannot be stored (each named with its field).
    InvalidRecords,
    /// No such resource.
    NotFound,
    /// The request conflicts with work in progress.
    Conflict,
    /// A credential is missing or wrong.
    Unauthorized,
    /// The credential's role may not do this.
    Forbidden,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::DatabaseUnavailable,
        ErrorCode::DatabaseRefused,
        ErrorCode::SearchUnavailable,
        ErrorCode::SearchRefused,
        ErrorCode::StateUnavailable,
        ErrorCode::BrokerUnavailable,
        ErrorCode::UnreadableMessage,
        ErrorCode::DeliveryLimit,
        ErrorCode::InternalError,
        ErrorCode::Overloaded,
        ErrorCode::BadRequest,
        ErrorCode::InvalidRecords,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
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
            ErrorCode::UnreadableMessage => "unreadable_message",
            ErrorCode::DeliveryLimit => "delivery_limit",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidRecords => "invalid_records",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
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
            ErrorCode::BadRequest | ErrorCode::UnreadableMessage => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::InvalidRecords | ErrorCode::DatabaseRefused | ErrorCode::SearchRefused => 422,
            ErrorCode::Overloaded => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::DeliveryLimit => 500,
            ErrorCode::DatabaseUnavailable
            | ErrorCode::SearchUnavailable
            | ErrorCode::StateUnavailable
            | ErrorCode::BrokerUnavailable => 503,
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
                | ErrorCode::Overloaded
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
    fn codes_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        assert!(ErrorCode::ALL.iter().all(|c| seen.insert(c.as_str())));
    }
}
