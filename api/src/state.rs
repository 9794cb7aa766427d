//! What every request handler shares.

use crate::cli::Limits;
use jobs::config::ServiceSettings;
use jobs::queue::{Publisher, Topology};
use jobs::search::SearchIndex;
use jobs::state::JobStore;
use sea_orm::DatabaseConnection;

#[derive(Clone)]
pub struct AppState {
    pub publisher: Publisher,
    pub jobs: JobStore,
    pub db: DatabaseConnection,
    pub search: SearchIndex,
    pub limits: Limits,
    /// Who may call what; `AppState::connect` starts with none (set it before serving).
    pub auth: crate::auth::Auth,
}

impl AppState {
    /// Connects to PostgreSQL (applying pending migrations), Redis and RabbitMQ.
    pub async fn connect(services: &ServiceSettings, limits: Limits) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let db = jobs::db::connect(&services.database_url, services.db_pool_size)
            .await
            .context("connecting to PostgreSQL (DATABASE_URL)")?;
        jobs::db::migrate(&db).await.context("applying database migrations")?;
        let jobs = JobStore::connect(&services.redis_url, &services.namespace, services.job_ttl())
            .await
            .context("connecting to Redis (REDIS_URL)")?;
        let topology = Topology::new(&services.namespace);
        let publisher = Publisher::new(&services.amqp_url, topology);
        if let Err(e) = publisher.queue_depth(&publisher.topology().ingest.clone()).await {
            // The API can start without the broker and answer 503 until it is back.
            tracing::warn!(error = %e, "RabbitMQ unreachable at start-up");
        }
        let search = SearchIndex::new(&services.elasticsearch_url, &services.index_alias)
            .context("ELASTICSEARCH_URL")?;
        if let Err(e) = search.ensure().await {
            tracing::warn!(error = %e, "search index not ready at start-up");
        }
        Ok(AppState { publisher, jobs, db, search, limits, auth: crate::auth::Auth::disabled() })
    }
}
