//! End-to-end tests of the ingest pipeline on the real services.

mod alerts;
#[path = "../common/mod.rs"]
mod common;
mod console;
mod contract;
mod crash;
mod docs;
mod exports;
mod formats;
mod freeswitch;
mod fuzz;
mod indexing;
mod ingest;
mod layouts;
mod lifecycle;
mod metrics;
mod partitions;
mod pricing;
mod real_files;
mod rejects;
mod resilience;
mod retention;
mod rollups;
mod search;
mod security;
mod stats_paths;
