//! The last line of defence: a handler that panics answers a JSON 500, not a dropped
//! connection.
//!
//! Without this layer a panic unwinds through the connection's task and the client sees the
//! socket close, with nothing in the metrics. Here it becomes the API's usual error body
//! (code `internal`) carrying the request id, is logged with that id, and is counted in
//! `cdr_api_panics_total`. Nothing else answers 500, so a 500 always means a bug, found by
//! the request id in the logs; the counter stays at 0 in normal operation.
//!
//! The layer sits outside every other one, so it also catches panics in middleware. It
//! settles the request id first (the caller's, or a new one) and puts it on the request,
//! where the metrics layer takes it as the caller's: the id in a 500's body is the one
//! every log line of the request carries.

use crate::error::ErrorBody;
use futures::FutureExt as _;
use poem::http::StatusCode;
use poem::http::header::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;
use std::any::Any;
use std::panic::AssertUnwindSafe;

const REQUEST_ID: &str = "x-request-id";

/// Turns a panic anywhere inside into a JSON 500; see the module documentation.
pub struct CatchPanics;

impl<E: Endpoint> Middleware<E> for CatchPanics {
    type Output = CatchPanicsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        CatchPanicsEndpoint(ep)
    }
}

pub struct CatchPanicsEndpoint<E>(E);

impl<E: Endpoint> Endpoint for CatchPanicsEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let request_id = settle_request_id(&mut req);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        // Unwind safety: a panicking request's state is dropped with it; what is shared
        // (pools, the registry) is behind its own synchronisation.
        match AssertUnwindSafe(self.0.call(req)).catch_unwind().await {
            Ok(result) => result.map(IntoResponse::into_response),
            Err(payload) => {
                jobs::metrics::metrics().api_panics.inc();
                tracing::error!(
                    request_id = %request_id,
                    method = %method,
                    path = %path,
                    panic = %panic_message(payload.as_ref()),
                    "request handler panicked"
                );
                Ok(internal_error(&request_id))
            }
        }
    }
}

/// The caller's request id when the metrics layer would take it (non-empty, at most 128
/// characters, a valid header value), else a new one written onto the request so that
/// layer takes that one.
fn settle_request_id(req: &mut Request) -> String {
    let given = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string);
    if let Some(id) = given {
        return id;
    }
    let id = jobs::new_job_id();
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID, v);
    }
    id
}

/// What the panic said, for the log only: it may name internals, so it never reaches the
/// client.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)")
}

fn internal_error(request_id: &str) -> Response {
    let body = ErrorBody {
        details: Some(serde_json::json!({ "request_id": request_id })),
        ..ErrorBody::new(
            crate::error::ErrorCode::InternalError,
            format!("internal error; report request id {request_id} to the operator"),
        )
    };
    let mut resp = Json(body).with_status(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::test::TestClient;
    use poem::{EndpointExt, Route, get, handler};

    #[handler]
    fn boom() -> &'static str {
        panic!("index out of bounds in a handler")
    }

    #[handler]
    fn fine(req: &Request) -> String {
        req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("none").to_string()
    }

    fn app() -> impl Endpoint {
        Route::new().at("/boom", get(boom)).at("/fine", get(fine)).with(CatchPanics)
    }

    #[tokio::test]
    async fn a_panic_is_a_counted_json_500_with_the_request_id() {
        let client = TestClient::new(app());
        let before = jobs::metrics::metrics().api_panics.get();

        let resp = client.get("/boom").header(REQUEST_ID, "req-42").send().await;
        resp.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
        resp.assert_header(REQUEST_ID, "req-42");
        resp.assert_content_type("application/json; charset=utf-8");
        let body = resp.json().await;
        body.value().object().get("code").assert_string("internal_error");
        body.value().object().get("details").object().get("request_id").assert_string("req-42");
        // The panic's own words stay in the log.
        let text = body.value().deserialize::<serde_json::Value>().to_string();
        assert!(!text.contains("out of bounds"), "{text}");

        // Without an id from the caller, a new one is made and is the same in body and header.
        let resp = client.get("/boom").send().await;
        resp.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
        let header = resp.0.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.json().await.value().deserialize::<serde_json::Value>();
        assert!(header.as_deref().is_some_and(|h| !h.is_empty()));
        assert_eq!(body["details"]["request_id"].as_str(), header.as_deref());

        assert!(jobs::metrics::metrics().api_panics.get() >= before + 2);
        assert!(jobs::metrics::render().contains("cdr_api_panics_total"));
    }

    #[tokio::test]
    async fn requests_that_do_not_panic_pass_through_with_a_settled_id() {
        let client = TestClient::new(app());
        let resp = client.get("/fine").header(REQUEST_ID, "mine").send().await;
        resp.assert_status_is_ok();
        resp.assert_text("mine").await;
        // An id the metrics layer would refuse (too long) is replaced by one it takes.
        let resp = client.get("/fine").header(REQUEST_ID, "x".repeat(200)).send().await;
        resp.assert_status_is_ok();
        let id = resp.0.into_body().into_string().await.unwrap_or_default();
        assert!(!id.is_empty() && id.len() <= 128 && id != "none", "{id}");
    }
}
