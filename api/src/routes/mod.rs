//! HTTP routes, one file per resource.

pub mod alerts;
mod cdr_body;
pub mod cdrs;
pub mod exports;
pub mod freeswitch;
pub mod health;
pub mod jobs;
pub mod mappings;
pub mod pricing;
pub mod retention;
pub mod search;
pub mod sync;

#[derive(poem_openapi::Tags)]
pub enum Tag {
    /// Submitting CDR batches.
    Cdrs,
    /// How CSV files of each switch are read.
    Mappings,
    /// Following jobs.
    Jobs,
    /// Searching CDRs and their statistics.
    Search,
    /// PostgreSQL and the search index compared, and rebuilt.
    Sync,
    /// Liveness and readiness.
    Health,
    /// Numbers and money: dialling plans, rate decks and re-rating.
    Pricing,
    /// Every CDR a query matches, as a file.
    Exports,
    /// Rules over the KPIs, and what fired.
    Alerts,
}
