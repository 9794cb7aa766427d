//! Tracking which batches are in the search index, so the sync gap is a query.
//!
//! Tracked per ingest batch rather than per row: marking a batch indexed is one narrow
//! update, where marking each row would rewrite every CDR and all its indexes a second time.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE ingest_batches ADD COLUMN indexed_at TIMESTAMPTZ;
CREATE INDEX ingest_batches_unindexed_idx ON ingest_batches (committed_at) WHERE indexed_at IS NULL;
CREATE INDEX ingest_batches_indexed_at_idx ON ingest_batches (indexed_at);
CREATE TABLE index_failures (
    cdr_id    BIGINT      PRIMARY KEY REFERENCES cdrs (id) ON DELETE CASCADE,
    job_id    TEXT        NOT NULL,
    error     TEXT        NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS index_failures;
DROP INDEX IF EXISTS ingest_batches_indexed_at_idx;
DROP INDEX IF EXISTS ingest_batches_unindexed_idx;
ALTER TABLE ingest_batches DROP COLUMN IF EXISTS indexed_at;
"#;

sql_migration!(UP, DOWN);
