//! Pending rollup sums as a fold takes them: the rows it deletes from `kpi_pending`, each
//! one batch's sums as parallel arrays, decoded into groups and per-second counts.

use chrono::{DateTime, Utc};
use foldhash::HashMap;
use sea_orm::{ConnectionTrait, DbErr, Statement};

/// The dimensions of a pending group, in the order of [`Group::dims`].
pub const DIMS: [&str; 6] =
    ["source", "direction", "disposition", "account_code", "dest_country", "dest_type"];

/// The sums of a group, in the order of [`super::SUM_COLUMNS`].
pub type Sums = [i64; super::SUM_COLUMNS.len()];

/// Takes up to `$1` pending rows: deletes them and returns their arrays. Arrays that rows of
/// earlier versions lack are null; a null element (never written by ingest or re-rating)
/// reads as zero or `''` rather than stop every later fold.
const TAKE_SQL: &str = "DELETE FROM kpi_pending WHERE ctid = ANY (ARRAY(SELECT ctid FROM kpi_pending LIMIT $1)) \
     RETURNING bucket, source, direction, disposition, account_code, dest_country, dest_type, \
     attempts, effective, billsec, duration, sell_rated, buy_rated, sell_micros, buy_micros, \
     ev_source, ev_second, ev_delta, ev_ends_on";

/// Strings of a chunk, each kept once: groups refer to them by number, so regrouping a
/// chunk by any dimensions hashes small integers, not text.
#[derive(Default)]
pub struct Names {
    list: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
        self.list.push(name.to_string());
        self.index.insert(name.to_string(), id);
        id
    }

    pub fn get(&self, id: u32) -> &str {
        self.list.get(id as usize).map_or("", String::as_str)
    }
}

/// One batch's sums over one combination of dimensions in one minute.
pub struct Group {
    pub minute: DateTime<Utc>,
    /// Ids in [`Names`], in the order of [`DIMS`].
    pub dims: [u32; DIMS.len()],
    pub sums: Sums,
}

/// One source's calls starting minus ending in one second, and those ending as it begins.
pub struct Event {
    pub source: u32,
    pub second: DateTime<Utc>,
    pub delta: i64,
    pub ends_on: i64,
}

/// What one fold takes.
#[derive(Default)]
pub struct Chunk {
    /// Pending rows deleted.
    pub rows: i64,
    pub names: Names,
    pub groups: Vec<Group>,
    pub events: Vec<Event>,
}

/// A nullable array column whose elements may be null, read straight from the row.
fn array<'r, T>(row: &'r sqlx::postgres::PgRow, column: &str) -> Result<Vec<Option<T>>, DbErr>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    Vec<Option<T>>: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    use sqlx::Row as _;
    row.try_get::<Option<Vec<Option<T>>>, _>(column)
        .map(Option::unwrap_or_default)
        .map_err(|e| DbErr::Custom(format!("pending rollup sums, {column}: {e}")))
}

fn at<T: Copy + Default>(values: &[Option<T>], i: usize) -> T {
    values.get(i).copied().flatten().unwrap_or_default()
}

fn name(values: &[Option<String>], i: usize) -> &str {
    values.get(i).and_then(Option::as_deref).unwrap_or("")
}

/// How many batches' sums are pending (a small table: a fold empties it every few seconds).
pub async fn count<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS n FROM kpi_pending",
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
}

/// Deletes up to `limit` pending rows on `db` and returns their sums; the caller adds them
/// to the cuboids in the same transaction.
pub async fn take<C: ConnectionTrait>(db: &C, limit: i64) -> Result<Chunk, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(db.get_database_backend(), TAKE_SQL, [limit.into()]))
        .await?;
    let mut chunk = Chunk { rows: i64::try_from(rows.len()).unwrap_or(i64::MAX), ..Chunk::default() };
    for result in &rows {
        let row = result
            .try_as_pg_row()
            .ok_or_else(|| DbErr::Custom("pending rollup sums are only kept by PostgreSQL".into()))?;
        let buckets: Vec<Option<DateTime<Utc>>> = array(row, "bucket")?;
        let dims: Vec<Vec<Option<String>>> = DIMS.iter().map(|d| array(row, d)).collect::<Result<_, _>>()?;
        let sums: Vec<Vec<Option<i64>>> =
            super::SUM_COLUMNS.iter().map(|c| array(row, c)).collect::<Result<_, _>>()?;
        for (i, minute) in buckets.into_iter().enumerate() {
            let Some(minute) = minute else { continue };
            let mut group = Group { minute, dims: [0; DIMS.len()], sums: [0; super::SUM_COLUMNS.len()] };
            for (slot, values) in group.dims.iter_mut().zip(&dims) {
                *slot = chunk.names.id(name(values, i));
            }
            for (slot, values) in group.sums.iter_mut().zip(&sums) {
                *slot = at(values, i);
            }
            chunk.groups.push(group);
        }
        let sources: Vec<Option<String>> = array(row, "ev_source")?;
        let seconds: Vec<Option<DateTime<Utc>>> = array(row, "ev_second")?;
        let deltas: Vec<Option<i32>> = array(row, "ev_delta")?;
        let ends: Vec<Option<i32>> = array(row, "ev_ends_on")?;
        for (i, second) in seconds.into_iter().enumerate() {
            let source = name(&sources, i);
            // Counts over all sources are derived from the per-source ones when folded;
            // rows of earlier versions also carried them, and they are skipped.
            let Some(second) = second.filter(|_| !source.is_empty()) else { continue };
            chunk.events.push(Event {
                source: chunk.names.id(source),
                second,
                delta: i64::from(at(&deltas, i)),
                ends_on: i64::from(at(&ends, i)),
            });
        }
    }
    Ok(chunk)
}
