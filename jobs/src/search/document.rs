//! A stored CDR row as a search document.

use entities::cdrs;
use serde_json::{Value, json};

/// The document id is the row's primary key: deterministic, so writing a row twice (a retry,
/// a redelivery, a rebuild) overwrites instead of duplicating.
pub fn document_id(row: &cdrs::Model) -> String {
    row.id.to_string()
}

pub fn document(row: &cdrs::Model) -> Value {
    json!({
        "id": row.id,
        "call_id": row.call_id,
        "source": row.source,
        "src_number": row.src_number,
        "dest_number": row.dest_number,
        "start_time": row.start_time,
        "answer_time": row.answer_time,
        "end_time": row.end_time,
        "duration": row.duration,
        "billsec": row.billsec,
        "disposition": row.disposition,
        "call_successful": row.call_successful,
        "hangup_cause": row.hangup_cause,
        "direction": row.direction,
        "account_code": row.account_code,
        "job_id": row.job_id,
        "ingested_at": row.ingested_at,
        "extra": row.extra,
    })
}
