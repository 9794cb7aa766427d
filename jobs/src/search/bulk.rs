//! Bulk writes read item by item: a 200 can still carry failed items.

use super::{SearchError, SearchIndex, document, document_id};
use elasticsearch::http::Method;
use entities::cdrs;
use serde_json::{Value, json};

/// What a bulk request did to each row.
#[derive(Debug, Default)]
pub struct BulkOutcome {
    /// Rows the engine stored.
    pub indexed: Vec<i64>,
    /// Rows refused for now (429, 5xx): send again later.
    pub retryable: Vec<(i64, String)>,
    /// Rows refused for good (a mapping or parsing error): retrying will not help.
    pub rejected: Vec<(i64, String)>,
    /// The alias written through does not exist (the rows are among `retryable`): it must be
    /// re-created before writing again, never auto-created as a plain index.
    pub alias_missing: bool,
}

impl SearchIndex {
    /// Writes rows into `index` (the alias when `None`) with deterministic ids. Writes through
    /// the alias require it to exist: a missing alias is reported, not replaced by an index
    /// Elasticsearch would create with a guessed mapping.
    pub async fn bulk_index(
        &self,
        index: Option<&str>,
        rows: &[cdrs::Model],
    ) -> Result<BulkOutcome, SearchError> {
        if rows.is_empty() {
            return Ok(BulkOutcome::default());
        }
        let (index, require_alias) = match index {
            Some(index) => (index, false),
            None => (self.alias(), true),
        };
        let mut body = String::with_capacity(rows.len() * 600);
        for row in rows {
            body.push_str(&json!({ "index": { "_id": document_id(row) } }).to_string());
            body.push('\n');
            body.push_str(&document(row).to_string());
            body.push('\n');
        }
        let path = format!(
            "/{index}/_bulk?require_alias={require_alias}&filter_path=errors,items.*.status,items.*._id,items.*.error"
        );
        let response = self.raw(Method::Post, &path, Some(body)).await?;
        Ok(read_items(rows, &response))
    }
}

fn read_items(rows: &[cdrs::Model], response: &Value) -> BulkOutcome {
    let mut outcome = BulkOutcome::default();
    let items = response["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for (i, row) in rows.iter().enumerate() {
        let Some(item) = items.get(i).and_then(|it| it.get("index")) else {
            outcome.retryable.push((row.id, "missing from the bulk response".into()));
            continue;
        };
        let status = item["status"].as_u64().unwrap_or(0);
        match status {
            200 | 201 => outcome.indexed.push(row.id),
            404 if item["error"]["type"] == "index_not_found_exception" => {
                outcome.alias_missing = true;
                outcome.retryable.push((row.id, item_error(item)));
            }
            429 | 500.. => outcome.retryable.push((row.id, item_error(item))),
            _ => outcome.rejected.push((row.id, item_error(item))),
        }
    }
    outcome
}

fn item_error(item: &Value) -> String {
    let e = &item["error"];
    match (e["type"].as_str(), e["reason"].as_str()) {
        (Some(t), Some(r)) => format!("{} {t}: {r}", item["status"]),
        _ => format!("status {}", item["status"]),
    }
}
