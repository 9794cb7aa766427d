//! HTTP metrics, and the `/metrics` endpoint.

use crate::state::AppState;
use poem::web::Data;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, handler};
use std::time::Instant;

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
        let started = Instant::now();
        let resp = match self.0.call(req).await {
            Ok(out) => out.into_response(),
            Err(err) => err.into_response(),
        };
        let m = jobs::metrics::metrics();
        m.http_requests.with_label_values(&[route, resp.status().as_str()]).inc();
        m.http_seconds.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
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
    jobs::sync::sample_gauges(&state.db, &state.publisher).await;
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
