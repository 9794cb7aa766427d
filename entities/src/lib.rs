#![doc = include_str!("../README.md")]

pub mod cdrs;
pub mod csv_mappings;
pub mod index_failures;
pub mod ingest_batches;

pub mod prelude {
    pub use super::cdrs::Entity as Cdrs;
    pub use super::csv_mappings::Entity as CsvMappings;
    pub use super::index_failures::Entity as IndexFailures;
    pub use super::ingest_batches::Entity as IngestBatches;
}
