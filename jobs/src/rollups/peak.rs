//! Peak concurrency from the per-second counts, exact at one second for any window.
//!
//! The calls in progress just after second `s` are the running sum of `delta` up to `s`.
//! A window reads the seconds of the hours its edges cut (and of hours whose summary is out
//! of date or that have counts still pending), and for every other hour only its summary:
//! its net change and its highest running count. A month is then ~720 summary rows and at
//! most a few thousand seconds, however many calls it holds. Samples are taken as the
//! search index takes them at one-second resolution: when the window opens (calls that
//! started before it and end after its first instant), then at the end of every second in
//! which calls started or ended.

use super::{overlapping, pending_events};
use crate::search::PeakConcurrency;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Recomputes up to `limit` out-of-date hour summaries; returns how many it brought up to
/// date. An hour that changes meanwhile (its version moved) stays marked for the next pass.
static SETTLE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        r#"
WITH todo AS (
    SELECT source, bucket, version FROM kpi_second_hour WHERE dirty ORDER BY bucket LIMIT $1
), calc AS (
    SELECT t.source, t.bucket, t.version, coalesce(r.run, 0) AS rise, r.second AS rise_at
    FROM todo t LEFT JOIN LATERAL (
        SELECT second, sum(delta) OVER (ORDER BY second) AS run FROM ({seconds}) k
        ORDER BY run DESC, second ASC LIMIT 1
    ) r ON true
), done AS (
    UPDATE kpi_second_hour h SET rise = c.rise, rise_at = c.rise_at, dirty = false
    FROM calc c WHERE h.source = c.source AND h.bucket = c.bucket AND h.version = c.version
    RETURNING 1
)
SELECT (SELECT count(*) FROM todo) AS todo, (SELECT count(*) FROM done) AS done
"#,
        seconds = super::second_rows(
            "k.source = t.source AND k.minute >= t.bucket AND k.minute < t.bucket + interval '1 hour'"
        ),
    )
});

/// Hour summaries recomputed per statement.
pub const SETTLE_CHUNK: i64 = 500;

/// Brings out-of-date hour summaries up to date, a chunk at a time, at most `rounds`
/// chunks; returns how many it settled.
pub async fn settle_hours<C: ConnectionTrait>(db: &C, rounds: usize) -> Result<u64, DbErr> {
    let mut settled = 0;
    for _ in 0..rounds {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                SETTLE_SQL.as_str(),
                [SETTLE_CHUNK.into()],
            ))
            .await?;
        let (todo, done): (i64, i64) = match row {
            Some(r) => (r.try_get("", "todo")?, r.try_get("", "done")?),
            None => (0, 0),
        };
        settled += u64::try_from(done).unwrap_or(0);
        if todo < SETTLE_CHUNK {
            break;
        }
    }
    Ok(settled)
}

/// A second's counts: calls starting minus ending, and ending exactly as it begins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Second {
    delta: i64,
    ends_on: i64,
}

struct HourSummary {
    net: i64,
    rise: i64,
    rise_at: Option<DateTime<Utc>>,
    dirty: bool,
}

const HOUR: i64 = 3600;

fn at(secs: i64) -> Result<DateTime<Utc>, DbErr> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| DbErr::Custom(format!("second {secs} out of range")))
}

fn floor_hour(secs: i64) -> i64 {
    secs - secs.rem_euclid(HOUR)
}

fn statement<C: ConnectionTrait>(db: &C, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// The most calls in progress at once in `[from, to)` for `scope` (a source, or `''` for
/// all); an open side runs to the first call's start or past the last one's end. `None`
/// when no call was in progress.
pub async fn peak<C: ConnectionTrait>(
    db: &C,
    scope: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Option<PeakConcurrency>, DbErr> {
    // Counts not folded yet, of the pending rows that may touch the window's hours (one over
    // before the first hour begins changes no running count in it).
    let mut pending: BTreeMap<i64, Second> = BTreeMap::new();
    let mut values: Vec<Value> = vec![scope.into()];
    let mut bound = |t: Option<DateTime<Utc>>| -> Result<Option<String>, DbErr> {
        let Some(t) = t else { return Ok(None) };
        values.push(at(floor_hour(t.timestamp()))?.into());
        Ok(Some(format!("${}", values.len())))
    };
    let (lower, upper) = (bound(from)?, bound(to.map(|t| t + chrono::Duration::hours(1)))?);
    let within = overlapping(lower.as_deref(), upper.as_deref());
    let rows = db
        .query_all_raw(statement(
            db,
            &format!(
                "SELECT second, sum(delta)::int8 AS delta, sum(ends_on)::int8 AS ends_on \
                 FROM ({}) p WHERE source = $1 GROUP BY 1",
                pending_events(&within)
            ),
            values,
        ))
        .await?;
    for r in rows {
        let second: DateTime<Utc> = r.try_get("", "second")?;
        pending.insert(
            second.timestamp(),
            Second { delta: r.try_get("", "delta")?, ends_on: r.try_get("", "ends_on")? },
        );
    }
    let (from, to) = match (from, to) {
        (Some(f), Some(t)) => (f.timestamp(), t.timestamp()),
        (f, t) => {
            let row = db
                .query_one_raw(statement(
                    db,
                    "SELECT (SELECT minute + slots[1] * interval '1 second' FROM kpi_second_minute \
                     WHERE source = $1 ORDER BY minute LIMIT 1) AS first, \
                     (SELECT minute + slots[cardinality(slots)] * interval '1 second' FROM kpi_second_minute \
                     WHERE source = $1 ORDER BY minute DESC LIMIT 1) AS last",
                    vec![scope.into()],
                ))
                .await?;
            let stored = |name: &str| -> Result<Option<i64>, DbErr> {
                Ok(match &row {
                    Some(r) => r.try_get::<Option<DateTime<Utc>>>("", name)?.map(|t| t.timestamp()),
                    None => None,
                })
            };
            let first = [stored("first")?, pending.keys().next().copied()].into_iter().flatten().min();
            let last = [stored("last")?, pending.keys().next_back().copied()].into_iter().flatten().max();
            let (Some(first), Some(last)) = (first, last) else { return Ok(None) };
            (f.map_or(first, |f| f.timestamp()), t.map_or(last + 1, |t| t.timestamp()))
        }
    };
    if from >= to {
        return Ok(None);
    }
    let first_hour = floor_hour(from);
    // The running count when the first hour begins: every earlier hour's net change.
    let base_row = db
        .query_one_raw(statement(
            db,
            "SELECT coalesce(sum(net), 0)::int8 AS net FROM kpi_second_hour WHERE source = $1 AND bucket < $2",
            vec![scope.into(), at(first_hour)?.into()],
        ))
        .await?;
    let mut running: i64 = base_row.map(|r| r.try_get("", "net")).transpose()?.unwrap_or(0);
    running += pending.range(..first_hour).map(|(_, s)| s.delta).sum::<i64>();

    let mut hours: BTreeMap<i64, HourSummary> = BTreeMap::new();
    let rows = db
        .query_all_raw(statement(
            db,
            "SELECT bucket, net, rise, rise_at, dirty FROM kpi_second_hour \
             WHERE source = $1 AND bucket >= $2 AND bucket < $3",
            vec![scope.into(), at(first_hour)?.into(), at(to)?.into()],
        ))
        .await?;
    for r in rows {
        let bucket: DateTime<Utc> = r.try_get("", "bucket")?;
        hours.insert(
            bucket.timestamp(),
            HourSummary {
                net: r.try_get("", "net")?,
                rise: r.try_get("", "rise")?,
                rise_at: r.try_get("", "rise_at")?,
                dirty: r.try_get("", "dirty")?,
            },
        );
    }
    // Hours read second by second: the window's edges that cut an hour, out-of-date
    // summaries, pending counts. A window on whole hours (a dashboard's days) reads
    // summaries only, whatever the calls in its first and last hours.
    let mut exact: BTreeSet<i64> = BTreeSet::new();
    if from != first_hour {
        exact.insert(first_hour);
    }
    if to.rem_euclid(HOUR) != 0 {
        exact.insert(floor_hour(to - 1));
    }
    exact.extend(hours.iter().filter(|(_, h)| h.dirty).map(|(b, _)| *b));
    exact.extend(pending.range(first_hour..to).map(|(s, _)| floor_hour(*s)));
    let mut seconds = pending.range(first_hour..to).map(|(s, c)| (*s, *c)).collect::<BTreeMap<i64, Second>>();
    if !exact.contains(&first_hour) {
        // The opening sample leaves out calls ending exactly as the window opens: its first
        // second, which is the first slot of the minute row there, if any.
        let opening = db
            .query_one_raw(statement(
                db,
                "SELECT delta[1]::int8 AS delta, ends_on[1]::int8 AS ends_on FROM kpi_second_minute \
                 WHERE source = $1 AND minute = $2 AND slots[1] = 0",
                vec![scope.into(), at(from)?.into()],
            ))
            .await?;
        if let Some(r) = opening {
            let s = seconds.entry(from).or_default();
            s.delta += r.try_get::<i64>("", "delta")?;
            s.ends_on += r.try_get::<i64>("", "ends_on")?;
        }
    }
    let exact: Vec<i64> = exact.into_iter().collect();
    for chunk in exact.chunks(500) {
        let mut values: Vec<Value> = vec![scope.into()];
        let mut list = Vec::new();
        for hour in chunk {
            values.push(at(*hour)?.into());
            list.push(format!("(${}::timestamptz)", values.len()));
        }
        let sql = format!(
            "SELECT k.minute + u.slot * interval '1 second' AS second, u.delta::int8 AS delta, \
             u.ends_on::int8 AS ends_on FROM (VALUES {}) h(b) \
             JOIN kpi_second_minute k ON k.source = $1 AND k.minute >= h.b AND k.minute < h.b + interval '1 hour' \
             CROSS JOIN LATERAL unnest(k.slots, k.delta, k.ends_on) AS u(slot, delta, ends_on)",
            list.join(", ")
        );
        for r in db.query_all_raw(statement(db, &sql, values)).await? {
            let second: DateTime<Utc> = r.try_get("", "second")?;
            let s = seconds.entry(second.timestamp()).or_default();
            s.delta += r.try_get::<i64>("", "delta")?;
            s.ends_on += r.try_get::<i64>("", "ends_on")?;
        }
    }

    // The running count up to the window's first instant, and the sample taken there.
    running += seconds.range(..from).map(|(_, s)| s.delta).sum::<i64>();
    let opening = running - seconds.get(&from).map_or(0, |s| s.ends_on);
    let mut best = (opening, from);
    let consider = |count: i64, sampled: i64, best: &mut (i64, i64)| {
        if count > best.0 {
            *best = (count, sampled.min(to));
        }
    };
    let mut hour = first_hour;
    while hour < to {
        let summary = hours.get(&hour);
        if exact.binary_search(&hour).is_ok() || summary.is_none() {
            for (s, c) in seconds.range(hour.max(from)..(hour + HOUR).min(to)) {
                running += c.delta;
                consider(running, s + 1, &mut best);
            }
        } else if let Some(h) = summary {
            let rise_at = h.rise_at.map_or(hour, |t| t.timestamp());
            consider(running + h.rise, rise_at + 1, &mut best);
            running += h.net;
        }
        hour += HOUR;
    }
    let Some(calls) = u64::try_from(best.0).ok().filter(|n| *n > 0) else { return Ok(None) };
    Ok(Some(PeakConcurrency { calls, at: at(best.1)?, resolution_seconds: 1 }))
}
