//! When the sync sweeper last queued a batch, so each waiting batch is offered again at most
//! once per grace period however deep the index queue is, instead of not at all while the
//! queue holds anything.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = "ALTER TABLE ingest_batches ADD COLUMN IF NOT EXISTS swept_at TIMESTAMPTZ;";
const DOWN: &str = "ALTER TABLE ingest_batches DROP COLUMN IF EXISTS swept_at;";

sql_migration!(UP, DOWN);
