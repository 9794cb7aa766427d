//! Tracking which rows are in the search index, so the sync gap is a query.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE cdrs ADD COLUMN indexed_at TIMESTAMPTZ;
ALTER TABLE cdrs ADD COLUMN index_error TEXT;
CREATE INDEX cdrs_unindexed_idx ON cdrs (id) WHERE indexed_at IS NULL;
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS cdrs_unindexed_idx;
ALTER TABLE cdrs DROP COLUMN IF EXISTS index_error;
ALTER TABLE cdrs DROP COLUMN IF EXISTS indexed_at;
"#;

// The trait is declared by async_trait with an elided SchemaManager lifetime.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
