//! Bulk writes read item by item: a 200 can still carry failed items.

use super::months::{Layout, by_month};
use super::{SearchError, SearchIndex, document, document_id, document_version};
use crate::store::partitions::month_of;
use chrono::NaiveDate;
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
    /// The read alias does not exist (the rows are among `retryable`): it must be
    /// re-created before writing again, never auto-created as a plain index.
    pub alias_missing: bool,
    /// Months whose index this write had to create: any row of theirs indexed before is
    /// not in it (the index was lost), so their batches are due again.
    pub months_created: Vec<NaiveDate>,
}

/// Where a write goes.
#[derive(Debug, Clone, Copy)]
pub enum WriteTo<'a> {
    /// The live indices: each row through its month's write alias (or, in the single
    /// layout, through the read alias).
    Live,
    /// A rebuild's own indices, `<alias>-<month>-<generation>`, which it has created.
    Rebuild { generation: &'a str },
}

impl SearchIndex {
    /// Writes rows with deterministic ids. Live writes require their alias to exist: a
    /// missing one is reported (or, for a month, created with the mapping), never replaced by
    /// an index Elasticsearch would create with a guessed mapping.
    pub async fn bulk_index(
        &self,
        to: WriteTo<'_>,
        rows: &[cdrs::Model],
    ) -> Result<BulkOutcome, SearchError> {
        if rows.is_empty() {
            return Ok(BulkOutcome::default());
        }
        if let WriteTo::Rebuild { generation } = to {
            let targets: Vec<String> =
                rows.iter().map(|r| self.month_index(month_of(r.start_time), generation)).collect();
            return self.write(rows, Some(&targets), false).await;
        }
        let mut outcome = match self.layout().await? {
            None => {
                let missing = "the search alias is missing".to_string();
                return Ok(BulkOutcome {
                    retryable: rows.iter().map(|r| (r.id, missing.clone())).collect(),
                    alias_missing: true,
                    ..BulkOutcome::default()
                });
            }
            Some(Layout::Single) => return self.write(rows, None, true).await,
            Some(Layout::Monthly) => self.write_months(rows).await?,
        };
        // A month without an index yet: create it, then send its rows again.
        let missing: Vec<i64> =
            outcome.retryable.iter().filter(|(_, e)| is_missing(e)).map(|(id, _)| *id).collect();
        if missing.is_empty() {
            return Ok(outcome);
        }
        if self.alias_targets().await?.is_none() {
            // Every index is gone, not just a month's: the caller re-creates the alias and
            // makes every batch due again.
            self.forget_layout();
            outcome.alias_missing = true;
            return Ok(outcome);
        }
        let again: Vec<cdrs::Model> = rows.iter().filter(|r| missing.contains(&r.id)).cloned().collect();
        for month in by_month(again.iter().map(|r| r.start_time)).into_keys() {
            if self.ensure_month(month).await? {
                outcome.months_created.push(month);
            }
        }
        outcome.retryable.retain(|(id, _)| !missing.contains(id));
        let second = self.write_months(&again).await?;
        outcome.indexed.extend(second.indexed);
        outcome.retryable.extend(second.retryable);
        outcome.rejected.extend(second.rejected);
        Ok(outcome)
    }

    async fn write_months(&self, rows: &[cdrs::Model]) -> Result<BulkOutcome, SearchError> {
        let targets: Vec<String> = rows.iter().map(|r| self.month_alias(month_of(r.start_time))).collect();
        self.write(rows, Some(&targets), true).await
    }

    /// One bulk request: each row into `targets[i]`, or all through the read alias.
    async fn write(
        &self,
        rows: &[cdrs::Model],
        targets: Option<&[String]>,
        require_alias: bool,
    ) -> Result<BulkOutcome, SearchError> {
        let mut body = String::with_capacity(rows.len() * 600);
        for (i, row) in rows.iter().enumerate() {
            let version = document_version(row);
            let action = match targets {
                Some(t) => json!({ "index": {
                    "_index": t[i], "_id": document_id(row), "version": version, "version_type": "external_gte"
                } }),
                None => {
                    json!({ "index": { "_id": document_id(row), "version": version, "version_type": "external_gte" } })
                }
            };
            body.push_str(&action.to_string());
            body.push('\n');
            body.push_str(&document(row).to_string());
            body.push('\n');
        }
        let prefix = if targets.is_some() { String::new() } else { format!("/{}", self.alias()) };
        let path = format!(
            "{prefix}/_bulk?require_alias={require_alias}&filter_path=errors,items.*.status,items.*._id,items.*.error"
        );
        let response = self.raw(Method::Post, &path, Some(body)).await?;
        let outcome = read_items(rows, &response);
        if outcome.retryable.iter().any(|(_, e)| is_missing(e) || e.contains("no write index")) {
            // An alias went away, or moved to another layout under this writer (a rebuild):
            // look again before the next write.
            self.forget_layout();
        }
        Ok(outcome)
    }
}

/// A write through an alias that does not exist.
fn is_missing(error: &str) -> bool {
    error.contains("index_not_found_exception") || error.contains("require_alias")
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
        let reason = item["error"]["reason"].as_str().unwrap_or_default();
        match status {
            200 | 201 => outcome.indexed.push(row.id),
            // The index holds a newer version of the row (written after a re-rate): done.
            409 => outcome.indexed.push(row.id),
            404 => outcome.retryable.push((row.id, item_error(item))),
            400 if reason.contains("no write index") || reason.contains("require_alias") => {
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
