//! The index settings and explicit mapping: no dynamic guessing, every field typed for the
//! queries it serves.

use serde_json::{Value, json};

pub fn index_body() -> Value {
    json!({
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            // Fresh enough for operators (a CDR is searchable within about a second)
            // without refreshing per request.
            "refresh_interval": "1s"
        },
        "mappings": { "dynamic": "strict", "properties": properties() }
    })
}

/// Every field of a CDR document. A field is only ever added, never changed (but for
/// [`UPDATABLE`] parameters), so an index built by an earlier version takes the new ones in
/// place ([`super::SearchIndex::ensure`]).
/// Parameters of a field an existing index takes in place: an index built by an earlier
/// version gets them when they differ.
pub const UPDATABLE: [&str; 1] = ["eager_global_ordinals"];

pub fn properties() -> Value {
    json!({
        "id": { "type": "long" },
        "call_id": { "type": "keyword" },
        // Only ever returned: never searched, sorted or aggregated.
        "record_key": { "type": "keyword", "index": false, "doc_values": false },
        "source": { "type": "keyword" },
        // Parties are keywords, as the switch wrote them: exact and prefix search, no
        // tokenising of digits or SIP user names. Ranked by `top` (a terms aggregation over
        // tens of thousands of numbers): their global ordinals are built as the index
        // refreshes, not by the first ranking after it, which would otherwise wait for them.
        "src_number": { "type": "keyword", "eager_global_ordinals": true },
        "dest_number": { "type": "keyword", "eager_global_ordinals": true },
        "start_time": { "type": "date" },
        "answer_time": { "type": "date", "doc_values": false },
        "end_time": { "type": "date" },
        // The switch's end, or start + duration when it gave none: what concurrency counts
        // call ends by.
        "ends_at": { "type": "date" },
        "duration": { "type": "integer" },
        "billsec": { "type": "integer" },
        "disposition": { "type": "keyword" },
        "disposition_raw": { "type": "keyword" },
        "call_successful": { "type": "boolean" },
        "hangup_cause": { "type": "keyword" },
        "direction": { "type": "keyword" },
        "account_code": { "type": "keyword" },
        "linked_id": { "type": "keyword" },
        "caller_withheld": { "type": "boolean" },
        "job_id": { "type": "keyword", "doc_values": false },
        "ingested_at": { "type": "date", "doc_values": false },
        // Kept and returned, never indexed: switch-specific fields must not grow the mapping.
        "extra": { "type": "object", "enabled": false },
        "src_e164": { "type": "keyword" },
        "dest_e164": { "type": "keyword" },
        "dest_country": { "type": "keyword" },
        "dest_type": { "type": "keyword" },
        "sell_rating": { "type": "keyword" },
        // Costs are returned as written (exact decimals) and summed in millionths.
        "sell_cost": { "type": "keyword", "index": false, "doc_values": false },
        "sell_cost_micros": { "type": "long" },
        "sell_currency": { "type": "keyword" },
        "sell_prefix": { "type": "keyword" },
        "sell_deck": { "type": "long" },
        "buy_rating": { "type": "keyword" },
        "buy_cost": { "type": "keyword", "index": false, "doc_values": false },
        "buy_cost_micros": { "type": "long" },
        "buy_currency": { "type": "keyword" },
        "buy_prefix": { "type": "keyword" },
        "buy_deck": { "type": "long" }
    })
}
