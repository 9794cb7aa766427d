//! The monthly partitions of `cdrs`: which exist, creating the missing ones, dropping
//! expired ones.
//!
//! A month's partition is `cdrs_YYYY_MM` and holds the records that start in that month in
//! UTC. Ingest creates the partitions a batch needs before storing it (a late record from
//! two years ago lands in a partition of its own, created then); the scheduled maintenance
//! creates the coming months ahead of time, so a busy month never begins with a creation.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The first day of the month `t` falls in, in UTC: what names its partition.
pub fn month_of(t: DateTime<Utc>) -> NaiveDate {
    let d = t.date_naive();
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap_or(d)
}

/// The month `n` months after (or, negative, before) `month`.
pub fn add_months(month: NaiveDate, n: i32) -> NaiveDate {
    let shifted = if n >= 0 {
        month.checked_add_months(Months::new(n.unsigned_abs()))
    } else {
        month.checked_sub_months(Months::new(n.unsigned_abs()))
    };
    shifted.unwrap_or(month)
}

/// The partition that holds `month`.
pub fn partition_name(month: NaiveDate) -> String {
    format!("cdrs_{:04}_{:02}", month.year(), month.month())
}

/// The month a partition name stands for, if it is one of ours.
pub fn month_of_partition(name: &str) -> Option<NaiveDate> {
    let rest = name.strip_prefix("cdrs_")?;
    let (year, month) = rest.split_once('_')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

/// A partition that exists, with the rows the planner estimates it holds (from the last
/// analyze: a lookup, not a count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub month: NaiveDate,
    pub estimated_rows: i64,
}

const LIST: &str = "SELECT c.relname AS name, greatest(c.reltuples, 0)::bigint AS estimated_rows \
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = 'cdrs'::regclass ORDER BY c.relname";

/// Every monthly partition of `cdrs`, oldest first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<Partition>, DbErr> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), LIST)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let estimated_rows: i64 = row.try_get("", "estimated_rows")?;
        if let Some(month) = month_of_partition(&name) {
            out.push(Partition { name, month, estimated_rows });
        }
    }
    Ok(out)
}

/// Creates the partitions of `months` that are missing; answers how many it created.
pub async fn ensure(db: &impl ConnectionTrait, months: &[NaiveDate]) -> Result<u32, DbErr> {
    if months.is_empty() {
        return Ok(0);
    }
    let list: Vec<String> = months.iter().map(|m| m.format("%Y-%m-%d").to_string()).collect();
    let sql = format!("SELECT cdrs_ensure_partitions('{{{}}}'::date[]) AS created", list.join(","));
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    let created: i32 = match row {
        Some(row) => row.try_get("", "created")?,
        None => 0,
    };
    if created > 0 {
        tracing::info!(created, months = ?list, "created monthly partitions of cdrs");
    }
    Ok(u32::try_from(created).unwrap_or(0))
}

/// The months a process has seen partitions for, so storing a batch costs no catalog lookup
/// once its months are known. Forgotten when an insert finds a partition gone (dropped by
/// retention since).
#[derive(Clone, Default)]
pub struct KnownMonths {
    months: Arc<Mutex<BTreeSet<NaiveDate>>>,
}

impl KnownMonths {
    /// Makes sure every month `starts` fall in has its partition.
    pub async fn ensure_for(
        &self,
        db: &DatabaseConnection,
        starts: impl Iterator<Item = DateTime<Utc>>,
    ) -> Result<(), DbErr> {
        let wanted: BTreeSet<NaiveDate> = starts.map(month_of).collect();
        let missing: Vec<NaiveDate> = {
            let known = self.months.lock().unwrap_or_else(|e| e.into_inner());
            wanted.difference(&known).copied().collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        ensure(db, &missing).await?;
        self.months.lock().unwrap_or_else(|e| e.into_inner()).extend(missing);
        Ok(())
    }

    pub fn forget(&self) {
        self.months.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_name_their_partitions_both_ways() {
        let t = DateTime::parse_from_rfc3339("2026-01-31T23:59:59.999-05:00").unwrap().with_timezone(&Utc);
        let m = month_of(t);
        assert_eq!(m, NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(), "the month is UTC's");
        assert_eq!(partition_name(m), "cdrs_2026_02");
        assert_eq!(month_of_partition("cdrs_2026_02"), Some(m));
        assert_eq!(month_of_partition("cdrs_unpartitioned"), None);
        assert_eq!(month_of_partition("cdrs_2026_13"), None);
        assert_eq!(add_months(m, -2), NaiveDate::from_ymd_opt(2025, 12, 1).unwrap());
        assert_eq!(add_months(m, 11), NaiveDate::from_ymd_opt(2027, 1, 1).unwrap());
    }
}
