//! `/search`: filtered, sorted pages of CDRs with a stable cursor.

use super::filters::{Filters, ParamError};
use super::{SearchError, SearchIndex};
use chrono::{DateTime, Utc};
use elasticsearch::http::Method;
use poem_openapi::Object;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// A CDR as search returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct CdrDocument {
    /// Row id in PostgreSQL (also the document id).
    pub id: i64,
    pub call_id: String,
    /// Tells apart records that share a call id (legs, rows after a transfer); empty when
    /// the call id alone names the record.
    #[serde(default)]
    pub record_key: String,
    pub source: String,
    /// The calling party as the switch wrote it (digits, a SIP user, an extension, or empty).
    pub src_number: String,
    /// The called party as the switch wrote it.
    pub dest_number: String,
    pub start_time: DateTime<Utc>,
    #[oai(nullable)]
    pub answer_time: Option<DateTime<Utc>>,
    /// Absent when the switch gave no end time.
    #[oai(nullable)]
    pub end_time: Option<DateTime<Utc>>,
    /// The switch's own figure.
    pub duration: i32,
    /// The switch's own billable seconds.
    pub billsec: i32,
    /// `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED` or `CONGESTION`.
    pub disposition: String,
    /// The disposition exactly as the switch wrote it.
    #[serde(default)]
    #[oai(nullable)]
    pub disposition_raw: Option<String>,
    pub call_successful: bool,
    #[oai(nullable)]
    pub hangup_cause: Option<String>,
    #[oai(nullable)]
    pub direction: Option<String>,
    #[oai(nullable)]
    pub account_code: Option<String>,
    /// Groups the legs of one call (Asterisk's `linkedid`, FreeSWITCH's `bleg_uuid`).
    #[serde(default)]
    #[oai(nullable)]
    pub linked_id: Option<String>,
    /// The caller withheld or had no number.
    #[serde(default)]
    pub caller_withheld: bool,
    /// Fields the switch sent that have no column of their own.
    pub extra: Value,
    /// The ingest job that stored it.
    pub job_id: String,
    pub ingested_at: DateTime<Utc>,
    /// The caller in E.164, when the switch wrote a dialable number.
    #[serde(default)]
    #[oai(nullable)]
    pub src_e164: Option<String>,
    /// The callee in E.164, when the switch wrote a dialable number.
    #[serde(default)]
    #[oai(nullable)]
    pub dest_e164: Option<String>,
    /// ISO 3166-1 alpha-2 country of the callee's number.
    #[serde(default)]
    #[oai(nullable)]
    pub dest_country: Option<String>,
    /// The callee's number type (`mobile`, `fixed_line`, `toll_free`, `premium_rate`, …), or
    /// why it has none (`extension`, `sip_user`, `invalid`, `unresolved`, `empty`).
    #[serde(default)]
    #[oai(nullable)]
    pub dest_type: Option<String>,
    /// How the customer's price was found: `rated`, `unmatched`, `no_deck` or `no_number`.
    #[serde(default)]
    #[oai(nullable)]
    pub sell_rating: Option<String>,
    /// The customer's price, a decimal string (6 places).
    #[serde(default)]
    #[oai(nullable)]
    pub sell_cost: Option<String>,
    #[serde(default)]
    #[oai(nullable)]
    pub sell_currency: Option<String>,
    /// The sell deck's prefix that matched.
    #[serde(default)]
    #[oai(nullable)]
    pub sell_prefix: Option<String>,
    /// The sell deck version that applied.
    #[serde(default)]
    #[oai(nullable)]
    pub sell_deck: Option<i64>,
    /// How the carrier's cost was found.
    #[serde(default)]
    #[oai(nullable)]
    pub buy_rating: Option<String>,
    /// The carrier's cost, a decimal string (6 places).
    #[serde(default)]
    #[oai(nullable)]
    pub buy_cost: Option<String>,
    #[serde(default)]
    #[oai(nullable)]
    pub buy_currency: Option<String>,
    #[serde(default)]
    #[oai(nullable)]
    pub buy_prefix: Option<String>,
    #[serde(default)]
    #[oai(nullable)]
    pub buy_deck: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    StartTime,
    Duration,
    Billsec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort { field: SortField::StartTime, descending: true }
    }
}

impl Sort {
    /// `field[:asc|:desc]`, field one of `start_time`, `duration`, `billsec`.
    pub fn parse(value: &str) -> Result<Sort, ParamError> {
        let (field, order) = value.split_once(':').unwrap_or((value, "desc"));
        let field = match field {
            "start_time" => SortField::StartTime,
            "duration" => SortField::Duration,
            "billsec" => SortField::Billsec,
            _ => {
                return Err(ParamError::new(
                    "sort",
                    format!("unknown sort field {field:?}; use start_time, duration or billsec"),
                ));
            }
        };
        let descending = match order {
            "desc" => true,
            "asc" => false,
            _ => {
                return Err(ParamError::new("sort", format!("order must be asc or desc, got {order:?}")));
            }
        };
        Ok(Sort { field, descending })
    }

    fn field_name(self) -> &'static str {
        match self.field {
            SortField::StartTime => "start_time",
            SortField::Duration => "duration",
            SortField::Billsec => "billsec",
        }
    }

    fn key(self) -> String {
        format!("{}:{}", self.field_name(), if self.descending { "desc" } else { "asc" })
    }

    /// The sort clause, with the row id as tie-breaker so pages never overlap or skip.
    fn clause(self) -> Value {
        let order = if self.descending { "desc" } else { "asc" };
        json!([{ self.field_name(): { "order": order } }, { "id": { "order": order } }])
    }
}

/// One page request.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub filters: Filters,
    pub sort: Sort,
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct SearchPage {
    /// Every match, not only this page's.
    pub total: u64,
    pub items: Vec<CdrDocument>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// Makes a cursor: the sort it belongs to and the last item's sort values, hex-encoded so it
/// is opaque and URL-safe. Public so the codec can be tested as a pair (every cursor a page
/// hands out must be taken back).
pub fn encode_cursor(sort: Sort, after: &Value) -> String {
    let raw = json!({ "s": sort.key(), "a": after }).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(sort: Sort, cursor: &str) -> Result<Value, ParamError> {
    let bad = || ParamError::new("cursor", "not a cursor returned by this endpoint");
    if !cursor.len().is_multiple_of(2) || cursor.len() > 4096 {
        return Err(bad());
    }
    // Decoded pairwise on bytes, never by slicing the text: a multi-byte character in a
    // forged cursor must be a 400, not a panic.
    let bytes: Vec<u8> = cursor
        .as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some((hex_value(*hi)? << 4) | hex_value(*lo)?),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if value["s"] != json!(sort.key()) {
        return Err(ParamError::new("cursor", "belongs to a different sort order"));
    }
    // Every sort value (a date as epoch milliseconds, seconds, the row id) is an integer.
    // Anything else would reach the engine, which refuses it (a string: 400, a null: 500):
    // a forged cursor is the client's error, told here.
    match &value["a"] {
        Value::Array(a) if a.len() == 2 && a.iter().all(|v| v.as_i64().is_some()) => Ok(value["a"].clone()),
        _ => Err(bad()),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Checks the cursor before any request is made.
pub fn validate_cursor(request: &SearchRequest) -> Result<Option<Value>, ParamError> {
    request.cursor.as_deref().map(|c| decode_cursor(request.sort, c)).transpose()
}

impl SearchIndex {
    /// One page, with an exact total.
    pub async fn search_page(
        &self,
        request: &SearchRequest,
        after: Option<Value>,
    ) -> Result<SearchPage, SearchError> {
        let limit = request.limit.clamp(1, MAX_LIMIT);
        let mut body = json!({
            "size": limit + 1,
            "track_total_hits": true,
            "query": request.filters.to_query(),
            "sort": request.sort.clause(),
        });
        if let Some(after) = after {
            body["search_after"] = after;
        }
        let response = self.request(Method::Post, &format!("/{}/_search", self.alias()), Some(body)).await?;
        let total = response["hits"]["total"]["value"].as_u64().unwrap_or(0);
        let hits = response["hits"]["hits"].as_array().cloned().unwrap_or_default();
        let more = hits.len() > limit;
        let mut items = Vec::with_capacity(limit.min(hits.len()));
        let mut last_sort = Value::Null;
        for hit in hits.into_iter().take(limit) {
            last_sort = hit["sort"].clone();
            let doc: CdrDocument = serde_json::from_value(hit["_source"].clone()).map_err(|e| {
                SearchError::Status { status: 500, body: format!("unexpected document: {e}") }
            })?;
            items.push(doc);
        }
        let next_cursor = more.then(|| encode_cursor(request.sort, &last_sort));
        Ok(SearchPage { total, items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_parses_and_defaults_to_descending() {
        assert_eq!(Sort::parse("duration").unwrap(), Sort { field: SortField::Duration, descending: true });
        assert_eq!(
            Sort::parse("billsec:asc").unwrap(),
            Sort { field: SortField::Billsec, descending: false }
        );
        assert_eq!(Sort::parse("price:asc").unwrap_err().parameter, "sort");
        assert_eq!(Sort::parse("duration:up").unwrap_err().parameter, "sort");
    }

    #[test]
    fn cursors_round_trip_and_are_tied_to_their_sort() {
        let sort = Sort::default();
        let c = encode_cursor(sort, &json!([1_772_359_200_000_i64, 42]));
        assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(decode_cursor(sort, &c).unwrap(), json!([1_772_359_200_000_i64, 42]));
        let other = Sort { field: SortField::Duration, descending: true };
        assert!(decode_cursor(other, &c).unwrap_err().reason.contains("different sort"));
        assert_eq!(decode_cursor(sort, "zz").unwrap_err().parameter, "cursor");
        assert_eq!(decode_cursor(sort, "7b7d").unwrap_err().parameter, "cursor");
        // Well-formed but with values no page ends on: refused before the engine sees them.
        for after in [json!(["abc", 1]), json!([null, null]), json!([1.5, 2]), json!([1, {"a": 1}])] {
            let forged = encode_cursor(sort, &after);
            assert_eq!(decode_cursor(sort, &forged).unwrap_err().parameter, "cursor", "{after}");
        }
        // Multi-byte characters where hex digits belong.
        for forged in ["a\u{e9}a", "\u{10000}", "\u{e9}\u{e9}", "+1"] {
            assert_eq!(decode_cursor(sort, forged).unwrap_err().parameter, "cursor", "{forged}");
        }
    }
}
