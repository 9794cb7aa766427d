//! Pending rollup sums as a fold takes them: the rows it deletes from `kpi_pending`, each
//! one batch's sums as parallel arrays, decoded into groups and per-second counts.

use super::append::PENDING_DIMS;
use chrono::{DateTime, Utc};
use foldhash::HashMap;
use sea_orm::{ConnectionTrait, DbErr, Statement};

/// The dimensions of a pending group, in the order of [`Group::dims`].
pub const DIMS: [&str; 6] =
    ["source", "direction", "disposition", "account_code", "dest_country", "dest_type"];

/// Where each of [`DIMS`] sits among the seven a pending row numbers for each group
/// ([`PENDING_DIMS`]).
const NUMBERED_AT: [usize; DIMS.len()] = [0, 1, 2, 3, 5, 6];

/// The sums of a group, in the order of [`super::SUM_COLUMNS`].
pub type Sums = [i64; super::SUM_COLUMNS.len()];

/// Takes up to `$1` pending rows: deletes them and returns their arrays. Arrays that rows of
/// earlier versions lack are null; a null element (never written by ingest or re-rating)
/// reads as zero or `''` rather than stop every later fold.
const TAKE_SQL: &str = "DELETE FROM kpi_pending WHERE ctid = ANY (ARRAY(SELECT ctid FROM kpi_pending LIMIT $1)) \
     RETURNING bucket, source, direction, disposition, account_code, dest_country, dest_type, \
     attempts, effective, billsec, duration, sell_rated, buy_rated, sell_micros, buy_micros, \
     ev_source, ev_second, ev_delta, ev_ends_on, names, dim_ids, ev_source_ids";

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
        let sums: Vec<Vec<Option<i64>>> =
            super::SUM_COLUMNS.iter().map(|c| array(row, c)).collect::<Result<_, _>>()?;
        let seconds: Vec<Option<DateTime<Utc>>> = array(row, "ev_second")?;
        let deltas: Vec<Option<i32>> = array(row, "ev_delta")?;
        let ends: Vec<Option<i32>> = array(row, "ev_ends_on")?;
        let names: Vec<Option<String>> = array(row, "names")?;
        let numbered = !names.is_empty();
        // The row's names as the chunk numbers them, after `''` for subscript 0 (and any out
        // of range).
        let ids: Vec<u32> = std::iter::once("")
            .chain(names.iter().map(|n| n.as_deref().unwrap_or("")))
            .map(|n| chunk.names.id(n))
            .collect();
        let empty = ids[0];
        let by_subscript = |values: &[Option<i32>], i: usize| {
            let subscript = values.get(i).copied().flatten().and_then(|s| usize::try_from(s).ok());
            subscript.and_then(|s| ids.get(s)).copied().unwrap_or(empty)
        };
        let dim_ids: Vec<Option<i32>> = array(row, "dim_ids")?;
        // Rows of the earlier shape (and re-rating's) spell their dimensions out instead.
        let spelled: Vec<Vec<Option<String>>> = if numbered {
            Vec::new()
        } else {
            DIMS.iter().map(|d| array(row, d)).collect::<Result<_, _>>()?
        };
        for (i, minute) in buckets.into_iter().enumerate() {
            let Some(minute) = minute else { continue };
            let mut group = Group { minute, dims: [0; DIMS.len()], sums: [0; super::SUM_COLUMNS.len()] };
            for (d, slot) in group.dims.iter_mut().enumerate() {
                *slot = match spelled.get(d) {
                    Some(values) => chunk.names.id(name(values, i)),
                    None => by_subscript(&dim_ids, i * PENDING_DIMS.len() + NUMBERED_AT[d]),
                };
            }
            for (slot, values) in group.sums.iter_mut().zip(&sums) {
                *slot = at(values, i);
            }
            chunk.groups.push(group);
        }
        let spelled_sources: Vec<Option<String>> =
            if numbered { Vec::new() } else { array(row, "ev_source")? };
        let source_ids: Vec<Option<i32>> = array(row, "ev_source_ids")?;
        for (i, second) in seconds.into_iter().enumerate() {
            let source = if numbered {
                by_subscript(&source_ids, i)
            } else {
                chunk.names.id(name(&spelled_sources, i))
            };
            // Counts over all sources are derived from the per-source ones when folded;
            // rows of earlier versions also carried them, and they are skipped.
            let Some(second) = second.filter(|_| source != empty) else { continue };
            chunk.events.push(Event {
                source,
                second,
                delta: i64::from(at(&deltas, i)),
                ends_on: i64::from(at(&ends, i)),
            });
        }
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dimension_is_read_from_its_own_place_among_the_numbered_ones() {
        for (d, name) in DIMS.iter().enumerate() {
            assert_eq!(PENDING_DIMS[NUMBERED_AT[d]], *name);
        }
    }
}
