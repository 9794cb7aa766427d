#![doc = include_str!("../README.md")]

pub mod alerts;
pub mod cdr;
pub mod config;
pub mod connect;
pub mod crash;
pub mod db;
pub mod error_code;
pub mod export;
pub mod indexing;
pub mod ingest;
pub mod job;
pub mod metrics;
pub mod numbers;
pub mod queue;
pub mod rating;
pub mod reindex;
pub mod retention;
pub mod rollups;
pub mod runtime;
pub mod search;
pub mod state;
pub mod store;
pub mod sync;

/// A new job id: a ULID, lower-cased, so ids sort by creation time.
pub fn new_job_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}
