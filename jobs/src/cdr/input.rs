//! Turning one raw JSON record, as a switch or the reference system sent it, into a [`Cdr`].
//!
//! Validation is per record and names the field at fault, so a batch with one bad record
//! still stores the others and the client learns exactly what to fix.

use super::hangup::disposition_of_cause;
use super::model::{Cdr, Disposition};
use super::time::{kind, parse_time};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Why one record of a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    /// Position of the record in the batch, from 0.
    pub index: usize,
    /// The record's call id when it had a readable one.
    pub call_id: Option<String>,
    /// The field at fault (`record` when the record as a whole is wrong).
    pub field: String,
    pub reason: String,
}

/// Longest party (number, SIP user, extension) kept: far beyond any number or SIP user name.
const MAX_PARTY_LEN: usize = 255;
const MAX_ID_LEN: usize = 255;
const MAX_SHORT_TEXT: usize = 255;
/// What switches write instead of a calling number that was withheld or missing.
const WITHHELD_WORDS: &[&str] = &["anonymous", "unknown", "restricted", "private", "unavailable", "withheld"];

/// Each field with the other names switches and the reference system give it.
const CALL_ID: &[&str] = &["call_id", "uniqueid", "uuid", "callid"];
const RECORD_KEY: &[&str] = &["record_key"];
const SOURCE: &[&str] = &["source", "switch"];
const SRC_NUMBER: &[&str] = &["src_number", "src", "caller_id_number", "caller"];
const DEST_NUMBER: &[&str] = &["dest_number", "dst", "destination_number", "callee"];
const START_TIME: &[&str] = &["start_time", "start", "start_stamp"];
const ANSWER_TIME: &[&str] = &["answer_time", "answer", "answer_stamp"];
const END_TIME: &[&str] = &["end_time", "end", "end_stamp"];
const DURATION: &[&str] = &["duration", "call_duration"];
const BILLSEC: &[&str] = &["billsec"];
const DISPOSITION: &[&str] = &["disposition"];
const DISPOSITION_RAW: &[&str] = &["disposition_raw"];
const CALL_SUCCESSFUL: &[&str] = &["call_successful"];
const HANGUP_CAUSE: &[&str] = &["hangup_cause"];
const DIRECTION: &[&str] = &["direction"];
const ACCOUNT_CODE: &[&str] = &["account_code", "accountcode"];
const LINKED_ID: &[&str] = &["linked_id", "linkedid"];
const EXTRA: &[&str] = &["extra"];
/// Read, and also kept in `extra` under the switch's own name.
const SEQUENCE: &[&str] = &["sequence"];
const BLEG_UUID: &[&str] = &["bleg_uuid"];
const KNOWN: &[&[&str]] = &[
    CALL_ID,
    RECORD_KEY,
    SOURCE,
    SRC_NUMBER,
    DEST_NUMBER,
    START_TIME,
    ANSWER_TIME,
    END_TIME,
    DURATION,
    BILLSEC,
    DISPOSITION,
    DISPOSITION_RAW,
    CALL_SUCCESSFUL,
    HANGUP_CAUSE,
    DIRECTION,
    ACCOUNT_CODE,
    LINKED_ID,
    EXTRA,
];

/// Parses every record of a batch; returns the valid ones (with their batch index) and the
/// refusals, in batch order.
pub fn parse_records(records: &[Value], default_source: &str) -> (Vec<(usize, Cdr)>, Vec<RecordError>) {
    let mut valid = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for (index, value) in records.iter().enumerate() {
        match parse_record(index, value, default_source) {
            Ok(cdr) => valid.push((index, cdr)),
            Err(e) => rejected.push(e),
        }
    }
    (valid, rejected)
}

/// Validates one record and derives what it leaves out. The switch's own values are kept as
/// written; only what no switch could have written is refused: no readable start time,
/// negative seconds, an end before the start, text PostgreSQL cannot store.
pub fn parse_record(index: usize, value: &Value, default_source: &str) -> Result<Cdr, RecordError> {
    let Value::Object(obj) = value else {
        return Err(RecordError {
            index,
            call_id: None,
            field: "record".into(),
            reason: format!("expected an object, got {}", kind(value)),
        });
    };
    let mut rec = Record { index, obj, call_id: None };
    rec.call_id = rec.filled(CALL_ID).and_then(|name| rec.opt_text(&[name], MAX_ID_LEN).ok().flatten());
    rec.build(default_source)
}

struct Record<'a> {
    index: usize,
    obj: &'a Map<String, Value>,
    call_id: Option<String>,
}

impl Record<'_> {
    fn err(&self, field: &str, reason: impl Into<String>) -> RecordError {
        RecordError {
            index: self.index,
            call_id: self.call_id.clone(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// The first of a field's names present and not null.
    fn get(&self, names: &[&str]) -> Option<&Value> {
        names.iter().find_map(|n| self.obj.get(*n).filter(|v| !v.is_null()))
    }

    /// The first of a field's names holding a value that is not blank: for ids, where a
    /// blank `call_id` beside a filled `uniqueid` must not hide the latter.
    fn filled<'n>(&self, names: &[&'n str]) -> Option<&'n str> {
        names.iter().find_map(|n| match self.obj.get(*n) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(*n),
            Some(Value::Number(_)) => Some(*n),
            _ => None,
        })
    }

    /// A text field as written (numbers as their JSON text), `None` when absent or blank.
    fn opt_text(&self, names: &[&str], max: usize) -> Result<Option<String>, RecordError> {
        Ok(self.raw_text(names, max)?.filter(|s| !s.trim().is_empty()).map(|s| s.trim().to_string()))
    }

    /// A text field exactly as written, blank or not; `None` only when absent.
    fn raw_text(&self, names: &[&str], max: usize) -> Result<Option<String>, RecordError> {
        let Some(v) = self.get(names) else {
            return Ok(None);
        };
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(self.err(names[0], format!("expected a string, got {}", kind(other))));
            }
        };
        if s.chars().count() > max {
            return Err(self.err(names[0], format!("longer than {max} characters")));
        }
        if s.contains('\0') {
            return Err(self.err(names[0], "contains a NUL character, which PostgreSQL cannot store"));
        }
        Ok(Some(s))
    }

    /// A party (caller or callee) as the switch wrote it: any text, empty included.
    fn party(&self, names: &[&str]) -> Result<String, RecordError> {
        Ok(self.raw_text(names, MAX_PARTY_LEN)?.unwrap_or_default())
    }

    fn time(&self, names: &[&str]) -> Result<Option<DateTime<Utc>>, RecordError> {
        match self.get(names) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v) => parse_time(v).map(Some).map_err(|r| self.err(names[0], r)),
        }
    }

    fn seconds(&self, names: &[&str]) -> Result<Option<i64>, RecordError> {
        let Some(v) = self.get(names) else {
            return Ok(None);
        };
        let n = match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0).map(|f| f as i64)),
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n)),
            Some(n) => Err(self.err(names[0], format!("{n} is out of range (0..={})", i32::MAX))),
            None => Err(self.err(names[0], format!("expected whole seconds, got {v}"))),
        }
    }

    fn flag(&self, names: &[&str]) -> Result<Option<bool>, RecordError> {
        match self.get(names) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(self.err(names[0], format!("expected true or false, got {s:?}"))),
            },
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
            Some(other) => Err(self.err(names[0], format!("expected true or false, got {}", kind(other)))),
        }
    }

    /// `extra` plus every field we do not model, so nothing a switch sent is lost.
    fn extra(&self) -> Result<Map<String, Value>, RecordError> {
        let mut extra = match self.get(EXTRA) {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(self.err("extra", format!("expected an object, got {}", kind(other))));
            }
        };
        for (k, v) in self.obj {
            if !KNOWN.iter().any(|names| names.contains(&k.as_str())) {
                extra.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if extra.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)) {
            return Err(self.err("extra", "contains a NUL character, which PostgreSQL cannot store"));
        }
        Ok(extra)
    }

    /// What tells this record apart from others under the same call id (see
    /// [`Cdr::record_key`]): a key the record states, Asterisk's `sequence`, or — for an
    /// Asterisk `uniqueid`, which a transfer or a forked Dial writes on several different
    /// rows — a digest of the row, so an identical row is the same record and a different
    /// one is not.
    fn record_key(&self) -> Result<String, RecordError> {
        if let Some(key) = self.opt_text(RECORD_KEY, MAX_ID_LEN)? {
            return Ok(key);
        }
        if let Some(seq) = self.opt_text(SEQUENCE, MAX_ID_LEN)? {
            return Ok(format!("seq:{seq}"));
        }
        let asterisk_id = self.filled(CALL_ID) == Some("uniqueid");
        Ok(if asterisk_id {
            row_key(&serde_json::to_string(self.obj).unwrap_or_default())
        } else {
            String::new()
        })
    }

    /// The disposition the record leaves out, from what happened: an answer (an answer
    /// time, billable seconds, or a successful flag) is an answered call whatever the
    /// hangup cause says; otherwise the Q.850 cause tells busy, no answer and failure apart.
    fn derived_disposition(
        &self,
        answered: bool,
        successful: Option<bool>,
        cause: Option<&str>,
    ) -> Disposition {
        if answered || successful == Some(true) {
            return Disposition::Answered;
        }
        match cause.and_then(disposition_of_cause) {
            Some(d) if d != Disposition::Answered => d,
            _ if successful == Some(false) => Disposition::Failed,
            _ => Disposition::NoAnswer,
        }
    }

    fn build(&self, default_source: &str) -> Result<Cdr, RecordError> {
        let source = self.opt_text(SOURCE, MAX_SHORT_TEXT)?.unwrap_or_else(|| default_source.to_string());
        let src_number = self.party(SRC_NUMBER)?;
        let dest_number = self.party(DEST_NUMBER)?;
        let caller_withheld = {
            let s = src_number.trim();
            s.is_empty() || WITHHELD_WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
        };
        let start_time = self.time(START_TIME)?.ok_or_else(|| self.err("start_time", "required"))?;
        let end_time = self.time(END_TIME)?;
        if let Some(end) = end_time
            && end < start_time
        {
            return Err(self.err("end_time", "is before start_time"));
        }
        let answer_time = self.time(ANSWER_TIME)?;
        let span = end_time.map(|end| (end - start_time).num_seconds());
        if span.is_some_and(|s| s > i64::from(i32::MAX)) {
            return Err(self.err("end_time", "call lasts longer than 68 years"));
        }

        let successful = self.flag(CALL_SUCCESSFUL)?;
        let stated_duration = self.seconds(DURATION)?;
        let stated_billsec = self.seconds(BILLSEC)?;
        // The reference system's shape has no answer time or billsec: its call_duration
        // of a successful call is the talk time.
        let reference_shape = self.obj.contains_key("call_duration") && stated_billsec.is_none();
        let talk = match (answer_time, end_time) {
            (Some(answer), Some(end)) if answer <= end => Some((end - answer).num_seconds()),
            _ => None,
        };
        let duration = stated_duration.or(span).or(stated_billsec).unwrap_or(0);
        let billsec = match stated_billsec.or(talk) {
            Some(b) => b,
            None if reference_shape && successful == Some(true) => duration,
            None => 0,
        };

        let hangup_cause = self.opt_text(HANGUP_CAUSE, MAX_SHORT_TEXT)?;
        let stated = match self.get(DISPOSITION) {
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(self.err("disposition", format!("expected a string, got {}", kind(other))));
            }
        };
        let disposition = match &stated {
            Some(s) => s.parse::<Disposition>().unwrap_or(Disposition::Failed),
            None => self.derived_disposition(
                answer_time.is_some() || billsec > 0,
                successful,
                hangup_cause.as_deref(),
            ),
        };
        let disposition_raw = match self.raw_text(DISPOSITION_RAW, MAX_SHORT_TEXT)? {
            Some(raw) => Some(raw),
            None => stated,
        };
        if disposition_raw.as_deref().is_some_and(|r| r.contains('\0') || r.chars().count() > MAX_SHORT_TEXT)
        {
            return Err(self.err("disposition", "contains a NUL character or is too long"));
        }
        let call_successful = disposition == Disposition::Answered;

        let call_id = match &self.call_id {
            Some(id) => id.clone(),
            None => {
                // The explicit call id field may have been present but invalid.
                if let Some(name) = self.filled(CALL_ID) {
                    self.opt_text(&[name], MAX_ID_LEN)?;
                }
                derive_call_id(&source, &src_number, &dest_number, start_time, end_time)
            }
        };
        let linked_id = match self.opt_text(LINKED_ID, MAX_ID_LEN)? {
            Some(id) => Some(id),
            None => self.opt_text(BLEG_UUID, MAX_ID_LEN)?,
        };
        let mut extra = self.extra()?;
        if successful.is_some_and(|s| s != call_successful) {
            // The flag the client sent disagrees with the disposition: keep what it said.
            extra.insert("call_successful".into(), Value::Bool(successful == Some(true)));
        }

        Ok(Cdr {
            record_key: self.record_key()?,
            call_id,
            source,
            src_number,
            dest_number,
            start_time,
            answer_time,
            end_time,
            duration: i32::try_from(duration).map_err(|_| self.err("duration", "out of range"))?,
            billsec: i32::try_from(billsec).map_err(|_| self.err("billsec", "out of range"))?,
            disposition,
            disposition_raw,
            call_successful,
            hangup_cause,
            direction: self.opt_text(DIRECTION, MAX_SHORT_TEXT)?.map(|d| d.to_ascii_lowercase()),
            account_code: self.opt_text(ACCOUNT_CODE, MAX_SHORT_TEXT)?,
            linked_id,
            caller_withheld,
            extra,
        })
    }
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// The record key of a row identified by what it says: a digest of its text, so the same
/// row read again has the same key.
pub fn row_key(row: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(row.as_bytes());
    format!("row:{}", hex::encode(&digest[..16]))
}

/// A stable id for a record that came without one: the same call sent again derives the same
/// id, so idempotency holds for switches that emit no unique id.
fn derive_call_id(
    source: &str,
    src: &str,
    dest: &str,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
) -> String {
    let end = end.map(|e| e.timestamp_micros().to_string()).unwrap_or_default();
    let key = format!("{source}\u{1f}{src}\u{1f}{dest}\u{1f}{}\u{1f}{end}", start.timestamp_micros());
    format!("derived-{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> Cdr {
        parse_record(0, &v, "default").unwrap()
    }

    fn bad(v: Value) -> RecordError {
        parse_record(3, &v, "default").unwrap_err()
    }

    fn answered() -> Value {
        json!({
            "call_id": "c-1", "source": "pbx-1", "src_number": "+14155550100",
            "dest_number": "442071234567", "start_time": "2026-03-01T10:00:00Z",
            "answer_time": "2026-03-01T10:00:05Z", "end_time": "2026-03-01T10:01:05Z",
            "disposition": "ANSWERED"
        })
    }

    #[test]
    fn derives_duration_billsec_and_success() {
        let c = ok(answered());
        assert_eq!((c.duration, c.billsec), (65, 60));
        assert!(c.call_successful);
        assert_eq!(c.disposition, Disposition::Answered);
        assert_eq!(c.source, "pbx-1");
    }

    #[test]
    fn unanswered_call_has_no_billsec() {
        let c = ok(json!({
            "src_number": "100", "dest_number": "200", "start_time": "2026-03-01 10:00:00",
            "end_time": "2026-03-01 10:00:30", "disposition": "no answer"
        }));
        assert_eq!((c.duration, c.billsec, c.call_successful), (30, 0, false));
        assert_eq!(c.answer_time, None);
        assert_eq!(c.source, "default");
        assert!(c.call_id.starts_with("derived-"));
    }

    #[test]
    fn derived_call_id_is_stable_and_distinguishes_calls() {
        let rec = json!({"src_number": "100", "dest_number": "200",
            "start_time": "2026-03-01 10:00:00", "end_time": "2026-03-01 10:00:30"});
        let a = ok(rec.clone()).call_id;
        assert_eq!(a, ok(rec.clone()).call_id);
        let mut other = rec;
        other["dest_number"] = json!("201");
        assert_ne!(a, ok(other).call_id);
    }

    #[test]
    fn reference_system_shape_is_accepted() {
        let c = ok(json!({
            "src_number": "5551234", "dest_number": "5556789", "call_duration": 120,
            "call_successful": true, "start_time": "2026-03-01T10:00:00",
            "end_time": "2026-03-01T10:02:00", "timestamp": "2026-03-01T10:02:01"
        }));
        assert_eq!((c.duration, c.billsec), (120, 120));
        assert_eq!(c.disposition, Disposition::Answered);
        assert_eq!(c.extra.get("timestamp"), Some(&json!("2026-03-01T10:02:01")));

        let failed = ok(json!({
            "src_number": "5551234", "dest_number": "5556789", "call_duration": 10,
            "call_successful": false, "start_time": "2026-03-01T10:00:00",
            "end_time": "2026-03-01T10:00:10"
        }));
        assert_eq!((failed.billsec, failed.disposition), (0, Disposition::Failed));
    }

    #[test]
    fn asterisk_and_freeswitch_names_are_accepted() {
        let c = ok(json!({
            "uniqueid": "1709287200.42", "src": "100", "dst": "*97",
            "start": "2026-03-01 10:00:00", "answer": "", "end": "2026-03-01 10:00:04",
            "duration": "4", "billsec": "0", "disposition": "BUSY", "accountcode": "acme"
        }));
        assert_eq!(c.call_id, "1709287200.42");
        assert_eq!(c.dest_number, "*97");
        assert_eq!(c.account_code.as_deref(), Some("acme"));
        assert_eq!(c.disposition, Disposition::Busy);
        assert_eq!(c.disposition_raw.as_deref(), Some("BUSY"));
    }

    fn row_with_disposition(d: &str) -> Value {
        json!({"uniqueid": "1231977075.0", "src": "test", "dst": "100",
            "start": "2009-01-14 23:51:15", "end": "2009-01-14 23:51:20", "billsec": 5,
            "disposition": d})
    }

    #[test]
    fn asterisk_rows_under_one_uniqueid_are_different_records_unless_identical() {
        let row = json!({"uniqueid": "1231977075.0", "src": "test", "dst": "100",
            "start": "2009-01-14 23:51:15", "end": "2009-01-14 23:51:20", "billsec": 5,
            "disposition": "ANSWERED"});
        let a = ok(row.clone());
        assert!(a.record_key.starts_with("row:"), "{}", a.record_key);
        assert_eq!(ok(row.clone()).record_key, a.record_key);
        let mut other = row.clone();
        other["disposition"] = json!("FAILED");
        assert_ne!(ok(other).record_key, a.record_key);
        let mut sequenced = row;
        sequenced["sequence"] = json!("7");
        let s = ok(sequenced);
        assert_eq!(s.record_key, "seq:7");
        assert_eq!(s.extra.get("sequence"), Some(&json!("7")));
        // This API's own call_id names a record by itself.
        assert_eq!(ok(answered()).record_key, "");
        // A blank call_id beside a uniqueid does not hide it.
        let mut blank = row_with_disposition("ANSWERED");
        blank["call_id"] = json!("");
        let b = ok(blank);
        assert_eq!((b.call_id.as_str(), b.record_key.starts_with("row:")), ("1231977075.0", true));
    }

    #[test]
    fn parties_are_kept_as_written_and_a_withheld_caller_is_flagged() {
        for raw in ["", "  ", "anonymous", "Anonymous", "UNKNOWN", "restricted", "private"] {
            let mut v = answered();
            v["src_number"] = json!(raw);
            let c = ok(v);
            assert_eq!(c.src_number, raw);
            assert!(c.caller_withheld, "{raw:?}");
        }
        for raw in ["test", "jerbeartest", "s", "t", "&", "*1001", "44-20-7123", "sip:alice@example.com"] {
            let mut v = answered();
            v["src_number"] = json!(raw);
            v["dest_number"] = json!(raw);
            let c = ok(v);
            assert_eq!((c.src_number.as_str(), c.dest_number.as_str()), (raw, raw));
            assert!(!c.caller_withheld);
        }
        let mut v = answered();
        v.as_object_mut().unwrap().remove("src_number");
        let c = ok(v);
        assert_eq!((c.src_number.as_str(), c.caller_withheld), ("", true));
        let mut v = answered();
        v["dest_number"] = json!("x".repeat(256));
        assert_eq!(bad(v).field, "dest_number");
    }

    #[test]
    fn the_switchs_own_figures_are_kept_even_when_they_disagree() {
        let mut v = answered();
        v["billsec"] = json!(500);
        v["duration"] = json!(7);
        let c = ok(v);
        assert_eq!((c.duration, c.billsec), (7, 500));

        // A busy call with an answer time and billsec, as Asterisk writes some.
        let mut v = answered();
        v["disposition"] = json!("BUSY");
        let c = ok(v);
        assert_eq!((c.disposition, c.billsec, c.call_successful), (Disposition::Busy, 60, false));

        let mut v = answered();
        v["answer_time"] = json!("2026-03-01T11:00:00Z");
        assert!(ok(v).answer_time.is_some());

        let mut v = answered();
        v["call_successful"] = json!(false);
        let c = ok(v);
        assert!(c.call_successful);
        assert_eq!(c.extra.get("call_successful"), Some(&json!(false)));
    }

    #[test]
    fn unknown_dispositions_count_as_failed_with_the_raw_value_kept() {
        let mut v = answered();
        v["disposition"] = json!("CHANUNAVAIL");
        let c = ok(v);
        assert_eq!((c.disposition, c.disposition_raw.as_deref()), (Disposition::Failed, Some("CHANUNAVAIL")));
        let mut v = answered();
        v["disposition"] = json!("no_answer");
        assert_eq!(ok(v).disposition_raw.as_deref(), Some("no_answer"));
    }

    #[test]
    fn a_missing_disposition_follows_what_happened() {
        let base = json!({"uuid": "u", "src_number": "1", "dest_number": "2",
            "start_time": "2026-03-01T10:00:00Z", "end_time": "2026-03-01T10:00:30Z"});
        let with = |pairs: &[(&str, Value)]| {
            let mut v = base.clone();
            for (k, val) in pairs {
                v[*k] = val.clone();
            }
            ok(v)
        };
        // Answered whatever the cause says.
        let c = with(&[("answer_time", json!("2026-03-01T10:00:05Z")), ("hangup_cause", json!("USER_BUSY"))]);
        assert_eq!((c.disposition, c.billsec, c.disposition_raw), (Disposition::Answered, 25, None));
        assert_eq!(with(&[("hangup_cause", json!("USER_BUSY"))]).disposition, Disposition::Busy);
        assert_eq!(with(&[("hangup_cause", json!("17"))]).disposition, Disposition::Busy);
        assert_eq!(with(&[("hangup_cause", json!("NO_ANSWER"))]).disposition, Disposition::NoAnswer);
        assert_eq!(with(&[("hangup_cause", json!("CALL_REJECTED"))]).disposition, Disposition::Failed);
        assert_eq!(with(&[("billsec", json!(3))]).disposition, Disposition::Answered);
        assert_eq!(with(&[]).disposition, Disposition::NoAnswer);
    }

    #[test]
    fn a_record_without_an_end_keeps_its_duration() {
        let c = ok(json!({"callid": "x", "caller_id_number": "1", "destination_number": "2",
            "start_time": "2015-10-21 12:13:10", "duration": "55", "billsec": "50"}));
        assert_eq!((c.end_time, c.duration, c.billsec), (None, 55, 50));
        assert_eq!(c.ends_at().to_rfc3339(), "2015-10-21T12:14:05+00:00");
        assert_eq!(c.disposition, Disposition::Answered);
    }

    #[test]
    fn only_what_no_switch_could_write_is_refused() {
        let mut v = answered();
        v["end_time"] = json!("2026-03-01T09:00:00Z");
        let e = bad(v);
        assert_eq!((e.index, e.field.as_str(), e.call_id.as_deref()), (3, "end_time", Some("c-1")));

        let mut v = answered();
        v["duration"] = json!(-5);
        assert_eq!(bad(v).field, "duration");

        let mut v = answered();
        v["billsec"] = json!("-1");
        assert_eq!(bad(v).field, "billsec");

        let mut v = answered();
        v["duration"] = json!(99_999_999_999_i64);
        assert_eq!(bad(v).field, "duration");

        let mut v = answered();
        v["start_time"] = json!("soon");
        assert_eq!(bad(v).field, "start_time");

        let mut v = answered();
        v.as_object_mut().unwrap().remove("start_time");
        assert_eq!(bad(v).reason, "required");

        assert_eq!(bad(json!([1, 2])).field, "record");
    }

    #[test]
    fn nul_characters_are_refused_but_other_text_is_kept_verbatim() {
        let mut v = answered();
        v["hangup_cause"] = json!("NORMAL'; DROP TABLE cdrs; --\u{7}");
        assert_eq!(ok(v).hangup_cause.as_deref(), Some("NORMAL'; DROP TABLE cdrs; --\u{7}"));

        let mut v = answered();
        v["extra"] = json!({"note": "a\u{0}b"});
        assert_eq!(bad(v).field, "extra");
    }

    #[test]
    fn unknown_fields_are_kept_in_extra() {
        let mut v = answered();
        v["lastapp"] = json!("Dial");
        v["extra"] = json!({"codec": "opus"});
        let c = ok(v);
        assert_eq!(c.extra.get("lastapp"), Some(&json!("Dial")));
        assert_eq!(c.extra.get("codec"), Some(&json!("opus")));
    }

    #[test]
    fn parse_records_splits_valid_from_rejected_in_order() {
        let mut broken = answered();
        broken["start_time"] = json!("nope");
        let (valid, rejected) = parse_records(&[answered(), broken, json!("x")], "s");
        assert_eq!(valid.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0]);
        assert_eq!(rejected.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2]);
    }
}
