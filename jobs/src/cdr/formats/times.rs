//! Zone-less wall-clock times as switches and spreadsheets write them, read in the file's
//! time zone and passed on as UTC.

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// Zone-less layouts tried after a layout's own. Numeric fields take one or two digits, so
/// `2020/2/10 22:41` (a spreadsheet's rewrite of a switch's time) is read too.
const STANDARD_FORMATS: [&str; 6] = [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
    "%Y%m%d%H%M%S",
];

/// A local time as UTC RFC 3339; empty stays absent. A value that is not a zone-less time in
/// any known layout (a zoned time, epoch seconds, garbage) is passed on as written for the
/// record's validation to read or refuse by name.
pub fn local_time(value: &str, formats: &[String], tz: Tz) -> Result<Option<String>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let naive = formats.is_empty().then(|| iso_seconds(value)).flatten().or_else(|| {
        formats
            .iter()
            .map(String::as_str)
            .chain(STANDARD_FORMATS)
            .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
    });
    let Some(naive) = naive else {
        return match crate::cdr::parse_time(&serde_json::Value::String(value.to_string())) {
            Ok(_) => Ok(Some(value.to_string())),
            Err(e) => Err(e),
        };
    };
    let local = tz
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| format!("{value:?} does not exist in {tz} (skipped by a clock change)"))?;
    Ok(Some(local.with_timezone(&chrono::Utc).to_rfc3339()))
}

/// `YYYY-MM-DD HH:MM:SS`, what Asterisk and FreeSWITCH write on every row, read without
/// a format string (the general parser is several times slower on large files).
fn iso_seconds(value: &str) -> Option<NaiveDateTime> {
    let b = value.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0_u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 7)?, num(8, 10)?)?;
    date.and_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_become_utc_and_gaps_are_refused() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            local_time("2026-07-01 12:00:00", &[], paris).unwrap().unwrap(),
            "2026-07-01T10:00:00+00:00"
        );
        assert!(local_time("2026-03-29 02:30:00", &[], paris).unwrap_err().contains("does not exist"));
        assert_eq!(local_time("  ", &[], paris).unwrap(), None);
    }

    #[test]
    fn the_common_layout_is_read_by_the_fast_path_exactly_as_by_chrono() {
        for v in ["2026-07-01 12:00:00", "2026-07-01T23:59:59", "2024-02-29 00:00:00"] {
            assert_eq!(
                iso_seconds(v),
                NaiveDateTime::parse_from_str(&v.replace('T', " "), "%Y-%m-%d %H:%M:%S").ok(),
                "{v}"
            );
        }
        for v in ["2026-02-30 12:00:00", "2026-07-01 24:00:00", "2026-07-01 12:00:0x", "2026-07-01 12:00"] {
            assert_eq!(iso_seconds(v), None, "{v}");
        }
    }

    #[test]
    fn spreadsheet_and_custom_layouts_are_read() {
        assert_eq!(
            local_time("2020/2/10 22:41", &[], Tz::UTC).unwrap().unwrap(),
            "2020-02-10T22:41:00+00:00"
        );
        let custom = vec!["%d.%m.%Y %H:%M:%S".to_string()];
        assert_eq!(
            local_time("10.02.2020 22:41:05", &custom, Tz::UTC).unwrap().unwrap(),
            "2020-02-10T22:41:05+00:00"
        );
    }

    #[test]
    fn zoned_and_epoch_times_pass_through_and_garbage_is_refused() {
        assert_eq!(local_time("1581374460", &[], Tz::UTC).unwrap().unwrap(), "1581374460");
        assert_eq!(
            local_time("2020-02-10T22:41:00+01:00", &[], Tz::UTC).unwrap().unwrap(),
            "2020-02-10T22:41:00+01:00"
        );
        assert!(local_time("yesterday", &[], Tz::UTC).is_err());
    }
}
