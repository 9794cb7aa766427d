//! Running retention: partitions ahead, expired months dropped, old rollup rows deleted.
//!
//! Every step can be cut short and run again. A partition is first detached
//! `CONCURRENTLY` (which blocks neither reads nor ingest), then counted, its index failures
//! forgotten, the stored total lowered and the table dropped in one transaction: a run killed
//! in between leaves a detached table that the next run finds and drops, and the total is
//! lowered exactly once, with the drop.

use super::{ExpiredMonth, MaintenanceJob, RetentionPolicy, RetentionReport, month_start};
use crate::error_code::ErrorCode;
use crate::search::{SearchError, SearchIndex};
use crate::state::{JobCounts, JobStatus, JobStore};
use crate::store::partitions::{self, add_months, month_of, month_of_partition};
use chrono::{NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait};
use std::time::Duration;
use tracing::{info, warn};

/// Months after the current one whose partitions each run makes sure exist.
pub const MONTHS_AHEAD: i32 = 2;
const LEASE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    #[error("a retention run is already in progress (job {0})")]
    AlreadyRunning(String),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Search(#[from] SearchError),
    #[error("job state store: {0}")]
    JobState(#[from] redis::RedisError),
}

impl RetentionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RetentionError::AlreadyRunning(_) => ErrorCode::Conflict,
            RetentionError::Database(e) if crate::store::is_transient(e) => ErrorCode::DatabaseUnavailable,
            RetentionError::Database(_) => ErrorCode::DatabaseRefused,
            RetentionError::Search(e) if e.is_transient() => ErrorCode::SearchUnavailable,
            RetentionError::Search(_) => ErrorCode::SearchRefused,
            RetentionError::JobState(_) => ErrorCode::StateUnavailable,
        }
    }
}

#[derive(Clone)]
pub struct RetentionRunner {
    pub db: DatabaseConnection,
    pub jobs: JobStore,
    pub search: SearchIndex,
    /// Where a message that is not a retention job is parked for inspection.
    pub publisher: crate::queue::Publisher,
    pub policy: RetentionPolicy,
}

/// A month's table as the catalog has it.
struct MonthTable {
    name: String,
    month: NaiveDate,
    /// Attached to `cdrs` (else left detached by an interrupted run).
    attached: bool,
    /// A `DETACH … CONCURRENTLY` was interrupted: it must be finalized.
    detach_pending: bool,
}

const MONTH_TABLES: &str = r"
SELECT c.relname AS name, i.inhrelid IS NOT NULL AS attached, coalesce(i.inhdetachpending, false) AS pending
FROM pg_class c
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'cdrs'::regclass
WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
  AND c.relname ~ '^cdrs_[0-9]{4}_[0-9]{2}$'
ORDER BY c.relname";

/// Rollup rows before `$1`, deleted. The per-hour peak summaries carry the running count
/// from one hour to the next as the sum of every earlier hour's net change, so the net of
/// the hours deleted is kept in one row per source just before `$1` (not counted as
/// deleted; a data-modifying `WITH` runs whether or not it is read).
const DELETE_ROLLUPS: &str = r"
WITH m AS (DELETE FROM kpi_minute WHERE bucket < $1 RETURNING 1),
     h AS (DELETE FROM kpi_hour WHERE bucket < $1 RETURNING 1),
     d AS (DELETE FROM kpi_day WHERE bucket < $1 RETURNING 1),
     a AS (DELETE FROM kpi_account_hour WHERE bucket < $1 RETURNING 1),
     ad AS (DELETE FROM kpi_account_day WHERE bucket < $1 RETURNING 1),
     c AS (DELETE FROM kpi_country_hour WHERE bucket < $1 RETURNING 1),
     s AS (DELETE FROM kpi_second_minute WHERE minute < $1 RETURNING 1),
     gone AS (DELETE FROM kpi_second_hour WHERE bucket < $1 RETURNING source, net, bucket),
     carry AS (
        INSERT INTO kpi_second_hour (source, bucket, net, rise, rise_at, dirty)
        SELECT source, $1 - interval '1 hour', sum(net), 0, NULL, false FROM gone GROUP BY source
        RETURNING 1)
SELECT ((SELECT count(*) FROM m) + (SELECT count(*) FROM h) + (SELECT count(*) FROM d)
      + (SELECT count(*) FROM a) + (SELECT count(*) FROM ad) + (SELECT count(*) FROM c) + (SELECT count(*) FROM s)
      + (SELECT count(*) FROM gone WHERE bucket < $1 - interval '1 hour'))::int8 AS n";

const COUNT_ROLLUPS: &str = r"
SELECT ((SELECT count(*) FROM kpi_minute WHERE bucket < $1) + (SELECT count(*) FROM kpi_hour WHERE bucket < $1)
      + (SELECT count(*) FROM kpi_day WHERE bucket < $1) + (SELECT count(*) FROM kpi_account_hour WHERE bucket < $1)
      + (SELECT count(*) FROM kpi_country_hour WHERE bucket < $1) + (SELECT count(*) FROM kpi_account_day WHERE bucket < $1)
      + (SELECT count(*) FROM kpi_second_minute WHERE minute < $1)
      + (SELECT count(*) FROM kpi_second_hour WHERE bucket < $1 - interval '1 hour'))::int8 AS n";

impl RetentionRunner {
    /// Runs a retention job once per job id: a job that already succeeded is only answered
    /// again, and a redelivered one (its worker died mid-run) takes its lease over.
    pub async fn run(&self, job: &MaintenanceJob) -> Result<RetentionReport, RetentionError> {
        if let Some(state) = self.jobs.get(&job.job_id).await?
            && state.status == JobStatus::Succeeded
        {
            return Ok(state.retention.unwrap_or_default());
        }
        if let Err(e) = self.claim(job).await {
            if let RetentionError::AlreadyRunning(_) = e {
                self.jobs.mark_failed(&job.job_id, e.code(), &e.to_string()).await?;
            }
            return Err(e);
        }
        self.jobs.start_attempt(&job.initial_state()).await?;
        let result = self.execute(job).await;
        match &result {
            Ok(report) => {
                self.jobs.set_retention(&job.job_id, report).await?;
                self.jobs.mark_succeeded(&job.job_id, &JobCounts::default()).await?;
                crate::metrics::count_job("retention", "succeeded");
                info!(job_id = %job.job_id, dry_run = job.dry_run, partitions = report.partitions.len(),
                      rollup_rows = report.rollup_rows, "retention run succeeded");
            }
            Err(e) => {
                self.jobs.mark_failed(&job.job_id, e.code(), &e.to_string()).await?;
                crate::metrics::count_job("retention", "failed");
                warn!(job_id = %job.job_id, error = %e, "retention run failed");
            }
        }
        crate::crash::point("retention-before-ack");
        if let Err(e) = self.jobs.release_lease(super::LEASE, &job.job_id).await {
            warn!(error = %e, "could not release the retention lease");
        }
        result
    }

    async fn claim(&self, job: &MaintenanceJob) -> Result<(), RetentionError> {
        match self.jobs.claim_lease(super::LEASE, &job.job_id, LEASE_TTL).await? {
            Ok(()) => Ok(()),
            // This very job: an earlier delivery of it died holding the lease.
            Err(holder) if holder == job.job_id => Ok(()),
            Err(holder) => Err(RetentionError::AlreadyRunning(holder)),
        }
    }

    /// What the run does; a dry run only reads.
    pub async fn execute(&self, job: &MaintenanceJob) -> Result<RetentionReport, RetentionError> {
        let now = Utc::now();
        let mut report = RetentionReport {
            dry_run: job.dry_run,
            raw_kept_from: self.policy.raw_kept_from(now),
            rollups_kept_from: self.policy.rollups_kept_from(now),
            ..RetentionReport::default()
        };
        if !job.dry_run {
            report.partitions_created = self.create_ahead(now).await?;
        }
        if let Some(first) = report.raw_kept_from {
            for table in self.month_tables().await?.into_iter().filter(|t| t.month < first) {
                let rows =
                    if job.dry_run { self.count_rows(&table.name).await? } else { self.drop(&table).await? };
                report.partitions.push(ExpiredMonth { month: table.month, partition: table.name, rows });
            }
            (report.indices, report.index_documents) = self.expire_search(first, job.dry_run).await?;
        }
        if let Some(first) = report.rollups_kept_from {
            let sql = if job.dry_run { COUNT_ROLLUPS } else { DELETE_ROLLUPS };
            let row = self
                .db
                .query_one_raw(Statement::from_sql_and_values(
                    self.db.get_database_backend(),
                    sql,
                    [month_start(first).into()],
                ))
                .await?;
            let n: i64 = match row {
                Some(row) => row.try_get("", "n")?,
                None => 0,
            };
            report.rollup_rows = u64::try_from(n).unwrap_or(0);
        }
        Ok(report)
    }

    /// The current month's partition and the next [`MONTHS_AHEAD`]'.
    pub async fn create_ahead(&self, now: chrono::DateTime<Utc>) -> Result<u32, RetentionError> {
        let this = month_of(now);
        let months: Vec<NaiveDate> = (0..=MONTHS_AHEAD).map(|n| add_months(this, n)).collect();
        Ok(partitions::ensure(&self.db, &months).await?)
    }

    async fn month_tables(&self) -> Result<Vec<MonthTable>, RetentionError> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(self.db.get_database_backend(), MONTH_TABLES))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get("", "name")?;
            let Some(month) = month_of_partition(&name) else { continue };
            out.push(MonthTable {
                month,
                attached: row.try_get("", "attached")?,
                detach_pending: row.try_get("", "pending")?,
                name,
            });
        }
        Ok(out)
    }

    async fn count_rows(&self, table: &str) -> Result<i64, RetentionError> {
        let sql = format!("SELECT count(*) AS n FROM {}", quote(table));
        let row = self.db.query_one_raw(Statement::from_string(self.db.get_database_backend(), sql)).await?;
        Ok(match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        })
    }

    /// Detaches a month's partition and drops it; answers the rows it held.
    async fn drop(&self, table: &MonthTable) -> Result<i64, RetentionError> {
        let name = quote(&table.name);
        if table.detach_pending {
            self.db.execute_unprepared(&format!("ALTER TABLE cdrs DETACH PARTITION {name} FINALIZE")).await?;
        } else if table.attached {
            self.db
                .execute_unprepared(&format!("ALTER TABLE cdrs DETACH PARTITION {name} CONCURRENTLY"))
                .await?;
        }
        crate::crash::point("retention-after-detach");
        let txn = self.db.begin().await?;
        let backend = txn.get_database_backend();
        let count = format!("SELECT count(*) AS n FROM {name}");
        let rows: i64 = match txn.query_one_raw(Statement::from_string(backend, count)).await? {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        txn.execute_unprepared(&format!(
            "DELETE FROM index_failures f USING {name} p WHERE f.cdr_id = p.id; \
             UPDATE kpi_totals SET attempts = attempts - {rows} WHERE id = 1; \
             DROP TABLE {name};"
        ))
        .await?;
        txn.commit().await?;
        info!(partition = %table.name, rows, "expired month of CDRs dropped");
        Ok(rows)
    }

    /// Deletes (or, dry, lists) the search indices of months before `first`; answers them
    /// and the documents they held. Run after the partitions are dropped, so a row
    /// re-indexed meanwhile cannot come back. An index that holds every month (an
    /// installation not rebuilt since months came) has its expired documents deleted instead.
    async fn expire_search(
        &self,
        first: NaiveDate,
        dry_run: bool,
    ) -> Result<(Vec<String>, u64), RetentionError> {
        let before = month_start(first);
        let documents = self.search.count_before(before).await?;
        let indices: Vec<String> = self
            .search
            .indices_with_aliases()
            .await?
            .into_keys()
            .filter(|index| self.search.month_of_index(index).is_some_and(|m| m < first))
            .collect();
        if dry_run {
            return Ok((indices, documents));
        }
        for index in &indices {
            self.search.delete_index(index).await?;
            info!(index = %index, "expired month's search index deleted");
        }
        if !indices.is_empty() {
            self.search.forget_layout();
        }
        if self.search.count_before(before).await? > 0 {
            self.search.delete_before(before).await?;
        }
        Ok((indices, documents))
    }
}

/// A table name we built ourselves (`cdrs_YYYY_MM`), quoted all the same.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
