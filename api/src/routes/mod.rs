//! HTTP routes, one file per resource.

pub mod cdrs;
pub mod health;
pub mod jobs;

#[derive(poem_openapi::Tags)]
pub enum Tag {
    /// Submitting CDR batches.
    Cdrs,
    /// Following jobs.
    Jobs,
    /// Liveness and readiness.
    Health,
}
