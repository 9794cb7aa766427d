//! Deleting the documents of calls that started before a given instant.
//!
//! The engine's delete-by-query lives in a module not every distribution ships, so the
//! documents are found page by page (sorted by row id, resuming after the last one) and
//! deleted with bulk requests: the same documents, with nothing but the core API.

use super::{SearchError, SearchIndex};
use chrono::{DateTime, Utc};
use elasticsearch::http::Method;
use serde_json::{Value, json};

const PAGE: usize = 5_000;

impl SearchIndex {
    /// Documents of calls that started before `before`.
    pub async fn count_before(&self, before: DateTime<Utc>) -> Result<u64, SearchError> {
        let body = json!({ "query": started_before(before) });
        let answer = self.request(Method::Post, &format!("/{}/_count", self.alias()), Some(body)).await?;
        Ok(answer["count"].as_u64().unwrap_or(0))
    }

    /// Deletes the documents of calls that started before `before`; answers how many went.
    pub async fn delete_before(&self, before: DateTime<Utc>) -> Result<u64, SearchError> {
        self.refresh(None).await?;
        let mut deleted = 0;
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": PAGE,
                "_source": false,
                "query": started_before(before),
                "sort": [{ "id": "asc" }],
            });
            if let Some(after) = &after {
                body["search_after"] = after.clone();
            }
            let page = self.request(Method::Post, &format!("/{}/_search", self.alias()), Some(body)).await?;
            let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
            let Some(last) = hits.last() else { break };
            after = Some(last["sort"].clone());
            let mut bulk = String::with_capacity(hits.len() * 80);
            for hit in &hits {
                bulk.push_str(
                    &json!({ "delete": { "_index": hit["_index"], "_id": hit["_id"] } }).to_string(),
                );
                bulk.push('\n');
            }
            let answer = self
                .raw(Method::Post, "/_bulk?filter_path=errors,items.*.status,items.*.error", Some(bulk))
                .await?;
            for item in answer["items"].as_array().into_iter().flatten() {
                let status = item["delete"]["status"].as_u64().unwrap_or(0);
                match status {
                    200 | 404 => deleted += u64::from(status == 200),
                    _ => {
                        return Err(SearchError::Status {
                            status: u16::try_from(status).unwrap_or(500),
                            body: item["delete"]["error"].to_string(),
                        });
                    }
                }
            }
            if hits.len() < PAGE {
                break;
            }
        }
        self.refresh(None).await?;
        Ok(deleted)
    }
}

fn started_before(before: DateTime<Utc>) -> Value {
    json!({ "range": { "start_time": { "lt": before.to_rfc3339() } } })
}
