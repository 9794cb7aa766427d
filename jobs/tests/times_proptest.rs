//! Property tests of the time parsers a client reaches: the JSON fields' (`parse_time`,
//! strings and numbers of any kind) and the CSV columns' (zone-less times read in a file's
//! zone, with a saved layout's own formats), through the public entry points.

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use jobs::cdr::formats::{CsvOptions, Identity, Layout, read_csv};
use jobs::cdr::parse_time;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Times a call may have: 1970 to the end of 2099, to the microsecond.
fn plausible() -> impl Strategy<Value = DateTime<Utc>> {
    (0_i64..4_102_444_800_000_000).prop_map(|us| DateTime::from_timestamp_micros(us).expect("in range"))
}

/// Time-like text at chrono's edges: six-digit years with a sign, impossible fields,
/// offsets of any size, fractions of any length.
fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (years(), 0_u32..14, 0_u32..33, 0_u32..25, 0_u32..61, "(\\.[0-9]{0,12})?").prop_map(
            |(y, mo, d, h, s, frac)| format!(
                "{}{:04}-{mo:02}-{d:02} {h:02}:{s:02}:{s:02}{frac}",
                if y < 0 { "-" } else { "+" },
                y.abs()
            )
        ),
        (
            years(),
            prop::sample::select(vec![
                "01-01 00:00:00",
                "12-31 23:59:59",
                "12-31T23:59:59Z",
                "01-01T00:00:00+14:00"
            ])
        )
            .prop_map(|(y, rest)| format!("{}{:04}-{rest}", if y < 0 { "-" } else { "+" }, y.abs())),
        (0_i32..10_000, 0_u32..25, -100_000_i32..100_000).prop_map(|(y, h, off)| format!(
            "{y:04}-12-31T{h:02}:59:59{}{:02}:{:02}",
            if off < 0 { '-' } else { '+' },
            off.abs() / 60,
            off.abs() % 60
        )),
        "[0-9.]{1,30}",
        "[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}[ T][0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2})?",
        "[0-9]{14}",
        "\\PC{0,40}",
    ]
}

/// Years anywhere chrono can go, its first and last ones and the plausible range's edges
/// often.
fn years() -> impl Strategy<Value = i32> {
    prop_oneof![
        -300_000_i32..300_000,
        prop::sample::select(vec![
            -262_144, -262_143, 0, 1969, 1970, 2100, 2101, 9999, 10_000, 262_142, 262_143
        ]),
    ]
}

/// A file of one `start_time` column read by a layout with these formats and zone.
fn read_start_times(values: &[String], formats: Vec<String>, tz: Option<&str>) -> Vec<Result<Value, String>> {
    let layout = Layout {
        columns: vec!["start_time".into()],
        fields: [("start_time".to_string(), "start_time".to_string())].into_iter().collect(),
        time_formats: formats,
        timezone: tz.map(str::to_string),
        identity: Identity::CallId,
        ..Layout::default()
    };
    let mut body = Vec::new();
    {
        let mut w = csv::Writer::from_writer(&mut body);
        for v in values {
            w.write_record([v]).expect("write to memory");
        }
    }
    let options = CsvOptions { layout: Some(("t".into(), layout)), ..CsvOptions::default() };
    read_csv(&body, &options)
        .expect("a named headerless layout reads any rows")
        .records
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any string is a time within the plausible years, to the microsecond, or refused.
    #[test]
    fn any_text_is_a_plausible_time_or_refused(s in time_text()) {
        if let Ok(t) = parse_time(&Value::String(s.clone())) {
            prop_assert!((1970..=2100).contains(&t.year()), "{s} -> {t}");
            prop_assert_eq!(t.nanosecond() % 1000, 0);
        }
    }

    /// Any JSON number, integer or not, finite or at the edges of f64.
    #[test]
    fn any_number_is_a_plausible_time_or_refused(i in any::<i64>(), u in any::<u64>(), f in any::<f64>()) {
        for n in [json!(i), json!(u), serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)] {
            if let Ok(t) = parse_time(&n) {
                prop_assert!((1970..=2100).contains(&t.year()), "{n} -> {t}");
            }
        }
    }

    /// Every plausible time reads back from the ways switches write it.
    #[test]
    fn plausible_times_round_trip(t in plausible()) {
        prop_assert_eq!(parse_time(&json!(t.to_rfc3339())), Ok(t));
        prop_assert_eq!(parse_time(&json!(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())), Ok(t));
        let whole = t.with_nanosecond(0).expect("valid");
        prop_assert_eq!(parse_time(&json!(whole.timestamp())), Ok(whole));
        prop_assert_eq!(parse_time(&json!(whole.format("%Y%m%d%H%M%S").to_string())), Ok(whole));
    }

    /// CSV times at any edge, in any zone (those that shift the edges of chrono's range
    /// across the date line included) and with a layout's own formats: a time or a row
    /// refused, never a panic.
    #[test]
    fn csv_times_in_any_zone_and_format_never_panic(
        values in prop::collection::vec(time_text(), 1..6),
        formats in prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec!["%d.%m.%Y %H:%M:%S", "%Y", "%s", "%+", "%Y-%m-%d %H:%M:%S%z", "%j %Y %T", "%", "%Q"])
                    .prop_map(str::to_string),
                "[%a-zA-Z .:/-]{0,12}",
            ],
            0..3,
        ),
        tz in prop::sample::select(vec![None, Some("UTC"), Some("Pacific/Kiritimati"), Some("Etc/GMT+12"), Some("America/St_Johns"), Some("Europe/Paris")]),
    ) {
        let rows = read_start_times(&values, formats, tz);
        prop_assert_eq!(rows.len(), values.iter().filter(|v| !v.bytes().all(|b| b.is_ascii_whitespace())).count());
        for row in rows.into_iter().flatten() {
            prop_assert!(row.is_object());
        }
    }

    /// A local wall-clock time read in a zone is that instant in UTC, whenever the zone
    /// has exactly one such instant.
    #[test]
    fn local_times_become_the_same_instant_in_utc(
        t in plausible(),
        tz in prop::sample::select(vec!["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
    ) {
        let zone: Tz = tz.parse().expect("a zone");
        let naive: NaiveDateTime = t.with_timezone(&zone).naive_local().with_nanosecond(0).expect("valid");
        let written = naive.format("%Y-%m-%d %H:%M:%S").to_string();
        let rows = read_start_times(std::slice::from_ref(&written), vec![], Some(tz));
        let record = rows[0].as_ref().expect("a readable row");
        let read = record["start_time"].as_str().expect("a start time");
        if let chrono::LocalResult::Single(expected) = zone.from_local_datetime(&naive) {
            prop_assert_eq!(read, expected.with_timezone(&Utc).to_rfc3339());
        }
    }
}
