//! Bringing back a missing alias.
//!
//! Every write goes through the alias with `require_alias`, and automatic index creation is
//! off, so a missing alias (the engine's data lost, an operator's mistake) stops writes
//! instead of silently creating an index with a guessed mapping. The worker that meets it
//! puts it back, with the real mapping, before writing again.

use super::{SearchError, SearchIndex};

impl SearchIndex {
    /// Re-creates the alias if it is missing, on the current month's index (created with
    /// the mapping, or taken as it is if an earlier start left it). `true` when the alias had to be put
    /// back, meaning the index behind it may lack documents: the caller makes every batch
    /// due for indexing again. Safe when several workers meet the missing alias at once:
    /// they all settle on the same index.
    pub async fn recover_alias(&self) -> Result<bool, SearchError> {
        self.forget_layout();
        if self.alias_targets().await?.is_some() {
            return Ok(false);
        }
        self.ensure().await?;
        tracing::error!(alias = self.alias(), "search alias was missing; re-created with this month's index");
        Ok(true)
    }
}
