//! The columns an export can write: the fields of a CDR as `/search` returns it.

use crate::search::ParamError;

/// Every column, in the order a full export writes them.
pub const COLUMNS: &[&str] = &[
    "id",
    "call_id",
    "record_key",
    "source",
    "src_number",
    "dest_number",
    "start_time",
    "answer_time",
    "end_time",
    "duration",
    "billsec",
    "disposition",
    "disposition_raw",
    "call_successful",
    "hangup_cause",
    "direction",
    "account_code",
    "linked_id",
    "caller_withheld",
    "extra",
    "job_id",
    "ingested_at",
    "src_e164",
    "dest_e164",
    "dest_country",
    "dest_type",
    "sell_rating",
    "sell_cost",
    "sell_currency",
    "sell_prefix",
    "sell_deck",
    "buy_rating",
    "buy_cost",
    "buy_currency",
    "buy_prefix",
    "buy_deck",
];

/// A comma-separated list of known columns, each once.
pub fn parse(list: &str) -> Result<Vec<String>, ParamError> {
    let mut columns: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if !COLUMNS.contains(&name) {
            return Err(ParamError::new(
                "columns",
                format!("unknown column {name:?}; the columns are {}", COLUMNS.join(", ")),
            ));
        }
        if columns.iter().any(|c| c == name) {
            return Err(ParamError::new("columns", format!("{name:?} is listed twice")));
        }
        columns.push(name.to_string());
    }
    if columns.is_empty() {
        return Err(ParamError::new("columns", "no column named"));
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::CdrDocument;

    #[test]
    fn the_columns_are_exactly_the_fields_search_returns() {
        let doc: CdrDocument = serde_json::from_value(serde_json::json!({
            "id": 1, "call_id": "c", "source": "s", "src_number": "1", "dest_number": "2",
            "start_time": "2026-03-01T10:00:00Z", "duration": 1, "billsec": 1,
            "disposition": "ANSWERED", "call_successful": true, "extra": {}, "job_id": "j",
            "ingested_at": "2026-03-01T10:00:00Z"
        }))
        .expect("a document");
        let value = serde_json::to_value(doc).expect("json");
        let mut fields: Vec<&str> = value.as_object().expect("object").keys().map(String::as_str).collect();
        let mut columns = COLUMNS.to_vec();
        fields.sort_unstable();
        columns.sort_unstable();
        assert_eq!(fields, columns);
    }
}
