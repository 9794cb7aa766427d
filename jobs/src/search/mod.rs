//! The Elasticsearch side: index layout, documents, bulk writes.
//!
//! Reads and writes go through an alias; the physical index behind it is versioned, so a
//! rebuild fills a new index and swaps the alias atomically while searches keep answering.

mod alias;
mod bulk;
pub mod concurrency;
mod document;
mod expire;
mod filters;
mod mapping;
pub mod months;
mod query;
mod stats;

pub use bulk::{BulkOutcome, WriteTo};
pub use concurrency::PeakConcurrency;
pub use document::{document, document_id, document_version};
pub use filters::{Filters, NumberMatch, ParamError, SHARED_PARAMETERS, parse_filters, parse_flag};
pub use query::{
    CdrDocument, DEFAULT_LIMIT, MAX_LIMIT, SearchPage, SearchRequest, Sort, SortField, encode_cursor,
    validate_cursor,
};
pub use stats::{
    AnsweredBy, Breakdown, DEFAULT_TOP, HistogramBucket, Interval, MAX_TOP, REJECTED_BY_CALLEE, RatedCalls,
    Stats, StatsRequest, Totals, money,
};

use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::transport::Transport;
use serde_json::{Value, json};
use std::time::Duration;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    #[error("Elasticsearch unreachable: {0}")]
    Unreachable(String),
    #[error("Elasticsearch answered {status}: {body}")]
    Status { status: u16, body: String },
}

impl SearchError {
    /// Worth retrying: the engine is down, overloaded (429) or failing (5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            SearchError::Unreachable(_) => true,
            SearchError::Status { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// A handle on the CDR index alias.
#[derive(Clone)]
pub struct SearchIndex {
    es: Elasticsearch,
    alias: String,
    /// The layout behind the alias, once read ([`SearchIndex::layout`]).
    layout: std::sync::Arc<std::sync::Mutex<Option<months::Layout>>>,
}

impl SearchIndex {
    pub fn new(url: &str, alias: &str) -> Result<Self, SearchError> {
        let transport = Transport::single_node(url).map_err(|e| SearchError::Unreachable(e.to_string()))?;
        Ok(SearchIndex {
            es: Elasticsearch::new(transport),
            alias: alias.to_string(),
            layout: Default::default(),
        })
    }

    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// Sends one request and returns its JSON body, or the error status with its body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, SearchError> {
        let body = body.map(|b| b.to_string());
        self.raw(method, path, body).await
    }

    /// Sends one request and reads its JSON body as a `T`: for large answers, where a
    /// generic JSON tree would take several times the memory of the typed values.
    pub async fn request_as<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, SearchError> {
        let (status, text) = self.send(method, path, body.map(|b| b.to_string())).await?;
        serde_json::from_str(&text)
            .map_err(|e| SearchError::Status { status, body: format!("unexpected answer: {e}") })
    }

    async fn raw(&self, method: Method, path: &str, body: Option<String>) -> Result<Value, SearchError> {
        let (status, text) = self.send(method, path, body).await?;
        serde_json::from_str(&text)
            .map_err(|e| SearchError::Status { status, body: format!("not JSON: {e}") })
    }

    /// The status and body of a successful answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, String), SearchError> {
        let response = self
            .es
            .send::<String, ()>(method, path, HeaderMap::new(), None, body, Some(REQUEST_TIMEOUT))
            .await
            .map_err(|e| SearchError::Unreachable(e.to_string()))?;
        let status = response.status_code().as_u16();
        let text = response.text().await.map_err(|e| SearchError::Unreachable(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(SearchError::Status { status, body: truncate(&text) });
        }
        Ok((status, text))
    }

    /// Puts the index template, and the current month's index behind the alias unless the
    /// alias exists; existing indices take the fields this version adds (fields are only
    /// ever added, so this never conflicts). Safe when several processes start at once.
    pub async fn ensure(&self) -> Result<(), SearchError> {
        self.put_template().await?;
        if self.alias_targets().await?.is_some() {
            return self.add_missing_fields().await;
        }
        self.ensure_month(crate::store::partitions::month_of(chrono::Utc::now())).await.map(|_| ())
    }

    /// Puts the fields this version maps, and the alias's index lacks, into its mapping,
    /// and the [`mapping::UPDATABLE`] parameters that differ. Nothing else of an existing
    /// field is redefined (that would be refused, and the data indexed under it would not
    /// change anyway).
    async fn add_missing_fields(&self) -> Result<(), SearchError> {
        let current = self.request(Method::Get, &format!("/{}/_mapping", self.alias), None).await?;
        let wanted = mapping::properties();
        let mut missing = serde_json::Map::new();
        for (field, definition) in wanted.as_object().into_iter().flatten() {
            let up_to_date = |existing: &Value| {
                mapping::UPDATABLE.iter().all(|p| {
                    // Absent means the engine's default, `false` for every updatable flag.
                    let flag = |d: &Value| d.get(*p).cloned().unwrap_or(Value::Bool(false));
                    flag(existing) == flag(definition)
                })
            };
            let everywhere = current.as_object().into_iter().flatten().all(|(_, index)| {
                index["mappings"]["properties"].get(field).is_some_and(|existing| {
                    // A field of another type is left alone: it cannot take these in place.
                    existing.get("type") != definition.get("type") || up_to_date(existing)
                })
            });
            if !everywhere {
                missing.insert(field.clone(), definition.clone());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!(fields = ?missing.keys().collect::<Vec<_>>(), "adding new fields (or updatable parameters) to the index mapping");
        let body = json!({ "properties": missing });
        self.request(Method::Put, &format!("/{}/_mapping", self.alias), Some(body)).await.map(|_| ())
    }

    /// Creates a physical index with the CDR mapping, optionally already behind the alias.
    pub async fn create_index(&self, name: &str, with_alias: bool) -> Result<(), SearchError> {
        let mut body = mapping::index_body();
        if with_alias {
            body["aliases"] = json!({ self.alias.clone(): {} });
        }
        self.request(Method::Put, &format!("/{name}"), Some(body)).await.map(|_| ())
    }

    pub async fn delete_index(&self, name: &str) -> Result<(), SearchError> {
        match self.request(Method::Delete, &format!("/{name}"), None).await {
            Ok(_) | Err(SearchError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The physical indices behind the alias, or `None` when the alias does not exist.
    pub async fn alias_targets(&self) -> Result<Option<Vec<String>>, SearchError> {
        match self.request(Method::Get, &format!("/_alias/{}", self.alias), None).await {
            Ok(Value::Object(map)) => Ok(Some(map.keys().cloned().collect())),
            Ok(_) => Ok(Some(Vec::new())),
            Err(SearchError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Points the alias at `to` and away from `from`, in one atomic step.
    pub async fn swap_alias(&self, from: &[String], to: &str) -> Result<(), SearchError> {
        let mut actions: Vec<Value> =
            from.iter().map(|i| json!({ "remove": { "index": i, "alias": self.alias } })).collect();
        actions.push(json!({ "add": { "index": to, "alias": self.alias } }));
        self.request(Method::Post, "/_aliases", Some(json!({ "actions": actions }))).await.map(|_| ())
    }

    /// Documents in the alias (or any index), as of the last refresh.
    pub async fn count(&self, index: Option<&str>) -> Result<u64, SearchError> {
        let index = index.unwrap_or(&self.alias);
        let body = self.request(Method::Get, &format!("/{index}/_count"), None).await?;
        Ok(body["count"].as_u64().unwrap_or(0))
    }

    pub async fn refresh(&self, index: Option<&str>) -> Result<(), SearchError> {
        let index = index.unwrap_or(&self.alias);
        self.request(Method::Post, &format!("/{index}/_refresh"), None).await.map(|_| ())
    }

    pub async fn ping(&self) -> Result<(), SearchError> {
        self.request(Method::Get, "/_cluster/health", None).await.map(|_| ())
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= 2000 {
        return s.to_string();
    }
    let mut end = 2000;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
