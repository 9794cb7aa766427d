//! A batch's rollup sums as the transaction storing it appends them to `kpi_pending`.
//!
//! The sums are worked out here, in the worker, from the CDRs the batch actually inserted:
//! grouping a thousand rows by eight dimensions and packing the groups into arrays costs
//! PostgreSQL several times what it costs a hash map, and PostgreSQL's CPU is what every
//! batch waits on. They are the sums [`super::SUMS_OF_ROWS`] and [`super::events_of_rows`]
//! derive from the stored rows, value for value: times are taken at the microsecond
//! PostgreSQL keeps, prices at the six places it keeps.

use super::pending::Sums;
use crate::cdr::Cdr;
use crate::rating::{Derived, RatingStatus};
use crate::search::REJECTED_BY_CALLEE;
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt as _};
use rust_decimal::{Decimal, RoundingStrategy};
use sqlx::{Postgres, Row as _, Transaction};

/// What the rollups read from one stored CDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact<'a> {
    /// Microseconds since the epoch, as stored.
    pub start: i64,
    /// When the call ended: its end time, or its start plus its duration.
    pub end: i64,
    pub source: &'a str,
    pub direction: &'a str,
    pub disposition: &'a str,
    pub account_code: &'a str,
    pub dest_number: &'a str,
    pub dest_country: &'a str,
    pub dest_type: &'a str,
    pub billsec: i64,
    pub duration: i64,
    pub effective: bool,
    pub sell_rated: bool,
    pub buy_rated: bool,
    /// The price in millionths, when the call has one.
    pub sell_micros: Option<i64>,
    pub buy_micros: Option<i64>,
}

/// A price did not fit the sums (over 9.2 × 10¹² a call).
#[derive(Debug, thiserror::Error)]
#[error("call {call_id} of source {cdr_source}: a price of {cost} is out of the range rollups sum")]
pub struct PriceOutOfRange {
    pub cdr_source: String,
    pub call_id: String,
    pub cost: Decimal,
}

impl<'a> Fact<'a> {
    /// The facts of a CDR about to be stored with what was derived from it.
    pub fn of(cdr: &'a Cdr, derived: &'a Derived) -> Result<Self, PriceOutOfRange> {
        let start = micros(cdr.start_time);
        let end = match cdr.end_time {
            Some(t) => micros(t),
            None => start + i64::from(cdr.duration) * 1_000_000,
        };
        let price = |cost: Option<Decimal>| {
            cost.map(|c| {
                price_micros(c).ok_or_else(|| PriceOutOfRange {
                    cdr_source: cdr.source.clone(),
                    call_id: cdr.call_id.clone(),
                    cost: c,
                })
            })
            .transpose()
        };
        let disposition = cdr.disposition.as_str();
        Ok(Fact {
            start,
            end,
            source: &cdr.source,
            direction: cdr.direction.as_deref().unwrap_or(""),
            disposition,
            account_code: cdr.account_code.as_deref().unwrap_or(""),
            dest_number: &cdr.dest_number,
            dest_country: derived.dest.country.as_deref().unwrap_or(""),
            dest_type: derived.dest.kind,
            billsec: i64::from(cdr.billsec),
            duration: i64::from(cdr.duration),
            effective: is_effective(disposition, cdr.hangup_cause.as_deref()),
            sell_rated: derived.sell.status == RatingStatus::Rated,
            buy_rated: derived.buy.status == RatingStatus::Rated,
            sell_micros: price(derived.sell.cost)?,
            buy_micros: price(derived.buy.cost)?,
        })
    }
}

/// Answered, busy, unanswered or refused by the callee: the network did its part.
pub fn is_effective(disposition: &str, hangup_cause: Option<&str>) -> bool {
    matches!(disposition, "ANSWERED" | "BUSY" | "NO ANSWER") || hangup_cause == Some(REJECTED_BY_CALLEE)
}

/// A time as PostgreSQL stores it: microseconds since the epoch (rows are written with
/// their microseconds, the nanoseconds cut).
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp() * 1_000_000 + i64::from(t.timestamp_subsec_micros().min(999_999))
}

/// A price in millionths, rounded to six places half away from zero as `NUMERIC(24, 6)`
/// rounds it.
fn price_micros(cost: Decimal) -> Option<i64> {
    let rounded = cost.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero);
    let scale = 6 - rounded.scale();
    let scaled = rounded.mantissa().checked_mul(10i128.checked_pow(scale)?)?;
    i64::try_from(scaled).ok()
}

/// The destination's country code as dialled: up to three digits after a leading `+` or
/// `00` (what `/stats` shows when numbers are not normalised).
pub fn dest_prefix(number: &str) -> &str {
    let rest = number.strip_prefix('+').or_else(|| number.strip_prefix("00")).unwrap_or(number);
    let digits = rest.bytes().take(3).take_while(u8::is_ascii_digit).count();
    &rest[..digits]
}

/// The dimensions of a pending group: minute (µs), source, direction, disposition, account
/// code, destination prefix, country and number type.
type GroupKey<'a> = (i64, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

/// The dimensions of a pending group as `kpi_pending.dim_ids` lists them, each group's in turn.
pub const PENDING_DIMS: [&str; 7] =
    ["source", "direction", "disposition", "account_code", "dest_prefix", "dest_country", "dest_type"];

/// One batch's sums as `kpi_pending` keeps them: parallel arrays, one element per group. The
/// dimensions are numbers into the batch's `names` (1-based, as SQL subscripts), seven per
/// group in the order of [`PENDING_DIMS`]: a batch names a few dozen sources, accounts and
/// countries but has about a group per call, and numbers cost the append, the fold and
/// PostgreSQL far less to write and read than the same strings over and over.
#[derive(Debug, Default, PartialEq)]
pub struct BatchSums<'a> {
    pub bucket: Vec<DateTime<Utc>>,
    /// Each string the groups and events name, once.
    pub names: Vec<&'a str>,
    /// [`PENDING_DIMS`] of each group, as subscripts of `names`.
    pub dim_ids: Vec<i32>,
    /// One per [`super::SUM_COLUMNS`], each one element per group.
    pub sums: [Vec<i64>; super::SUM_COLUMNS.len()],
    /// The source of each per-second count, as a subscript of `names`.
    pub ev_source_ids: Vec<i32>,
    pub ev_second: Vec<DateTime<Utc>>,
    pub ev_delta: Vec<i32>,
    pub ev_ends_on: Vec<i32>,
    /// At or before every minute and second above, and after every one: a reader skips the
    /// row for a window outside it.
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
}

/// Gives each string of a batch its subscript in the batch's `names`.
#[derive(Default)]
struct Subscripts<'a> {
    names: Vec<&'a str>,
    index: HashMap<&'a str, i32>,
}

impl<'a> Subscripts<'a> {
    fn of(&mut self, name: &'a str) -> i32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.names.push(name);
        let i = i32::try_from(self.names.len()).unwrap_or(i32::MAX);
        self.index.insert(name, i);
        i
    }
}

impl<'a> BatchSums<'a> {
    /// The sums of `facts`, grouped as the rollups group them.
    pub fn of(facts: &[Fact<'a>]) -> Self {
        let mut groups: HashMap<GroupKey<'a>, Sums> = HashMap::new();
        let mut events: HashMap<(&'a str, i64), (i32, i32)> = HashMap::new();
        let mut span: Option<(i64, i64)> = None;
        for f in facts {
            let key = (
                f.start.div_euclid(60_000_000) * 60_000_000,
                f.source,
                f.direction,
                f.disposition,
                f.account_code,
                dest_prefix(f.dest_number),
                f.dest_country,
                f.dest_type,
            );
            let sums = groups.entry(key).or_default();
            let add = [
                1,
                i64::from(f.effective),
                f.billsec,
                f.duration,
                i64::from(f.sell_rated),
                i64::from(f.buy_rated),
                f.sell_micros.unwrap_or(0),
                f.buy_micros.unwrap_or(0),
            ];
            for (sum, value) in sums.iter_mut().zip(add) {
                *sum += value;
            }
            let start_second = f.start.div_euclid(1_000_000) * 1_000_000;
            events.entry((f.source, start_second)).or_default().0 += 1;
            let end_second = f.end.div_euclid(1_000_000) * 1_000_000;
            let ending = events.entry((f.source, end_second)).or_default();
            ending.0 -= 1;
            ending.1 += i32::from(f.end == end_second && f.end > f.start);
            let (first, last) = (key.0.min(end_second), (key.0 + 60_000_000).max(end_second + 1_000_000));
            span = Some(span.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
        }
        let mut out = BatchSums::default();
        let mut names = Subscripts::default();
        out.dim_ids.reserve(groups.len() * PENDING_DIMS.len());
        for ((minute, source, direction, disposition, account, prefix, country, kind), sums) in groups {
            out.bucket.push(at(minute));
            for name in [source, direction, disposition, account, prefix, country, kind] {
                out.dim_ids.push(names.of(name));
            }
            for (column, value) in out.sums.iter_mut().zip(sums) {
                column.push(value);
            }
        }
        for ((source, second), (delta, ends_on)) in events {
            out.ev_source_ids.push(names.of(source));
            out.ev_second.push(at(second));
            out.ev_delta.push(delta);
            out.ev_ends_on.push(ends_on);
        }
        out.names = names.names;
        out.first_at = span.map(|(first, _)| at(first));
        out.last_at = span.map(|(_, last)| at(last));
        out
    }

    pub fn is_empty(&self) -> bool {
        self.bucket.is_empty()
    }
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

const APPEND_SQL: &str = "INSERT INTO kpi_pending (job_id, bucket, names, dim_ids, attempts, effective, billsec, duration, \
     sell_rated, buy_rated, sell_micros, buy_micros, ev_source_ids, ev_second, ev_delta, ev_ends_on, first_at, last_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";

/// Appends `sums` as job `job_id`'s pending row, in the transaction that stored its rows.
pub async fn append(
    txn: &mut Transaction<'static, Postgres>,
    job_id: &str,
    sums: &BatchSums<'_>,
) -> Result<(), sqlx::Error> {
    if sums.is_empty() {
        return Ok(());
    }
    let mut query =
        sqlx::query(APPEND_SQL).bind(job_id).bind(&sums.bucket).bind(&sums.names).bind(&sums.dim_ids);
    for column in &sums.sums {
        query = query.bind(column);
    }
    query
        .bind(&sums.ev_source_ids)
        .bind(&sums.ev_second)
        .bind(&sums.ev_delta)
        .bind(&sums.ev_ends_on)
        .bind(sums.first_at)
        .bind(sums.last_at)
        .execute(&mut **txn)
        .await?;
    Ok(())
}

/// The rows job `$1` inserted from the staged batch, with what the rollups read from them:
/// what a batch that met duplicates sums (its other CDRs were stored by someone else).
const STORED_SQL: &str = "SELECT start_time, coalesce(end_time, start_time + duration * interval '1 second') AS end_time, \
     source, coalesce(direction, '') AS direction, disposition, coalesce(account_code, '') AS account_code, dest_number, \
     coalesce(dest_country, '') AS dest_country, coalesce(dest_type, '') AS dest_type, billsec, duration, \
     disposition IN ('ANSWERED', 'BUSY', 'NO ANSWER') OR hangup_cause IS NOT DISTINCT FROM 'CALL_REJECTED' AS effective, \
     sell_rating IS NOT DISTINCT FROM 'rated' AS sell_rated, buy_rating IS NOT DISTINCT FROM 'rated' AS buy_rated, \
     (sell_cost * 1000000)::int8 AS sell_micros, (buy_cost * 1000000)::int8 AS buy_micros \
     FROM cdrs WHERE job_id = $1 AND (source, call_id, record_key, start_time) IN \
     (SELECT source, call_id, record_key, start_time FROM cdr_stage)";

/// A stored row's [`Fact`]s, owned.
#[derive(Debug, Clone)]
pub struct StoredFact {
    start: i64,
    end: i64,
    text: [String; 7],
    numbers: [i64; 2],
    flags: [bool; 3],
    prices: [Option<i64>; 2],
}

impl StoredFact {
    pub fn fact(&self) -> Fact<'_> {
        let [source, direction, disposition, account_code, dest_number, dest_country, dest_type] = &self.text;
        Fact {
            start: self.start,
            end: self.end,
            source,
            direction,
            disposition,
            account_code,
            dest_number,
            dest_country,
            dest_type,
            billsec: self.numbers[0],
            duration: self.numbers[1],
            effective: self.flags[0],
            sell_rated: self.flags[1],
            buy_rated: self.flags[2],
            sell_micros: self.prices[0],
            buy_micros: self.prices[1],
        }
    }
}

/// The facts of the rows job `job_id` inserted in this transaction from `cdr_stage`.
pub async fn stored_facts(
    txn: &mut Transaction<'static, Postgres>,
    job_id: &str,
) -> Result<Vec<StoredFact>, sqlx::Error> {
    let rows = sqlx::query(STORED_SQL).bind(job_id).fetch_all(&mut **txn).await?;
    rows.iter()
        .map(|row| {
            let text = |c: &str| row.try_get::<String, _>(c);
            Ok(StoredFact {
                start: micros(row.try_get("start_time")?),
                end: micros(row.try_get("end_time")?),
                text: [
                    text("source")?,
                    text("direction")?,
                    text("disposition")?,
                    text("account_code")?,
                    text("dest_number")?,
                    text("dest_country")?,
                    text("dest_type")?,
                ],
                numbers: [
                    i64::from(row.try_get::<i32, _>("billsec")?),
                    i64::from(row.try_get::<i32, _>("duration")?),
                ],
                flags: [row.try_get("effective")?, row.try_get("sell_rated")?, row.try_get("buy_rated")?],
                prices: [row.try_get("sell_micros")?, row.try_get("buy_micros")?],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_taken_as_the_index_statement_took_them() {
        for (number, prefix) in [
            ("+4930123", "493"),
            ("004930123", "493"),
            ("+0044", "004"),
            ("1", "1"),
            ("12a45", "12"),
            ("alice", ""),
            ("", ""),
            ("+", ""),
            ("00", ""),
            ("٣٣٣", ""),
        ] {
            assert_eq!(dest_prefix(number), prefix, "{number}");
        }
    }

    #[test]
    fn prices_round_half_away_from_zero_at_six_places() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(price_micros(d("0.0000005")), Some(1));
        assert_eq!(price_micros(d("-0.0000005")), Some(-1));
        assert_eq!(price_micros(d("0.0000004")), Some(0));
        assert_eq!(price_micros(d("1.5")), Some(1_500_000));
        assert_eq!(price_micros(d("12")), Some(12_000_000));
        assert_eq!(price_micros(d("99999999999999999")), None);
    }

    #[test]
    fn dimensions_are_numbered_by_the_batch_names_each_listed_once() {
        let fact = |source: &'static str, account: &'static str, start: i64| Fact {
            start,
            end: start + 5_000_000,
            source,
            direction: "inbound",
            disposition: "ANSWERED",
            account_code: account,
            dest_number: "+4930123",
            dest_country: "DE",
            dest_type: "fixed",
            billsec: 5,
            duration: 5,
            effective: true,
            sell_rated: false,
            buy_rated: false,
            sell_micros: None,
            buy_micros: None,
        };
        let facts = [fact("pbx-a", "acme", 0), fact("pbx-b", "acme", 0), fact("pbx-a", "", 120_000_000)];
        let sums = BatchSums::of(&facts);
        let mut names = sums.names.clone();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), sums.names.len(), "each name once: {:?}", sums.names);
        assert_eq!(sums.dim_ids.len(), sums.bucket.len() * PENDING_DIMS.len());
        let name = |id: i32| sums.names[usize::try_from(id - 1).unwrap()];
        let mut groups: Vec<Vec<&str>> =
            sums.dim_ids.chunks(PENDING_DIMS.len()).map(|g| g.iter().map(|&i| name(i)).collect()).collect();
        groups.sort();
        assert_eq!(
            groups,
            [
                ["pbx-a", "inbound", "ANSWERED", "", "493", "DE", "fixed"],
                ["pbx-a", "inbound", "ANSWERED", "acme", "493", "DE", "fixed"],
                ["pbx-b", "inbound", "ANSWERED", "acme", "493", "DE", "fixed"],
            ]
        );
        let mut sources: Vec<&str> = sums.ev_source_ids.iter().map(|&i| name(i)).collect();
        sources.sort_unstable();
        // Each call starts in one second and ends in another.
        assert_eq!(sources, ["pbx-a", "pbx-a", "pbx-a", "pbx-a", "pbx-b", "pbx-b"]);
    }

    #[test]
    fn times_are_cut_to_the_microsecond_before_bucketing() {
        let t = DateTime::parse_from_rfc3339("1969-12-31T23:59:59.999999999Z").unwrap().to_utc();
        assert_eq!(micros(t), -1);
        let fact = |start: i64, end: i64| Fact {
            start,
            end,
            source: "pbx",
            direction: "",
            disposition: "ANSWERED",
            account_code: "",
            dest_number: "+33",
            dest_country: "",
            dest_type: "",
            billsec: 0,
            duration: 0,
            effective: true,
            sell_rated: false,
            buy_rated: false,
            sell_micros: None,
            buy_micros: None,
        };
        // Starts in the last microsecond before 1970 and ends exactly on the next second.
        let sums = BatchSums::of(&[fact(-1, 1_000_000), fact(0, 0)]);
        let minutes: std::collections::BTreeSet<_> = sums.bucket.iter().map(|b| b.timestamp()).collect();
        assert_eq!(minutes, [-60, 0].into());
        let mut events: Vec<_> = sums
            .ev_second
            .iter()
            .zip(&sums.ev_delta)
            .zip(&sums.ev_ends_on)
            .map(|((s, d), e)| (s.timestamp(), *d, *e))
            .collect();
        events.sort();
        // -1 s: one start; 0 s: a zero-length call starts and ends; 1 s: one end, on the second.
        assert_eq!(events, [(-1, 1, 0), (0, 0, 0), (1, -1, 1)]);
        // The span holds every minute counted (from -60 s to the end of minute 0) and every
        // second (up to the end of second 1).
        assert_eq!(sums.first_at.map(|t| t.timestamp()), Some(-60));
        assert_eq!(sums.last_at.map(|t| t.timestamp()), Some(60));
        // A call ending an hour after its minute stretches the span to its last second.
        let long = BatchSums::of(&[fact(0, 3_600_500_000)]);
        assert_eq!(
            (long.first_at.map(|t| t.timestamp()), long.last_at.map(|t| t.timestamp())),
            (Some(0), Some(3601))
        );
        assert_eq!(BatchSums::of(&[]).first_at, None);
    }
}
