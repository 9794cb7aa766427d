//! Pending rollup sums as a fold takes them: the rows it deletes from `kpi_pending`, each
//! one batch's sums as parallel arrays, decoded into groups and per-second counts.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement};
use std::collections::HashMap;

/// The dimensions of a pending group, in the order of [`Group::dims`].
pub const DIMS: [&str; 6] =
    ["source", "direction", "disposition", "account_code", "dest_country", "dest_type"];

/// The sums of a group, in the order of [`super::SUM_COLUMNS`].
pub type Sums = [i64; super::SUM_COLUMNS.len()];

/// Takes up to `$1` pending rows: deletes them and returns their arrays. Elements are never
/// null as ingest and re-rating write them; a null would read as zero or `''` here rather
/// than stop every later fold. Arrays that rows of earlier versions lack are null.
static TAKE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let text =
        ["source", "direction", "disposition", "account_code", "dest_country", "dest_type", "ev_source"]
            .map(|c| format!("array_replace({c}, NULL, ''::text) AS {c}"));
    let numbers = super::SUM_COLUMNS
        .iter()
        .map(|c| format!("array_replace({c}, NULL, 0::int8) AS {c}"))
        .chain(["ev_delta", "ev_ends_on"].map(|c| format!("array_replace({c}, NULL, 0) AS {c}")));
    format!(
        "DELETE FROM kpi_pending WHERE ctid = ANY (ARRAY(SELECT ctid FROM kpi_pending LIMIT $1)) \
         RETURNING bucket, ev_second, {}",
        text.into_iter().chain(numbers).collect::<Vec<_>>().join(", ")
    )
});

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

fn array<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<Vec<T>, DbErr>
where
    Vec<T>: sea_orm::TryGetable,
{
    Ok(row.try_get::<Option<Vec<T>>>("", column)?.unwrap_or_default())
}

/// Deletes up to `limit` pending rows on `db` and returns their sums; the caller adds them
/// to the cuboids in the same transaction.
pub async fn take<C: ConnectionTrait>(db: &C, limit: i64) -> Result<Chunk, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            TAKE_SQL.as_str(),
            [limit.into()],
        ))
        .await?;
    let mut chunk = Chunk { rows: i64::try_from(rows.len()).unwrap_or(i64::MAX), ..Chunk::default() };
    for row in &rows {
        let buckets: Vec<DateTime<Utc>> = array(row, "bucket")?;
        let dims: Vec<Vec<String>> = DIMS.iter().map(|d| array(row, d)).collect::<Result<_, _>>()?;
        let sums: Vec<Vec<i64>> =
            super::SUM_COLUMNS.iter().map(|c| array(row, c)).collect::<Result<_, _>>()?;
        for (i, minute) in buckets.into_iter().enumerate() {
            let mut group = Group { minute, dims: [0; DIMS.len()], sums: [0; super::SUM_COLUMNS.len()] };
            for (slot, values) in group.dims.iter_mut().zip(&dims) {
                *slot = chunk.names.id(values.get(i).map_or("", String::as_str));
            }
            for (slot, values) in group.sums.iter_mut().zip(&sums) {
                *slot = values.get(i).copied().unwrap_or(0);
            }
            chunk.groups.push(group);
        }
        let sources: Vec<String> = array(row, "ev_source")?;
        let seconds: Vec<DateTime<Utc>> = array(row, "ev_second")?;
        let deltas: Vec<i32> = array(row, "ev_delta")?;
        let ends: Vec<i32> = array(row, "ev_ends_on")?;
        for (i, (source, second)) in sources.iter().zip(seconds).enumerate() {
            // Counts over all sources are derived from the per-source ones when folded;
            // rows of earlier versions also carried them, and they are skipped.
            if source.is_empty() {
                continue;
            }
            chunk.events.push(Event {
                source: chunk.names.id(source),
                second,
                delta: i64::from(deltas.get(i).copied().unwrap_or(0)),
                ends_on: i64::from(ends.get(i).copied().unwrap_or(0)),
            });
        }
    }
    Ok(chunk)
}
