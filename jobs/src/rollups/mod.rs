//! KPI rollups: sums of the stored CDRs per time bucket over the dimensions `/stats` filters
//! by, kept exactly in step with `cdrs`, so KPIs over any window cost a few thousand rows
//! whatever the number of calls in it.
//!
//! The ingest transaction that stores a batch appends the sums of the rows it actually
//! inserted to `kpi_pending`, one row of parallel arrays per batch over every dimension
//! (duplicates add nothing; a redelivered job rolls back with its sums), and
//! [`fold::Folder`] moves pending sums into the [`CUBOIDS`] in transactions that delete
//! what they add. A sum is therefore counted once, whatever crashes where, and readers that
//! add `kpi_pending` to a cuboid see exactly the rows committed. [`read`] answers `/stats`.

pub mod append;
pub mod fold;
pub mod peak;
pub mod pending;
pub mod plan;
pub mod read;
pub mod rebuild;

/// A rollup table: its time granularity and the dimensions it keeps, in key order (the
/// bucket goes after the leading dimensions named in `lead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cuboid {
    pub table: &'static str,
    pub level: Level,
    /// Dimensions before the bucket in the primary key (a reader filtering on them reads
    /// one contiguous range).
    pub lead: &'static [&'static str],
    /// Dimensions after the bucket.
    pub rest: &'static [&'static str],
}

/// How finely a cuboid cuts time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Minute,
    Hour,
    Day,
}

impl Level {
    pub fn unit(self) -> &'static str {
        match self {
            Level::Minute => "minute",
            Level::Hour => "hour",
            Level::Day => "day",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Level::Minute => 60,
            Level::Hour => 3600,
            Level::Day => 86_400,
        }
    }

    /// The next finer level, if any.
    pub fn finer(self) -> Option<Level> {
        match self {
            Level::Minute => None,
            Level::Hour => Some(Level::Minute),
            Level::Day => Some(Level::Hour),
        }
    }
}

const CALL_DIMS: &[&str] = &["source", "direction", "disposition"];

/// Every rollup table the fold fills. Queries without an account code read the first three
/// (tens of rows a bucket); queries for one account read its own days and hours.
pub const CUBOIDS: [Cuboid; 6] = [
    Cuboid { table: "kpi_minute", level: Level::Minute, lead: &[], rest: CALL_DIMS },
    Cuboid { table: "kpi_hour", level: Level::Hour, lead: &[], rest: CALL_DIMS },
    Cuboid { table: "kpi_day", level: Level::Day, lead: &[], rest: CALL_DIMS },
    Cuboid { table: "kpi_account_hour", level: Level::Hour, lead: &["account_code"], rest: CALL_DIMS },
    Cuboid { table: "kpi_account_day", level: Level::Day, lead: &["account_code"], rest: CALL_DIMS },
    Cuboid {
        table: "kpi_country_hour",
        level: Level::Hour,
        lead: &["dest_country", "dest_type"],
        rest: CALL_DIMS,
    },
];

impl Cuboid {
    /// The key columns in order, the bucket among them.
    pub fn key(&self) -> Vec<&'static str> {
        self.lead.iter().copied().chain(["bucket"]).chain(self.rest.iter().copied()).collect()
    }

    /// The key as selected from per-minute sums: the minute `bucket` cut to this cuboid's.
    pub fn key_from_minutes(&self) -> Vec<String> {
        self.key()
            .into_iter()
            .map(|c| match c {
                "bucket" => format!("date_trunc('{}', bucket, 'UTC') AS bucket", self.level.unit()),
                other => other.to_string(),
            })
            .collect()
    }

    /// `1, 2, …` for every key column, for `GROUP BY` and `ORDER BY`.
    pub fn key_positions(&self) -> String {
        (1..=self.key().len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// The sums every cuboid keeps.
/// Calls priced and their prices on each side come last. Prices are summed in millionths
/// (costs are kept to six places): exact, and integer sums cost the fold far less than
/// `NUMERIC` ones.
pub const SUM_COLUMNS: [&str; 8] =
    ["attempts", "effective", "billsec", "duration", "sell_rated", "buy_rated", "sell_micros", "buy_micros"];

/// The sums of [`SUM_COLUMNS`] that are money, in millionths.
pub const MONEY_COLUMNS: [&str; 2] = ["sell_micros", "buy_micros"];

/// The rollup dimensions and sums of a set of CDR rows named `rows`, grouped by the first
/// eight output columns ([`DIMENSIONS`]): minute, source, direction, disposition, account
/// code, destination prefix, destination country and number type. What ingest appends for
/// the rows it stores ([`append::BatchSums`] works it out in the worker), in SQL over stored
/// rows (for checks and rebuilds from `cdrs`).
pub const SUMS_OF_ROWS: &str = "date_trunc('minute', start_time, 'UTC') AS bucket, source, coalesce(direction, '') AS direction, \
     disposition, coalesce(account_code, '') AS account_code, \
     coalesce(substring(regexp_replace(dest_number, '^(\\+|00)', '') from '^[0-9]{1,3}'), '') AS dest_prefix, \
     coalesce(dest_country, '') AS dest_country, coalesce(dest_type, '') AS dest_type, \
     count(*) AS attempts, count(*) FILTER (WHERE disposition IN ('ANSWERED', 'BUSY', 'NO ANSWER') OR hangup_cause = 'CALL_REJECTED') AS effective, \
     coalesce(sum(billsec), 0) AS billsec, coalesce(sum(duration), 0) AS duration, \
     count(*) FILTER (WHERE sell_rating = 'rated') AS sell_rated, count(*) FILTER (WHERE buy_rating = 'rated') AS buy_rated, \
     coalesce(sum((sell_cost * 1000000)::int8), 0) AS sell_micros, coalesce(sum((buy_cost * 1000000)::int8), 0) AS buy_micros";

/// Pending sums as rows (each pending row holds one batch's sums as parallel arrays). A row
/// names its dimensions by subscripts of its `names` (seven per group, in the order of
/// [`append::PENDING_DIMS`]) or, in the earlier shape re-rating still writes, spells them out;
/// rows appended before money was summed have no money arrays: their sums read as zero.
///
/// A row's `names` and `dim_ids` are copied once (`|| '{}'`, in a `LATERAL` subquery that
/// `OFFSET 0` keeps from being inlined) before they are subscripted: they are stored
/// compressed, and PostgreSQL decompresses a stored array at every subscript of it. Over
/// 1,000 pending batches of a backfill (a million groups, seven subscripts each) a read took
/// 14 s that way and 0.4 s with the copy. Only the rows meeting `within`, a condition on the
/// pending row `p` ([`overlapping`] or `TRUE`), are unnested.
pub fn pending_rows(within: &str) -> String {
    format!(
        "SELECT u.job_id, u.bucket, \
     coalesce(u.source, u.names[u.dim_ids[u.n * 7 - 6]], '') AS source, \
     coalesce(u.direction, u.names[u.dim_ids[u.n * 7 - 5]], '') AS direction, \
     coalesce(u.disposition, u.names[u.dim_ids[u.n * 7 - 4]], '') AS disposition, \
     coalesce(u.account_code, u.names[u.dim_ids[u.n * 7 - 3]], '') AS account_code, \
     coalesce(u.dest_prefix, u.names[u.dim_ids[u.n * 7 - 2]], '') AS dest_prefix, \
     coalesce(u.dest_country, u.names[u.dim_ids[u.n * 7 - 1]], '') AS dest_country, \
     coalesce(u.dest_type, u.names[u.dim_ids[u.n * 7]], '') AS dest_type, \
     u.attempts, u.effective, u.billsec, u.duration, coalesce(u.sell_rated, 0) AS sell_rated, \
     coalesce(u.buy_rated, 0) AS buy_rated, coalesce(u.sell_micros, 0) AS sell_micros, coalesce(u.buy_micros, 0) AS buy_micros \
     FROM (SELECT p.job_id, d.names, d.dim_ids, u.* FROM kpi_pending p \
     CROSS JOIN LATERAL (SELECT p.names || '{{}}'::text[] AS names, p.dim_ids || '{{}}'::int4[] AS dim_ids OFFSET 0) d, \
     unnest(p.bucket, p.source, p.direction, p.disposition, p.account_code, p.dest_prefix, \
            p.attempts, p.effective, p.billsec, p.duration, p.sell_rated, p.buy_rated, p.sell_micros, p.buy_micros, \
            p.dest_country, p.dest_type) WITH ORDINALITY \
     AS u(bucket, source, direction, disposition, account_code, dest_prefix, attempts, effective, billsec, duration, \
          sell_rated, buy_rated, sell_micros, buy_micros, dest_country, dest_type, n) WHERE {within}) u"
    )
}

/// `GROUP BY` positions of the dimensions [`SUMS_OF_ROWS`] derives.
pub const DIMENSIONS: &str = "1, 2, 3, 4, 5, 6, 7, 8";

/// The per-second call counts of the CDRs in `cdrs` matching `{where}` (see [`events_of_rows`]).
const EVENTS_TEMPLATE: &str = "SELECT scope AS source, second, sum(delta)::int AS delta, sum(ends_on)::int AS ends_on FROM ( \
     SELECT source, date_trunc('second', start_time) AS second, 1 AS delta, 0 AS ends_on FROM cdrs WHERE {where} \
     UNION ALL \
     SELECT source, date_trunc('second', e), -1, (e = date_trunc('second', e) AND e > start_time)::int \
     FROM (SELECT source, start_time, coalesce(end_time, start_time + duration * interval '1 second') AS e \
           FROM cdrs WHERE {where}) x \
     ) ev CROSS JOIN LATERAL (VALUES (ev.source), ('')) s(scope) GROUP BY 1, 2";

/// Peak concurrency's input, derived from stored rows as ingest derives it from a batch: for
/// each second (session time zone UTC) in which calls start or end, per source and for all
/// sources together (source `''`), the calls starting minus those ending (`delta`) and those
/// ending exactly as the second begins, zero-length calls aside (`ends_on`). A call ends at
/// its end time, or its start plus its duration when the switch gave no end time.
pub fn events_of_rows(condition: &str) -> String {
    EVENTS_TEMPLATE.replace("{where}", condition)
}

/// Per-second counts (`source`, `second`, `delta`, `ends_on`, from `events`) packed into
/// `kpi_second_minute` rows: one per source and minute, its seconds' offsets in the minute
/// (`slots`, ascending) and their counts as parallel arrays, and the minute's net change
/// (`net`, not stored: hours are summed from it). A minute row is what the fold
/// rewrites and a reader fetches, so calls spread thinly over time cost a row a minute, not
/// two a call.
pub fn minute_rows(events: &str) -> String {
    format!(
        "SELECT source, date_trunc('minute', second, 'UTC') AS minute, \
         array_agg(mod(mod(extract(epoch FROM second)::int8, 60) + 60, 60)::int2 ORDER BY second) AS slots, \
         array_agg(delta ORDER BY second) AS delta, array_agg(ends_on ORDER BY second) AS ends_on, \
         sum(delta) AS net FROM ({events}) e GROUP BY 1, 2"
    )
}

/// The per-second counts kept in `kpi_second_minute` as rows (`source`, `second`, `delta`,
/// `ends_on`), for the minute rows `k` matching `condition`.
pub fn second_rows(condition: &str) -> String {
    format!(
        "SELECT k.source, k.minute + u.slot * interval '1 second' AS second, u.delta, u.ends_on \
         FROM kpi_second_minute k, unnest(k.slots, k.delta, k.ends_on) AS u(slot, delta, ends_on) WHERE {condition}"
    )
}

/// Pending per-second counts as rows, per source and for all sources (`''`). Pending rows
/// keep them per source only (the fold derives the sum over sources); entries for `''` that
/// versions before this one appended are skipped, since they equal that sum. A row's `names`
/// is copied once before it is subscripted, as in [`pending_rows`], and only the rows meeting
/// `within` are read.
pub fn pending_events(within: &str) -> String {
    format!(
        "SELECT s.scope AS source, u.second, u.delta, u.ends_on FROM kpi_pending p \
     CROSS JOIN LATERAL (SELECT p.names || '{{}}'::text[] AS names OFFSET 0) d, \
     unnest(p.ev_source, p.ev_source_ids, p.ev_second, p.ev_delta, p.ev_ends_on) AS e(spelled, id, second, delta, ends_on) \
     CROSS JOIN LATERAL (SELECT coalesce(e.spelled, d.names[e.id], '') AS source, e.second, e.delta, e.ends_on) u \
     CROSS JOIN LATERAL (VALUES (u.source), ('')) s(scope) WHERE u.source <> '' AND {within}"
    )
}

/// The condition that pending row `p` may count calls in the window from `from` to `to`
/// (SQL expressions; `None`, an open side). A row's span covers every minute it counts and
/// every second its calls start and end in, so a row that ends before the window holds only
/// calls over before it: nothing in the window, and a net change of zero to the calls in
/// progress when it opens. Rows with no span are always read.
pub fn overlapping(from: Option<&str>, to: Option<&str>) -> String {
    let mut conds = Vec::new();
    if let Some(from) = from {
        conds.push(format!("(p.last_at IS NULL OR p.last_at > {from})"));
    }
    if let Some(to) = to {
        conds.push(format!("(p.first_at IS NULL OR p.first_at < {to})"));
    }
    if conds.is_empty() { "TRUE".to_string() } else { conds.join(" AND ") }
}

/// Every CDR stored, as the rollups count them: folded plus pending. Cheap at any size.
pub const TOTAL_SQL: &str = "SELECT ((SELECT attempts FROM kpi_totals WHERE id = 1) + \
     (SELECT coalesce(sum(a), 0) FROM kpi_pending, unnest(attempts) AS a))::int8 AS total";

/// Why KPIs could not be given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// A request the client must change.
    #[error("{}: {}", .0.parameter, .0.reason)]
    Parameter(crate::search::ParamError),
    #[error("{0}")]
    Search(#[from] crate::search::SearchError),
}

/// KPIs for `request`: from the rollups when they can answer it exactly, else from the
/// search index with the reason in `fallback_reason`. The one path `/stats` and alert rules
/// take, so both always give the same figures.
pub async fn answer(
    rollups: &read::RollupStats,
    search: &crate::search::SearchIndex,
    request: &crate::search::StatsRequest,
) -> Result<crate::search::Stats, AnswerError> {
    let reason = match plan::plan(request) {
        Ok(plan) => match rollups.stats(request, &plan).await {
            Ok(stats) => return Ok(stats),
            Err(read::RollupError::Parameter(e)) => return Err(AnswerError::Parameter(e)),
            Err(read::RollupError::Database(e)) => {
                tracing::warn!(error = %e, "rollups unreadable; KPIs answered from the index");
                "the rollups could not be read (PostgreSQL unavailable)".to_string()
            }
        },
        Err(reason) => reason,
    };
    let mut stats = search.stats(request).await?;
    stats.fallback_reason = Some(reason);
    Ok(stats)
}
