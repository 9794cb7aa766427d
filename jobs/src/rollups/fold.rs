//! Folding pending rollup sums into the cuboids.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use std::time::Duration;
use tracing::{info, warn};

/// What `cuboid` is summed from: the group of the coarsest cuboid before it with the same
/// dimensions and a finer level (the fewest rows), else the pending sums themselves.
fn summed_from(cuboid: &super::Cuboid) -> String {
    super::CUBOIDS
        .iter()
        .take_while(|c| c.table != cuboid.table)
        .filter(|c| c.lead == cuboid.lead && c.rest == cuboid.rest && c.level < cuboid.level)
        .last()
        .map_or_else(|| "sums".to_string(), |c| format!("{}_sums", c.table))
}

/// The pending sums regrouped into one cuboid (hashed, then only the few groups sorted), and
/// their upsert in key order, so concurrent folders lock rows in the same order.
fn upsert(cuboid: &super::Cuboid) -> String {
    let sums = super::SUM_COLUMNS;
    let table = cuboid.table;
    format!(
        ", {table}_sums AS MATERIALIZED (\n    SELECT {select}, {summed}\n    FROM {from} GROUP BY {pos}\n\
         ), {table} AS (\n    INSERT INTO {table} ({key}, {sums})\n    SELECT * FROM {table}_sums ORDER BY {pos}\n\
         ON CONFLICT ({key}) DO UPDATE SET {set}\n)",
        key = cuboid.key().join(", "),
        sums = sums.join(", "),
        select = cuboid.key_from_minutes().join(", "),
        summed = sums.iter().map(|s| format!("sum({s}) AS {s}")).collect::<Vec<_>>().join(", "),
        from = summed_from(cuboid),
        pos = cuboid.key_positions(),
        set = sums.iter().map(|s| format!("{s} = {table}.{s} + EXCLUDED.{s}")).collect::<Vec<_>>().join(", "),
    )
}

/// One statement: takes up to `$1` pending rows, adds them to every cuboid and to the total,
/// and deletes them. Two folders running at once cannot count a row twice: a row is only
/// added by the statement whose `DELETE` removed it.
///
/// The pending sums are grouped once by every dimension a cuboid keeps (the destination
/// prefix is not one yet), each cuboid from the finest group it can use. Per-second counts
/// are pending per source; the count over all sources (`''`) is their sum, derived here,
/// and a minute's seconds already folded are merged with the new ones slot by slot.
/// Entries for `''` that versions before this one appended are skipped, not added twice.
static FOLD_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let upserts: String = super::CUBOIDS.iter().map(upsert).collect();
    let sums = super::SUM_COLUMNS;
    format!(
        r#"
WITH moved AS (
    DELETE FROM kpi_pending WHERE ctid = ANY (ARRAY(SELECT ctid FROM kpi_pending LIMIT $1))
    RETURNING bucket, source, direction, disposition, account_code, attempts, effective, billsec, duration,
              sell_rated, buy_rated, sell_micros, buy_micros, dest_country, dest_type, ev_source, ev_second, ev_delta, ev_ends_on
), sums AS MATERIALIZED (
    SELECT u.account_code, u.bucket, u.source, u.direction, u.disposition,
           coalesce(u.dest_country, '') AS dest_country, coalesce(u.dest_type, '') AS dest_type, {summed}
    FROM moved m, unnest(m.bucket, m.source, m.direction, m.disposition, m.account_code,
                         m.attempts, m.effective, m.billsec, m.duration,
                         m.sell_rated, m.buy_rated, m.sell_micros, m.buy_micros, m.dest_country, m.dest_type)
        AS u(bucket, source, direction, disposition, account_code, attempts, effective, billsec, duration,
             sell_rated, buy_rated, sell_micros, buy_micros, dest_country, dest_type)
    WHERE u.bucket IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6, 7
), ev_sources AS MATERIALIZED (
    SELECT u.source, u.second, sum(u.delta)::int AS delta, sum(u.ends_on)::int AS ends_on
    FROM moved m, unnest(m.ev_source, m.ev_second, m.ev_delta, m.ev_ends_on) AS u(source, second, delta, ends_on)
    WHERE u.source <> ''
    GROUP BY 1, 2
), ev AS MATERIALIZED (
    SELECT source, second, delta, ends_on FROM ev_sources
    UNION ALL
    SELECT '', second, sum(delta)::int, sum(ends_on)::int FROM ev_sources GROUP BY 2
), ev_minutes AS MATERIALIZED (
    {minutes}
), seconds AS (
    INSERT INTO kpi_second_minute (source, minute, slots, delta, ends_on)
    SELECT source, minute, slots, delta, ends_on FROM ev_minutes ORDER BY 1, 2
    ON CONFLICT (source, minute) DO UPDATE SET (slots, delta, ends_on) = (
        SELECT array_agg(slot ORDER BY slot), array_agg(delta ORDER BY slot), array_agg(ends_on ORDER BY slot)
        FROM (SELECT slot, sum(delta)::int AS delta, sum(ends_on)::int AS ends_on
              FROM unnest(kpi_second_minute.slots || EXCLUDED.slots, kpi_second_minute.delta || EXCLUDED.delta,
                          kpi_second_minute.ends_on || EXCLUDED.ends_on) AS u(slot, delta, ends_on)
              GROUP BY slot) merged)
), hours AS (
    INSERT INTO kpi_second_hour (source, bucket, net)
    SELECT * FROM (SELECT source, date_trunc('hour', minute, 'UTC') AS bucket, sum(net) AS net FROM ev_minutes GROUP BY 1, 2) h
    ORDER BY 1, 2
    ON CONFLICT (source, bucket) DO UPDATE SET
        net = kpi_second_hour.net + EXCLUDED.net, dirty = true, version = kpi_second_hour.version + 1
){upserts}
UPDATE kpi_totals SET attempts = kpi_totals.attempts + m.attempts
FROM (SELECT (SELECT coalesce(sum(attempts), 0) FROM sums) AS attempts, (SELECT count(*) FROM moved) AS pending) m
WHERE kpi_totals.id = 1
RETURNING m.pending
"#,
        // Money arrays are absent from rows of earlier versions: zero, not null.
        summed =
            sums.iter().map(|s| format!("coalesce(sum(u.{s}), 0) AS {s}")).collect::<Vec<_>>().join(", "),
        minutes = super::minute_rows("SELECT source, second, delta, ends_on FROM ev"),
    )
});

/// Fold rounds between two passes over the out-of-date peak summaries.
const SETTLE_EVERY: u64 = 10;

/// Pending rows (batches) folded per statement.
const FOLD_CHUNK: i64 = 200;

/// Folds up to [`FOLD_CHUNK`] pending rows in one statement on `db` (a connection or a
/// transaction); returns how many it folded.
async fn fold_chunk<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            FOLD_SQL.as_str(),
            [FOLD_CHUNK.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get("", "pending")).transpose()?.unwrap_or(0))
}

/// Folds everything pending on `db`, a chunk per statement; returns the pending rows folded.
pub async fn fold_all<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
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
}

impl Folder {
    pub fn new(db: DatabaseConnection, jobs: crate::state::JobStore) -> Self {
        Folder { db, jobs, holder: crate::new_job_id() }
    }

    /// Folds everything pending now; returns the pending rows folded.
    pub async fn fold_all(&self) -> Result<u64, DbErr> {
        fold_all(&self.db).await
    }

    /// Folds every `every` until `stop` resolves, while it holds the lease.
    pub async fn run(self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let ttl = (every * 10).max(Duration::from_secs(30));
        let mut rounds: u64 = 0;
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(every) => {}
            }
            match self.jobs.hold_lease("rollup-fold", &self.holder, ttl).await {
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

    #[test]
    fn coarser_cuboids_are_summed_from_the_finest_group_with_their_dimensions() {
        let from =
            |t: &str| summed_from(super::super::CUBOIDS.iter().find(|c| c.table == t).expect("cuboid"));
        assert_eq!(from("kpi_minute"), "sums");
        assert_eq!(from("kpi_hour"), "kpi_minute_sums");
        assert_eq!(from("kpi_day"), "kpi_hour_sums");
        assert_eq!(from("kpi_account_hour"), "sums");
        assert_eq!(from("kpi_country_hour"), "sums");
        for c in super::super::CUBOIDS {
            let group = format!("{}_sums AS MATERIALIZED", c.table);
            let insert = format!("INSERT INTO {} (", c.table);
            assert!(FOLD_SQL.contains(&group) && FOLD_SQL.contains(&insert), "{} is not folded", c.table);
        }
    }
}
