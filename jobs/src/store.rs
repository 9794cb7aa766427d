//! Storing CDRs in PostgreSQL, idempotently.
//!
//! A batch goes in with one `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`: one
//! statement and fifteen array parameters whatever the batch size (so PostgreSQL's 65,535
//! bind-parameter limit never applies), and conflicts on (`source`, `call_id`) are counted as
//! duplicates. The job's outcome is recorded in `ingest_batches` in the same transaction, so a
//! redelivered job reports the counts of the commit that actually stored it.

use crate::cdr::Cdr;
use sea_orm::sea_query::{ArrayType, Value};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, RuntimeErr, Statement, TransactionTrait};

const INSERT_CDRS: &str = r#"
INSERT INTO cdrs (source, call_id, src_number, dest_number, start_time, answer_time, end_time,
                  duration, billsec, disposition, call_successful, hangup_cause, direction,
                  account_code, extra, job_id)
SELECT t.source, t.call_id, t.src_number, t.dest_number, t.start_time,
       NULLIF(t.answer_time, '0001-01-01T00:00:00Z'::timestamptz), t.end_time, t.duration,
       t.billsec, t.disposition, t.call_successful, NULLIF(t.hangup_cause, ''),
       NULLIF(t.direction, ''), NULLIF(t.account_code, ''), t.extra, $16
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
            $6::timestamptz[], $7::timestamptz[], $8::int4[], $9::int4[], $10::text[],
            $11::bool[], $12::text[], $13::text[], $14::text[], $15::jsonb[])
     AS t(source, call_id, src_number, dest_number, start_time, answer_time, end_time,
          duration, billsec, disposition, call_successful, hangup_cause, direction,
          account_code, extra)
ON CONFLICT (source, call_id) DO NOTHING
"#;

/// sea-query cannot bind NULL inside an array, so absent values travel as a sentinel the
/// statement turns back into NULL: the empty string (validation never keeps an empty text)
/// and year 1 (validation refuses any year before 1970).
fn no_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

const FIND_BATCH: &str = "SELECT inserted, duplicates FROM ingest_batches WHERE job_id = $1";
/// A batch that stored nothing new has nothing to index: it is born indexed.
const RECORD_BATCH: &str = "INSERT INTO ingest_batches (job_id, received, inserted, duplicates, indexed_at) \
     VALUES ($1, $2, $3, $4, CASE WHEN $3 = 0 THEN now() END)";

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
}

impl CdrStore {
    pub fn new(db: DatabaseConnection) -> Self {
        CdrStore { db }
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Stores an ingest job's records in one transaction, exactly once per job.
    pub async fn store_batch(&self, job_id: &str, cdrs: &[Cdr]) -> Result<StoreOutcome, DbErr> {
        let backend = self.db.get_database_backend();
        if let Some(done) = self.committed(job_id).await? {
            return Ok(done);
        }
        let txn = self.db.begin().await?;
        let result = txn
            .execute_raw(Statement::from_sql_and_values(backend, INSERT_CDRS, batch_values(job_id, cdrs)))
            .await?;
        let inserted = result.rows_affected();
        let duplicates = (cdrs.len() as u64).saturating_sub(inserted);
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            RECORD_BATCH,
            [
                job_id.into(),
                i32::try_from(cdrs.len()).unwrap_or(i32::MAX).into(),
                i32::try_from(inserted).unwrap_or(i32::MAX).into(),
                i32::try_from(duplicates).unwrap_or(i32::MAX).into(),
            ],
        ))
        .await?;
        txn.commit().await?;
        Ok(StoreOutcome { inserted, duplicates, replayed: false })
    }

    async fn committed(&self, job_id: &str) -> Result<Option<StoreOutcome>, DbErr> {
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

fn array(ty: ArrayType, items: Vec<Value>) -> Value {
    Value::Array(ty, Some(Box::new(items)))
}

fn texts<'a>(cdrs: &'a [Cdr], f: impl Fn(&'a Cdr) -> Option<&'a str>) -> Value {
    array(
        ArrayType::String,
        cdrs.iter().map(|c| Value::String(Some(f(c).unwrap_or("").to_string()))).collect(),
    )
}

fn batch_values(job_id: &str, cdrs: &[Cdr]) -> Vec<Value> {
    let times = |f: &dyn Fn(&Cdr) -> Option<chrono::DateTime<chrono::Utc>>| {
        array(
            ArrayType::ChronoDateTimeUtc,
            cdrs.iter().map(|c| Value::ChronoDateTimeUtc(Some(f(c).unwrap_or(no_time())))).collect(),
        )
    };
    let ints = |f: &dyn Fn(&Cdr) -> i32| {
        array(ArrayType::Int, cdrs.iter().map(|c| Value::Int(Some(f(c)))).collect())
    };
    vec![
        texts(cdrs, |c| Some(&c.source)),
        texts(cdrs, |c| Some(&c.call_id)),
        texts(cdrs, |c| Some(&c.src_number)),
        texts(cdrs, |c| Some(&c.dest_number)),
        times(&|c| Some(c.start_time)),
        times(&|c| c.answer_time),
        times(&|c| Some(c.end_time)),
        ints(&|c| c.duration),
        ints(&|c| c.billsec),
        texts(cdrs, |c| Some(c.disposition.as_str())),
        array(ArrayType::Bool, cdrs.iter().map(|c| Value::Bool(Some(c.call_successful))).collect()),
        texts(cdrs, |c| c.hangup_cause.as_deref()),
        texts(cdrs, |c| c.direction.as_deref()),
        texts(cdrs, |c| c.account_code.as_deref()),
        array(
            ArrayType::Json,
            cdrs.iter()
                .map(|c| Value::Json(Some(Box::new(serde_json::Value::Object(c.extra.clone())))))
                .collect(),
        ),
        job_id.into(),
    ]
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
