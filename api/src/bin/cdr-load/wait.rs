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

/// Returns once the rows are stored (and folded), with how long each took: the time to
/// stored is ingest's, the time to folded adds the rollup folder's catching up.
pub async fn run(args: &WaitArgs) -> anyhow::Result<serde_json::Value> {
    let db = jobs::db::connect(&args.database_url, 1).await?;
    let started = Instant::now();
    let mut stored = 0;
    let mut stored_after = None;
    loop {
        if stored_after.is_none() {
            stored = number(&db, "SELECT coalesce(sum(inserted), 0)::int8 FROM ingest_batches").await?;
            if stored >= args.stored {
                stored_after = Some(started.elapsed());
            }
        }
        let pending = match stored_after {
            Some(_) if args.folded => jobs::rollups::pending::count(&db).await?,
            _ => 0,
        };
        if let (Some(at), 0) = (stored_after, pending) {
            return Ok(serde_json::json!({
                "stored": stored,
                "stored_ms": at.as_millis(),
                "folded_ms": started.elapsed().as_millis(),
            }));
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
