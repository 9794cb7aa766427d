//! Waiting for stored (and folded) CDRs on one database connection, so a measurement does
//! not pay for a new client and server process at every look, as a polling shell loop would.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// PostgreSQL to watch.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Rows ingest jobs must have inserted (summed over `ingest_batches`).
    #[arg(long)]
    pub stored: i64,
    /// Also wait until no rollup sums are pending.
    #[arg(long)]
    pub folded: bool,
    /// Give up (exit status 1) after this long.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
}

const LOOK_EVERY: Duration = Duration::from_millis(100);

async fn number(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

/// Returns once the rows are stored (and folded), with how long that took.
pub async fn run(args: &WaitArgs) -> anyhow::Result<serde_json::Value> {
    let db = jobs::db::connect(&args.database_url, 1).await?;
    let started = Instant::now();
    loop {
        let stored = number(&db, "SELECT coalesce(sum(inserted), 0)::int8 FROM ingest_batches").await?;
        let pending = if args.folded && stored >= args.stored {
            number(&db, "SELECT CASE WHEN to_regclass('kpi_pending') IS NULL THEN 0 ELSE (SELECT count(*) FROM kpi_pending) END").await?
        } else {
            0
        };
        if stored >= args.stored && pending == 0 {
            return Ok(serde_json::json!({ "stored": stored, "waited_ms": started.elapsed().as_millis() }));
        }
        if started.elapsed() > Duration::from_secs(args.timeout_secs) {
            anyhow::bail!(
                "{stored} of {} rows stored, {pending} batches' sums pending after {} s",
                args.stored,
                args.timeout_secs
            );
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}
