//! The one error table of the API.
//!
//! Handlers return [`ApiError`]; anything else that fails (an unknown route, a body poem
//! could not read, a wrong content type) is rewritten by [`JsonErrors`] into the same body,
//! so clients parse one shape for every error, with the status as the only switch.

use jobs::cdr::RecordError;
pub use jobs::error_code::ErrorCode;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The body of every error response.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Stable, machine-readable error code, from the table job states use too.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// Structured detail where there is some (for example the refused records).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// For refused batches: each refused record with its index, call id, field and reason.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Vec<RejectedRecord>>,
}

/// One refused record of a batch.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct RejectedRecord {
    /// Position in the batch, from 0.
    pub index: u64,
    /// The record's call id; null when it had none.
    #[oai(nullable)]
    pub call_id: Option<String>,
    pub field: String,
    pub reason: String,
}

impl From<RecordError> for RejectedRecord {
    fn from(e: RecordError) -> Self {
        RejectedRecord { index: e.index as u64, call_id: e.call_id, field: e.field, reason: e.reason }
    }
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody { code, message: message.into(), details: None, rejected: None }
    }
}

#[derive(Debug, Clone, ApiResponse)]
pub enum ApiError {
    /// The request is malformed: unreadable body, bad JSON, bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No such resource.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with work in progress.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// What was asked for existed once and is gone (an expired export).
    #[oai(status = 410)]
    Gone(Json<ErrorBody>),
    /// The batch is over the record or byte limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request is well-formed but nothing in it can be accepted.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// The `Range` asked for lies outside the file.
    #[oai(status = 416)]
    RangeNotSatisfiable(Json<ErrorBody>),
    /// Too much work is waiting; nothing was accepted. Retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// A dependency is down; nothing was accepted. Retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl ApiError {
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::BadRequest(Json(ErrorBody::new(code, message)))
    }

    /// A query parameter refused: the 400 names it in `details.parameter`.
    pub fn parameter(e: jobs::search::ParamError) -> Self {
        ApiError::BadRequest(Json(ErrorBody {
            details: Some(serde_json::json!({ "parameter": e.parameter })),
            ..ErrorBody::new(ErrorCode::InvalidParameter, format!("{}: {}", e.parameter, e.reason))
        }))
    }

    /// The pairs of a request's query string, in order; a 400 when it cannot be decoded.
    pub fn query_pairs(req: &poem::Request) -> Result<Vec<(String, String)>, Self> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(req.uri().query().unwrap_or("")).map_err(|e| {
            Self::bad_request(ErrorCode::InvalidParameter, format!("unreadable query string: {e}"))
        })
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(Json(ErrorBody::new(ErrorCode::NotFound, message)))
    }

    pub fn too_large(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::PayloadTooLarge(Json(ErrorBody::new(code, message)))
    }

    /// The search engine refused the query for what the client sent (it answered 400): the
    /// client's to fix, so a 400 rather than a 503 that would invite the same request again.
    /// `parameter` names the query parameter at fault when it is known.
    pub fn invalid_query(parameter: Option<&str>, reason: impl std::fmt::Display) -> Self {
        let message = match parameter {
            Some(p) => format!("{p}: the search engine refused it: {reason}"),
            None => format!("the search engine refused the query: {reason}"),
        };
        ApiError::BadRequest(Json(ErrorBody {
            details: parameter.map(|p| serde_json::json!({ "parameter": p })),
            ..ErrorBody::new(ErrorCode::InvalidQuery, message)
        }))
    }

    /// A dependency is down: 503 with `Retry-After`, coded by which one.
    pub fn unavailable(dependency: &str, error: impl std::fmt::Display) -> Self {
        tracing::warn!(dependency, error = %error, "dependency unavailable");
        let code = match dependency {
            "postgresql" | "postgres" => ErrorCode::DatabaseUnavailable,
            "redis" => ErrorCode::StateUnavailable,
            "rabbitmq" => ErrorCode::BrokerUnavailable,
            "elasticsearch" => ErrorCode::SearchUnavailable,
            _ => ErrorCode::Unavailable,
        };
        ApiError::Unavailable(
            Json(ErrorBody {
                details: Some(serde_json::json!({ "dependency": dependency })),
                ..ErrorBody::new(code, format!("{dependency} is unavailable; retry later"))
            }),
            RETRY_AFTER_SECS,
        )
    }
}

/// Status → error code, for errors raised outside our handlers.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::Unprocessable,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        _ if status.is_client_error() => ErrorCode::BadRequest,
        _ => ErrorCode::InternalError,
    }
}

/// Renders every error that is not already our JSON body as one, keeping its status.
pub struct JsonErrors;

impl<E: Endpoint> Middleware<E> for JsonErrors {
    type Output = JsonErrorsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        JsonErrorsEndpoint(ep)
    }
}

pub struct JsonErrorsEndpoint<E>(E);

impl<E: Endpoint> Endpoint for JsonErrorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        normalise_content_type(&mut req);
        let resp = match self.0.call(req).await {
            Ok(out) => out.into_response(),
            Err(err) => {
                let message = err.to_string();
                let resp = err.into_response();
                if is_json(&resp) {
                    resp
                } else {
                    let status = resp.status();
                    let body = ErrorBody::new(code_for(status), message);
                    if status.is_server_error() {
                        tracing::error!(status = status.as_u16(), message = %body.message, "request failed");
                    }
                    Json(body).with_status(status).into_response()
                }
            }
        };
        Ok(resp)
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The `charset` parameter of the request's Content-Type, kept for handlers after
/// [`normalise_content_type`] has removed it.
#[derive(Debug, Clone)]
pub struct DeclaredCharset(pub String);

/// poem-openapi matches request content types exactly; clients send parameters such as
/// `; charset=utf-8` and mixed case. Keep only the lower-cased media type (and the charset
/// aside, as a [`DeclaredCharset`]).
fn normalise_content_type(req: &mut Request) {
    let Some(value) = req.headers().get(poem::http::header::CONTENT_TYPE) else {
        return;
    };
    let Ok(text) = value.to_str().map(str::to_string) else { return };
    let charset = text.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"').to_string())
    });
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if let Some(charset) = charset {
        req.extensions_mut().insert(DeclaredCharset(charset));
    }
    if essence != text
        && let Ok(v) = poem::http::HeaderValue::from_str(&essence)
    {
        req.headers_mut().insert(poem::http::header::CONTENT_TYPE, v);
    }
}
