use chrono::{DateTime, Datelike, NaiveDateTime, SubsecRound, Utc};

/// Earliest and latest years a call can plausibly have happened in; anything outside is a
/// broken clock or a hostile input, not a call.
const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 2100;

const NAIVE_FORMATS: [&str; 4] =
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y/%m/%d %H:%M:%S%.f", "%Y%m%d%H%M%S"];

/// Parses the time formats switches write: RFC 3339 with a zone, a zone-less wall-clock time
/// (taken as UTC), or seconds since the epoch (integer or fractional). Returns UTC truncated to
/// microseconds, PostgreSQL's precision.
pub fn parse_time(value: &serde_json::Value) -> Result<DateTime<Utc>, String> {
    let parsed = match value {
        serde_json::Value::String(s) => parse_time_str(s.trim())?,
        serde_json::Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(|| format!("{n} is not a time"))?;
            if !secs.is_finite() || !(0.0..=4_102_444_800.0).contains(&secs) {
                return Err(format!("epoch seconds {n} out of range"));
            }
            DateTime::from_timestamp_micros((secs * 1e6).round() as i64)
                .ok_or_else(|| format!("epoch seconds {n} out of range"))?
        }
        other => {
            return Err(format!("expected a time string or epoch seconds, got {}", kind(other)));
        }
    };
    let year = parsed.year();
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(format!("year {year} is outside {MIN_YEAR}..={MAX_YEAR}"));
    }
    Ok(parsed.trunc_subsecs(6))
}

fn parse_time_str(s: &str) -> Result<DateTime<Utc>, String> {
    if s.is_empty() {
        return Err("empty time".into());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Ok(t.with_timezone(&Utc));
    }
    for format in NAIVE_FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(t.and_utc());
        }
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && let Some(n) = s.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
    {
        return parse_time(&serde_json::Value::Number(n));
    }
    Err(format!("{s:?} is not a time (RFC 3339, \"YYYY-MM-DD HH:MM:SS\" in UTC, or epoch seconds)"))
}

pub(crate) fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn zoned_times_are_converted_to_utc() {
        assert_eq!(parse_time(&json!("2026-03-01T10:00:00+02:00")).unwrap(), utc("2026-03-01T08:00:00Z"));
    }

    #[test]
    fn zoneless_times_are_utc() {
        assert_eq!(parse_time(&json!("2026-03-01 10:00:00")).unwrap(), utc("2026-03-01T10:00:00Z"));
        assert_eq!(parse_time(&json!("2026-03-01T10:00:00.250")).unwrap(), utc("2026-03-01T10:00:00.250Z"));
    }

    #[test]
    fn epoch_seconds_are_accepted() {
        assert_eq!(parse_time(&json!(1_772_359_200)).unwrap(), utc("2026-03-01T10:00:00Z"));
        assert_eq!(parse_time(&json!("1772359200")).unwrap(), utc("2026-03-01T10:00:00Z"));
        // A fraction that rounds up to the next second.
        assert_eq!(parse_time(&json!(1_772_359_199.999_999_6)).unwrap(), utc("2026-03-01T10:00:00Z"));
    }

    #[test]
    fn nanoseconds_are_truncated_to_microseconds() {
        let t = parse_time(&json!("2026-03-01T10:00:00.123456789Z")).unwrap();
        assert_eq!(t, utc("2026-03-01T10:00:00.123456Z"));
    }

    #[test]
    fn implausible_years_and_garbage_are_refused() {
        assert!(parse_time(&json!("0000-01-01T00:00:00Z")).is_err());
        assert!(parse_time(&json!("9999-12-31T23:59:59Z")).unwrap_err().contains("9999"));
        assert!(parse_time(&json!("yesterday")).is_err());
        assert!(parse_time(&json!(-5)).is_err());
        assert!(parse_time(&json!(1e300)).is_err());
        assert!(parse_time(&json!(true)).is_err());
    }
}
