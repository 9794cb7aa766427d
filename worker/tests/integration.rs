//! End-to-end tests of the ingest pipeline on the real services.

mod common;
mod ingest;
mod rejects;
mod resilience;
