//! A stored CDR row as a search document.

use entities::cdrs;
use serde_json::{Value, json};

/// The document id is the row's primary key: deterministic, so writing a row twice (a retry,
/// a redelivery, a rebuild) overwrites instead of duplicating.
pub fn document_id(row: &cdrs::Model) -> String {
    row.id.to_string()
}

/// The document's external version: when the row's derived values were last written, in
/// microseconds. A re-rate makes it larger, so writes of a row's older values (an index job
/// that read it before the re-rate committed) are refused by the engine instead of replacing
/// newer ones. Far above the small internal versions documents of earlier versions carry.
pub fn document_version(row: &cdrs::Model) -> i64 {
    row.derived_at.unwrap_or(row.ingested_at).timestamp_micros()
}

pub fn document(row: &cdrs::Model) -> Value {
    json!({
        "id": row.id,
        "call_id": row.call_id,
        "record_key": row.record_key,
        "source": row.source,
        "src_number": row.src_number,
        "dest_number": row.dest_number,
        "start_time": row.start_time,
        "answer_time": row.answer_time,
        "end_time": row.end_time,
        "ends_at": ends_at(row),
        "duration": row.duration,
        "billsec": row.billsec,
        "disposition": row.disposition,
        "disposition_raw": row.disposition_raw,
        "call_successful": row.call_successful,
        "hangup_cause": row.hangup_cause,
        "direction": row.direction,
        "account_code": row.account_code,
        "linked_id": row.linked_id,
        "caller_withheld": row.caller_withheld,
        "job_id": row.job_id,
        "ingested_at": row.ingested_at,
        "extra": row.extra,
        "src_e164": row.src_e164,
        "dest_e164": row.dest_e164,
        "dest_country": row.dest_country,
        "dest_type": row.dest_type,
        "sell_rating": row.sell_rating,
        "sell_cost": row.sell_cost.map(crate::search::money),
        "sell_cost_micros": row.sell_cost.and_then(micros),
        "sell_currency": row.sell_currency,
        "sell_prefix": row.sell_prefix,
        "sell_deck": row.sell_deck,
        "buy_rating": row.buy_rating,
        "buy_cost": row.buy_cost.map(crate::search::money),
        "buy_cost_micros": row.buy_cost.and_then(micros),
        "buy_currency": row.buy_currency,
        "buy_prefix": row.buy_prefix,
        "buy_deck": row.buy_deck,
    })
}

/// A cost in millionths, the unit the index sums exactly (costs are kept to 6 places).
fn micros(cost: rust_decimal::Decimal) -> Option<i64> {
    use rust_decimal::prelude::ToPrimitive;
    (cost * rust_decimal::Decimal::from(1_000_000)).trunc().to_i64()
}

/// When the call ended: the switch's end time, or its start plus its duration when it gave
/// none. Every document has one, so concurrency counts every call's end.
fn ends_at(row: &cdrs::Model) -> chrono::DateTime<chrono::Utc> {
    row.end_time.unwrap_or(row.start_time + chrono::Duration::seconds(i64::from(row.duration)))
}
