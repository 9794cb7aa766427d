//! Turning one raw JSON record, as a switch or the reference system sent it, into a [`Cdr`].
//!
//! Validation is per record and names the field at fault, so a batch with one bad record
//! still stores the others and the client learns exactly what to fix.

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

/// Longest phone number kept: E.164 allows 15 digits; service codes and prefixes add a few.
const MAX_NUMBER_LEN: usize = 32;
const MAX_ID_LEN: usize = 255;
const MAX_SHORT_TEXT: usize = 128;
/// Seconds of disagreement tolerated between a stated duration and the one the times give:
/// switches round sub-second durations either way.
const ROUNDING_SLACK: i64 = 1;

/// The calling number stored for a call whose caller withheld or lacked a number.
pub const WITHHELD_CALLER: &str = "anonymous";
/// What switches write instead of a calling number that was withheld or missing.
const WITHHELD_WORDS: &[&str] = &["anonymous", "unknown", "restricted", "private", "unavailable", "withheld"];

/// Each field with the other names switches and the reference system give it.
const CALL_ID: &[&str] = &["call_id", "uniqueid", "uuid", "callid"];
const SOURCE: &[&str] = &["source", "switch"];
const SRC_NUMBER: &[&str] = &["src_number", "src", "caller_id_number", "caller"];
const DEST_NUMBER: &[&str] = &["dest_number", "dst", "destination_number", "callee"];
const START_TIME: &[&str] = &["start_time", "start", "start_stamp"];
const ANSWER_TIME: &[&str] = &["answer_time", "answer", "answer_stamp"];
const END_TIME: &[&str] = &["end_time", "end", "end_stamp"];
const DURATION: &[&str] = &["duration", "call_duration"];
const BILLSEC: &[&str] = &["billsec"];
const DISPOSITION: &[&str] = &["disposition"];
const CALL_SUCCESSFUL: &[&str] = &["call_successful"];
const HANGUP_CAUSE: &[&str] = &["hangup_cause"];
const DIRECTION: &[&str] = &["direction"];
const ACCOUNT_CODE: &[&str] = &["account_code", "accountcode"];
const EXTRA: &[&str] = &["extra"];
const KNOWN: &[&[&str]] = &[
    CALL_ID,
    SOURCE,
    SRC_NUMBER,
    DEST_NUMBER,
    START_TIME,
    ANSWER_TIME,
    END_TIME,
    DURATION,
    BILLSEC,
    DISPOSITION,
    CALL_SUCCESSFUL,
    HANGUP_CAUSE,
    DIRECTION,
    ACCOUNT_CODE,
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

/// Validates one record and derives what it leaves out: `duration` and `billsec` from the
/// times, `disposition` and `call_successful` from each other, and `call_id` from the
/// record's identifying fields when the switch sent none.
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
    rec.call_id = rec.opt_text(CALL_ID, MAX_ID_LEN).ok().flatten();
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

    fn opt_text(&self, names: &[&str], max: usize) -> Result<Option<String>, RecordError> {
        let Some(v) = self.get(names) else {
            return Ok(None);
        };
        let s = match v {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(self.err(names[0], format!("expected a string, got {}", kind(other))));
            }
        };
        if s.is_empty() {
            return Ok(None);
        }
        if s.chars().count() > max {
            return Err(self.err(names[0], format!("longer than {max} characters")));
        }
        if s.contains('\0') {
            return Err(self.err(names[0], "contains a NUL character"));
        }
        Ok(Some(s))
    }

    /// The calling number. Switches write an empty field or a word such as `anonymous` when
    /// the caller withheld or lacked one; those calls happened and are billable, so they are
    /// kept with the caller [`WITHHELD_CALLER`]. A record without the field at all is refused.
    fn caller(&self) -> Result<String, RecordError> {
        if self.get(SRC_NUMBER).is_none() {
            return Err(self.err(SRC_NUMBER[0], "required"));
        }
        match self.opt_text(SRC_NUMBER, MAX_NUMBER_LEN)? {
            None => Ok(WITHHELD_CALLER.to_string()),
            Some(s) if WITHHELD_WORDS.iter().any(|w| s.eq_ignore_ascii_case(w)) => {
                Ok(WITHHELD_CALLER.to_string())
            }
            Some(_) => self.number(SRC_NUMBER),
        }
    }

    fn number(&self, names: &[&str]) -> Result<String, RecordError> {
        let s = self.opt_text(names, MAX_NUMBER_LEN)?.ok_or_else(|| self.err(names[0], "required"))?;
        let digits = s.strip_prefix('+').unwrap_or(&s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') {
            return Err(self.err(
                names[0],
                format!(
                    "{s:?} is not a phone number (digits, optional leading +, * and # for service codes)"
                ),
            ));
        }
        Ok(s)
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
        if contains_nul(&Value::Object(extra.clone())) {
            return Err(self.err("extra", "contains a NUL character, which PostgreSQL cannot store"));
        }
        Ok(extra)
    }

    fn build(&self, default_source: &str) -> Result<Cdr, RecordError> {
        let source = self.opt_text(SOURCE, MAX_SHORT_TEXT)?.unwrap_or_else(|| default_source.to_string());
        let src_number = self.caller()?;
        let dest_number = self.number(DEST_NUMBER)?;
        let start_time = self.time(START_TIME)?.ok_or_else(|| self.err("start_time", "required"))?;
        let end_time = self.time(END_TIME)?.ok_or_else(|| self.err("end_time", "required"))?;
        if end_time < start_time {
            return Err(self.err("end_time", "is before start_time"));
        }
        let mut answer_time = self.time(ANSWER_TIME)?;
        if let Some(answer) = answer_time
            && (answer < start_time || answer > end_time)
        {
            return Err(self.err("answer_time", "is not between start_time and end_time"));
        }

        let span = (end_time - start_time).num_seconds();
        if span > i64::from(i32::MAX) {
            return Err(self.err("end_time", "call lasts longer than 68 years"));
        }
        let duration = match self.seconds(DURATION)? {
            Some(d) if (d - span).abs() > ROUNDING_SLACK => {
                return Err(
                    self.err("duration", format!("{d} disagrees with end_time - start_time ({span} s)"))
                );
            }
            Some(d) => d,
            None => span,
        };

        let successful = self.flag(CALL_SUCCESSFUL)?;
        let stated_billsec = self.seconds(BILLSEC)?;
        // The reference system's shape has no answer time or billsec: its call_duration
        // of a successful call is the talk time.
        let reference_shape = self.obj.contains_key("call_duration") && stated_billsec.is_none();
        let billsec = match (stated_billsec, answer_time) {
            (Some(b), Some(answer)) => {
                let talk = (end_time - answer).num_seconds();
                if (b - talk).abs() > ROUNDING_SLACK {
                    return Err(
                        self.err("billsec", format!("{b} disagrees with end_time - answer_time ({talk} s)"))
                    );
                }
                b
            }
            (Some(b), None) => b,
            (None, Some(answer)) => (end_time - answer).num_seconds(),
            (None, None) if reference_shape && successful == Some(true) => duration,
            (None, None) => 0,
        };
        if billsec > duration {
            return Err(self.err("billsec", format!("{billsec} exceeds duration ({duration} s)")));
        }
        if answer_time.is_none() && billsec > 0 {
            answer_time = Some(end_time - chrono::Duration::seconds(billsec));
        }

        let answered = answer_time.is_some();
        let disposition = match self.get(DISPOSITION) {
            Some(Value::String(s)) => s.parse::<Disposition>().map_err(|r| self.err("disposition", r))?,
            Some(other) => {
                return Err(self.err("disposition", format!("expected a string, got {}", kind(other))));
            }
            None if answered || successful == Some(true) => Disposition::Answered,
            None if successful == Some(false) => Disposition::Failed,
            None => Disposition::NoAnswer,
        };
        if disposition == Disposition::Answered && !answered {
            if successful == Some(true) || self.get(DISPOSITION).is_some() {
                // An answered call with no talk time at all: answered and hung up at once.
                answer_time = Some(end_time);
            }
        } else if disposition != Disposition::Answered && (answered || billsec > 0) {
            return Err(self.err(
                "disposition",
                format!("{disposition} contradicts an answered call (answer_time or billsec > 0)"),
            ));
        }
        let call_successful = disposition == Disposition::Answered;
        if successful.is_some_and(|s| s != call_successful) {
            return Err(self.err("call_successful", format!("contradicts disposition {disposition}")));
        }

        let call_id = match &self.call_id {
            Some(id) => id.clone(),
            None => {
                // The explicit call id field may have been present but invalid.
                self.opt_text(CALL_ID, MAX_ID_LEN)?;
                derive_call_id(&source, &src_number, &dest_number, start_time, end_time)
            }
        };

        Ok(Cdr {
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
            call_successful,
            hangup_cause: self.opt_text(HANGUP_CAUSE, MAX_SHORT_TEXT)?,
            direction: self.opt_text(DIRECTION, MAX_SHORT_TEXT)?.map(|d| d.to_ascii_lowercase()),
            account_code: self.opt_text(ACCOUNT_CODE, MAX_SHORT_TEXT)?,
            extra: self.extra()?,
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

/// A stable id for a record that came without one: the same call sent again derives the same
/// id, so idempotency holds for switches that emit no unique id.
fn derive_call_id(source: &str, src: &str, dest: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let key = format!(
        "{source}\u{1f}{src}\u{1f}{dest}\u{1f}{}\u{1f}{}",
        start.timestamp_micros(),
        end.timestamp_micros()
    );
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
    }

    #[test]
    fn a_withheld_or_empty_caller_is_kept_as_anonymous() {
        for raw in ["", "  ", "anonymous", "Anonymous", "UNKNOWN", "restricted", "private"] {
            let mut v = answered();
            v["src_number"] = json!(raw);
            assert_eq!(ok(v).src_number, WITHHELD_CALLER, "{raw:?}");
        }
        let mut v = answered();
        v["src_number"] = json!("nobody");
        assert_eq!(bad(v).field, "src_number");
        // The called number is what was dialled: never withheld.
        let mut v = answered();
        v["dest_number"] = json!("anonymous");
        assert_eq!(bad(v).field, "dest_number");
    }

    #[test]
    fn errors_name_the_record_and_field() {
        let mut v = answered();
        v["dest_number"] = json!("44-20-7123");
        let e = bad(v);
        assert_eq!((e.index, e.field.as_str(), e.call_id.as_deref()), (3, "dest_number", Some("c-1")));

        let mut v = answered();
        v["end_time"] = json!("2026-03-01T09:00:00Z");
        assert_eq!(bad(v).field, "end_time");

        let mut v = answered();
        v["answer_time"] = json!("2026-03-01T11:00:00Z");
        assert_eq!(bad(v).field, "answer_time");

        let mut v = answered();
        v["billsec"] = json!(500);
        assert_eq!(bad(v).field, "billsec");

        let mut v = answered();
        v["disposition"] = json!("HUNG UP");
        assert_eq!(bad(v).field, "disposition");

        let mut v = answered();
        v["disposition"] = json!("BUSY");
        assert_eq!(bad(v).field, "disposition");

        let mut v = answered();
        v["duration"] = json!(-5);
        assert_eq!(bad(v).field, "duration");

        let mut v = answered();
        v["duration"] = json!(99_999_999_999_i64);
        assert_eq!(bad(v).field, "duration");

        let mut v = answered();
        v.as_object_mut().unwrap().remove("src_number");
        assert_eq!(bad(v).reason, "required");

        let mut v = answered();
        v["call_successful"] = json!(false);
        assert_eq!(bad(v).field, "call_successful");

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
