//! Connecting to the four services, the same way in every binary.

use crate::config::ServiceSettings;
use crate::queue::{Publisher, Topology};
use crate::search::SearchIndex;
use crate::state::JobStore;
use sea_orm::DatabaseConnection;

/// Handles on every service a binary uses.
#[derive(Clone)]
pub struct Connections {
    pub db: DatabaseConnection,
    pub jobs: JobStore,
    pub publisher: Publisher,
    pub search: SearchIndex,
}

/// Why start-up could not connect, naming the setting to look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error("connecting to PostgreSQL (DATABASE_URL): {0}")]
    Database(sea_orm::DbErr),
    #[error("applying database migrations: {0}")]
    Migrations(sea_orm::DbErr),
    #[error("connecting to Redis (REDIS_URL): {0}")]
    Redis(#[from] redis::RedisError),
    #[error("ELASTICSEARCH_URL: {0}")]
    Search(#[from] crate::search::SearchError),
}

/// Connects to PostgreSQL (applying pending migrations) and Redis, which must answer, and
/// prepares RabbitMQ and Elasticsearch, which may come later: publishing answers 503 and
/// indexing retries until they do.
pub async fn connect(settings: &ServiceSettings) -> Result<Connections, ConnectError> {
    let db = crate::db::connect(&settings.database_url, settings.db_pool_size)
        .await
        .map_err(ConnectError::Database)?;
    crate::db::migrate(&db).await.map_err(ConnectError::Migrations)?;
    let jobs = JobStore::connect(&settings.redis_url, &settings.namespace, settings.job_ttl()).await?;
    let publisher = Publisher::new(&settings.amqp_url, Topology::new(&settings.namespace));
    if let Err(e) = publisher.queue_depth(&crate::job::queue_of::<crate::ingest::IngestJob>(&publisher)).await
    {
        tracing::warn!(error = %e, "RabbitMQ unreachable at start-up");
    }
    let search = SearchIndex::new(&settings.elasticsearch_url, &settings.index_alias)?;
    if let Err(e) = search.ensure().await {
        tracing::warn!(error = %e, "search index not ready at start-up");
    }
    Ok(Connections { db, jobs, publisher, search })
}
