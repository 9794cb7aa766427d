//! The span of time each pending rollup row covers.
//!
//! A reader adds every pending row to what it reads from the cuboids, and a pending row is a
//! whole batch's groups in arrays, unnested to be read. A live dashboard asking for the last
//! hour while a backfill of last year is pending would unnest the whole backfill. With its
//! span beside it, a row outside the window asked for is skipped unread: `first_at` is at or
//! before every minute and second the row counts, `last_at` after every one. Rows written
//! before (or by re-rating, which keeps the earlier shape) have none and are always read.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

sql_migration!(
    "ALTER TABLE kpi_pending ADD COLUMN IF NOT EXISTS first_at timestamptz, ADD COLUMN IF NOT EXISTS last_at timestamptz;",
    "ALTER TABLE kpi_pending DROP COLUMN IF EXISTS first_at, DROP COLUMN IF EXISTS last_at;"
);
