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
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": { "type": "long" },
                "call_id": { "type": "keyword" },
                "source": { "type": "keyword" },
                // Numbers are keywords: exact and prefix search, no tokenising of digits.
                "src_number": { "type": "keyword" },
                "dest_number": { "type": "keyword" },
                "start_time": { "type": "date" },
                "answer_time": { "type": "date", "doc_values": false },
                // Doc values: peak concurrency counts call ends per time slice.
                "end_time": { "type": "date" },
                "duration": { "type": "integer" },
                "billsec": { "type": "integer" },
                "disposition": { "type": "keyword" },
                "call_successful": { "type": "boolean" },
                "hangup_cause": { "type": "keyword" },
                "direction": { "type": "keyword" },
                "account_code": { "type": "keyword" },
                "job_id": { "type": "keyword", "doc_values": false },
                "ingested_at": { "type": "date", "doc_values": false },
                // Kept and returned, never indexed: switch-specific fields must not grow
                // the mapping.
                "extra": { "type": "object", "enabled": false }
            }
        }
    })
}
