//! `/stats` answered from the rollups: one query over the pieces of a [`Plan`] plus the sums
//! not folded yet, regrouped into the histogram's buckets, so the figures are exactly those
//! of the committed rows and cost the same at a million CDRs as at a billion.

use super::plan::{Family, Plan};
use super::{MONEY_COLUMNS, SUM_COLUMNS, overlapping, pending_rows};
use crate::search::{AnsweredBy, Breakdown, HistogramBucket, ParamError, Stats, StatsRequest, Totals, money};
use chrono::{DateTime, Duration, Utc};
use poem_openapi::types::MaybeUndefined;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, Value};
use std::collections::BTreeMap;

/// Most histogram buckets an answer may hold, as the search engine's own default limit.
pub const MAX_HISTOGRAM_BUCKETS: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error("{0}")]
    Database(#[from] DbErr),
    /// A request the client must change (an interval too fine for the data's span).
    #[error("{}: {}", .0.parameter, .0.reason)]
    Parameter(ParamError),
}

/// Reads KPIs from the rollup tables.
#[derive(Clone)]
pub struct RollupStats {
    db: DatabaseConnection,
}

/// A statement being written, with its bound values.
#[derive(Default)]
struct Sql {
    values: Vec<Value>,
}

impl Sql {
    fn bind(&mut self, v: impl Into<Value>) -> String {
        self.values.push(v.into());
        format!("${}", self.values.len())
    }

    fn range(&mut self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Vec<String> {
        let mut conds = Vec::new();
        if let Some(f) = from {
            conds.push(format!("bucket >= {}", self.bind(f)));
        }
        if let Some(t) = to {
            conds.push(format!("bucket < {}", self.bind(t)));
        }
        conds
    }
}

fn where_clause(conds: &[String]) -> String {
    if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) }
}

/// The query for a plan: every piece and the pending sums inside the window, summed per
/// histogram bucket (or, with `key`, per value of that dimension) and disposition.
fn statement(request: &StatsRequest, plan: &Plan, key: Option<&str>) -> (String, Vec<Value>) {
    let f = &request.filters;
    let mut sql = Sql::default();
    let mut dims = Vec::new();
    if let Some(s) = &f.source {
        dims.push(format!("source = {}", sql.bind(s.clone())));
    }
    if let Some(d) = &f.direction {
        dims.push(format!("direction = {}", sql.bind(d.clone())));
    }
    if !f.dispositions.is_empty() {
        let names: Vec<String> = f.dispositions.iter().map(|d| sql.bind(d.as_str())).collect();
        dims.push(format!("disposition IN ({})", names.join(", ")));
    }
    if let Family::Account(code) = &plan.family {
        dims.push(format!("account_code = {}", sql.bind(code.clone())));
    }
    for (column, values) in [("dest_country", &f.dest_countries), ("dest_type", &f.dest_types)] {
        if !values.is_empty() {
            let names: Vec<String> = values.iter().map(|v| sql.bind(v.clone())).collect();
            dims.push(format!("{column} IN ({})", names.join(", ")));
        }
    }
    let columns = format!("{}, disposition, {}", key.unwrap_or("bucket"), SUM_COLUMNS.join(", "));
    let mut arms = Vec::new();
    for piece in &plan.pieces {
        let mut conds = dims.clone();
        conds.extend(sql.range(piece.from, piece.to));
        arms.push(format!("SELECT {columns} FROM {}{}", piece.cuboid.table, where_clause(&conds)));
    }
    let mut conds = dims;
    conds.extend(sql.range(f.from, f.to));
    let (from, to) = (f.from.map(|t| sql.bind(t)), f.to.map(|t| sql.bind(t)));
    let pending = pending_rows(&overlapping(from.as_deref(), to.as_deref()));
    arms.push(format!("SELECT {columns} FROM ({pending}) p{}", where_clause(&conds)));
    let summed: Vec<String> =
        SUM_COLUMNS.iter().map(|c| format!("coalesce(sum({c}), 0)::int8 AS {c}")).collect();
    let group = match key {
        Some(k) => format!("{k} AS key"),
        None => format!("date_trunc('{}', bucket, 'UTC') AS start", request.interval.name()),
    };
    let text = format!(
        "SELECT {group}, disposition, {} FROM ({}) x GROUP BY 1, 2",
        summed.join(", "),
        arms.join(" UNION ALL ")
    );
    (text, sql.values)
}

/// One histogram bucket's sums.
#[derive(Default, Clone, Copy)]
struct BucketSums {
    calls: u64,
    answered: u64,
    answered_billsec: u64,
    billsec: u64,
}

fn whole(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl RollupStats {
    pub fn new(db: DatabaseConnection) -> Self {
        RollupStats { db }
    }

    /// The answer to `request` by `plan`, as the search index would give it.
    pub async fn stats(&self, request: &StatsRequest, plan: &Plan) -> Result<Stats, RollupError> {
        let (text, values) = statement(request, plan, None);
        let backend = self.db.get_database_backend();
        let rows = self.db.query_all_raw(Statement::from_sql_and_values(backend, text, values)).await?;
        let answered_name = crate::cdr::Disposition::Answered.as_str();
        let mut totals = Totals::default();
        let mut duration: u64 = 0;
        let mut by_disposition: BTreeMap<String, u64> = BTreeMap::new();
        let mut buckets: BTreeMap<DateTime<Utc>, BucketSums> = BTreeMap::new();
        for row in rows {
            let start: DateTime<Utc> = row.try_get("", "start")?;
            let disposition: String = row.try_get("", "disposition")?;
            let attempts = whole(row.try_get("", "attempts")?);
            let effective = whole(row.try_get("", "effective")?);
            let billsec = whole(row.try_get("", "billsec")?);
            duration += whole(row.try_get("", "duration")?);
            totals.sell_rated += whole(row.try_get("", "sell_rated")?);
            totals.buy_rated += whole(row.try_get("", "buy_rated")?);
            let [sell, buy] = MONEY_COLUMNS;
            totals.sell_cost += rust_decimal::Decimal::new(row.try_get("", sell)?, 6);
            totals.buy_cost += rust_decimal::Decimal::new(row.try_get("", buy)?, 6);
            let answered = disposition == answered_name;
            totals.calls += attempts;
            totals.effective += effective;
            totals.billsec += billsec;
            let b = buckets.entry(start).or_default();
            b.calls += attempts;
            b.billsec += billsec;
            if answered {
                totals.answered += attempts;
                totals.answered_billsec += billsec;
                b.answered += attempts;
                b.answered_billsec += billsec;
            }
            *by_disposition.entry(disposition).or_default() += attempts;
        }
        totals.avg_duration = (totals.calls > 0).then(|| duration as f64 / totals.calls as f64);
        let histogram = histogram(request, &buckets)?;
        let mut stats =
            Stats::from_totals(totals, request.interval, histogram, by_disposition, AnsweredBy::Rollups);
        for dimension in &request.breakdowns {
            let rows = self.breakdown(request, plan, dimension).await?;
            match dimension.as_str() {
                "dest_country" => stats.by_dest_country = Some(rows),
                _ => stats.by_dest_type = Some(rows),
            }
        }
        if request.peak {
            let f = &request.filters;
            let scope = f.source.as_deref().unwrap_or("");
            stats.peak_concurrent_calls =
                MaybeUndefined::from_opt_null(super::peak::peak(&self.db, scope, f.from, f.to).await?);
        }
        Ok(stats)
    }

    /// Every value of `dimension` in the window with its calls and money, most calls first
    /// (ties by value), as the index's terms aggregation orders them.
    async fn breakdown(
        &self,
        request: &StatsRequest,
        plan: &Plan,
        dimension: &str,
    ) -> Result<Vec<Breakdown>, RollupError> {
        let (text, values) = statement(request, plan, Some(dimension));
        let backend = self.db.get_database_backend();
        let rows = self.db.query_all_raw(Statement::from_sql_and_values(backend, text, values)).await?;
        let answered_name = crate::cdr::Disposition::Answered.as_str();
        let [sell_column, buy_column] = MONEY_COLUMNS;
        let mut by_key: BTreeMap<String, (u64, u64, u64, i64, i64)> = BTreeMap::new();
        for row in rows {
            let key: String = row.try_get("", "key")?;
            let disposition: String = row.try_get("", "disposition")?;
            let attempts = whole(row.try_get("", "attempts")?);
            let e = by_key.entry(key).or_default();
            e.0 += attempts;
            if disposition == answered_name {
                e.1 += attempts;
            }
            e.2 += whole(row.try_get("", "billsec")?);
            e.3 += row.try_get::<i64>("", sell_column)?;
            e.4 += row.try_get::<i64>("", buy_column)?;
        }
        let mut out: Vec<Breakdown> = by_key
            .into_iter()
            .filter(|(_, v)| v.0 > 0)
            .map(|(key, (calls, answered, billsec, sell, buy))| {
                let (sell, buy) = (rust_decimal::Decimal::new(sell, 6), rust_decimal::Decimal::new(buy, 6));
                Breakdown {
                    key,
                    calls,
                    answered,
                    total_billsec: billsec,
                    revenue: money(sell),
                    cost: money(buy),
                    margin: money(sell - buy),
                }
            })
            .collect();
        out.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.key.cmp(&b.key)));
        Ok(out)
    }
}

/// Every bucket from the window's first to its last (both bounds given) or from the first
/// call's to the last one's, empty ones included, as the engine's `min_doc_count: 0` gives.
fn histogram(
    request: &StatsRequest,
    buckets: &BTreeMap<DateTime<Utc>, BucketSums>,
) -> Result<Vec<HistogramBucket>, RollupError> {
    let interval = request.interval;
    let f = &request.filters;
    let span = match (f.from, f.to) {
        (Some(from), Some(to)) => interval.floor(from).zip(interval.floor(to - Duration::milliseconds(1))),
        _ => buckets.keys().next().copied().zip(buckets.keys().next_back().copied()),
    };
    let Some((first, last)) = span else { return Ok(Vec::new()) };
    let too_many = || {
        RollupError::Parameter(ParamError::new(
            "interval",
            "too fine for the data's time span; choose a coarser one",
        ))
    };
    let mut out = Vec::new();
    let mut at = Some(first);
    while let Some(start) = at.filter(|s| *s <= last) {
        if out.len() >= MAX_HISTOGRAM_BUCKETS {
            return Err(too_many());
        }
        let b = buckets.get(&start).copied().unwrap_or_default();
        out.push(HistogramBucket::new(start, b.calls, b.answered, b.answered_billsec, b.billsec));
        at = interval.next(start);
    }
    Ok(out)
}
