//! Folding pending rollup sums into the per-minute table.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use std::time::Duration;
use tracing::{info, warn};

/// One statement: takes up to `$1` pending rows, adds them to `kpi_minute`, `kpi_hour`,
/// `kpi_day` and the total, and deletes them. Two folders running at once cannot count a row twice: a row is only
/// added by the statement whose `DELETE` removed it.
const FOLD_SQL: &str = r#"
WITH moved AS (
    DELETE FROM kpi_pending WHERE ctid = ANY (ARRAY(SELECT ctid FROM kpi_pending LIMIT $1))
    RETURNING bucket, source, direction, disposition, account_code, dest_prefix, attempts, effective, billsec, duration
), sums AS (
    SELECT u.* FROM moved m, unnest(m.bucket, m.source, m.direction, m.disposition, m.account_code, m.dest_prefix,
                                    m.attempts, m.effective, m.billsec, m.duration)
        AS u(bucket, source, direction, disposition, account_code, dest_prefix, attempts, effective, billsec, duration)
), minute AS (
    INSERT INTO kpi_minute (bucket, source, direction, disposition, account_code, dest_prefix, attempts, effective, billsec, duration)
    SELECT bucket, source, direction, disposition, account_code, dest_prefix,
           sum(attempts), sum(effective), sum(billsec), sum(duration)
    FROM sums GROUP BY 1, 2, 3, 4, 5, 6
    ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (bucket, source, direction, disposition, account_code, dest_prefix) DO UPDATE SET
        attempts = kpi_minute.attempts + EXCLUDED.attempts,
        effective = kpi_minute.effective + EXCLUDED.effective,
        billsec = kpi_minute.billsec + EXCLUDED.billsec,
        duration = kpi_minute.duration + EXCLUDED.duration
), hour AS (
    INSERT INTO kpi_hour (bucket, source, direction, disposition, account_code, dest_prefix, attempts, effective, billsec, duration)
    SELECT date_trunc('hour', bucket, 'UTC'), source, direction, disposition, account_code, dest_prefix,
           sum(attempts), sum(effective), sum(billsec), sum(duration)
    FROM sums GROUP BY 1, 2, 3, 4, 5, 6
    ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (bucket, source, direction, disposition, account_code, dest_prefix) DO UPDATE SET
        attempts = kpi_hour.attempts + EXCLUDED.attempts,
        effective = kpi_hour.effective + EXCLUDED.effective,
        billsec = kpi_hour.billsec + EXCLUDED.billsec,
        duration = kpi_hour.duration + EXCLUDED.duration
), day AS (
    INSERT INTO kpi_day (bucket, source, direction, disposition, account_code, dest_prefix, attempts, effective, billsec, duration)
    SELECT date_trunc('day', bucket, 'UTC'), source, direction, disposition, account_code, dest_prefix,
           sum(attempts), sum(effective), sum(billsec), sum(duration)
    FROM sums GROUP BY 1, 2, 3, 4, 5, 6
    ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (bucket, source, direction, disposition, account_code, dest_prefix) DO UPDATE SET
        attempts = kpi_day.attempts + EXCLUDED.attempts,
        effective = kpi_day.effective + EXCLUDED.effective,
        billsec = kpi_day.billsec + EXCLUDED.billsec,
        duration = kpi_day.duration + EXCLUDED.duration
)
UPDATE kpi_totals SET attempts = kpi_totals.attempts + m.attempts
FROM (SELECT (SELECT coalesce(sum(attempts), 0) FROM sums) AS attempts, (SELECT count(*) FROM moved) AS pending) m
WHERE kpi_totals.id = 1
RETURNING m.pending
"#;

/// Pending rows (batches) folded per statement.
const FOLD_CHUNK: i64 = 200;

/// Moves pending rollup sums into `kpi_minute`, one process at a time (a Redis lease, held
/// and renewed like the sweeper's).
#[derive(Clone)]
pub struct Folder {
    pub db: DatabaseConnection,
    pub jobs: crate::state::JobStore,
    pub holder: String,
}

impl Folder {
    pub fn new(db: DatabaseConnection, jobs: crate::state::JobStore) -> Self {
        Folder { db, jobs, holder: crate::new_job_id() }
    }

    /// Folds everything pending now; returns the pending rows folded.
    pub async fn fold_all(&self) -> Result<u64, DbErr> {
        let mut total = 0;
        loop {
            let row = self
                .db
                .query_one_raw(Statement::from_sql_and_values(
                    self.db.get_database_backend(),
                    FOLD_SQL,
                    [FOLD_CHUNK.into()],
                ))
                .await?;
            let folded: i64 = row.map(|r| r.try_get("", "pending")).transpose()?.unwrap_or(0);
            total += u64::try_from(folded).unwrap_or(0);
            if folded < FOLD_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Folds every `every` until `stop` resolves, while it holds the lease.
    pub async fn run(self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let ttl = (every * 10).max(Duration::from_secs(30));
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(every) => {}
            }
            match self.jobs.hold_lease("rollup-fold", &self.holder, ttl).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    warn!(error = %e, "could not take the rollup lease; folding anyway");
                }
            }
            match self.fold_all().await {
                Ok(0) => {}
                Ok(n) => info!(pending = n, "rollup sums folded"),
                Err(e) => warn!(error = %e, "rollup fold failed; pending sums wait for the next one"),
            }
        }
        if let Err(e) = self.jobs.release_lease("rollup-fold", &self.holder).await {
            warn!(error = %e, "could not release the rollup lease");
        }
    }
}
