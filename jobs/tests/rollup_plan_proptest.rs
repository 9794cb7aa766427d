//! Property tests of the rollup planner: for any window on whole minutes, the pieces it
//! reads tile the window exactly, each on its cuboid's buckets and never coarser than the
//! histogram's.

use chrono::{DateTime, Duration, Utc};
use jobs::rollups::Level;
use jobs::rollups::plan::{floor, plan};
use jobs::search::{Filters, Interval, StatsRequest};
use proptest::prelude::*;

fn minute(m: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(m)
}

fn interval() -> impl Strategy<Value = Interval> {
    proptest::sample::select(vec![
        Interval::Minute,
        Interval::Hour,
        Interval::Day,
        Interval::Week,
        Interval::Month,
    ])
}

fn histogram_level(i: Interval) -> Level {
    match i {
        Interval::Minute => Level::Minute,
        Interval::Hour => Level::Hour,
        _ => Level::Day,
    }
}

proptest! {
    #[test]
    fn pieces_tile_the_window_on_their_own_buckets(
        a in 0_i64..200_000,
        len in 1_i64..100_000,
        open_from: bool,
        open_to: bool,
        interval in interval(),
        account: bool,
    ) {
        let (from, to) = (minute(a), minute(a + len));
        let filters = Filters {
            from: (!open_from).then_some(from),
            to: (!open_to).then_some(to),
            account_code: account.then(|| "acct".to_string()),
            ..Filters::default()
        };
        let Ok(request) = StatsRequest::new(filters.clone(), Some(interval), 0) else { return Ok(()) };
        let Ok(p) = plan(&request) else {
            // Only an account with minutes (its own rollups are hourly) is refused here.
            prop_assert!(account);
            return Ok(());
        };
        prop_assert!(!p.pieces.is_empty());
        prop_assert_eq!(p.pieces[0].from, filters.from);
        prop_assert_eq!(p.pieces[p.pieces.len() - 1].to, filters.to);
        for pair in p.pieces.windows(2) {
            prop_assert_eq!(pair[0].to, pair[1].from);
            prop_assert!(pair[0].to.is_some());
        }
        for piece in &p.pieces {
            let level = piece.cuboid.level;
            prop_assert!(level <= histogram_level(interval), "{:?} inside {:?}", level, interval);
            prop_assert_eq!(piece.cuboid.lead.contains(&"account_code"), account);
            for t in [piece.from, piece.to].into_iter().flatten() {
                prop_assert_eq!(floor(t, level), Some(t), "{} not on a whole {:?}", t, level);
            }
            if let (Some(f), Some(t)) = (piece.from, piece.to) {
                prop_assert!(f < t);
            }
        }
        // Each level at most twice per edge: the cost stays bounded.
        prop_assert!(p.pieces.len() <= 5);
    }
}
