//! Settings shared by `cdr-api` and `cdr-worker`: where the four services are and how
//! jobs are named and kept. Every setting is a flag and an environment variable.

use std::time::Duration;

/// Connection settings and naming shared by both binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceSettings {
    /// PostgreSQL, the source of truth for stored CDRs.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://cdr:cdr@127.0.0.1:5432/cdr")]
    pub database_url: String,

    /// RabbitMQ, which carries jobs between the API and the workers.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,

    /// Redis, where job state lives.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/0")]
    pub redis_url: String,

    /// Elasticsearch, the search index.
    #[arg(long, env = "ELASTICSEARCH_URL", default_value = "http://127.0.0.1:9200")]
    pub elasticsearch_url: String,

    /// Prefix of every queue, exchange and Redis key, so several deployments (or test runs)
    /// can share one broker and one Redis.
    #[arg(long, env = "CDR_NAMESPACE", default_value = "cdr")]
    pub namespace: String,

    /// Search index alias that reads and writes go through.
    #[arg(long, env = "CDR_INDEX_ALIAS", default_value = "cdrs")]
    pub index_alias: String,

    /// How long a job's state is kept in Redis after its last change, in seconds.
    #[arg(long, env = "CDR_JOB_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub job_ttl_secs: u64,

    /// Connections in the PostgreSQL pool.
    #[arg(long, env = "CDR_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,
}

impl ServiceSettings {
    pub fn job_ttl(&self) -> Duration {
        Duration::from_secs(self.job_ttl_secs)
    }
}
