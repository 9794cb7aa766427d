//! Re-rating: stored calls priced (and their numbers normalised) again by the dialling plans
//! and rate decks of now, after an operator changed them.
//!
//! Calls are walked in `(start_time, id)` order, a chunk per transaction. Each transaction
//! updates the calls whose derived values changed, keeps their previous price in
//! `rating_history` (once per job), appends the change of every money sum to the KPI
//! rollups' pending sums, marks their batches for indexing again and records how far the
//! walk got — all or nothing. A redelivered or resumed job starts where the last commit left
//! off, and a call already priced as now is left alone, so no sum is ever counted twice.

use super::book::Rating;
use super::catalogue::{CatalogueCache, Derived, Parties};
use chrono::{DateTime, Utc};
use poem_openapi::Object;
use rust_decimal::Decimal;
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row as _, Transaction};
use std::str::FromStr;
use std::sync::Arc;

/// Calls read and priced per transaction.
pub const CHUNK: i64 = 2_000;

/// Which stored calls a re-rate prices again: those starting in `[from, to)`, of one account
/// or source when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerateScope {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// How far a re-rate got, as its job state shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct RerateProgress {
    /// Calls read so far.
    pub scanned: u64,
    /// Calls whose numbers or price changed (their previous price is in `rating_history`).
    pub changed: u64,
    /// Whether every call in scope has been read.
    pub done: bool,
}

fn db_err(e: sqlx::Error) -> DbErr {
    DbErr::Custom(format!("re-rate: {e}"))
}

type Cursor = (Option<DateTime<Utc>>, Option<i64>, i64, i64, bool);

const PROGRESS: &str =
    "SELECT after_start, after_id, scanned, changed, done FROM rerate_progress WHERE job_id = $1";

/// The calls of one chunk, locked, with what deriving reads and what it wrote before.
const CHUNK_SQL: &str = "SELECT id, start_time, source, account_code, src_number, dest_number, billsec, \
     src_e164, dest_e164, dest_country, dest_type, \
     sell_rating, sell_cost::text AS sell_cost, sell_currency, sell_prefix, sell_deck, \
     buy_rating, buy_cost::text AS buy_cost, buy_currency, buy_prefix, buy_deck \
     FROM cdrs WHERE start_time >= $1 AND start_time < $2 \
     AND ($3::text IS NULL OR account_code = $3) AND ($4::text IS NULL OR source = $4) \
     AND ($5::timestamptz IS NULL OR (start_time, id) > ($5, $6)) \
     ORDER BY start_time, id LIMIT $7 FOR UPDATE";

/// Writes the new derived values of the changed calls, keeps their previous price, appends
/// the change of each rollup sum to the pending sums (by the same dimensions ingest uses:
/// a call whose destination's country or type changed moves between buckets whole),
/// and marks their batches for indexing again; one statement, one snapshot. Answers the
/// batches (ingest job ids) the calls belong to.
static APPLY_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let sums = crate::rollups::SUM_COLUMNS;
    APPLY_TEMPLATE
        .replace(
            "{summed}",
            &sums.iter().map(|c| format!("sum({c})::int8 AS {c}")).collect::<Vec<_>>().join(", "),
        )
        .replace("{negated}", &sums.iter().map(|c| format!("-{c} AS {c}")).collect::<Vec<_>>().join(", "))
        .replace("{{SUMS_OF_ROWS}}", crate::rollups::SUMS_OF_ROWS)
        .replace("{{DIMENSIONS}}", crate::rollups::DIMENSIONS)
});

const APPLY_TEMPLATE: &str = r#"
WITH n AS (
    SELECT * FROM unnest($2::int8[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[]::numeric[], $10::text[], $11::text[], $12::int8[],
                         $13::text[], $14::text[]::numeric[], $15::text[], $16::text[], $17::int8[])
        AS n(id, start_time, src_e164, dest_e164, dest_country, dest_type,
             sell_rating, sell_cost, sell_currency, sell_prefix, sell_deck,
             buy_rating, buy_cost, buy_currency, buy_prefix, buy_deck)
), o AS MATERIALIZED (
    SELECT c.id, c.start_time, c.source, c.direction, c.disposition, c.account_code, c.dest_number, c.job_id,
           c.billsec, c.duration, c.hangup_cause, c.dest_country, c.dest_type,
           c.sell_rating, c.sell_cost, c.sell_currency, c.sell_deck, c.buy_rating, c.buy_cost, c.buy_currency, c.buy_deck
    FROM cdrs c JOIN n USING (id, start_time)
), kept AS (
    INSERT INTO rating_history (cdr_id, start_time, job_id, sell_rating, sell_cost, sell_currency, sell_deck,
                                buy_rating, buy_cost, buy_currency, buy_deck)
    SELECT id, start_time, $1, sell_rating, sell_cost, sell_currency, sell_deck, buy_rating, buy_cost, buy_currency, buy_deck
    FROM o ON CONFLICT (cdr_id, job_id) DO NOTHING
), written AS (
    UPDATE cdrs c SET src_e164 = n.src_e164, dest_e164 = n.dest_e164, dest_country = n.dest_country,
        dest_type = n.dest_type, sell_rating = n.sell_rating, sell_cost = n.sell_cost,
        sell_currency = n.sell_currency, sell_prefix = n.sell_prefix, sell_deck = n.sell_deck,
        buy_rating = n.buy_rating, buy_cost = n.buy_cost, buy_currency = n.buy_currency,
        buy_prefix = n.buy_prefix, buy_deck = n.buy_deck, derived_at = clock_timestamp()
    FROM n WHERE c.id = n.id AND c.start_time = n.start_time
), reindex AS (
    UPDATE ingest_batches b SET indexed_at = NULL, revision = b.revision + 1
    WHERE b.job_id IN (SELECT DISTINCT job_id FROM o)
), now_rows AS (
    SELECT o.start_time, o.source, o.direction, o.disposition, o.account_code, o.dest_number, o.hangup_cause,
           o.billsec, o.duration, n.dest_country, n.dest_type, n.sell_rating, n.sell_cost, n.buy_rating, n.buy_cost
    FROM o JOIN n USING (id, start_time)
), delta AS (
    -- Each changed call counted in again as it is now, and out as it was, by the derivation
    -- ingest and the checks use: its sums move when its price changed, and the whole call
    -- moves when its destination's country or type did.
    SELECT bucket, source, direction, disposition, account_code, dest_prefix, dest_country, dest_type, {summed}
    FROM (SELECT {{SUMS_OF_ROWS}} FROM now_rows GROUP BY {{DIMENSIONS}}
          UNION ALL
          SELECT bucket, source, direction, disposition, account_code, dest_prefix, dest_country, dest_type, {negated}
          FROM (SELECT {{SUMS_OF_ROWS}} FROM o GROUP BY {{DIMENSIONS}}) was) moved
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
), packed AS (
    SELECT count(*) AS k, array_agg(bucket) AS bucket, array_agg(source) AS source, array_agg(direction) AS direction,
           array_agg(disposition) AS disposition, array_agg(account_code) AS account_code,
           array_agg(dest_prefix) AS dest_prefix, array_agg(dest_country) AS dest_country, array_agg(dest_type) AS dest_type,
           array_agg(attempts) AS attempts, array_agg(effective) AS effective, array_agg(billsec) AS billsec,
           array_agg(duration) AS duration, array_agg(sell_rated) AS sell_rated, array_agg(buy_rated) AS buy_rated,
           array_agg(sell_micros) AS sell_micros, array_agg(buy_micros) AS buy_micros
    FROM delta
), pending AS (
    INSERT INTO kpi_pending (job_id, bucket, source, direction, disposition, account_code, dest_prefix, dest_country,
                             dest_type, attempts, effective, billsec, duration, sell_rated, buy_rated, sell_micros, buy_micros)
    SELECT $1, bucket, source, direction, disposition, account_code, dest_prefix, dest_country, dest_type,
           attempts, effective, billsec, duration, sell_rated, buy_rated, sell_micros, buy_micros
    FROM packed WHERE k > 0
)
SELECT DISTINCT job_id FROM o
"#;

const SAVE_PROGRESS: &str = "INSERT INTO rerate_progress (job_id, after_start, after_id, scanned, changed, done, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, now()) ON CONFLICT (job_id) DO UPDATE SET after_start = $2, after_id = $3, \
     scanned = $4, changed = $5, done = $6, updated_at = now()";

/// A stored call: what deriving reads and what it wrote before.
struct StoredCall {
    id: i64,
    start_time: DateTime<Utc>,
    source: String,
    account_code: Option<String>,
    src_number: String,
    dest_number: String,
    billsec: i32,
    src_e164: Option<String>,
    dest_e164: Option<String>,
    dest_country: Option<String>,
    dest_type: Option<String>,
    sell: Option<StoredPrice>,
    buy: Option<StoredPrice>,
}

/// One side's price as stored: status, cost, currency, prefix, deck.
type StoredPrice = (String, Option<Decimal>, Option<String>, Option<String>, Option<i64>);

fn stored_price(r: &PgRow, side: &str) -> Result<Option<StoredPrice>, sqlx::Error> {
    let status: Option<String> = r.try_get(format!("{side}_rating").as_str())?;
    let cost: Option<String> = r.try_get(format!("{side}_cost").as_str())?;
    let cost = cost.and_then(|c| Decimal::from_str(&c).ok());
    let currency: Option<String> = r.try_get(format!("{side}_currency").as_str())?;
    let prefix: Option<String> = r.try_get(format!("{side}_prefix").as_str())?;
    let deck: Option<i64> = r.try_get(format!("{side}_deck").as_str())?;
    Ok(status.map(|s| (s, cost, currency, prefix, deck)))
}

impl<'r> sqlx::FromRow<'r, PgRow> for StoredCall {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(StoredCall {
            id: r.try_get("id")?,
            start_time: r.try_get("start_time")?,
            source: r.try_get("source")?,
            account_code: r.try_get("account_code")?,
            src_number: r.try_get("src_number")?,
            dest_number: r.try_get("dest_number")?,
            billsec: r.try_get("billsec")?,
            src_e164: r.try_get("src_e164")?,
            dest_e164: r.try_get("dest_e164")?,
            dest_country: r.try_get("dest_country")?,
            dest_type: r.try_get("dest_type")?,
            sell: stored_price(r, "sell")?,
            buy: stored_price(r, "buy")?,
        })
    }
}

/// A shared derived string as the owned text a stored column binds.
fn owned(s: &Option<Arc<str>>) -> Option<String> {
    s.as_deref().map(str::to_string)
}

fn priced(r: &Rating) -> StoredPrice {
    (r.status.as_str().to_string(), r.cost, owned(&r.currency), owned(&r.prefix), r.deck)
}

/// Whether the stored call already holds what deriving gives now.
fn unchanged(call: &StoredCall, d: &Derived) -> bool {
    call.src_e164.as_deref() == d.src.e164.as_deref()
        && call.dest_e164.as_deref() == d.dest.e164.as_deref()
        && call.dest_country.as_deref() == d.dest.country.as_deref()
        && call.dest_type.as_deref() == Some(d.dest.kind)
        && call.sell == Some(priced(&d.sell))
        && call.buy == Some(priced(&d.buy))
}

/// The columns of the changed calls, as `APPLY_SQL` binds them.
#[derive(Default)]
struct Changes {
    id: Vec<i64>,
    start: Vec<DateTime<Utc>>,
    text: [Vec<Option<String>>; 12],
    sell_deck: Vec<Option<i64>>,
    buy_deck: Vec<Option<i64>>,
}

impl Changes {
    fn push(&mut self, id: i64, start: DateTime<Utc>, d: &Derived) {
        self.id.push(id);
        self.start.push(start);
        let side = |r: &Rating| {
            [
                Some(r.status.as_str().to_string()),
                r.cost.map(|c| c.to_string()),
                owned(&r.currency),
                owned(&r.prefix),
            ]
        };
        let values: [Option<String>; 12] = {
            let [s0, s1, s2, s3] = side(&d.sell);
            let [b0, b1, b2, b3] = side(&d.buy);
            [
                owned(&d.src.e164),
                owned(&d.dest.e164),
                owned(&d.dest.country),
                Some(d.dest.kind.to_string()),
                s0,
                s1,
                s2,
                s3,
                b0,
                b1,
                b2,
                b3,
            ]
        };
        for (column, v) in self.text.iter_mut().zip(values) {
            column.push(v);
        }
        self.sell_deck.push(d.sell.deck);
        self.buy_deck.push(d.buy.deck);
    }
}

/// Applies the changes; answers the batches they touched.
async fn apply(
    txn: &mut Transaction<'static, Postgres>,
    job_id: &str,
    c: &Changes,
) -> Result<Vec<String>, sqlx::Error> {
    let t = &c.text;
    sqlx::query_scalar(APPLY_SQL.as_str())
        .bind(job_id)
        .bind(&c.id)
        .bind(&c.start)
        .bind(&t[0])
        .bind(&t[1])
        .bind(&t[2])
        .bind(&t[3])
        .bind(&t[4])
        .bind(&t[5])
        .bind(&t[6])
        .bind(&t[7])
        .bind(&c.sell_deck)
        .bind(&t[8])
        .bind(&t[9])
        .bind(&t[10])
        .bind(&t[11])
        .bind(&c.buy_deck)
        .fetch_all(&mut **txn)
        .await
}

/// Prices the calls of `scope` again, a chunk per transaction, from where an earlier
/// delivery of `job_id` stopped; `on_chunk` hears the progress after every commit and gets
/// the batches whose calls changed (to queue their indexing).
pub async fn rerate<F, Fut>(
    db: &DatabaseConnection,
    catalogue: &CatalogueCache,
    job_id: &str,
    scope: &RerateScope,
    mut on_chunk: F,
) -> Result<RerateProgress, DbErr>
where
    F: FnMut(RerateProgress, Vec<String>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let pool = db.get_postgres_connection_pool();
    let cursor: Option<Cursor> =
        sqlx::query_as(PROGRESS).bind(job_id).fetch_optional(pool).await.map_err(db_err)?;
    let (mut after_start, mut after_id, scanned, changed, done) = cursor.unwrap_or((None, None, 0, 0, false));
    let mut progress = RerateProgress {
        scanned: u64::try_from(scanned).unwrap_or(0),
        changed: u64::try_from(changed).unwrap_or(0),
        done,
    };
    while !progress.done {
        let catalogue = catalogue.current(db).await?;
        let mut txn = pool.begin().await.map_err(db_err)?;
        let rows: Vec<StoredCall> = sqlx::query_as(CHUNK_SQL)
            .bind(scope.from)
            .bind(scope.to)
            .bind(&scope.account_code)
            .bind(&scope.source)
            .bind(after_start)
            .bind(after_id)
            .bind(CHUNK)
            .fetch_all(&mut *txn)
            .await
            .map_err(db_err)?;
        let mut changes = Changes::default();
        for call in &rows {
            let d = catalogue.derive_from(&Parties {
                source: &call.source,
                account_code: call.account_code.as_deref(),
                src_number: &call.src_number,
                dest_number: &call.dest_number,
                start_time: call.start_time,
                billsec: call.billsec,
            });
            if !unchanged(call, &d) {
                changes.push(call.id, call.start_time, &d);
            }
        }
        let batches = match changes.id.is_empty() {
            true => Vec::new(),
            false => apply(&mut txn, job_id, &changes).await.map_err(db_err)?,
        };
        if let Some(last) = rows.last() {
            (after_start, after_id) = (Some(last.start_time), Some(last.id));
        }
        progress.scanned += rows.len() as u64;
        progress.changed += changes.id.len() as u64;
        progress.done = (rows.len() as i64) < CHUNK;
        crate::crash::point("rerate-before-commit");
        sqlx::query(SAVE_PROGRESS)
            .bind(job_id)
            .bind(after_start)
            .bind(after_id)
            .bind(i64::try_from(progress.scanned).unwrap_or(i64::MAX))
            .bind(i64::try_from(progress.changed).unwrap_or(i64::MAX))
            .bind(progress.done)
            .execute(&mut *txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        on_chunk(progress, batches).await;
    }
    Ok(progress)
}
