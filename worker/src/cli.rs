//! `cdr-worker`'s settings.

use jobs::config::ServiceSettings;
use std::time::Duration;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "cdr-worker", version, about = "Stores and indexes CDR batches from the job queues")]
pub struct WorkerCli {
    #[command(flatten)]
    pub services: ServiceSettings,

    /// Ingest jobs processed at once by this process: each is a PostgreSQL writer, and
    /// several writers keep the database busy while others wait on the network.
    #[arg(long, env = "CDR_WORKER_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Index jobs processed at once by this process (bulk requests in flight).
    #[arg(long, env = "CDR_INDEX_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub index_concurrency: u16,

    /// The job queues this process consumes, comma-separated (`ingest`, `index`, `reindex`,
    /// `maintenance`, `export`); all of them when unset. Separate pools (e.g. `ingest` on
    /// some hosts, `index,reindex` on others) let storing and indexing scale apart.
    #[arg(long, env = "CDR_WORKER_JOBS", value_delimiter = ',', value_parser = job_queue)]
    pub jobs: Vec<String>,

    /// Unacknowledged messages the broker may hand this process ahead of time.
    #[arg(long, env = "CDR_WORKER_PREFETCH", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,

    /// Attempts per delivery before a transiently failing job is dead-lettered.
    #[arg(long, env = "CDR_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// First retry delay in milliseconds; doubles each attempt up to --retry-max-ms.
    #[arg(long, env = "CDR_RETRY_MIN_MS", default_value_t = 250)]
    pub retry_min_ms: u64,

    /// Longest retry delay in milliseconds.
    #[arg(long, env = "CDR_RETRY_MAX_MS", default_value_t = 30_000)]
    pub retry_max_ms: u64,

    /// Seconds in-flight jobs get to finish after SIGTERM before the process exits anyway
    /// (unfinished messages are redelivered).
    #[arg(long, env = "CDR_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    /// Seconds between sync sweeps, which queue rows still missing from the index.
    #[arg(long, env = "CDR_SWEEP_INTERVAL_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub sweep_interval_secs: u64,

    /// Seconds a stored row may wait for its own index job before the sweeper queues it.
    #[arg(long, env = "CDR_SWEEP_GRACE_SECS", default_value_t = 30)]
    pub sweep_grace_secs: u64,

    /// Milliseconds between folds of pending KPI rollup sums into the rollup tables.
    #[arg(long, env = "CDR_ROLLUP_FOLD_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub rollup_fold_ms: u64,

    /// Whether pending rollup sums are also folded as soon as ingest pauses, rather than
    /// only every `CDR_ROLLUP_FOLD_MS` (`false` keeps them pending until then).
    #[arg(long, env = "CDR_ROLLUP_FOLD_ON_PAUSE", default_value_t = true, action = clap::ArgAction::Set)]
    pub rollup_fold_on_pause: bool,

    /// Pending rollup rows (one per stored batch) past which sums are folded even while
    /// ingest has a backlog; below it, a backlog is stored first and folded once it clears.
    /// `/stats` stays exact either way (it adds what is pending), and reads at most this many
    /// unfolded batches.
    #[arg(long, env = "CDR_ROLLUP_MAX_PENDING", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..))]
    pub rollup_max_pending: i64,

    /// Rows per Elasticsearch bulk request.
    #[arg(long, env = "CDR_INDEX_CHUNK", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub index_chunk: u64,

    #[command(flatten)]
    pub retention: jobs::retention::RetentionPolicy,

    #[command(flatten)]
    pub exports: jobs::export::ExportSettings,

    /// When retention runs (and partitions for the coming months are made), as a cron
    /// expression with seconds, in UTC: `sec min hour day-of-month month day-of-week`. Every
    /// worker follows it; each time it fires, one run is queued for the whole deployment.
    #[arg(long, env = "CDR_RETENTION_SCHEDULE", default_value = "0 15 3 * * *")]
    pub retention_schedule: String,

    /// When alert rules are evaluated, as a cron expression with seconds, in UTC. Each time it
    /// fires, one evaluation is queued for the whole deployment.
    #[arg(long, env = "CDR_ALERT_SCHEDULE", default_value = "0 * * * * *")]
    pub alert_schedule: String,

    /// Address of the worker's own HTTP listener: `/metrics` and `/healthz`.
    #[arg(long, env = "CDR_WORKER_HTTP_ADDR", default_value = "127.0.0.1:9102")]
    pub http_addr: String,

    #[command(subcommand)]
    pub command: Option<WorkerCommand>,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "CDR_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
}

/// A registered job queue's name (see `jobs::job::registry`).
fn job_queue(name: &str) -> Result<String, String> {
    let queues = jobs::job::registry::queues();
    if queues.contains(&name) {
        Ok(name.to_string())
    } else {
        Err(format!("no job queue {name:?}; the queues are {}", queues.join(", ")))
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum WorkerCommand {
    /// Run the worker pool (the default).
    Run,
    /// Rebuild the search index from PostgreSQL now, in this process, and exit.
    Reindex,
}

impl WorkerCli {
    /// Whether this process takes the jobs of `queue` (a registered queue's name).
    pub fn consumes(&self, queue: &str) -> bool {
        self.jobs.is_empty() || self.jobs.iter().any(|j| j == queue)
    }

    /// What the job runners read from these settings.
    pub fn worker_settings(&self) -> jobs::job::WorkerSettings {
        jobs::job::WorkerSettings {
            concurrency: usize::from(self.concurrency),
            index_concurrency: usize::from(self.index_concurrency),
            prefetch: self.prefetch,
            max_attempts: self.max_attempts,
            index_chunk: self.index_chunk,
            retention: self.retention,
            retention_schedule: self.retention_schedule.clone(),
            alert_schedule: self.alert_schedule.clone(),
            exports: self.exports.clone(),
        }
    }

    pub fn retry_min(&self) -> Duration {
        Duration::from_millis(self.retry_min_ms.max(1))
    }

    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms.max(self.retry_min_ms).max(1))
    }
}
