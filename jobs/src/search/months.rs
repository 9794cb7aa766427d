//! One search index per month of call start, behind the read alias.
//!
//! The month of November 2026 lives in `<alias>-2026-11-<generation>` (`initial`, or the id
//! of the rebuild that made it), written through the month's own alias `<alias>-2026-11`
//! and read, with every other month, through `<alias>`. An index template carries the
//! mapping to every index named `<alias>-*`. Retention deletes a month's indices whole, and
//! a rebuild can rebuild one month or all of them.
//!
//! An installation from before months serves one index for all of them (the "single"
//! layout): writes keep going through the read alias until a full rebuild moves it to
//! months, so no document is ever in two indices behind the alias.

use super::{SearchError, SearchIndex, mapping};
use crate::store::partitions::month_of;
use chrono::{Datelike, NaiveDate};
use elasticsearch::http::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// How the indices behind the read alias are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One index per month.
    Monthly,
    /// One index for every month (built before months, or by hand).
    Single,
}

impl SearchIndex {
    /// The alias writes of `month` go through.
    pub fn month_alias(&self, month: NaiveDate) -> String {
        format!("{}-{:04}-{:02}", self.alias(), month.year(), month.month())
    }

    /// The index of `month` made by `generation`.
    pub fn month_index(&self, month: NaiveDate, generation: &str) -> String {
        format!("{}-{generation}", self.month_alias(month))
    }

    /// The month an index of ours holds, if it is a month's index.
    pub fn month_of_index(&self, index: &str) -> Option<NaiveDate> {
        let rest = index.strip_prefix(self.alias())?.strip_prefix('-')?;
        let (year, rest) = rest.split_once('-')?;
        let (month, generation) = rest.split_once('-')?;
        if year.len() != 4 || month.len() != 2 || generation.is_empty() {
            return None;
        }
        NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
    }

    /// The layout behind the read alias, or `None` when the alias does not exist. Read
    /// once and kept; [`SearchIndex::forget_layout`] makes the next write look again.
    pub async fn layout(&self) -> Result<Option<Layout>, SearchError> {
        if let Some(known) = *self.layout.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(Some(known));
        }
        let Some(targets) = self.alias_targets().await? else { return Ok(None) };
        let layout = if targets.iter().all(|i| self.month_of_index(i).is_some()) {
            Layout::Monthly
        } else {
            Layout::Single
        };
        *self.layout.lock().unwrap_or_else(|e| e.into_inner()) = Some(layout);
        Ok(Some(layout))
    }

    pub fn forget_layout(&self) {
        *self.layout.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Puts the index template that gives every `<alias>-*` index the CDR mapping.
    pub async fn put_template(&self) -> Result<(), SearchError> {
        let body = mapping::index_body();
        let template = json!({
            "index_patterns": [format!("{}-*", self.alias())],
            "priority": 200,
            "template": { "settings": body["settings"], "mappings": body["mappings"] },
            "_meta": { "description": "CDR documents, one index per month of call start" }
        });
        self.request(Method::Put, &format!("/_index_template/{}", self.alias()), Some(template))
            .await
            .map(|_| ())
    }

    /// Creates `month`'s first index behind the read alias and the month's write alias,
    /// unless the month has an index already. `true` when this call created it.
    pub async fn ensure_month(&self, month: NaiveDate) -> Result<bool, SearchError> {
        let write_alias = self.month_alias(month);
        if self.alias_exists(&write_alias).await? {
            return Ok(false);
        }
        let index = self.month_index(month, "initial");
        let mut body = mapping::index_body();
        body["aliases"] = json!({
            self.alias(): {},
            write_alias.clone(): { "is_write_index": true },
        });
        match self.request(Method::Put, &format!("/{index}"), Some(body)).await {
            Ok(_) => {
                tracing::info!(index = %index, "search index of a new month created");
                self.forget_layout();
                Ok(true)
            }
            Err(SearchError::Status { status: 400, body }) if body.contains("resource_already_exists") => {
                // Made by another worker at the same moment, or left without its aliases.
                let actions = json!({ "actions": [
                    { "add": { "index": index, "alias": self.alias() } },
                    { "add": { "index": index, "alias": write_alias, "is_write_index": true } },
                ] });
                self.request(Method::Post, "/_aliases", Some(actions)).await.map(|_| false)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates an index of `month` that no alias points at yet (a rebuild's).
    pub async fn create_month_index(
        &self,
        month: NaiveDate,
        generation: &str,
    ) -> Result<String, SearchError> {
        let index = self.month_index(month, generation);
        match self.create_index(&index, false).await {
            Ok(()) => Ok(index),
            Err(SearchError::Status { status: 400, body }) if body.contains("resource_already_exists") => {
                Ok(index)
            }
            Err(e) => Err(e),
        }
    }

    async fn alias_exists(&self, alias: &str) -> Result<bool, SearchError> {
        match self.request(Method::Get, &format!("/_alias/{alias}"), None).await {
            Ok(_) => Ok(true),
            Err(SearchError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every index named for this alias, with the aliases each carries.
    pub async fn indices_with_aliases(&self) -> Result<BTreeMap<String, BTreeSet<String>>, SearchError> {
        let answer = match self.request(Method::Get, &format!("/{}-*/_alias", self.alias()), None).await {
            Ok(answer) => answer,
            Err(SearchError::Status { status: 404, .. }) => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        };
        let mut out = BTreeMap::new();
        for (index, value) in answer.as_object().into_iter().flatten() {
            let aliases =
                value["aliases"].as_object().map(|a| a.keys().cloned().collect()).unwrap_or_default();
            out.insert(index.clone(), aliases);
        }
        Ok(out)
    }

    /// Moves the read alias, and the write alias of each month, from the indices `old` to
    /// the indices `new`, in one atomic step.
    pub async fn swap_months(
        &self,
        old: &BTreeMap<String, BTreeSet<String>>,
        new: &[String],
    ) -> Result<(), SearchError> {
        let mut actions: Vec<Value> = Vec::new();
        for (index, aliases) in old {
            if !aliases.is_empty() {
                actions.push(json!({ "remove": { "index": index, "aliases": aliases } }));
            }
        }
        for index in new {
            actions.push(json!({ "add": { "index": index, "alias": self.alias() } }));
            if let Some(month) = self.month_of_index(index) {
                actions.push(
                    json!({ "add": { "index": index, "alias": self.month_alias(month), "is_write_index": true } }),
                );
            }
        }
        self.request(Method::Post, "/_aliases", Some(json!({ "actions": actions }))).await?;
        self.forget_layout();
        Ok(())
    }
}

/// The months of rows, each with the rows' positions.
pub fn by_month<'a>(
    starts: impl Iterator<Item = chrono::DateTime<chrono::Utc>> + 'a,
) -> BTreeMap<NaiveDate, Vec<usize>> {
    let mut out: BTreeMap<NaiveDate, Vec<usize>> = BTreeMap::new();
    for (i, start) in starts.enumerate() {
        out.entry(month_of(start)).or_default().push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_indices_are_named_and_read_back() {
        let search = SearchIndex::new("http://127.0.0.1:9", "cdrs").unwrap();
        let nov = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        assert_eq!(search.month_alias(nov), "cdrs-2026-11");
        assert_eq!(search.month_index(nov, "initial"), "cdrs-2026-11-initial");
        assert_eq!(search.month_of_index("cdrs-2026-11-01kxyz"), Some(nov));
        assert_eq!(search.month_of_index("cdrs-initial"), None);
        assert_eq!(search.month_of_index("cdrs-01kxyz"), None);
        assert_eq!(search.month_of_index("cdrs-2026-11"), None, "the write alias is not an index");
        assert_eq!(search.month_of_index("other-2026-11-initial"), None);
    }
}
