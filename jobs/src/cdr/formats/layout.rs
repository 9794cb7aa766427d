//! A column mapping: the declarative description of one switch's CSV layout.
//!
//! A layout names the file's columns (or takes them from its header row), says which column
//! holds which CDR field, how its times are written and in which zone, what its own values
//! mean (a disposition `CHANUNAVAIL`, a direction `1`), and what makes a row one record. The
//! built-in formats are layouts like any other, and an operator adds a switch by saving one
//! (`PUT /mappings/{name}`), without a release.

use super::times::local_time;
use crate::cdr::{Disposition, row_key};
use chrono_tz::Tz;
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The CDR fields a column can be mapped to.
pub const MAPPABLE_FIELDS: [&str; 18] = [
    "call_id",
    "record_key",
    "source",
    "src_number",
    "dest_number",
    "start_time",
    "answer_time",
    "end_time",
    "duration",
    "billsec",
    "disposition",
    "call_successful",
    "hangup_cause",
    "direction",
    "account_code",
    "linked_id",
    "sequence",
    "call_duration",
];

const TIME_FIELDS: [&str; 3] = ["start_time", "answer_time", "end_time"];
/// Fields whose column is kept in `extra` under its own name even when mapped: what they
/// feed is derived (the record key, the grouping of legs), not the switch's value itself.
const ALSO_IN_EXTRA: [&str; 2] = ["linked_id", "sequence"];

/// What makes two rows the same record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Identity {
    /// Rows that differ are different records even under one call id (legs, rows written
    /// after a transfer); an identical row is the same record. A mapped `sequence` column,
    /// where present, is the record's key instead.
    #[default]
    Row,
    /// The call id alone names a record (FreeSWITCH's per-leg `uuid`, for one).
    CallId,
}

/// How to read one switch's CSV files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Object)]
#[oai(rename = "CsvMapping")]
pub struct Layout {
    /// What the layout reads, for people.
    #[serde(default)]
    #[oai(default)]
    pub description: String,
    /// The column names in file order, for files without a header row. Empty: the first
    /// row of the file names the columns.
    #[serde(default)]
    #[oai(default)]
    pub columns: Vec<String>,
    /// CDR field → column name. Fields: `call_id`, `source`, `src_number`, `dest_number`,
    /// `start_time`, `answer_time`, `end_time`, `duration`, `billsec`, `disposition`,
    /// `call_successful`, `hangup_cause`, `direction`, `account_code`, `linked_id`,
    /// `sequence`. Columns not mapped are kept in `extra` under their own names.
    pub fields: BTreeMap<String, String>,
    /// chrono `strftime` formats of the file's zone-less times, tried before the standard
    /// ones (`%Y-%m-%d %H:%M:%S`, `%Y/%m/%d %H:%M`, ...); zoned times and epoch seconds are
    /// always read.
    #[serde(default)]
    #[oai(default)]
    pub time_formats: Vec<String>,
    /// IANA time zone of the file's zone-less times (UTC when absent); a request's
    /// `timezone` parameter wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub timezone: Option<String>,
    /// Per field, the switch's own values and what they mean, e.g.
    /// `{"disposition": {"CHANUNAVAIL": "FAILED"}, "direction": {"1": "inbound"}}`. The
    /// value as written is kept (`disposition_raw`, or the column in `extra`).
    #[serde(default)]
    #[oai(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// What makes two rows the same record (default `row`).
    #[serde(default)]
    #[oai(default)]
    pub identity: Identity,
}

impl Layout {
    /// Whether the first row of a file in this layout is a header.
    pub fn has_header(&self) -> bool {
        self.columns.is_empty()
    }

    /// Checks what can be checked before a file is read: known fields, columns that exist,
    /// a valid time zone and formats, dispositions the system knows.
    pub fn validate(&self) -> Result<(), String> {
        if self.fields.is_empty() {
            return Err("fields: map at least start_time to a column".into());
        }
        if !self.fields.contains_key("start_time") {
            return Err(
                "fields: start_time must be mapped (a record without a start time cannot be kept)".into()
            );
        }
        for (field, column) in &self.fields {
            if !MAPPABLE_FIELDS.contains(&field.as_str()) {
                return Err(format!(
                    "fields: unknown field {field:?}; fields are {}",
                    MAPPABLE_FIELDS.join(", ")
                ));
            }
            if column.trim().is_empty() {
                return Err(format!("fields: {field} maps to an empty column name"));
            }
            if !self.columns.is_empty() && !self.columns.contains(column) {
                return Err(format!("fields: {field} maps to {column:?}, which is not one of columns"));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.columns {
            if !seen.insert(c) {
                return Err(format!("columns: {c:?} appears twice"));
            }
        }
        if let Some(tz) = &self.timezone {
            tz.parse::<Tz>().map_err(|_| format!("timezone: unknown time zone {tz:?}"))?;
        }
        for f in &self.time_formats {
            if chrono::format::StrftimeItems::new(f).any(|i| matches!(i, chrono::format::Item::Error)) {
                return Err(format!("time_formats: {f:?} is not a valid strftime format"));
            }
        }
        for (field, map) in &self.values {
            if !self.fields.contains_key(field) {
                return Err(format!("values: {field} is not mapped in fields"));
            }
            if field == "disposition" {
                for (raw, to) in map {
                    to.parse::<Disposition>().map_err(|e| format!("values.disposition.{raw}: {e}"))?;
                }
            }
        }
        Ok(())
    }

    /// Resolves the mapped columns against the file's column names (the layout's own, or
    /// its header row's).
    pub fn resolve(&self, names: &[String]) -> Result<Resolved, String> {
        let mut fields = Vec::with_capacity(self.fields.len());
        for (field, column) in &self.fields {
            let at = names
                .iter()
                .position(|n| n.trim().eq_ignore_ascii_case(column.trim()))
                .ok_or_else(|| format!("no column {column:?} (for {field}) in the header row"))?;
            fields.push((field.clone(), at));
        }
        let tz = match &self.timezone {
            Some(tz) => Some(tz.parse::<Tz>().map_err(|_| format!("unknown time zone {tz:?}"))?),
            None => None,
        };
        Ok(Resolved { names: names.to_vec(), fields, layout: self.clone(), tz })
    }
}

/// A layout bound to a file's columns, ready to map its rows.
#[derive(Debug, Clone)]
pub struct Resolved {
    names: Vec<String>,
    fields: Vec<(String, usize)>,
    layout: Layout,
    tz: Option<Tz>,
}

impl Resolved {
    pub fn column_count(&self) -> usize {
        self.names.len()
    }

    /// Whether a row could be in this layout: the right number of columns, times where
    /// times belong, whole seconds where seconds belong, an Asterisk unique id where the
    /// `uniqueid` column is. Used to tell headerless layouts apart.
    pub fn fits(&self, row: &[String]) -> bool {
        if row.len() != self.names.len() {
            return false;
        }
        let tz = self.tz.unwrap_or(Tz::UTC);
        for (field, at) in &self.fields {
            let value = row[*at].trim();
            let ok = match field.as_str() {
                "start_time" => !value.is_empty() && plausible_time(value, &self.layout.time_formats, tz),
                "answer_time" | "end_time" => {
                    value.is_empty() || plausible_time(value, &self.layout.time_formats, tz)
                }
                "duration" | "billsec" => {
                    value.is_empty() || value.parse::<u32>().is_ok() || clock_seconds(value).is_some()
                }
                "call_id" if self.names[*at] == "uniqueid" => value.is_empty() || is_asterisk_uniqueid(value),
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// One row as a raw record, in this API's field names, for the shared validation.
    pub fn record(&self, row: &[String], timezone: Option<Tz>) -> Result<Value, String> {
        if row.len() != self.names.len() {
            return Err(format!("expected {} columns, found {}", self.names.len(), row.len()));
        }
        let tz = timezone.or(self.tz).unwrap_or(Tz::UTC);
        let mut obj = Map::new();
        let mut consumed = vec![false; row.len()];
        for (field, at) in &self.fields {
            let value = &row[*at];
            let blank = value.trim().is_empty();
            let mapped = self.layout.values.get(field).and_then(|m| lookup(m, value.trim()));
            match field.as_str() {
                "src_number" | "dest_number" => {
                    obj.insert(field.clone(), Value::String(value.clone()));
                    consumed[*at] = true;
                }
                _ if blank => consumed[*at] = true,
                f if TIME_FIELDS.contains(&f) => {
                    let t =
                        local_time(value, &self.layout.time_formats, tz).map_err(|e| format!("{f}: {e}"))?;
                    if let Some(t) = t {
                        obj.insert(field.clone(), Value::String(t));
                    }
                    consumed[*at] = true;
                }
                "disposition" => {
                    obj.insert("disposition_raw".into(), Value::String(value.clone()));
                    obj.insert(field.clone(), Value::String(mapped.unwrap_or(value).to_string()));
                    consumed[*at] = true;
                }
                "duration" | "billsec" if value.trim().parse::<i64>().is_err() => {
                    // `0:01:05` (a PBX's export) or `65.432` (Asterisk's high-resolution
                    // `CDR(duration,f)`): whole seconds for the field, the text kept in extra.
                    let seconds = clock_seconds(value.trim()).unwrap_or_else(|| value.trim().to_string());
                    obj.insert(field.clone(), Value::String(seconds));
                }
                "sequence" => {
                    obj.insert("record_key".into(), Value::String(format!("seq:{}", value.trim())));
                }
                f if ALSO_IN_EXTRA.contains(&f) => {
                    obj.insert(field.clone(), Value::String(mapped.unwrap_or(value).trim().to_string()));
                }
                _ => {
                    obj.insert(field.clone(), Value::String(mapped.unwrap_or(value).to_string()));
                    consumed[*at] = mapped.is_none();
                }
            }
        }
        if !obj.contains_key("record_key") && self.layout.identity == Identity::Row {
            obj.insert("record_key".into(), Value::String(row_key(&row.join("\u{1f}"))));
        }
        let mut extra = Map::new();
        for (i, value) in row.iter().enumerate() {
            if !consumed[i] && !value.is_empty() {
                extra.insert(self.names[i].clone(), Value::String(value.clone()));
            }
        }
        if !extra.is_empty() {
            obj.insert("extra".into(), Value::Object(extra));
        }
        Ok(Value::Object(obj))
    }
}

/// Whether a column value reads as a time. A short run of digits reads as epoch seconds in
/// the 1970s, but in a file it is a count (seconds, a sequence): not evidence of a time.
fn plausible_time(value: &str, formats: &[String], tz: Tz) -> bool {
    let short_number = value.len() < 9 && value.bytes().all(|b| b.is_ascii_digit());
    !short_number && local_time(value, formats, tz).is_ok()
}

/// Seconds written as `H:MM:SS`, `M:SS` or a decimal, as whole seconds (truncated, as
/// Asterisk truncates); `None` for anything else.
fn clock_seconds(value: &str) -> Option<String> {
    if value.contains(':') {
        let mut total: u64 = 0;
        for part in value.split(':') {
            if part.is_empty() || part.len() > 6 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            total = total.checked_mul(60)?.checked_add(part.parse::<u64>().ok()?)?;
        }
        return (value.split(':').count() <= 3).then(|| total.to_string());
    }
    let (whole, frac) = value.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(whole) && digits(frac)).then(|| whole.to_string())
}

/// A value map entry, matched exactly first and then ignoring case.
fn lookup<'a>(map: &'a BTreeMap<String, String>, value: &str) -> Option<&'a str> {
    map.get(value)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(value)).map(|(_, v)| v))
        .map(String::as_str)
}

/// Asterisk's `uniqueid`: epoch seconds, a dot, a counter, after an optional `systemname-`.
fn is_asterisk_uniqueid(value: &str) -> bool {
    let id = value.rsplit_once('-').map_or(value, |(_, id)| id);
    match id.split_once('.') {
        Some((secs, n)) => {
            !secs.is_empty()
                && !n.is_empty()
                && secs.bytes().all(|b| b.is_ascii_digit())
                && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            description: String::new(),
            columns: vec![
                "id".into(),
                "from".into(),
                "to".into(),
                "at".into(),
                "state".into(),
                "note".into(),
            ],
            fields: [
                ("call_id", "id"),
                ("src_number", "from"),
                ("dest_number", "to"),
                ("start_time", "at"),
                ("disposition", "state"),
            ]
            .into_iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect(),
            time_formats: vec!["%d.%m.%Y %H:%M".into()],
            timezone: Some("Europe/Berlin".into()),
            values: [("disposition".to_string(), [("CHANUNAVAIL".to_string(), "FAILED".to_string())].into())]
                .into(),
            identity: Identity::Row,
        }
    }

    fn row(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_row_maps_to_fields_with_the_raw_values_kept() {
        let l = layout();
        l.validate().unwrap();
        let r = l.resolve(&l.columns).unwrap();
        let rec = r.record(&row(&["c1", "s", "", "01.07.2026 12:00", "chanunavail", "x"]), None).unwrap();
        assert_eq!(rec["src_number"], "s");
        assert_eq!(rec["dest_number"], "");
        assert_eq!(rec["start_time"], "2026-07-01T10:00:00+00:00");
        assert_eq!(rec["disposition"], "FAILED");
        assert_eq!(rec["disposition_raw"], "chanunavail");
        assert_eq!(rec["extra"], serde_json::json!({"note": "x"}));
        assert!(rec["record_key"].as_str().unwrap().starts_with("row:"));
        // The request's zone wins over the layout's.
        let utc = r.record(&row(&["c1", "s", "", "01.07.2026 12:00", "", ""]), Some(Tz::UTC)).unwrap();
        assert_eq!(utc["start_time"], "2026-07-01T12:00:00+00:00");
    }

    #[test]
    fn rows_that_differ_get_different_keys_and_identical_rows_the_same() {
        let l = layout();
        let r = l.resolve(&l.columns).unwrap();
        let a = r.record(&row(&["c1", "s", "1", "01.07.2026 12:00", "", ""]), None).unwrap();
        let b = r.record(&row(&["c1", "s", "2", "01.07.2026 12:00", "", ""]), None).unwrap();
        let a2 = r.record(&row(&["c1", "s", "1", "01.07.2026 12:00", "", ""]), None).unwrap();
        assert_ne!(a["record_key"], b["record_key"]);
        assert_eq!(a["record_key"], a2["record_key"]);
        let by_call = Layout { identity: Identity::CallId, ..layout() };
        let rec = by_call
            .resolve(&by_call.columns)
            .unwrap()
            .record(&row(&["c", "", "", "01.07.2026 12:00", "", ""]), None);
        assert!(rec.unwrap().get("record_key").is_none());
    }

    #[test]
    fn invalid_layouts_are_explained() {
        let mut l = layout();
        l.fields.insert("colour".into(), "note".into());
        assert!(l.validate().unwrap_err().contains("unknown field"));
        let mut l = layout();
        l.fields.insert("billsec".into(), "talk".into());
        assert!(l.validate().unwrap_err().contains("not one of columns"));
        let mut l = layout();
        l.values.insert("disposition".into(), [("X".to_string(), "MAYBE".to_string())].into());
        assert!(l.validate().unwrap_err().contains("values.disposition.X"));
        let mut l = layout();
        l.timezone = Some("Mars/Olympus".into());
        assert!(l.validate().is_err());
        let mut l = layout();
        l.fields.remove("start_time");
        assert!(l.validate().unwrap_err().contains("start_time"));
    }

    #[test]
    fn clock_and_decimal_seconds_are_whole_seconds() {
        assert_eq!(clock_seconds("0:01:05").as_deref(), Some("65"));
        assert_eq!(clock_seconds("1:00:00").as_deref(), Some("3600"));
        assert_eq!(clock_seconds("2:05").as_deref(), Some("125"));
        assert_eq!(clock_seconds("12.987654").as_deref(), Some("12"));
        for bad in ["", "1:2:3:4", "a:00", "-1.5", "1.", ":30"] {
            assert_eq!(clock_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn asterisk_unique_ids_are_recognised() {
        for ok in ["1231977075.0", "pbx1-1427211880.12"] {
            assert!(is_asterisk_uniqueid(ok), "{ok}");
        }
        for bad in ["", "abc", "12345", "1.x", "userfield text"] {
            assert!(!is_asterisk_uniqueid(bad), "{bad}");
        }
    }
}
