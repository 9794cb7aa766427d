#![doc = include_str!("../README.md")]

pub mod cdrs;
pub mod ingest_batches;

pub mod prelude {
    pub use super::cdrs::Entity as Cdrs;
    pub use super::ingest_batches::Entity as IngestBatches;
}
