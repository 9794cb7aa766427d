#![doc = include_str!("../README.md")]

pub mod auth;
pub mod batch;
pub mod batcher;
pub mod cli;
pub mod enqueue;
pub mod error;
pub mod routes;
pub mod state;
pub mod telemetry;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;
use state::AppState;

/// The whole HTTP application: the API, its OpenAPI document and docs pages, with every
/// error rendered as the shared JSON error body.
pub fn app(state: AppState) -> impl Endpoint {
    let api = OpenApiService::new(
        (
            routes::cdrs::CdrsApi,
            routes::freeswitch::FreeswitchApi,
            routes::mappings::MappingsApi,
            routes::jobs::JobsApi,
            routes::search::SearchApi,
            routes::sync::SyncApi,
            routes::health::HealthApi,
        ),
        "CDR pipeline",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Ingest, follow, search and analyse Call Detail Records.");
    let spec = api.spec_endpoint();
    let swagger = api.swagger_ui();
    let redoc = api.redoc();
    Route::new()
        .nest("/", api)
        .nest("/schema/swagger-ui", swagger)
        .nest("/schema/redoc", redoc)
        .at("/schema", spec)
        .at("/metrics", poem::get(telemetry::metrics))
        .with(auth::RequireToken(state.auth.clone()))
        .data(state)
        .with(error::JsonErrors)
        .with(telemetry::HttpMetrics)
}
