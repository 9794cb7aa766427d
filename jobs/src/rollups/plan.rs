//! Whether the rollups can answer a `/stats` request exactly, and which rows of which
//! cuboids make up its window.
//!
//! A window is cut into whole days read from the daily cuboid, whole hours at its edges
//! from the hourly one and the remaining minutes from the per-minute one, never coarser
//! than the histogram's buckets: a month costs ~30 daily rows per dimension value plus at
//! most 46 hourly and 118 per-minute ones, however many calls it holds.

use super::{CUBOIDS, Cuboid, Level};
use crate::search::{Filters, Interval, StatsRequest};
use chrono::{DateTime, Utc};

/// Which cuboids a request reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    /// By source, direction and disposition.
    Calls,
    /// One account code's own rows.
    Account(String),
    /// By destination country and number type: requests filtering on them or broken down by
    /// them.
    Destination,
}

impl Family {
    fn finest(&self) -> Level {
        match self {
            Family::Calls => Level::Minute,
            Family::Account(_) | Family::Destination => Level::Hour,
        }
    }

    fn coarsest(&self) -> Level {
        match self {
            Family::Calls | Family::Account(_) => Level::Day,
            Family::Destination => Level::Hour,
        }
    }

    fn cuboid(&self, level: Level) -> Option<&'static Cuboid> {
        let lead: &[&str] = match self {
            Family::Calls => &[],
            Family::Account(_) => &["account_code"],
            Family::Destination => &["dest_country", "dest_type"],
        };
        CUBOIDS.iter().find(|c| c.level == level && c.lead == lead)
    }
}

/// One cuboid over one part of the window, `[from, to)`; an open side is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub cuboid: &'static Cuboid,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// How the rollups answer one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub family: Family,
    pub pieces: Vec<Piece>,
}

/// Why a request goes to the search index instead; said in the answer.
pub type Fallback = String;

/// The plan for `request`, or why the rollups cannot answer it exactly.
pub fn plan(request: &StatsRequest) -> Result<Plan, Fallback> {
    if request.top > 0 {
        return Err("per-number rankings (top) are computed from the CDRs themselves".into());
    }
    let f = &request.filters;
    let by_destination =
        !request.breakdowns.is_empty() || !f.dest_countries.is_empty() || !f.dest_types.is_empty();
    if request.peak
        && (f.direction.is_some() || !f.dispositions.is_empty() || f.account_code.is_some() || by_destination)
    {
        return Err("peak concurrency is kept per source only".into());
    }
    if by_destination && f.account_code.is_some() {
        return Err("an account's rollups are not kept by destination".into());
    }
    if let Some(name) = unrolled_filter(f) {
        return Err(format!("{name} is not a rollup dimension"));
    }
    let family = match &f.account_code {
        Some(code) => Family::Account(code.clone()),
        None if by_destination => Family::Destination,
        None => Family::Calls,
    };
    let finest = family.finest();
    if finest > level_of(request.interval) {
        let whose = if by_destination { "destination" } else { "an account's" };
        return Err(format!(
            "{whose} rollups are hourly, finer than the {} buckets asked",
            request.interval.name()
        ));
    }
    for (name, bound) in [("from", f.from), ("to", f.to)] {
        if let Some(t) = bound
            && floor(t, finest) != Some(t)
        {
            return Err(format!("{name} is not on a whole {} (UTC)", finest.unit()));
        }
    }
    let mut pieces = Vec::new();
    let coarsest = level_of(request.interval).min(family.coarsest());
    split(&family, coarsest, f.from, f.to, &mut pieces).ok_or("the window is out of range")?;
    Ok(Plan { family, pieces })
}

/// The first filter the rollups do not keep, if any.
fn unrolled_filter(f: &Filters) -> Option<&'static str> {
    let Filters {
        source: _,
        src_number,
        dest_number,
        from: _,
        to: _,
        min_duration,
        max_duration,
        min_billsec,
        dispositions: _,
        call_successful,
        direction: _,
        account_code: _,
        call_id,
        linked_id,
        caller_withheld,
        dest_e164,
        dest_countries: _,
        dest_types: _,
    } = f;
    [
        ("src_number", src_number.is_some()),
        ("dest_number", dest_number.is_some()),
        ("min_duration", min_duration.is_some()),
        ("max_duration", max_duration.is_some()),
        ("min_billsec", min_billsec.is_some()),
        ("call_successful", call_successful.is_some()),
        ("call_id", call_id.is_some()),
        ("linked_id", linked_id.is_some()),
        ("caller_withheld", caller_withheld.is_some()),
        ("dest_e164", dest_e164.is_some()),
    ]
    .into_iter()
    .find_map(|(name, set)| set.then_some(name))
}

/// The coarsest level whose buckets nest inside the histogram's.
fn level_of(interval: Interval) -> Level {
    match interval {
        Interval::Minute => Level::Minute,
        Interval::Hour => Level::Hour,
        Interval::Day | Interval::Week | Interval::Month => Level::Day,
    }
}

/// `t` rounded down to its level's bucket (UTC).
pub fn floor(t: DateTime<Utc>, level: Level) -> Option<DateTime<Utc>> {
    let s = t.timestamp();
    DateTime::from_timestamp(s - s.rem_euclid(level.seconds()), 0)
}

fn ceil(t: DateTime<Utc>, level: Level) -> Option<DateTime<Utc>> {
    let down = floor(t, level)?;
    if down == t {
        Some(t)
    } else {
        DateTime::from_timestamp(down.timestamp().checked_add(level.seconds())?, 0)
    }
}

/// Cuts `[from, to)` into whole buckets of `level` and, at the edges, finer ones. `None` when
/// a bound cannot be rounded (at the end of the calendar).
fn split(
    family: &Family,
    level: Level,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    out: &mut Vec<Piece>,
) -> Option<()> {
    if let (Some(a), Some(b)) = (from, to)
        && a >= b
    {
        return Some(());
    }
    let finer = level.finer().filter(|_| level > family.finest());
    let (Some(finer), Some(cuboid)) = (finer, family.cuboid(level)) else {
        out.push(Piece { cuboid: family.cuboid(level)?, from, to });
        return Some(());
    };
    let lo = match from {
        Some(t) => Some(ceil(t, level)?),
        None => None,
    };
    let hi = match to {
        Some(t) => Some(floor(t, level)?),
        None => None,
    };
    if let (Some(l), Some(h)) = (lo, hi)
        && l >= h
    {
        return split(family, finer, from, to, out);
    }
    if let (Some(f), Some(l)) = (from, lo)
        && f < l
    {
        split(family, finer, from, lo, out)?;
    }
    out.push(Piece { cuboid, from: lo, to: hi });
    if let (Some(h), Some(t)) = (hi, to)
        && h < t
    {
        split(family, finer, hi, to, out)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Filters;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn request(filters: Filters, interval: Interval) -> StatsRequest {
        let mut r = StatsRequest::new(filters, Some(interval), 0).unwrap();
        r.top = 0;
        r
    }

    fn window(from: &str, to: &str) -> Filters {
        Filters { from: Some(t(from)), to: Some(t(to)), ..Filters::default() }
    }

    type Bound = Option<DateTime<Utc>>;

    fn shape(plan: &Plan) -> Vec<(&'static str, Bound, Bound)> {
        plan.pieces.iter().map(|p| (p.cuboid.table, p.from, p.to)).collect()
    }

    #[test]
    fn a_window_is_cut_into_days_then_hours_then_minutes() {
        let p =
            plan(&request(window("2026-03-01T22:30:00Z", "2026-03-04T01:15:00Z"), Interval::Day)).unwrap();
        assert_eq!(
            shape(&p),
            vec![
                ("kpi_minute", Some(t("2026-03-01T22:30:00Z")), Some(t("2026-03-01T23:00:00Z"))),
                ("kpi_hour", Some(t("2026-03-01T23:00:00Z")), Some(t("2026-03-02T00:00:00Z"))),
                ("kpi_day", Some(t("2026-03-02T00:00:00Z")), Some(t("2026-03-04T00:00:00Z"))),
                ("kpi_hour", Some(t("2026-03-04T00:00:00Z")), Some(t("2026-03-04T01:00:00Z"))),
                ("kpi_minute", Some(t("2026-03-04T01:00:00Z")), Some(t("2026-03-04T01:15:00Z"))),
            ]
        );
        // Pieces tile the window exactly: each starts where the last ended.
        for pair in p.pieces.windows(2) {
            assert_eq!(pair[0].to, pair[1].from);
        }
    }

    #[test]
    fn pieces_are_never_coarser_than_the_histogram() {
        let p =
            plan(&request(window("2026-03-01T00:00:00Z", "2026-03-01T02:00:00Z"), Interval::Minute)).unwrap();
        assert_eq!(
            shape(&p),
            vec![("kpi_minute", Some(t("2026-03-01T00:00:00Z")), Some(t("2026-03-01T02:00:00Z")))]
        );
        let p =
            plan(&request(window("2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z"), Interval::Hour)).unwrap();
        assert_eq!(
            shape(&p),
            vec![("kpi_hour", Some(t("2026-03-01T00:00:00Z")), Some(t("2026-03-03T00:00:00Z")))]
        );
    }

    #[test]
    fn open_windows_read_whole_days_to_the_edge() {
        let f = Filters { to: Some(t("2026-03-04T01:00:00Z")), ..Filters::default() };
        let p = plan(&request(f, Interval::Day)).unwrap();
        assert_eq!(
            shape(&p),
            vec![
                ("kpi_day", None, Some(t("2026-03-04T00:00:00Z"))),
                ("kpi_hour", Some(t("2026-03-04T00:00:00Z")), Some(t("2026-03-04T01:00:00Z"))),
            ]
        );
        let p = plan(&request(Filters::default(), Interval::Week)).unwrap();
        assert_eq!(shape(&p), vec![("kpi_day", None, None)]);
    }

    #[test]
    fn an_account_reads_its_own_days_and_hours() {
        let f = Filters {
            account_code: Some("acct-1".into()),
            ..window("2026-03-01T05:00:00Z", "2026-03-03T00:00:00Z")
        };
        let p = plan(&request(f.clone(), Interval::Day)).unwrap();
        assert_eq!(p.family, Family::Account("acct-1".into()));
        assert_eq!(
            shape(&p),
            vec![
                ("kpi_account_hour", Some(t("2026-03-01T05:00:00Z")), Some(t("2026-03-02T00:00:00Z"))),
                ("kpi_account_day", Some(t("2026-03-02T00:00:00Z")), Some(t("2026-03-03T00:00:00Z"))),
            ]
        );
        let hourly = plan(&request(f.clone(), Interval::Hour)).unwrap();
        assert_eq!(
            shape(&hourly),
            vec![("kpi_account_hour", Some(t("2026-03-01T05:00:00Z")), Some(t("2026-03-03T00:00:00Z")))]
        );
        let minute = plan(&request(f.clone(), Interval::Minute)).unwrap_err();
        assert!(minute.contains("hourly"), "{minute}");
        let off = Filters { from: Some(t("2026-03-01T05:30:00Z")), ..f };
        assert!(plan(&request(off, Interval::Day)).unwrap_err().contains("from"));
    }

    #[test]
    fn what_the_rollups_do_not_keep_falls_back_with_a_reason() {
        let mut r = request(window("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"), Interval::Hour);
        assert!(plan(&r).is_ok());
        r.filters.min_billsec = Some(1);
        assert_eq!(plan(&r).unwrap_err(), "min_billsec is not a rollup dimension");
        r.filters.min_billsec = None;
        r.filters.to = Some(t("2026-03-01T23:59:30Z"));
        assert!(plan(&r).unwrap_err().contains("whole minute"));
        r.filters.to = Some(t("2026-03-02T00:00:00Z"));
        r.top = 5;
        assert!(plan(&r).unwrap_err().contains("top"));
        r.top = 0;
        r.peak = true;
        assert!(plan(&r).is_ok(), "peak for all sources");
        r.filters.source = Some("pbx".into());
        assert!(plan(&r).is_ok(), "peak for one source");
        r.filters.direction = Some("inbound".into());
        assert!(plan(&r).unwrap_err().contains("per source"));
    }
}
