//! Storing CDRs in PostgreSQL, idempotently.
//!
//! A batch is streamed with `COPY` into a session-local staging table (no indexes, no WAL),
//! then moved into `cdrs` with one `INSERT … SELECT … ON CONFLICT DO NOTHING`, so conflicts on
//! the record's identity (`source`, `call_id`, `record_key`, `start_time`) are counted as duplicates. COPY costs the server a fraction of bound
//! parameters per value, which leaves the CPU to the part that matters: the table's indexes.
//! The job's outcome is recorded in `ingest_batches` in the same transaction, so a redelivered
//! job reports the counts of the commit that actually stored it.

mod copy_rows;
pub mod mappings;
pub mod partitions;

use crate::cdr::Cdr;
use crate::rollups::append;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, RuntimeErr, Statement};
use sqlx::{Executor as _, Postgres, Transaction};
use std::sync::Arc;

/// Creates the staging table once per session; emptied at every commit. Notices are
/// silenced so that "already exists" is not logged for every batch.
const PREPARE_STAGE: &str = r#"
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
CREATE TEMP TABLE IF NOT EXISTS cdr_stage (
    source TEXT, call_id TEXT, record_key TEXT, src_number TEXT, dest_number TEXT,
    start_time TIMESTAMPTZ, answer_time TIMESTAMPTZ, end_time TIMESTAMPTZ, duration INTEGER,
    billsec INTEGER, disposition TEXT, disposition_raw TEXT, call_successful BOOLEAN,
    hangup_cause TEXT, direction TEXT, account_code TEXT, linked_id TEXT,
    caller_withheld BOOLEAN, extra JSONB,
    src_e164 TEXT, dest_e164 TEXT, dest_country TEXT, dest_type TEXT,
    sell_rating TEXT, sell_cost NUMERIC, sell_currency TEXT, sell_prefix TEXT, sell_deck BIGINT,
    buy_rating TEXT, buy_cost NUMERIC, buy_currency TEXT, buy_prefix TEXT, buy_deck BIGINT
) ON COMMIT DELETE ROWS
"#;

/// Moves the staged rows into `cdrs`; answers how many were inserted (conflicts on the
/// identity are duplicates, stored by an earlier batch or earlier in this one).
static INSERT_FROM_STAGE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| INSERT_FROM_STAGE_TEMPLATE.replace("{DERIVED}", copy_rows::DERIVED_COLUMNS));

const INSERT_FROM_STAGE_TEMPLATE: &str = r#"
WITH ins AS (
    INSERT INTO cdrs (source, call_id, record_key, src_number, dest_number, start_time, answer_time,
                      end_time, duration, billsec, disposition, disposition_raw, call_successful,
                      hangup_cause, direction, account_code, linked_id, caller_withheld, extra, job_id,
                      {DERIVED})
    SELECT source, call_id, record_key, src_number, dest_number, start_time, answer_time, end_time,
           duration, billsec, disposition, disposition_raw, call_successful, hangup_cause, direction,
           account_code, linked_id, caller_withheld, extra, $1, {DERIVED}
    FROM cdr_stage
    ON CONFLICT (source, call_id, record_key, start_time) DO NOTHING
    RETURNING 1
)
SELECT count(*) AS inserted FROM ins
"#;

const FIND_BATCH: &str = "SELECT inserted, duplicates FROM ingest_batches WHERE job_id = $1";
/// A batch that stored nothing new has nothing to index: it is born indexed. A conflict
/// means another delivery of the same job committed first.
const RECORD_BATCH: &str = "INSERT INTO ingest_batches (job_id, received, inserted, duplicates, indexed_at) \
     VALUES ($1, $2, $3, $4, CASE WHEN $3 = 0 THEN now() END) ON CONFLICT (job_id) DO NOTHING";

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOutcome {
    pub inserted: u64,
    pub duplicates: u64,
    /// True when this job had already been committed by an earlier delivery.
    pub replayed: bool,
}

#[derive(Clone)]
pub struct CdrStore {
    db: DatabaseConnection,
    months: partitions::KnownMonths,
    catalogue: crate::rating::CatalogueCache,
}

impl CdrStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_catalogue(db, Default::default())
    }

    /// A store deriving with `catalogue`, shared with the process's other runners.
    pub fn with_catalogue(db: DatabaseConnection, catalogue: crate::rating::CatalogueCache) -> Self {
        CdrStore { db, months: partitions::KnownMonths::default(), catalogue }
    }

    /// Stores an ingest job's records in one transaction, exactly once per job.
    pub async fn store_batch(&self, job_id: &str, cdrs: &[Cdr]) -> Result<StoreOutcome, DbErr> {
        if let Some(done) = self.committed(job_id).await? {
            return Ok(done);
        }
        let derived: Vec<_> = if cfg!(feature = "bench-without-rating") {
            cdrs.iter().map(|_| crate::rating::Derived::nothing()).collect()
        } else {
            // Numbers normalised and calls priced by the plans and decks of this moment.
            let catalogue = self.catalogue.current(&self.db).await?;
            cdrs.iter().map(|c| catalogue.derive(c)).collect()
        };
        let mut rows = String::with_capacity(cdrs.len() * 320);
        copy_rows::encode(cdrs, &derived, &mut rows);
        self.months.ensure_for(&self.db, cdrs.iter().map(|c| c.start_time)).await?;
        let mut txn = self.db.get_postgres_connection_pool().begin().await.map_err(exec_err)?;
        let inserted = match insert(&mut txn, job_id, &rows).await {
            Ok(n) => n,
            Err(e) if is_missing_partition(&e) => {
                // Retention dropped a month this process knew: create it again and retry.
                txn.rollback().await.map_err(exec_err)?;
                self.months.forget();
                self.months.ensure_for(&self.db, cdrs.iter().map(|c| c.start_time)).await?;
                txn = self.db.get_postgres_connection_pool().begin().await.map_err(exec_err)?;
                insert(&mut txn, job_id, &rows).await.map_err(exec_err)?
            }
            Err(e) => return Err(exec_err(e)),
        };
        if inserted > 0 && !cfg!(feature = "bench-without-rollups") {
            append_rollup_sums(&mut txn, job_id, cdrs, &derived, inserted).await?;
        }
        let duplicates = (cdrs.len() as u64).saturating_sub(inserted);
        let recorded = sqlx::query(RECORD_BATCH)
            .bind(job_id)
            .bind(i32::try_from(cdrs.len()).unwrap_or(i32::MAX))
            .bind(i32::try_from(inserted).unwrap_or(i32::MAX))
            .bind(i32::try_from(duplicates).unwrap_or(i32::MAX))
            .execute(&mut *txn)
            .await
            .map_err(exec_err)?;
        if recorded.rows_affected() == 0 {
            // A concurrent delivery of this job committed while ours waited on its rows.
            txn.rollback().await.map_err(exec_err)?;
            return self.committed(job_id).await?.ok_or_else(|| {
                DbErr::Custom(format!("job {job_id} conflicted with a commit that cannot be found"))
            });
        }
        txn.commit().await.map_err(exec_err)?;
        Ok(StoreOutcome { inserted, duplicates, replayed: false })
    }

    /// The committed outcome of job `job_id`, if a delivery of it committed.
    pub async fn committed(&self, job_id: &str) -> Result<Option<StoreOutcome>, DbErr> {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(backend, FIND_BATCH, [job_id.into()]))
            .await?;
        let Some(row) = row else { return Ok(None) };
        let inserted: i32 = row.try_get("", "inserted")?;
        let duplicates: i32 = row.try_get("", "duplicates")?;
        Ok(Some(StoreOutcome {
            inserted: u64::try_from(inserted).unwrap_or(0),
            duplicates: u64::try_from(duplicates).unwrap_or(0),
            replayed: true,
        }))
    }
}

/// Appends the KPI rollup sums of the `inserted` rows the batch stored to `kpi_pending`, in
/// its transaction: from the CDRs in hand when all were new, else from the rows this job
/// inserted (the others were stored before, and counted then). Without the
/// `bench-without-rollups` feature only: the benchmark that builds with it measures what
/// storing costs without rollups (and `/stats` is wrong in such a build).
async fn append_rollup_sums(
    txn: &mut Transaction<'static, Postgres>,
    job_id: &str,
    cdrs: &[Cdr],
    derived: &[crate::rating::Derived],
    inserted: u64,
) -> Result<(), DbErr> {
    let stored;
    let facts = if inserted == cdrs.len() as u64 {
        cdrs.iter()
            .zip(derived)
            .map(|(cdr, d)| append::Fact::of(cdr, d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DbErr::Custom(e.to_string()))?
    } else {
        stored = append::stored_facts(txn, job_id).await.map_err(exec_err)?;
        stored.iter().map(append::StoredFact::fact).collect()
    };
    append::append(txn, job_id, &append::BatchSums::of(&facts)).await.map_err(exec_err)
}

/// COPYs the rows into staging and moves the new ones into `cdrs`; returns how many moved.
async fn insert(
    txn: &mut Transaction<'static, Postgres>,
    job_id: &str,
    rows: &str,
) -> Result<u64, sqlx::Error> {
    txn.execute(PREPARE_STAGE).await?;
    let mut copy = txn.copy_in_raw(&format!("COPY cdr_stage ({}) FROM STDIN", copy_rows::COLUMNS)).await?;
    copy.send(rows.as_bytes()).await?;
    copy.finish().await?;
    let inserted: i64 =
        sqlx::query_scalar(INSERT_FROM_STAGE.as_str()).bind(job_id).fetch_one(&mut **txn).await?;
    Ok(u64::try_from(inserted).unwrap_or(0))
}

/// The insert met a month without a partition (`23514`, "no partition of relation … found").
fn is_missing_partition(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23514")
        && db.message().starts_with("no partition"))
}

fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

/// Whether retrying can help: lost connections, timeouts and server restarts can; a row
/// PostgreSQL refuses (data or integrity error) cannot.
pub fn is_transient(err: &DbErr) -> bool {
    let runtime = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(e) | DbErr::Query(e) => e,
        _ => return true,
    };
    match runtime {
        RuntimeErr::SqlxError(e) => match e.as_ref() {
            sqlx::Error::Database(db) => {
                let class = db.code().map(|c| c.chars().take(2).collect::<String>());
                // 22: data exception, 23: integrity violation, 42: syntax or access rule.
                !matches!(class.as_deref(), Some("22" | "23" | "42"))
            }
            _ => true,
        },
        _ => true,
    }
}
