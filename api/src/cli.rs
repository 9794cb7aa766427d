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

    /// Bearer tokens as `role:token` pairs, comma-separated; roles are ingest, read, admin.
    #[arg(long, env = "CDR_AUTH_TOKENS", hide_env_values = true)]
    pub auth_tokens: Option<String>,

    /// A file of `role:token` lines (instead of CDR_AUTH_TOKENS).
    #[arg(long, env = "CDR_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<std::path::PathBuf>,

    /// Run without authentication. For local development only: every caller can read
    /// every CDR. The server logs a warning at start.
    #[arg(long, env = "CDR_AUTH_DISABLED", default_value_t = false)]
    pub auth_disabled: bool,

    /// Serve /metrics without a token (set false to require the read role).
    #[arg(long, env = "CDR_METRICS_PUBLIC", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics_public: bool,

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

    /// Ingest jobs waiting in the queue above which POST /cdrs answers 429 with Retry-After,
    /// so the broker never runs out of memory or disk.
    #[arg(long, env = "CDR_MAX_QUEUE_DEPTH", default_value_t = 5_000)]
    pub max_queue_depth: u32,

    /// How long a single-CDR post (`POST /cdrs/freeswitch`) waits for others to share its
    /// ingest job, in milliseconds.
    #[arg(long, env = "CDR_BATCH_LINGER_MS", default_value_t = 2)]
    pub batch_linger_ms: u64,

    /// Jobs of single-CDR posts being published at once; posts arriving meanwhile form the
    /// next job.
    #[arg(long, env = "CDR_BATCH_IN_FLIGHT", default_value_t = 2)]
    pub batch_in_flight: usize,

    /// `source` given to records that name none, when the request names none either.
    #[arg(long, env = "CDR_DEFAULT_SOURCE", default_value = "default")]
    pub default_source: String,

    #[command(flatten)]
    pub retention: jobs::retention::RetentionPolicy,

    #[command(flatten)]
    pub exports: jobs::export::ExportSettings,
}

impl ApiCli {
    /// The authentication the settings describe; refuses to guess when none is set.
    pub fn auth(&self) -> anyhow::Result<crate::auth::Auth> {
        if self.auth_disabled {
            return Ok(crate::auth::Auth::disabled());
        }
        let spec = match (&self.auth_tokens, &self.auth_tokens_file) {
            (Some(tokens), _) => tokens.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("CDR_AUTH_TOKENS_FILE {}: {e}", path.display()))?,
            (None, None) => anyhow::bail!(
                "no API tokens: set CDR_AUTH_TOKENS or CDR_AUTH_TOKENS_FILE, \
                 or CDR_AUTH_DISABLED=true for local development"
            ),
        };
        crate::auth::Auth::from_spec(&spec, self.metrics_public)
            .map_err(|e| anyhow::anyhow!("CDR_AUTH_TOKENS: {e}"))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_records: 10_000,
            max_body_bytes: 16 * 1024 * 1024,
            max_queue_depth: 5_000,
            batch_linger_ms: 2,
            batch_in_flight: 2,
            default_source: "default".into(),
            retention: jobs::retention::RetentionPolicy::default(),
            exports: jobs::export::ExportSettings::default(),
        }
    }
}
