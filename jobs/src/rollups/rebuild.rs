//! Rebuilding the KPI rollups from `cdrs`, for the whole history or for whole UTC days:
//! after rows were purged by hand, or to fill a cuboid added later.
//!
//! One transaction: ingest into `cdrs` and folding wait on its table locks (searches and
//! `/stats` go on reading the old sums), everything pending is folded first, then the
//! window's buckets are recomputed from the rows and the total corrected by the difference.
//! A crash anywhere rolls it all back; running it again gives the same sums, so a redelivered
//! job is harmless.

use super::{CUBOIDS, SUMS_OF_ROWS, fold};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait, Value};

/// The UTC days whose buckets are rebuilt: `[from, to)`, open sides unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RebuildWindow {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl RebuildWindow {
    /// Refuses bounds that are not midnights (UTC): every cuboid's buckets must fall wholly
    /// inside or outside the window.
    pub fn new(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Self, crate::search::ParamError> {
        for (name, bound) in [("from", from), ("to", to)] {
            if let Some(t) = bound
                && super::plan::floor(t, super::Level::Day) != Some(t)
            {
                return Err(crate::search::ParamError::new(name, "must be a whole UTC day (YYYY-MM-DD)"));
            }
        }
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(crate::search::ParamError::new("from", "must be before `to`"));
        }
        Ok(RebuildWindow { from, to })
    }

    /// `column` inside the window, with its bound values appended to `values`.
    fn condition(&self, column: &str, values: &mut Vec<Value>) -> String {
        let mut conds = vec!["true".to_string()];
        if let Some(f) = self.from {
            values.push(f.into());
            conds.push(format!("{column} >= ${}", values.len()));
        }
        if let Some(t) = self.to {
            values.push(t.into());
            conds.push(format!("{column} < ${}", values.len()));
        }
        conds.join(" AND ")
    }
}

/// What a rebuild found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupsRebuilt {
    /// Stored rows inside the window, now summed.
    pub rows: u64,
    /// How much the window's count changed (rows purged since they were summed are negative).
    pub corrected: i64,
}

fn statement(sql: String, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DatabaseBackend::Postgres, sql, values)
}

async fn window_total<C: ConnectionTrait>(db: &C, window: &RebuildWindow) -> Result<i64, DbErr> {
    let mut values = Vec::new();
    let cond = window.condition("bucket", &mut values);
    let sql = format!("SELECT coalesce(sum(attempts), 0)::int8 AS n FROM kpi_day WHERE {cond}");
    let row = db.query_one_raw(statement(sql, values)).await?;
    row.map(|r| r.try_get::<i64>("", "n")).transpose().map(|n| n.unwrap_or(0))
}

/// The per-second counts of the window's seconds and their hours, from the stored rows
/// (every row that started before the window's end: a call may end in it however long ago it
/// started). The hours come back marked for their peak summary to be recomputed.
async fn rebuild_seconds<C: ConnectionTrait>(db: &C, window: &RebuildWindow) -> Result<(), DbErr> {
    let mut values = Vec::new();
    let cond = window.condition("minute", &mut values);
    db.execute_raw(statement(format!("DELETE FROM kpi_second_minute WHERE {cond}"), values.clone())).await?;
    let mut event_values = Vec::new();
    let seconds = window.condition("second", &mut event_values);
    let rows = match window.to {
        Some(t) => {
            event_values.push(t.into());
            format!("start_time < ${}", event_values.len())
        }
        None => "true".to_string(),
    };
    let events = format!("SELECT * FROM ({}) e WHERE {seconds}", super::events_of_rows(&rows));
    db.execute_raw(statement(
        format!(
            "INSERT INTO kpi_second_minute (source, minute, slots, delta, ends_on) \
             SELECT source, minute, slots, delta, ends_on FROM ({}) m",
            super::minute_rows(&events)
        ),
        event_values,
    ))
    .await?;
    let mut hour_values = Vec::new();
    let hours = window.condition("bucket", &mut hour_values);
    db.execute_raw(statement(format!("DELETE FROM kpi_second_hour WHERE {hours}"), hour_values)).await?;
    db.execute_raw(statement(
        format!(
            "INSERT INTO kpi_second_hour (source, bucket, net) \
             SELECT k.source, date_trunc('hour', k.minute, 'UTC'), sum(d) \
             FROM kpi_second_minute k, unnest(k.delta) AS d WHERE {cond} GROUP BY 1, 2"
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// Recomputes the rollups of `window` from the stored rows.
pub async fn rebuild(db: &DatabaseConnection, window: &RebuildWindow) -> Result<RollupsRebuilt, DbErr> {
    let txn = db.begin().await?;
    txn.execute_unprepared(
        "SET LOCAL TimeZone = 'UTC'; \
         LOCK TABLE cdrs IN SHARE MODE; LOCK TABLE kpi_pending IN SHARE ROW EXCLUSIVE MODE",
    )
    .await?;
    fold::fold_all(&txn).await?;
    let before = window_total(&txn, window).await?;
    for cuboid in &CUBOIDS {
        let mut values = Vec::new();
        let cond = window.condition("bucket", &mut values);
        txn.execute_raw(statement(format!("DELETE FROM {} WHERE {cond}", cuboid.table), values)).await?;
    }
    let mut values = Vec::new();
    let cond = window.condition("start_time", &mut values);
    let sums = super::SUM_COLUMNS;
    let summed: Vec<String> = sums.iter().map(|s| format!("sum({s})")).collect();
    let mut sql =
        format!("WITH rows AS (SELECT {SUMS_OF_ROWS} FROM cdrs WHERE {cond} GROUP BY {})", super::DIMENSIONS);
    for cuboid in &CUBOIDS {
        sql.push_str(&format!(
            ", {table} AS (INSERT INTO {table} ({key}, {cols}) SELECT {select}, {summed} FROM rows GROUP BY {pos})",
            table = cuboid.table,
            key = cuboid.key().join(", "),
            cols = sums.join(", "),
            select = cuboid.key_from_minutes().join(", "),
            summed = summed.join(", "),
            pos = cuboid.key_positions(),
        ));
    }
    sql.push_str(" SELECT coalesce(sum(attempts), 0)::int8 AS n FROM rows");
    let row = txn.query_one_raw(statement(sql, values)).await?;
    let rows: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0);
    let corrected = rows - before;
    rebuild_seconds(&txn, window).await?;
    txn.execute_raw(statement(
        "UPDATE kpi_totals SET attempts = attempts + $1 WHERE id = 1".to_string(),
        vec![corrected.into()],
    ))
    .await?;
    crate::crash::point("rollup-rebuild-before-commit");
    txn.commit().await?;
    Ok(RollupsRebuilt { rows: u64::try_from(rows).unwrap_or(0), corrected })
}
