//! Folding pending rollup sums into the cuboids.
//!
//! A fold takes a chunk of pending rows ([`pending::take`] deletes them), adds their groups
//! up in memory for every cuboid, and writes each cuboid's changed cells with one upsert in
//! key order, in the transaction that deleted the chunk: a sum is added by the transaction
//! that removed it from `kpi_pending`, or by none. The minute rows of per-second counts are
//! merged here too, read under lock, so the database stores what it is given instead of
//! regrouping arrays on every conflict.
//!
//! On calls spread thinly over time (a backfill) most cells are new, and a fold costs about
//! one upserted row per cell; grouping in SQL cost several times that.

use super::pending::{self, Chunk, DIMS, Sums};
use super::{CUBOIDS, Cuboid, SUM_COLUMNS};
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt as _};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionSession, TransactionTrait,
    Value as SqlValue,
};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Most dimensions a cuboid keys by besides its bucket.
const MAX_DIMS: usize = 5;

/// A cell of a cuboid: its bucket (Unix seconds) and its dimensions' name ids in key order
/// (leading ones first), unused places `u32::MAX`.
type Cell = (i64, [u32; MAX_DIMS]);

/// Where each of a cuboid's dimensions (besides the bucket), in key order, sits in a
/// pending group's [`DIMS`].
fn positions(cuboid: &Cuboid) -> Vec<usize> {
    cuboid.lead.iter().chain(cuboid.rest).filter_map(|d| DIMS.iter().position(|x| x == d)).collect()
}

/// A chunk's groups added up into the cells of one cuboid.
fn cells(cuboid: &Cuboid, chunk: &Chunk) -> HashMap<Cell, Sums> {
    let positions = positions(cuboid);
    let seconds = cuboid.level.seconds();
    let mut cells: HashMap<Cell, Sums> = HashMap::new();
    for group in &chunk.groups {
        let mut dims = [u32::MAX; MAX_DIMS];
        for (slot, &p) in dims.iter_mut().zip(&positions) {
            *slot = group.dims[p];
        }
        let bucket = group.minute.timestamp().div_euclid(seconds) * seconds;
        let sums = cells.entry((bucket, dims)).or_insert([0; SUM_COLUMNS.len()]);
        for (sum, add) in sums.iter_mut().zip(group.sums) {
            *sum += add;
        }
    }
    cells
}

fn time(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

fn statement<C: ConnectionTrait>(db: &C, sql: String, values: Vec<SqlValue>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// `$1::t1, $2::t2, …` for the arrays of an `unnest`.
fn arrays(types: &[&str]) -> String {
    types.iter().enumerate().map(|(i, t)| format!("${}::{t}[]", i + 1)).collect::<Vec<_>>().join(", ")
}

/// Adds `cells` to `cuboid`'s table: one upsert of every cell, in key order, so concurrent
/// writers lock rows in the same order.
async fn add_cells<C: ConnectionTrait>(
    db: &C,
    cuboid: &Cuboid,
    cells: HashMap<Cell, Sums>,
    chunk: &Chunk,
) -> Result<(), DbErr> {
    if cells.is_empty() {
        return Ok(());
    }
    let key = cuboid.key();
    let dims = key.len() - 1;
    let n = cells.len();
    let mut names: Vec<Vec<String>> = (0..dims).map(|_| Vec::with_capacity(n)).collect();
    let mut buckets = Vec::with_capacity(n);
    let mut sums: Vec<Vec<i64>> = (0..SUM_COLUMNS.len()).map(|_| Vec::with_capacity(n)).collect();
    for ((bucket, ids), cell) in cells {
        buckets.push(time(bucket));
        for (column, id) in names.iter_mut().zip(ids) {
            column.push(chunk.names.get(id).to_string());
        }
        for (column, sum) in sums.iter_mut().zip(cell) {
            column.push(sum);
        }
    }
    let mut values: Vec<SqlValue> = Vec::with_capacity(key.len() + SUM_COLUMNS.len());
    let mut types = Vec::with_capacity(values.capacity());
    let mut names = names.into_iter();
    for column in &key {
        if *column == "bucket" {
            values.push(std::mem::take(&mut buckets).into());
            types.push("timestamptz");
        } else {
            values.push(names.next().unwrap_or_default().into());
            types.push("text");
        }
    }
    for column in sums {
        values.push(column.into());
        types.push("int8");
    }
    let table = cuboid.table;
    let columns = key.iter().copied().chain(SUM_COLUMNS).collect::<Vec<_>>().join(", ");
    let set = SUM_COLUMNS.map(|s| format!("{s} = {table}.{s} + EXCLUDED.{s}")).join(", ");
    let sql = format!(
        "INSERT INTO {table} ({columns}) SELECT * FROM unnest({}) AS u({columns}) ORDER BY {} \
         ON CONFLICT ({}) DO UPDATE SET {set}",
        arrays(&types),
        cuboid.key_positions(),
        key.join(", "),
    );
    db.execute_raw(statement(db, sql, values)).await.map(drop)
}

/// A minute's per-second counts: offset in the minute → (calls starting minus ending,
/// calls ending as the second begins).
type Seconds = BTreeMap<i16, (i64, i64)>;

/// A chunk's per-second counts by (source, minute), per source and over all sources (`''`).
fn minutes(chunk: &mut Chunk) -> BTreeMap<(u32, i64), Seconds> {
    let all = chunk.names.id("");
    let mut minutes: BTreeMap<(u32, i64), Seconds> = BTreeMap::new();
    for event in &chunk.events {
        let t = event.second.timestamp();
        let (minute, slot) = (t.div_euclid(60) * 60, i16::try_from(t.rem_euclid(60)).unwrap_or(0));
        for source in [event.source, all] {
            let second = minutes.entry((source, minute)).or_default().entry(slot).or_default();
            second.0 += event.delta;
            second.1 += event.ends_on;
        }
    }
    minutes
}

const READ_MINUTES: &str = "SELECT k.source, k.minute, k.slots, k.delta, k.ends_on FROM kpi_second_minute k \
     JOIN unnest($1::text[], $2::timestamptz[]) AS u(source, minute) ON k.source = u.source AND k.minute = u.minute \
     FOR UPDATE OF k";

/// Each row's arrays are slices of one flat array per column (`$3`–`$5`), at `off`, `len`.
const WRITE_MINUTES: &str = "INSERT INTO kpi_second_minute (source, minute, slots, delta, ends_on) \
     SELECT u.source, u.minute, ($3::int2[])[u.off + 1 : u.off + u.len], ($4::int4[])[u.off + 1 : u.off + u.len], \
            ($5::int4[])[u.off + 1 : u.off + u.len] \
     FROM unnest($1::text[], $2::timestamptz[], $6::int4[], $7::int4[]) AS u(source, minute, off, len) ORDER BY 1, 2 \
     ON CONFLICT (source, minute) DO UPDATE SET slots = EXCLUDED.slots, delta = EXCLUDED.delta, ends_on = EXCLUDED.ends_on";

const ADD_HOURS: &str = "INSERT INTO kpi_second_hour (source, bucket, net) \
     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[]) ORDER BY 1, 2 \
     ON CONFLICT (source, bucket) DO UPDATE SET \
     net = kpi_second_hour.net + EXCLUDED.net, dirty = true, version = kpi_second_hour.version + 1";

/// Merges a chunk's per-second counts into the minute rows (read and rewritten under
/// lock) and adds their net change to the hours, which are marked for their peak to be
/// recomputed.
async fn add_seconds<C: ConnectionTrait>(db: &C, chunk: &mut Chunk) -> Result<(), DbErr> {
    let mut minutes = minutes(chunk);
    if minutes.is_empty() {
        return Ok(());
    }
    let mut hours: BTreeMap<(u32, i64), i64> = BTreeMap::new();
    for ((source, minute), seconds) in &minutes {
        *hours.entry((*source, minute.div_euclid(3600) * 3600)).or_default() +=
            seconds.values().map(|(delta, _)| delta).sum::<i64>();
    }
    let sources: Vec<String> = minutes.keys().map(|(s, _)| chunk.names.get(*s).to_string()).collect();
    let starts: Vec<DateTime<Utc>> = minutes.keys().map(|(_, m)| time(*m)).collect();
    let folded = db
        .query_all_raw(statement(db, READ_MINUTES.to_string(), vec![sources.into(), starts.into()]))
        .await?;
    for row in folded {
        let source: String = row.try_get("", "source")?;
        let minute: DateTime<Utc> = row.try_get("", "minute")?;
        let slots: Vec<i16> = row.try_get("", "slots")?;
        let delta: Vec<i32> = row.try_get("", "delta")?;
        let ends_on: Vec<i32> = row.try_get("", "ends_on")?;
        let seconds = minutes.entry((chunk.names.id(&source), minute.timestamp())).or_default();
        for ((slot, d), e) in slots.into_iter().zip(delta).zip(ends_on) {
            let second = seconds.entry(slot).or_default();
            second.0 += i64::from(d);
            second.1 += i64::from(e);
        }
    }
    let (mut sources, mut starts, mut offsets, mut lengths) = (vec![], vec![], vec![], vec![]);
    let (mut slots, mut deltas, mut ends) = (Vec::<i16>::new(), Vec::<i32>::new(), Vec::<i32>::new());
    for ((source, minute), seconds) in minutes {
        sources.push(chunk.names.get(source).to_string());
        starts.push(time(minute));
        offsets.push(i32::try_from(slots.len()).unwrap_or(i32::MAX));
        lengths.push(i32::try_from(seconds.len()).unwrap_or(i32::MAX));
        for (slot, (delta, ends_on)) in seconds {
            slots.push(slot);
            deltas.push(i32::try_from(delta).unwrap_or(i32::MAX));
            ends.push(i32::try_from(ends_on).unwrap_or(i32::MAX));
        }
    }
    let values = vec![
        sources.into(),
        starts.into(),
        slots.into(),
        deltas.into(),
        ends.into(),
        offsets.into(),
        lengths.into(),
    ];
    db.execute_raw(statement(db, WRITE_MINUTES.to_string(), values)).await?;
    let (mut sources, mut starts, mut nets) = (vec![], vec![], vec![]);
    for ((source, hour), net) in hours {
        sources.push(chunk.names.get(source).to_string());
        starts.push(time(hour));
        nets.push(net);
    }
    db.execute_raw(statement(db, ADD_HOURS.to_string(), vec![sources.into(), starts.into(), nets.into()]))
        .await
        .map(drop)
}

/// Fold rounds between two passes over the out-of-date peak summaries.
const SETTLE_EVERY: u64 = 10;

/// How often the folder looks for a pause in ingest between two timed folds.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Pending rows (batches) folded per statement.
const FOLD_CHUNK: i64 = 200;

/// Folds up to [`FOLD_CHUNK`] pending rows in one transaction (a savepoint when `db` is
/// already one); returns how many it folded. Folds exclude each other for the minute rows
/// they rewrite: a transaction-scoped advisory lock, taken once the chunk is deleted (so a
/// rebuild, which locks `kpi_pending` first, always waits for a fold or is waited for).
async fn fold_chunk<C: ConnectionTrait + TransactionTrait>(db: &C) -> Result<i64, DbErr> {
    let txn = db.begin().await?;
    let mut chunk = pending::take(&txn, FOLD_CHUNK).await?;
    if chunk.rows == 0 {
        txn.commit().await?;
        return Ok(0);
    }
    txn.execute_unprepared("SELECT pg_advisory_xact_lock(hashtext('cdr-rollup-fold'))").await?;
    let mut lap = std::time::Instant::now();
    let mut took = |what: &'static str, rows: usize| {
        debug!(what, rows, ms = lap.elapsed().as_secs_f64() * 1000.0, "fold step");
        lap = std::time::Instant::now();
    };
    took("take", chunk.groups.len());
    for cuboid in &CUBOIDS {
        let cells = cells(cuboid, &chunk);
        let n = cells.len();
        add_cells(&txn, cuboid, cells, &chunk).await?;
        took(cuboid.table, n);
    }
    add_seconds(&txn, &mut chunk).await?;
    took("seconds", chunk.events.len());
    let attempts: i64 = chunk.groups.iter().map(|g| g.sums[0]).sum();
    txn.execute_raw(statement(
        &txn,
        "UPDATE kpi_totals SET attempts = attempts + $1 WHERE id = 1".to_string(),
        vec![attempts.into()],
    ))
    .await?;
    crate::crash::point("rollup-fold-before-commit");
    txn.commit().await?;
    Ok(chunk.rows)
}

/// Folds everything pending on `db`, a chunk per transaction; returns the pending rows folded.
pub async fn fold_all<C: ConnectionTrait + TransactionTrait>(db: &C) -> Result<u64, DbErr> {
    let mut total = 0;
    loop {
        let folded = fold_chunk(db).await?;
        total += u64::try_from(folded).unwrap_or(0);
        if folded < FOLD_CHUNK {
            return Ok(total);
        }
    }
}

/// Moves pending rollup sums into the cuboids, one process at a time (a Redis lease, held
/// and renewed like the sweeper's).
#[derive(Clone)]
pub struct Folder {
    pub db: DatabaseConnection,
    pub jobs: crate::state::JobStore,
    pub holder: String,
    /// Where ingest's backlog is read, when the folder should yield to it.
    pub ingest: Option<IngestQueue>,
}

/// The ingest queue a folder yields to: while batches wait in it, storing them comes first.
#[derive(Clone)]
pub struct IngestQueue {
    pub publisher: crate::queue::Publisher,
    pub queue: String,
}

impl IngestQueue {
    /// The ingest queue of `publisher`'s deployment.
    pub fn of(publisher: crate::queue::Publisher) -> Self {
        let queue = crate::job::queue_of::<crate::ingest::IngestJob>(&publisher);
        IngestQueue { publisher, queue }
    }
}

/// When a folder folds.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// Between two timed folds.
    pub every: Duration,
    /// Also fold as soon as ingest pauses.
    pub on_pause: bool,
    /// Pending rows (batches) from which the folder folds even while ingest has a backlog.
    /// Where folding starts, not a cap: beside a full queue the fold gets a small share of
    /// the cores, so pending rows can keep growing until the backlog clears.
    pub max_pending: i64,
}

impl Folder {
    pub fn new(db: DatabaseConnection, jobs: crate::state::JobStore) -> Self {
        Folder { db, jobs, holder: crate::new_job_id(), ingest: None }
    }

    /// The same folder, yielding to ingest's backlog in `ingest`.
    pub fn yielding_to(self, ingest: IngestQueue) -> Self {
        Folder { ingest: Some(ingest), ..self }
    }

    /// Whether ingest has batches waiting that no worker has taken yet. Folding then would
    /// take the cores storing needs; the sums wait, exact, in `kpi_pending` (every reader
    /// adds them) until the backlog clears or [`Cadence::max_pending`] batches are pending.
    async fn ingest_is_behind(&self) -> bool {
        let Some(ingest) = &self.ingest else { return false };
        match ingest.publisher.queue_depth(&ingest.queue).await {
            Ok(waiting) => waiting > 0,
            Err(e) => {
                debug!(error = %e, "ingest backlog unknown; folding");
                false
            }
        }
    }

    /// Folds everything pending now; returns the pending rows folded.
    pub async fn fold_all(&self) -> Result<u64, DbErr> {
        fold_all(&self.db).await
    }

    /// Folds every `every` (and, with `on_pause`, as soon as ingest pauses) until `stop`
    /// resolves, while it holds the lease; while ingest has a backlog, only once
    /// `max_pending` batches are pending.
    ///
    /// Between timed folds it looks at how many batches are pending every [`LOOK_EVERY`]:
    /// when some are and none came since the last look, ingest has paused (a load ended, a
    /// quiet spell), and folding them now costs no merging that waiting would have bought.
    /// A steady ingest is folded every `every`, so its cells gather several batches' calls.
    pub async fn run(self, cadence: Cadence, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let Cadence { every, on_pause, max_pending } = cadence;
        let ttl = (every * 10).max(Duration::from_secs(30));
        let look = if on_pause { LOOK_EVERY.min(every) } else { every };
        let mut rounds: u64 = 0;
        let mut last_fold = tokio::time::Instant::now();
        let mut last_seen: Option<i64> = None;
        // Whether this folder held the lease at its last fold: only the holder looks for
        // pauses, so a pool of workers does not poll the pending table once each.
        let mut holding = true;
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(look) => {}
            }
            if last_fold.elapsed() < every {
                if !on_pause || !holding {
                    continue;
                }
                let seen = pending::count(&self.db).await.ok();
                let paused = matches!((seen, last_seen), (Some(n), Some(before)) if n > 0 && n == before);
                last_seen = seen;
                if !paused {
                    continue;
                }
            }
            if self.ingest_is_behind().await {
                let pending = pending::count(&self.db).await.unwrap_or(i64::MAX);
                if pending < max_pending {
                    debug!(pending, "ingest has a backlog; fold postponed");
                    last_fold = tokio::time::Instant::now();
                    continue;
                }
            }
            last_fold = tokio::time::Instant::now();
            last_seen = None;
            let lease = self.jobs.hold_lease("rollup-fold", &self.holder, ttl).await;
            holding = !matches!(lease, Ok(false));
            match lease {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    warn!(error = %e, "could not take the rollup lease; folding anyway");
                }
            }
            match self.fold_all().await {
                Ok(0) => {}
                Ok(n) => info!(pending = n, "rollup sums folded"),
                Err(e) => warn!(error = %e, "rollup fold failed; pending sums wait for the next one"),
            }
            // Every tenth round, bounded: hours a busy ingest keeps changing would otherwise be
            // recomputed at every fold, and readers use the seconds of hours not settled yet.
            rounds += 1;
            if rounds.is_multiple_of(SETTLE_EVERY) {
                match super::peak::settle_hours(&self.db, 4).await {
                    Ok(0) => {}
                    Ok(n) => info!(hours = n, "peak concurrency summaries brought up to date"),
                    Err(e) => warn!(error = %e, "peak concurrency summaries not brought up to date"),
                }
            }
        }
        if let Err(e) = self.jobs.release_lease("rollup-fold", &self.holder).await {
            warn!(error = %e, "could not release the rollup lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollups::pending::{Event, Group};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn every_cuboid_dimension_is_one_a_pending_group_carries() {
        for c in &CUBOIDS {
            assert_eq!(positions(c).len(), c.key().len() - 1, "{}", c.table);
            assert!(c.key().len() - 1 <= MAX_DIMS, "{}", c.table);
        }
    }

    #[test]
    fn groups_add_up_into_each_cuboids_buckets_and_dimensions() {
        let mut chunk = Chunk::default();
        let [a, b, out, answered, busy, none] =
            ["a", "b", "out", "ANSWERED", "BUSY", ""].map(|n| chunk.names.id(n));
        let group = |minute: &str, source, disposition, attempts| Group {
            minute: at(minute),
            dims: [source, out, disposition, none, none, none],
            sums: [attempts, attempts, 10 * attempts, 20 * attempts, 0, 0, 0, 0],
        };
        chunk.groups = vec![
            group("2026-03-01T10:05:00Z", a, answered, 2),
            group("2026-03-01T10:05:00Z", a, answered, 3),
            group("2026-03-01T10:59:00Z", a, answered, 1),
            group("2026-03-01T11:00:00Z", a, busy, 4),
            group("2026-03-01T10:05:00Z", b, answered, 7),
        ];
        let find = |table: &str| CUBOIDS.iter().find(|c| c.table == table).expect("cuboid");
        let minute = cells(find("kpi_minute"), &chunk);
        assert_eq!(minute.len(), 4);
        let key = (at("2026-03-01T10:05:00Z").timestamp(), [a, out, answered, u32::MAX, u32::MAX]);
        assert_eq!(minute[&key], [5, 5, 50, 100, 0, 0, 0, 0]);
        let hour = cells(find("kpi_hour"), &chunk);
        let key = (at("2026-03-01T10:00:00Z").timestamp(), [a, out, answered, u32::MAX, u32::MAX]);
        assert_eq!(hour[&key][0], 6, "10:05 and 10:59 share an hour");
        let day = cells(find("kpi_day"), &chunk);
        assert_eq!(day.values().map(|s| s[0]).sum::<i64>(), 17);
        assert_eq!(day.len(), 3, "by source and disposition");
        let account = cells(find("kpi_account_hour"), &chunk);
        let key = (at("2026-03-01T10:00:00Z").timestamp(), [none, a, out, answered, u32::MAX]);
        assert_eq!(account[&key][0], 6, "the account leads the key");
    }

    #[test]
    fn seconds_are_kept_per_source_and_over_all_sources_by_minute() {
        let mut chunk = Chunk::default();
        let [a, b] = ["a", "b"].map(|n| chunk.names.id(n));
        let event =
            |source, second: &str, delta, ends_on| Event { source, second: at(second), delta, ends_on };
        chunk.events = vec![
            event(a, "2026-03-01T10:05:07Z", 1, 0),
            event(b, "2026-03-01T10:05:07Z", 1, 0),
            event(a, "2026-03-01T10:06:00Z", -1, 1),
            event(a, "2026-03-01T10:05:07Z", -1, 0),
        ];
        let minutes = minutes(&mut chunk);
        let all = chunk.names.id("");
        let t = |s: &str| at(s).timestamp();
        assert_eq!(
            minutes[&(a, t("2026-03-01T10:05:00Z"))],
            BTreeMap::from([(7, (0, 0))]),
            "a start and an end"
        );
        assert_eq!(minutes[&(all, t("2026-03-01T10:05:00Z"))], BTreeMap::from([(7, (1, 0))]));
        assert_eq!(minutes[&(all, t("2026-03-01T10:06:00Z"))], BTreeMap::from([(0, (-1, 1))]));
        assert_eq!(minutes.len(), 5);
    }
}
