//! Retention: raw CDRs kept for `CDR_RETENTION_MONTHS`, rollups for
//! `CDR_ROLLUP_RETENTION_MONTHS`, and a job that removes what expired whole — a month's
//! partition dropped, its rollup rows deleted — never touching a month inside the retention.
//!
//! Months are UTC calendar months of a call's start. "Keep 12 months" keeps the current
//! month and the 12 before it: a month goes once all of it is more than 12 months old.

mod job;
mod run;
pub mod schedule;

pub use job::{LEASE, MaintenanceJob};
pub use run::{RetentionError, RetentionRunner};

use crate::store::partitions::{add_months, month_of};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use poem_openapi::Object;
use serde::{Deserialize, Serialize};

/// How long CDRs and their rollups are kept; unset keeps them forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct RetentionPolicy {
    /// Months of raw CDRs kept before the current one (PostgreSQL partitions and search
    /// indices); unset keeps them forever. Records older than that are refused at ingest.
    #[arg(long = "retention-months", env = "CDR_RETENTION_MONTHS", value_parser = clap::value_parser!(u32).range(1..))]
    pub raw_months: Option<u32>,

    /// Months of KPI rollups kept before the current one; at least CDR_RETENTION_MONTHS,
    /// so that `/stats` still answers from the rollups for months whose CDRs are gone.
    /// Unset keeps them forever.
    #[arg(
        long = "rollup-retention-months",
        env = "CDR_ROLLUP_RETENTION_MONTHS",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rollup_months: Option<u32>,
}

impl RetentionPolicy {
    /// Refuses rollups kept for less time than the CDRs they sum.
    pub fn validate(&self) -> Result<(), String> {
        match (self.raw_months, self.rollup_months) {
            (Some(raw), Some(rollups)) if rollups < raw => Err(format!(
                "CDR_ROLLUP_RETENTION_MONTHS ({rollups}) is shorter than CDR_RETENTION_MONTHS ({raw})"
            )),
            _ => Ok(()),
        }
    }

    /// The first month of raw CDRs kept at `now`; earlier months have expired.
    pub fn raw_kept_from(&self, now: DateTime<Utc>) -> Option<NaiveDate> {
        self.raw_months.map(|n| kept_from(n, now))
    }

    /// The first month of rollups kept at `now`.
    pub fn rollups_kept_from(&self, now: DateTime<Utc>) -> Option<NaiveDate> {
        self.rollup_months.map(|n| kept_from(n, now))
    }

    /// Why a record starting at `start` is refused at `now`, if it is: it would belong to a
    /// month retention has already removed.
    pub fn refusal(&self, start: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
        let first = self.raw_kept_from(now)?;
        (start < month_start(first)).then(|| {
            format!(
                "starts before {first}, the oldest month kept (CDR_RETENTION_MONTHS={}): it would be deleted at once",
                self.raw_months.unwrap_or_default()
            )
        })
    }
}

fn kept_from(months: u32, now: DateTime<Utc>) -> NaiveDate {
    add_months(month_of(now), -i32::try_from(months).unwrap_or(i32::MAX))
}

/// The instant a month (its first day) begins, in UTC.
pub fn month_start(month: NaiveDate) -> DateTime<Utc> {
    month.and_time(NaiveTime::MIN).and_utc()
}

/// What a retention run removed or, dry, would remove; kept with the job's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Object)]
pub struct RetentionReport {
    /// A dry run lists what would go and changes nothing.
    pub dry_run: bool,
    /// The oldest month of CDRs kept; null when CDRs are kept forever.
    #[oai(nullable)]
    pub raw_kept_from: Option<NaiveDate>,
    /// The oldest month of rollups kept; null when rollups are kept forever.
    #[oai(nullable)]
    pub rollups_kept_from: Option<NaiveDate>,
    /// Expired months of CDRs: PostgreSQL partitions dropped (or to drop).
    pub partitions: Vec<ExpiredMonth>,
    /// Search indices of expired months, deleted (or to delete).
    pub indices: Vec<String>,
    /// Search documents of expired months, deleted (or to delete).
    pub index_documents: u64,
    /// Rollup rows before `rollups_kept_from`, deleted (or to delete).
    pub rollup_rows: u64,
    /// Partitions created ahead for the coming months (none in a dry run).
    pub partitions_created: u32,
}

/// One expired month of CDRs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct ExpiredMonth {
    /// First day of the month (UTC).
    pub month: NaiveDate,
    pub partition: String,
    /// CDRs it holds: counted when dropped, the planner's estimate in a dry run.
    pub rows: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_month_expires_once_all_of_it_is_older_than_the_retention() {
        let policy = RetentionPolicy { raw_months: Some(12), rollup_months: Some(24) };
        let now = at("2026-12-04T10:00:00Z");
        assert_eq!(policy.raw_kept_from(now), NaiveDate::from_ymd_opt(2025, 12, 1));
        assert_eq!(policy.rollups_kept_from(now), NaiveDate::from_ymd_opt(2024, 12, 1));
        assert!(policy.refusal(at("2025-12-01T00:00:00Z"), now).is_none());
        assert!(policy.refusal(at("2025-11-30T23:59:59.999Z"), now).unwrap().contains("2025-12-01"));
        // Zones are only notation: the same instant west of UTC is still November in UTC.
        assert!(policy.refusal(at("2025-11-30T20:00:00-03:00"), now).is_some());
        assert!(RetentionPolicy::default().refusal(at("1990-01-01T00:00:00Z"), now).is_none());
    }

    #[test]
    fn rollups_may_not_go_before_the_cdrs_they_sum() {
        assert!(RetentionPolicy { raw_months: Some(12), rollup_months: Some(6) }.validate().is_err());
        assert!(RetentionPolicy { raw_months: Some(12), rollup_months: None }.validate().is_ok());
        assert!(RetentionPolicy { raw_months: None, rollup_months: Some(6) }.validate().is_ok());
    }
}
