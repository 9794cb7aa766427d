//! Property tests of the `/search` and `/stats` parameter parsers: whatever a client puts in
//! a query string, the answer is a value or a [`ParamError`] naming a parameter (a 400),
//! never a panic (a dropped connection or a 500).

use chrono::Duration;
use jobs::search::{
    Filters, Interval, ParamError, SearchRequest, Sort, SortField, StatsRequest, encode_cursor,
    parse_filters, parse_flag, validate_cursor,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The endpoints' own parameters, beside the shared ones.
const OWN: [&str; 6] = ["sort", "limit", "cursor", "interval", "top", "peak"];

/// Every parameter name either endpoint knows, aliases included.
fn names() -> Vec<&'static str> {
    jobs::search::SHARED_PARAMETERS.iter().chain(OWN.iter()).copied().collect()
}

fn sorts() -> impl Strategy<Value = Sort> {
    (
        prop_oneof![Just(SortField::StartTime), Just(SortField::Duration), Just(SortField::Billsec)],
        any::<bool>(),
    )
        .prop_map(|(field, descending)| Sort { field, descending })
}

fn cursor_of(sort: Sort, cursor: &str) -> Result<Option<Value>, ParamError> {
    validate_cursor(&SearchRequest { sort, cursor: Some(cursor.to_string()), ..SearchRequest::default() })
}

/// Years anywhere chrono can go, its first and last ones often.
fn edge_years() -> impl Strategy<Value = i32> {
    prop_oneof![
        -300_000_i32..300_000,
        prop::sample::select(vec![
            -262_145, -262_144, -262_143, -1, 0, 1969, 1970, 2100, 9999, 10_000, 262_142, 262_143
        ]),
    ]
}

/// Plain dates, the first and last days of chrono's first and last years often.
fn dates() -> impl Strategy<Value = String> {
    let day = prop_oneof![
        prop::sample::select(vec!["01-01", "12-31", "02-29"]).prop_map(str::to_string),
        (0_u32..14, 0_u32..33).prop_map(|(m, d)| format!("{m:02}-{d:02}")),
    ];
    (edge_years(), day).prop_map(|(y, day)| format!("{}{:04}-{day}", if y < 0 { "-" } else { "+" }, y.abs()))
}

/// Dates and times as clients write them, at the edges of what chrono can represent
/// included (years of six digits with a sign, day 31 of short months, leap seconds).
fn times() -> impl Strategy<Value = String> {
    prop_oneof![
        dates(),
        (1900_i32..2200, 1_u32..13, 1_u32..32).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        (1900_i32..2200, 0_u32..25, 0_u32..61, -1440_i32..1440).prop_map(|(y, h, s, off)| format!(
            "{y:04}-03-01T{h:02}:00:{s:02}{}{:02}:{:02}",
            if off < 0 { '-' } else { '+' },
            off.abs() / 60,
            off.abs() % 60
        )),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "\\PC{0,40}",
    ]
}

/// A value for a parameter: mostly plausible for some parameter, sometimes anything.
fn values() -> impl Strategy<Value = String> {
    prop_oneof![
        times(),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9*\\\\+]{0,12}",
        prop::sample::select(vec![
            "true",
            "FALSE",
            "1",
            "0",
            "yes",
            "ANSWERED",
            "no_answer,busy",
            ",,",
            "minute",
            "month",
            "duration:asc",
            "start_time:up",
            "*",
            "\\*",
            "",
            " ",
        ])
        .prop_map(str::to_string),
        "\\PC{0,300}",
        ".{0,20}",
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![4 => prop::sample::select(names()).prop_map(str::to_string), 1 => "\\PC{0,12}"],
            values(),
        ),
        0..8,
    )
}

/// The parameter an error may name: one the client sent, or the first of a pair of them.
fn named_by(e: &ParamError, pairs: &[(String, String)]) -> bool {
    pairs.iter().any(|(k, _)| *k == e.parameter) || ["from", "min_duration"].contains(&e.parameter.as_str())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A forged cursor of any text is refused as `cursor`, never a panic; what is accepted
    /// is a pair of integers, the only sort values the engine takes for these sorts.
    #[test]
    fn any_text_as_cursor_is_refused_by_name_or_is_two_integers(sort in sorts(), cursor in "\\PC{0,64}|[0-9a-fA-F]{0,64}") {
        match cursor_of(sort, &cursor) {
            Ok(Some(after)) => {
                let a = after.as_array().expect("an array");
                prop_assert!(a.len() == 2 && a.iter().all(|v| v.as_i64().is_some()), "{after}");
            }
            Ok(None) => prop_assert!(false, "a cursor was given"),
            Err(e) => prop_assert_eq!(e.parameter, "cursor"),
        }
    }

    /// Hex of arbitrary JSON gets past the hex stage, so the JSON and shape checks are
    /// exercised too.
    #[test]
    fn hex_encoded_json_of_any_shape_is_refused_by_name(sort in sorts(), doc in json_values()) {
        let hex: String = doc.to_string().bytes().map(|b| format!("{b:02x}")).collect();
        if let Err(e) = cursor_of(sort, &hex) {
            prop_assert_eq!(e.parameter, "cursor");
        }
    }

    /// Every cursor a page can end on is taken back, for its own sort only.
    #[test]
    fn cursors_round_trip(sort in sorts(), other in sorts(), a in any::<i64>(), b in any::<i64>()) {
        let cursor = encode_cursor(sort, &json!([a, b]));
        prop_assert!(cursor.bytes().all(|c| c.is_ascii_hexdigit()));
        prop_assert_eq!(cursor_of(sort, &cursor), Ok(Some(json!([a, b]))));
        if other != sort {
            prop_assert_eq!(cursor_of(other, &cursor).map_err(|e| e.parameter), Err("cursor".to_string()));
        }
    }

    /// Any query string's pairs give filters or an error naming a parameter; accepted
    /// filters keep their own invariants and always make a query.
    #[test]
    fn any_query_gives_filters_or_names_a_parameter(pairs in pairs()) {
        match parse_filters(&pairs, &["sort", "limit", "cursor"]) {
            Ok(f) => {
                if let (Some(from), Some(to)) = (f.from, f.to) {
                    prop_assert!(from < to);
                }
                if let (Some(min), Some(max)) = (f.min_duration, f.max_duration) {
                    prop_assert!(min <= max);
                }
                prop_assert!(f.to_query()["bool"]["filter"].is_array());
            }
            Err(e) => prop_assert!(named_by(&e, &pairs), "{e:?} for {pairs:?}"),
        }
    }

    /// A plain date as `to` takes in its whole day, at any year chrono can read, or is
    /// refused as `to`: the day after the last representable one is not a panic.
    #[test]
    fn a_plain_date_bound_includes_its_day_or_is_refused(date in prop_oneof![3 => dates(), 1 => times()]) {
        let to = [("to".to_string(), date.clone())];
        let from = [("from".to_string(), date.clone())];
        match (parse_filters(&to, &[]), parse_filters(&from, &[])) {
            (Ok(t), Ok(f)) => {
                let (Some(t), Some(f)) = (t.to, f.from) else { panic!("bounds are set") };
                if chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").is_ok() {
                    prop_assert_eq!(t - f, Duration::days(1));
                } else {
                    prop_assert_eq!(t, f);
                }
            }
            (Err(e), _) => prop_assert_eq!(e.parameter, "to"),
            (_, Err(e)) => prop_assert_eq!(e.parameter, "from"),
        }
    }

    /// The `/stats` parameters on top of the filters: never a panic, errors by name.
    #[test]
    fn stats_parameters_give_a_request_or_name_a_parameter(
        pairs in pairs(),
        interval in values(),
        top in 0_usize..200,
        flag in values(),
    ) {
        let Ok(filters) = parse_filters(&pairs, &["interval", "top", "peak"]) else { return Ok(()) };
        let interval = match Interval::parse(&interval) {
            Ok(i) => Some(i),
            Err(e) => {
                prop_assert_eq!(e.parameter, "interval");
                None
            }
        };
        if let Err(e) = parse_flag("peak", &flag) {
            prop_assert_eq!(e.parameter, "peak");
        }
        match StatsRequest::new(filters, interval, top) {
            Ok(r) => prop_assert!((0..=100).contains(&r.top)),
            Err(e) => prop_assert!(["interval", "top"].contains(&e.parameter.as_str()), "{e:?}"),
        }
    }

    /// `sort` is a known field with an optional order, or refused as `sort`.
    #[test]
    fn any_sort_parses_or_is_refused_by_name(value in "\\PC{0,24}|(start_time|duration|billsec)(:(asc|desc|\\PC{0,4}))?") {
        match Sort::parse(&value) {
            Ok(sort) => {
                let field = value.split(':').next().unwrap_or_default();
                prop_assert!(["start_time", "duration", "billsec"].contains(&field));
                prop_assert_eq!(sort.descending, !value.ends_with(":asc"));
            }
            Err(e) => prop_assert_eq!(e.parameter, "sort"),
        }
    }
}

/// Arbitrary JSON, nested a few levels.
fn json_values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["start_time:desc", "duration:asc", "billsec:desc"]).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(vec!["s", "a", "x"]), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

#[test]
fn filters_default_is_an_empty_match_all_query() {
    // Anchors the property above: an empty query string is accepted and filters nothing.
    assert_eq!(parse_filters(&[], &[]), Ok(Filters::default()));
    assert_eq!(Filters::default().to_query(), json!({ "bool": { "filter": [] } }));
}

#[test]
fn the_last_date_chrono_knows_as_to_is_refused_not_a_panic() {
    // Found by `a_plain_date_bound_includes_its_day_or_is_refused`: the day after it
    // overflowed (`DateTime + TimeDelta`) and the request's task panicked.
    let e = parse_filters(&[("to".to_string(), "+262142-12-31".to_string())], &[]).unwrap_err();
    assert_eq!(e.parameter, "to");
    assert!(parse_filters(&[("from".to_string(), "+262142-12-31".to_string())], &[]).is_ok());
}
