//! HTTP metrics, and the `/metrics` endpoint.

use crate::state::AppState;
use poem::web::Data;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, handler};
use std::time::Instant;
use tracing::Instrument as _;

const REQUEST_ID: &str = "x-request-id";

/// Counts every request by route template and status, and times it.
pub struct HttpMetrics;

impl<E: Endpoint> Middleware<E> for HttpMetrics {
    type Output = HttpMetricsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        HttpMetricsEndpoint(ep)
    }
}

pub struct HttpMetricsEndpoint<E>(E);

impl<E: Endpoint> Endpoint for HttpMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let route = route_of(req.uri().path());
        let method = req.method().clone();
        // The caller's request id when it sent one (a proxy's), else a new one; echoed back
        // and attached to every log line of the request.
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(jobs::new_job_id);
        let span = tracing::info_span!("request", request_id = %request_id, method = %method, route);
        let started = Instant::now();
        let mut resp = match self.0.call(req).instrument(span.clone()).await {
            Ok(out) => out.into_response(),
            Err(err) => err.into_response(),
        };
        let elapsed = started.elapsed();
        let status = resp.status();
        if let Ok(v) = poem::http::HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(REQUEST_ID, v);
        }
        let m = jobs::metrics::metrics();
        m.http_requests.with_label_values(&[route, status.as_str()]).inc();
        m.http_seconds.with_label_values(&[route]).observe(elapsed.as_secs_f64());
        span.in_scope(|| {
            tracing::debug!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "request served"
            )
        });
        Ok(resp)
    }
}

/// The route template of a path, so ids never become label values.
fn route_of(path: &str) -> &'static str {
    match path {
        "/cdrs" => "/cdrs",
        "/search" => "/search",
        "/stats" => "/stats",
        "/sync-status" => "/sync-status",
        "/reindex" => "/reindex",
        "/rollups/rebuild" => "/rollups/rebuild",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        p if p.starts_with("/jobs/") => "/jobs/{id}",
        p if p.starts_with("/schema") => "/schema",
        _ => "other",
    }
}

/// Prometheus text format; gauges of shared state are sampled now.
#[handler]
pub async fn metrics(state: Data<&AppState>) -> impl IntoResponse {
    jobs::sync::sample_gauges(&state.db, &state.publisher, &state.jobs).await;
    jobs::metrics::render().with_content_type("text/plain; version=0.0.4")
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn job_ids_do_not_become_labels() {
        assert_eq!(route_of("/jobs/01h000"), "/jobs/{id}");
        assert_eq!(route_of("/schema/swagger-ui/index.js"), "/schema");
        assert_eq!(route_of("/wp-admin"), "other");
    }
}
