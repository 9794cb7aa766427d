//! The committed outcome of one ingest job, written in the same transaction as its rows.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ingest_batches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: String,
    pub received: i32,
    pub inserted: i32,
    pub duplicates: i32,
    pub committed_at: DateTimeUtc,
    /// When every row of the batch was confirmed in the search index; NULL while it waits.
    pub indexed_at: Option<DateTimeUtc>,
    /// When the sync sweeper last queued the batch for indexing; NULL if it never had to.
    pub swept_at: Option<DateTimeUtc>,
    /// Re-rates that changed rows of the batch: an index job marks the batch indexed only if
    /// none did since it began.
    pub revision: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
