//! Structured logging set-up, shared in shape with `cdr-api`.

use tracing_subscriber::EnvFilter;

/// Human-readable logs by default, JSON lines with `json`; `RUST_LOG` filters (default `info`).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
