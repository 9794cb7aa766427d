use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a call ended, in the vocabulary Asterisk made the de-facto standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Disposition {
    #[serde(rename = "ANSWERED")]
    Answered,
    #[serde(rename = "NO ANSWER")]
    NoAnswer,
    #[serde(rename = "BUSY")]
    Busy,
    #[serde(rename = "FAILED")]
    Failed,
    #[serde(rename = "CONGESTION")]
    Congestion,
}

impl Disposition {
    pub const ALL: [Disposition; 5] = [
        Disposition::Answered,
        Disposition::NoAnswer,
        Disposition::Busy,
        Disposition::Failed,
        Disposition::Congestion,
    ];

    /// The canonical spelling stored in PostgreSQL and returned by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
            Disposition::Congestion => "CONGESTION",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Disposition {
    type Err = String;

    /// Accepts the spellings switches use (`NO ANSWER`, `NO_ANSWER`, `noanswer`, any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let folded: String =
            s.chars().filter(|c| !matches!(c, ' ' | '_' | '-')).flat_map(char::to_uppercase).collect();
        match folded.as_str() {
            "ANSWERED" | "ANSWER" => Ok(Disposition::Answered),
            "NOANSWER" => Ok(Disposition::NoAnswer),
            "BUSY" => Ok(Disposition::Busy),
            "FAILED" => Ok(Disposition::Failed),
            "CONGESTION" => Ok(Disposition::Congestion),
            _ => Err(format!(
                "unknown disposition {s:?}; expected one of ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION"
            )),
        }
    }
}

/// A validated CDR, ready to store. The switch's own values are kept as it wrote them
/// (numbers as text, its `duration` and `billsec`, its disposition spelling); what this system
/// works out from them lives in fields of its own (`record_key`, `caller_withheld`,
/// the canonical `disposition`). Times are UTC with microsecond precision (what PostgreSQL
/// keeps), so what is stored is exactly what was checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    pub call_id: String,
    /// Tells apart different records that share a call id: legs and rows written after a
    /// transfer (`seq:<n>` from Asterisk's `sequence`, `row:<digest>` of the row as written).
    /// Empty when the call id alone names the record.
    #[serde(default)]
    pub record_key: String,
    pub source: String,
    /// The calling party as the switch wrote it: digits, a SIP user, an extension, or empty.
    pub src_number: String,
    /// The called party as the switch wrote it.
    pub dest_number: String,
    pub start_time: DateTime<Utc>,
    pub answer_time: Option<DateTime<Utc>>,
    /// `None` when the switch gave no end time (CDR-Stats' files, for one).
    pub end_time: Option<DateTime<Utc>>,
    /// The switch's figure; from the times only when it gave none.
    pub duration: i32,
    /// The switch's billable seconds; from the times only when it gave none.
    pub billsec: i32,
    /// Canonical: what KPIs count by. An unknown spelling is `FAILED`, its raw value kept.
    pub disposition: Disposition,
    /// The disposition exactly as the switch wrote it, when it wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition_raw: Option<String>,
    pub call_successful: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangup_cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_code: Option<String>,
    /// Groups the legs of one call: Asterisk's `linkedid`, FreeSWITCH's `bleg_uuid`, a PBX's
    /// session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_id: Option<String>,
    /// True when the caller withheld or had no number (an empty caller, or a word such as
    /// `anonymous` in its place); `src_number` still holds what the switch wrote.
    #[serde(default)]
    pub caller_withheld: bool,
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Cdr {
    /// When the call ended: the switch's end time, or its start plus its duration when it
    /// gave no end. Concurrency and time windows need an end for every call.
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.end_time.unwrap_or(self.start_time + chrono::Duration::seconds(i64::from(self.duration)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_accepts_switch_spellings() {
        for s in ["NO ANSWER", "NO_ANSWER", "no answer", "NoAnswer", "no-answer"] {
            assert_eq!(s.parse::<Disposition>(), Ok(Disposition::NoAnswer), "{s}");
        }
        assert_eq!("answered".parse::<Disposition>(), Ok(Disposition::Answered));
        let err = "HUNG".parse::<Disposition>().unwrap_err();
        assert!(err.contains("ANSWERED"), "{err}");
    }

    #[test]
    fn disposition_round_trips_through_json() {
        for d in Disposition::ALL {
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.as_str()));
            assert_eq!(serde_json::from_str::<Disposition>(&json).unwrap(), d);
        }
    }
}
