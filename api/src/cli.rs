//! `cdr-api`'s settings.

use jobs::config::ServiceSettings;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "cdr-api", version, about = "HTTP API of the CDR pipeline")]
pub struct ApiCli {
    #[command(flatten)]
    pub services: ServiceSettings,

    /// Address to listen on.
    #[arg(long, env = "CDR_HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub http_addr: String,

    #[command(flatten)]
    pub limits: Limits,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "CDR_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
}

/// What one `POST /cdrs` may carry.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Most records in one batch; more is refused with 413.
    #[arg(long, env = "CDR_MAX_BATCH_RECORDS", default_value_t = 10_000)]
    pub max_batch_records: usize,

    /// Largest request body in bytes; more is refused with 413.
    #[arg(long, env = "CDR_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// `source` given to records that name none, when the request names none either.
    #[arg(long, env = "CDR_DEFAULT_SOURCE", default_value = "default")]
    pub default_source: String,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_records: 10_000,
            max_body_bytes: 16 * 1024 * 1024,
            default_source: "default".into(),
        }
    }
}
