//! Alerts: rules over the KPIs of a sliding window, evaluated on a schedule, whose firing
//! and resolving are recorded and notified to webhooks.
//!
//! A rule names `/search` filters, a metric (ASR, ACD, NER, attempts, answered minutes,
//! revenue, cost, margin), a window, and a condition: above or below a threshold, or a drop
//! or rise against the same window a week earlier. An evaluation job ([`evaluate`]) reads
//! each rule's window through the same path `/stats` takes (the rollups whenever they can
//! answer), and a rule whose reading crosses its condition changes state in one
//! transaction that also records the event. Each event is then delivered to the rule's
//! webhook by a job of its own ([`webhook`]), signed, retried while the receiver is down,
//! and marked delivered once it answered, so every transition reaches it once.

pub mod evaluate;
pub mod store;
pub mod templates;
pub mod webhook;

use crate::search::{ParamError, Stats, parse_filters};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a rule measures over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Metric {
    /// Answered / attempts (0–1).
    Asr,
    /// Mean billable seconds of answered calls.
    Acd,
    /// Answered, busy, no answer or refused by the callee / attempts (0–1).
    Ner,
    /// Calls.
    Attempts,
    /// Billable minutes.
    AnsweredMinutes,
    /// The customers' price of the calls.
    Revenue,
    /// The carriers' cost of the calls.
    Cost,
    /// Revenue minus cost.
    Margin,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Asr => "asr",
            Metric::Acd => "acd",
            Metric::Ner => "ner",
            Metric::Attempts => "attempts",
            Metric::AnsweredMinutes => "answered_minutes",
            Metric::Revenue => "revenue",
            Metric::Cost => "cost",
            Metric::Margin => "margin",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        [
            Metric::Asr,
            Metric::Acd,
            Metric::Ner,
            Metric::Attempts,
            Metric::AnsweredMinutes,
            Metric::Revenue,
            Metric::Cost,
            Metric::Margin,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }

    /// The metric's reading of `stats`; `None` where it is undefined (a ratio of no calls).
    pub fn of(self, stats: &Stats) -> Option<f64> {
        let money = |s: &str| s.parse::<f64>().ok();
        match self {
            Metric::Asr => stats.asr,
            Metric::Acd => stats.acd,
            Metric::Ner => stats.ner,
            Metric::Attempts => Some(stats.total_calls as f64),
            Metric::AnsweredMinutes => Some(stats.total_billsec as f64 / 60.0),
            Metric::Revenue => money(&stats.revenue),
            Metric::Cost => money(&stats.cost),
            Metric::Margin => money(&stats.margin),
        }
    }

    /// Whether the metric grows with traffic (so no traffic reads as a low value, not as an
    /// unknown one).
    fn is_count(self) -> bool {
        matches!(self, Metric::Attempts | Metric::AnsweredMinutes | Metric::Revenue | Metric::Cost)
    }
}

/// When a rule's reading breaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Condition {
    /// The reading is above `threshold`.
    Above,
    /// The reading is below `threshold`.
    Below,
    /// The reading fell by more than `threshold` (a fraction: 0.5 is 50 %) from the same
    /// window a week earlier.
    DropVsWeek,
    /// The reading rose by more than `threshold` (a fraction: 2 is +200 %) from the same
    /// window a week earlier; any reading above zero is a rise from a week without any.
    RiseVsWeek,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Above => "above",
            Condition::Below => "below",
            Condition::DropVsWeek => "drop_vs_week",
            Condition::RiseVsWeek => "rise_vs_week",
        }
    }

    pub fn parse(s: &str) -> Option<Condition> {
        [Condition::Above, Condition::Below, Condition::DropVsWeek, Condition::RiseVsWeek]
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    /// Whether it compares with the week before.
    pub fn needs_baseline(self) -> bool {
        matches!(self, Condition::DropVsWeek | Condition::RiseVsWeek)
    }
}

/// A rule as a client writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct RuleSpec {
    /// Unique; names the rule in events, metrics and notifications.
    pub name: String,
    /// `/search` filters (`source`, `dest_number`, `dest_country`, `max_duration`, …) as
    /// name → value; the window replaces `from` and `to`.
    #[oai(default)]
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    pub metric: Metric,
    pub condition: Condition,
    pub threshold: f64,
    /// The sliding window, in minutes (1 to 10,080), ending at the last whole minute.
    pub window_minutes: u32,
    /// Calls the window must hold before the rule may fire (its ratios mean little below).
    #[oai(default)]
    #[serde(default)]
    pub min_attempts: u64,
    /// Where firing and resolving are POSTed, if anywhere.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Key of the notifications' HMAC-SHA256 signature (`X-CDR-Signature`); never shown again.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[oai(default = "yes")]
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// The longest window: a week.
pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;

/// Why a rule cannot be saved, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RuleError {
    pub field: String,
    pub reason: String,
}

fn refuse(field: &str, reason: impl Into<String>) -> RuleError {
    RuleError { field: field.to_string(), reason: reason.into() }
}

impl RuleSpec {
    /// Checks every field; the filters are read as `/search` reads them.
    pub fn validate(&self) -> Result<(), RuleError> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(refuse("name", "1 to 200 printable characters"));
        }
        for window in ["from", "to", "start_date", "end_date"] {
            if self.filters.contains_key(window) {
                return Err(refuse(&format!("filters.{window}"), "the rule's window replaces it"));
            }
        }
        self.filter_pairs_checked()?;
        if !self.threshold.is_finite() {
            return Err(refuse("threshold", "a finite number"));
        }
        if self.condition.needs_baseline() && self.threshold < 0.0 {
            return Err(refuse("threshold", "a change is a fraction of at least 0"));
        }
        if self.window_minutes == 0 || self.window_minutes > MAX_WINDOW_MINUTES {
            return Err(refuse("window_minutes", format!("1 to {MAX_WINDOW_MINUTES}")));
        }
        if let Some(url) = &self.webhook_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() <= 2000
                && reqwest::Url::parse(url).is_ok();
            if !ok {
                return Err(refuse("webhook_url", "an http or https URL"));
            }
        }
        if self.webhook_secret.as_ref().is_some_and(|s| s.len() < 16 || s.len() > 256) {
            return Err(refuse("webhook_secret", "16 to 256 characters"));
        }
        Ok(())
    }

    fn filter_pairs_checked(&self) -> Result<Vec<(String, String)>, RuleError> {
        let pairs = self.filter_pairs();
        parse_filters(&pairs, &[])
            .map_err(|ParamError { parameter, reason }| refuse(&format!("filters.{parameter}"), reason))?;
        Ok(pairs)
    }

    /// The filters as query pairs.
    pub fn filter_pairs(&self) -> Vec<(String, String)> {
        self.filters.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// What one evaluation read for a rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub value: Option<f64>,
    /// The same window a week earlier, for change conditions.
    pub baseline: Option<f64>,
    pub attempts: u64,
}

/// A rule's verdict on a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Breached,
    Clear,
    /// Too few calls (or an undefined ratio) to tell: the rule keeps its state.
    Unknown,
}

/// Whether `reading` breaches the rule. Too few calls make a ratio unknown; for a count
/// (attempts, minutes, money) compared upwards, too few calls simply read as clear.
pub fn verdict(spec: &RuleSpec, reading: &Reading) -> Verdict {
    let counted_up =
        spec.metric.is_count() && matches!(spec.condition, Condition::Above | Condition::RiseVsWeek);
    if reading.attempts < spec.min_attempts {
        return if counted_up { Verdict::Clear } else { Verdict::Unknown };
    }
    let Some(value) = reading.value else { return Verdict::Unknown };
    let breached = match spec.condition {
        Condition::Above => value > spec.threshold,
        Condition::Below => value < spec.threshold,
        Condition::DropVsWeek => match reading.baseline {
            Some(base) if base > 0.0 => value < base * (1.0 - spec.threshold),
            _ => return Verdict::Unknown,
        },
        Condition::RiseVsWeek => match reading.baseline {
            Some(base) if base > 0.0 => value > base * (1.0 + spec.threshold),
            Some(_) | None if spec.metric.is_count() => value > 0.0,
            _ => return Verdict::Unknown,
        },
    };
    if breached { Verdict::Breached } else { Verdict::Clear }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(metric: Metric, condition: Condition, threshold: f64, min_attempts: u64) -> RuleSpec {
        RuleSpec {
            name: "r".into(),
            filters: BTreeMap::new(),
            metric,
            condition,
            threshold,
            window_minutes: 15,
            min_attempts,
            webhook_url: None,
            webhook_secret: None,
            enabled: true,
        }
    }

    fn read(value: Option<f64>, baseline: Option<f64>, attempts: u64) -> Reading {
        Reading { value, baseline, attempts }
    }

    #[test]
    fn thresholds_and_minimum_attempts() {
        let asr = rule(Metric::Asr, Condition::Below, 0.5, 20);
        assert_eq!(verdict(&asr, &read(Some(0.2), None, 50)), Verdict::Breached);
        assert_eq!(verdict(&asr, &read(Some(0.7), None, 50)), Verdict::Clear);
        assert_eq!(
            verdict(&asr, &read(Some(0.5), None, 50)),
            Verdict::Clear,
            "at the threshold is not below it"
        );
        assert_eq!(verdict(&asr, &read(Some(0.0), None, 19)), Verdict::Unknown, "too few calls to tell");
        assert_eq!(verdict(&asr, &read(None, None, 50)), Verdict::Unknown);
        let premium = rule(Metric::Attempts, Condition::Above, 0.0, 1);
        assert_eq!(verdict(&premium, &read(Some(3.0), None, 3)), Verdict::Breached);
        assert_eq!(
            verdict(&premium, &read(Some(0.0), None, 0)),
            Verdict::Clear,
            "no calls: clear, so it resolves"
        );
    }

    #[test]
    fn changes_against_the_week_before() {
        let drop = rule(Metric::Asr, Condition::DropVsWeek, 0.5, 0);
        assert_eq!(verdict(&drop, &read(Some(0.2), Some(0.6), 10)), Verdict::Breached);
        assert_eq!(verdict(&drop, &read(Some(0.4), Some(0.6), 10)), Verdict::Clear);
        assert_eq!(verdict(&drop, &read(Some(0.4), None, 10)), Verdict::Unknown, "nothing to compare with");
        let spike = rule(Metric::Attempts, Condition::RiseVsWeek, 2.0, 0);
        assert_eq!(verdict(&spike, &read(Some(301.0), Some(100.0), 301)), Verdict::Breached);
        assert_eq!(verdict(&spike, &read(Some(299.0), Some(100.0), 299)), Verdict::Clear);
        assert_eq!(verdict(&spike, &read(Some(5.0), Some(0.0), 5)), Verdict::Breached, "from nothing");
    }

    #[test]
    fn rules_are_checked_field_by_field() {
        let mut r = rule(Metric::Asr, Condition::Below, 0.5, 0);
        assert!(r.validate().is_ok());
        r.filters.insert("source".into(), "trunk-1".into());
        assert!(r.validate().is_ok());
        type Change = Box<dyn Fn(&mut RuleSpec)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|r| r.name = " ".into()), "name"),
            (Box::new(|r| drop(r.filters.insert("from".into(), "2026-01-01".into()))), "filters.from"),
            (Box::new(|r| drop(r.filters.insert("min_billsec".into(), "x".into()))), "filters.min_billsec"),
            (Box::new(|r| drop(r.filters.insert("nope".into(), "1".into()))), "filters.nope"),
            (Box::new(|r| r.threshold = f64::NAN), "threshold"),
            (Box::new(|r| r.window_minutes = 0), "window_minutes"),
            (Box::new(|r| r.window_minutes = MAX_WINDOW_MINUTES + 1), "window_minutes"),
            (Box::new(|r| r.webhook_url = Some("ftp://x".into())), "webhook_url"),
            (Box::new(|r| r.webhook_secret = Some("short".into())), "webhook_secret"),
        ];
        for (change, field) in cases {
            let mut bad = r.clone();
            change(&mut bad);
            assert_eq!(bad.validate().expect_err(field).field, field);
        }
    }
}
