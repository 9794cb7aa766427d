#![doc = include_str!("../README.md")]

pub mod allow;
pub mod auth;
pub mod batch;
pub mod batcher;
pub mod cli;
pub mod console;
pub mod enqueue;
pub mod error;
pub mod openapi;
pub mod panic;
pub mod query;
pub mod routes;
pub mod state;
pub mod telemetry;

use poem::http::Method;
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
            routes::retention::RetentionApi,
            routes::pricing::PricingApi,
            routes::exports::ExportsApi,
            routes::alerts::AlertsApi,
            routes::health::HealthApi,
        ),
        "CDR pipeline",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Ingest, follow, search and analyse Call Detail Records.");
    let docs = openapi::Docs::new(&api, state.auth.is_disabled());
    let allow = allow::AllowHeader::from_document(&docs.document)
        .route("/metrics", &[Method::GET])
        .route("/schema", &[Method::GET])
        .route("/schema/swagger-ui", &[Method::GET])
        .route("/schema/redoc", &[Method::GET])
        .route("/console", &[Method::GET])
        .route("/console/{file}", &[Method::GET]);
    Route::new()
        .nest("/", api)
        .at("/schema/swagger-ui", poem::get(docs.swagger_ui()))
        .at("/schema/redoc", poem::get(docs.redoc()))
        .at("/schema", poem::get(docs.spec_endpoint()))
        .at("/metrics", poem::get(telemetry::metrics))
        .at("/console", poem::get(console::page))
        .at("/console/:file", poem::get(console::asset))
        .with(auth::RequireToken(state.auth.clone()))
        .data(state)
        .with(error::JsonErrors)
        .with(allow)
        .with(query::EmptyValuesAbsent::from_document(&docs.document))
        .with(telemetry::HttpMetrics)
        .with(panic::CatchPanics)
}
