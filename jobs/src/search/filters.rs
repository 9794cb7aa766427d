//! The filters `/search` and `/stats` share, parsed from query parameters with errors that
//! name the parameter, and turned into an Elasticsearch query.

use crate::cdr::Disposition;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

/// A query parameter that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub parameter: String,
    pub reason: String,
}

impl ParamError {
    pub fn new(parameter: &str, reason: impl Into<String>) -> Self {
        ParamError { parameter: parameter.to_string(), reason: reason.into() }
    }
}

/// A party filter, on the value the switch wrote: the whole value, or every value starting
/// with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberMatch {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub source: Option<String>,
    pub src_number: Option<NumberMatch>,
    pub dest_number: Option<NumberMatch>,
    /// Inclusive lower bound on `start_time`.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `start_time`.
    pub to: Option<DateTime<Utc>>,
    pub min_duration: Option<i64>,
    pub max_duration: Option<i64>,
    pub min_billsec: Option<i64>,
    pub dispositions: Vec<Disposition>,
    pub call_successful: Option<bool>,
    pub direction: Option<String>,
    pub account_code: Option<String>,
    pub call_id: Option<String>,
    /// The legs of one call: records whose `linked_id` or `call_id` is this.
    pub linked_id: Option<String>,
    pub caller_withheld: Option<bool>,
    /// The callee's E.164 form, exact or a prefix (`+44*`).
    pub dest_e164: Option<NumberMatch>,
    /// ISO 3166-1 alpha-2 countries of the callee's number (any of them).
    pub dest_countries: Vec<String>,
    /// Number types of the callee (any of them), see [`crate::numbers::KINDS`].
    pub dest_types: Vec<String>,
}

/// A boolean query parameter: `true`/`false` or `1`/`0`, any case.
pub fn parse_flag(name: &str, value: &str) -> Result<bool, ParamError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ParamError::new(name, format!("expected true or false, got {value:?}"))),
    }
}

/// The query parameters `/search` and `/stats` share (filters and window).
pub const SHARED_PARAMETERS: [&str; 20] = [
    "source",
    "src_number",
    "dest_number",
    "from",
    "to",
    "start_date",
    "end_date",
    "min_duration",
    "max_duration",
    "min_billsec",
    "disposition",
    "call_successful",
    "direction",
    "account_code",
    "call_id",
    "linked_id",
    "caller_withheld",
    "dest_e164",
    "dest_country",
    "dest_type",
];

/// Reads the parameters both endpoints share from `(name, value)` pairs; `extra` names the
/// endpoint's own parameters, and anything else is refused so a typo never silently
/// widens a query.
pub fn parse_filters(pairs: &[(String, String)], extra: &[&str]) -> Result<Filters, ParamError> {
    let mut f = Filters::default();
    for (name, value) in pairs {
        let name = name.as_str();
        let value = value.trim();
        match name {
            "source" => f.source = Some(text(name, value)?),
            "src_number" => f.src_number = Some(number(name, value)?),
            "dest_number" => f.dest_number = Some(number(name, value)?),
            "from" | "start_date" => f.from = Some(bound(name, value, false)?),
            "to" | "end_date" => f.to = Some(bound(name, value, true)?),
            "min_duration" => f.min_duration = Some(seconds(name, value)?),
            "max_duration" => f.max_duration = Some(seconds(name, value)?),
            "min_billsec" => f.min_billsec = Some(seconds(name, value)?),
            "disposition" => {
                for part in value.split(',').filter(|p| !p.trim().is_empty()) {
                    let d = part.parse::<Disposition>().map_err(|r| ParamError::new(name, r))?;
                    if !f.dispositions.contains(&d) {
                        f.dispositions.push(d);
                    }
                }
            }
            "call_successful" => f.call_successful = Some(parse_flag(name, value)?),
            "direction" => f.direction = Some(text(name, value)?.to_ascii_lowercase()),
            "account_code" => f.account_code = Some(text(name, value)?),
            "call_id" => f.call_id = Some(text(name, value)?),
            "linked_id" => f.linked_id = Some(text(name, value)?),
            "caller_withheld" => f.caller_withheld = Some(parse_flag(name, value)?),
            "dest_e164" => f.dest_e164 = Some(number(name, value)?),
            "dest_country" => {
                for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let code = part.to_ascii_uppercase();
                    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                        return Err(ParamError::new(
                            name,
                            format!("{part:?} is not an ISO 3166-1 alpha-2 code"),
                        ));
                    }
                    if !f.dest_countries.contains(&code) {
                        f.dest_countries.push(code);
                    }
                }
            }
            "dest_type" => {
                for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let kind = part.to_ascii_lowercase();
                    if !crate::numbers::KINDS.contains(&kind.as_str()) {
                        let known = crate::numbers::KINDS.join(", ");
                        return Err(ParamError::new(name, format!("unknown type {part:?}; known: {known}")));
                    }
                    if !f.dest_types.contains(&kind) {
                        f.dest_types.push(kind);
                    }
                }
            }
            _ if extra.contains(&name) => {}
            _ => {
                let mut known: Vec<&str> = SHARED_PARAMETERS.to_vec();
                known.extend_from_slice(extra);
                return Err(ParamError::new(name, format!("unknown parameter; known: {}", known.join(", "))));
            }
        }
    }
    if let (Some(from), Some(to)) = (f.from, f.to)
        && from >= to
    {
        return Err(ParamError::new("from", "must be before `to`"));
    }
    if let (Some(min), Some(max)) = (f.min_duration, f.max_duration)
        && min > max
    {
        return Err(ParamError::new("min_duration", "must not exceed max_duration"));
    }
    Ok(f)
}

fn text(name: &str, value: &str) -> Result<String, ParamError> {
    if value.is_empty() {
        return Err(ParamError::new(name, "must not be empty"));
    }
    if value.len() > 255 {
        return Err(ParamError::new(name, "longer than 255 characters"));
    }
    Ok(value.to_string())
}

/// A party as written, exact, or a prefix when it ends in `*` (`\*` for a value that ends
/// in a star).
fn number(name: &str, value: &str) -> Result<NumberMatch, ParamError> {
    if let Some(literal) = value.strip_suffix("\\*") {
        return Ok(NumberMatch::Exact(format!("{}*", text(name, literal)?)));
    }
    Ok(match value.strip_suffix('*') {
        Some(p) => NumberMatch::Prefix(text(name, p)?),
        None => NumberMatch::Exact(text(name, value)?),
    })
}

fn seconds(name: &str, value: &str) -> Result<i64, ParamError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
        .ok_or_else(|| ParamError::new(name, format!("expected whole seconds ≥ 0, got {value:?}")))
}

/// RFC 3339, a zone-less time (UTC) or a plain date. A plain date as an upper bound
/// includes that whole day.
fn bound(name: &str, value: &str, upper: bool) -> Result<DateTime<Utc>, ParamError> {
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let start = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let t = start.ok_or_else(|| ParamError::new(name, "invalid date"))?;
        // Checked: the day after chrono's last date (`+262142-12-31`) does not exist.
        let end = if upper { t.checked_add_signed(Duration::days(1)) } else { Some(t) };
        return end.ok_or_else(|| ParamError::new(name, "date out of range"));
    }
    crate::cdr::parse_time(&Value::String(value.to_string())).map_err(|r| ParamError::new(name, r))
}

impl Filters {
    /// The `bool` filter query; no scoring, so Elasticsearch can cache the clauses.
    pub fn to_query(&self) -> Value {
        let mut clauses: Vec<Value> = Vec::new();
        if let Some(s) = &self.source {
            clauses.push(json!({ "term": { "source": s } }));
        }
        for (field, m) in [("src_number", &self.src_number), ("dest_number", &self.dest_number)] {
            match m {
                Some(NumberMatch::Exact(n)) => clauses.push(json!({ "term": { field: n } })),
                Some(NumberMatch::Prefix(p)) => clauses.push(json!({ "prefix": { field: p } })),
                None => {}
            }
        }
        if self.from.is_some() || self.to.is_some() {
            let mut range = serde_json::Map::new();
            if let Some(from) = self.from {
                range.insert("gte".into(), json!(from.to_rfc3339()));
            }
            if let Some(to) = self.to {
                range.insert("lt".into(), json!(to.to_rfc3339()));
            }
            clauses.push(json!({ "range": { "start_time": range } }));
        }
        if self.min_duration.is_some() || self.max_duration.is_some() {
            let mut range = serde_json::Map::new();
            if let Some(min) = self.min_duration {
                range.insert("gte".into(), json!(min));
            }
            if let Some(max) = self.max_duration {
                range.insert("lte".into(), json!(max));
            }
            clauses.push(json!({ "range": { "duration": range } }));
        }
        if let Some(min) = self.min_billsec {
            clauses.push(json!({ "range": { "billsec": { "gte": min } } }));
        }
        if !self.dispositions.is_empty() {
            let names: Vec<&str> = self.dispositions.iter().map(|d| d.as_str()).collect();
            clauses.push(json!({ "terms": { "disposition": names } }));
        }
        if let Some(b) = self.call_successful {
            clauses.push(json!({ "term": { "call_successful": b } }));
        }
        if let Some(d) = &self.direction {
            clauses.push(json!({ "term": { "direction": d } }));
        }
        if let Some(a) = &self.account_code {
            clauses.push(json!({ "term": { "account_code": a } }));
        }
        if let Some(c) = &self.call_id {
            clauses.push(json!({ "term": { "call_id": c } }));
        }
        if let Some(l) = &self.linked_id {
            clauses.push(json!({ "bool": { "should": [
                { "term": { "linked_id": l } },
                { "term": { "call_id": l } }
            ], "minimum_should_match": 1 } }));
        }
        match &self.dest_e164 {
            Some(NumberMatch::Exact(n)) => clauses.push(json!({ "term": { "dest_e164": n } })),
            Some(NumberMatch::Prefix(p)) => clauses.push(json!({ "prefix": { "dest_e164": p } })),
            None => {}
        }
        if !self.dest_countries.is_empty() {
            clauses.push(json!({ "terms": { "dest_country": self.dest_countries } }));
        }
        if !self.dest_types.is_empty() {
            clauses.push(json!({ "terms": { "dest_type": self.dest_types } }));
        }
        if let Some(w) = self.caller_withheld {
            clauses.push(json!({ "term": { "caller_withheld": w } }));
        }
        json!({ "bool": { "filter": clauses } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_every_filter() {
        let f = parse_filters(
            &pairs(&[
                ("source", "pbx"),
                ("dest_number", "4420*"),
                ("src_number", "+1415"),
                ("start_date", "2026-03-01"),
                ("end_date", "2026-03-01"),
                ("min_duration", "10"),
                ("disposition", "answered,BUSY"),
                ("disposition", "no_answer"),
                ("call_successful", "false"),
                ("direction", "Inbound"),
                ("limit", "5"),
            ]),
            &["limit"],
        )
        .unwrap();
        assert_eq!(f.dest_number, Some(NumberMatch::Prefix("4420".into())));
        assert_eq!(f.src_number, Some(NumberMatch::Exact("+1415".into())));
        assert_eq!(f.to.unwrap() - f.from.unwrap(), Duration::days(1));
        assert_eq!(f.dispositions, vec![Disposition::Answered, Disposition::Busy, Disposition::NoAnswer]);
        assert_eq!(f.direction.as_deref(), Some("inbound"));
        let q = f.to_query();
        assert_eq!(q["bool"]["filter"].as_array().unwrap().len(), 8);
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[("colour", "red")], "colour"),
            (&[("from", "yesterday")], "from"),
            (&[("min_duration", "-1")], "min_duration"),
            (&[("min_billsec", "ten")], "min_billsec"),
            (&[("dest_number", "*")], "dest_number"),
            (&[("from", "2026-03-02"), ("to", "2026-03-01T00:00:00Z")], "from"),
            (&[("disposition", "HUNG")], "disposition"),
        ];
        for (q, param) in cases {
            let e = parse_filters(&pairs(q), &[]).unwrap_err();
            assert_eq!(e.parameter, param, "{q:?}: {e:?}");
        }
    }
}

#[cfg(test)]
mod party_tests {
    use super::*;

    #[test]
    fn parties_are_matched_as_written() {
        assert_eq!(number("n", "jerbeartest").unwrap(), NumberMatch::Exact("jerbeartest".into()));
        assert_eq!(number("n", "*1001").unwrap(), NumberMatch::Exact("*1001".into()));
        assert_eq!(number("n", "*10*").unwrap(), NumberMatch::Prefix("*10".into()));
        assert_eq!(number("n", "s").unwrap(), NumberMatch::Exact("s".into()));
        assert_eq!(number("n", "12\\*").unwrap(), NumberMatch::Exact("12*".into()));
        assert!(number("n", "*").is_err());
    }
}
