//! Pending rollup sums compressed with LZ4 instead of PostgreSQL's default `pglz`.
//!
//! Each ingest transaction appends one `kpi_pending` row of parallel arrays (a thousand
//! elements each for a batch of a thousand calls), so every array is compressed on its way
//! into TOAST, to be read once by the fold and deleted. `pglz` spent more CPU compressing them
//! than the rest of the append; LZ4 compresses them about four times faster to a similar size
//! (measured on arrays of this shape: 300 batches in 1.3–1.6 s with `pglz`, 0.35–0.38 s with
//! LZ4). A server built without LZ4 keeps `pglz`, with a notice.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Sets every array column of `kpi_pending` to compression `METHOD`.
const SET_COMPRESSION: &str = r#"
DO $$
DECLARE c text;
BEGIN
  FOR c IN SELECT attname FROM pg_attribute
           WHERE attrelid = 'kpi_pending'::regclass AND attnum > 0 AND NOT attisdropped AND attlen = -1
  LOOP
    EXECUTE format('ALTER TABLE kpi_pending ALTER COLUMN %I SET COMPRESSION METHOD', c);
  END LOOP;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'kpi_pending keeps pglz compression: %', SQLERRM;
END $$;
"#;

fn set_compression(method: &str) -> String {
    SET_COMPRESSION.replace("METHOD", method)
}

sql_migration!(&set_compression("lz4"), &set_compression("default"));
