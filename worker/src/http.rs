//! The worker's own small HTTP listener: `/metrics` for Prometheus, `/healthz` for probes.

use anyhow::Context as _;
use jobs::sync::Sweeper;
use poem::listener::TcpListener;
use poem::web::Data;
use poem::{EndpointExt, IntoResponse, Route, Server, get, handler};
use std::future::Future;
use tokio::task::JoinHandle;

#[handler]
async fn metrics(sweeper: Data<&Sweeper>) -> impl IntoResponse {
    jobs::sync::sample_gauges(&sweeper.db, &sweeper.publisher, &sweeper.jobs).await;
    jobs::metrics::render().with_content_type("text/plain; version=0.0.4")
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

/// Binds now (so a taken port stops start-up with a clear error) and serves until `stop`.
pub async fn serve(
    addr: &str,
    sweeper: Sweeper,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the worker's HTTP listener (CDR_WORKER_HTTP_ADDR={addr})"))?;
    let local = listener.local_addr()?;
    drop(listener);
    let app = Route::new().at("/metrics", get(metrics)).at("/healthz", get(healthz)).data(sweeper);
    tracing::info!(addr = %local, "worker metrics listening");
    Ok(tokio::spawn(async move {
        if let Err(e) =
            Server::new(TcpListener::bind(local)).run_with_graceful_shutdown(app, stop, None).await
        {
            tracing::error!(error = %e, "worker HTTP listener failed");
        }
    }))
}
