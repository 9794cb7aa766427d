//! Pending rollup sums name their dimensions by number: each `kpi_pending` row lists the
//! strings of its batch once (`names`) and gives every group's seven dimensions, and every
//! per-second count's source, as subscripts of it (`dim_ids`, `ev_source_ids`).
//!
//! A batch of a thousand calls has nearly a group per call but only a few dozen distinct
//! sources, directions, dispositions, accounts and countries; as strings they were written,
//! compressed, read back and decoded seven times a call. Rows in the earlier shape (and the
//! rows re-rating appends, which keep it) are still read: a row has one shape or the other.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE kpi_pending
    ADD COLUMN names TEXT[],
    ADD COLUMN dim_ids INT4[],
    ADD COLUMN ev_source_ids INT4[],
    ALTER COLUMN source DROP NOT NULL,
    ALTER COLUMN direction DROP NOT NULL,
    ALTER COLUMN disposition DROP NOT NULL,
    ALTER COLUMN account_code DROP NOT NULL,
    ALTER COLUMN dest_prefix DROP NOT NULL,
    ALTER COLUMN ev_source DROP NOT NULL;
ALTER TABLE kpi_pending
    ADD CONSTRAINT kpi_pending_one_shape CHECK ((source IS NULL) = (dim_ids IS NOT NULL) AND (names IS NULL) = (dim_ids IS NULL));
DO $$
BEGIN
  ALTER TABLE kpi_pending ALTER COLUMN names SET COMPRESSION lz4,
                          ALTER COLUMN dim_ids SET COMPRESSION lz4,
                          ALTER COLUMN ev_source_ids SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'kpi_pending keeps pglz compression: %', SQLERRM;
END $$;
"#;

/// Rows in the new shape are rewritten with their strings before the columns go.
const DOWN: &str = r#"
LOCK TABLE kpi_pending IN EXCLUSIVE MODE;
ALTER TABLE kpi_pending DROP CONSTRAINT kpi_pending_one_shape;
UPDATE kpi_pending p SET
    source = ARRAY(SELECT p.names[p.dim_ids[(i - 1) * 7 + 1]] FROM generate_subscripts(p.bucket, 1) i ORDER BY i),
    direction = ARRAY(SELECT p.names[p.dim_ids[(i - 1) * 7 + 2]] FROM generate_subscripts(p.bucket, 1) i ORDER BY i),
    disposition = ARRAY(SELECT p.names[p.dim_ids[(i - 1) * 7 + 3]] FROM generate_subscripts(p.bucket, 1) i ORDER BY i),
    account_code = ARRAY(SELECT p.names[p.dim_ids[(i - 1) * 7 + 4]] FROM generate_subscripts(p.bucket, 1) i ORDER BY i),
    dest_prefix = ARRAY(SELECT p.names[p.dim_ids[(i - 1) * 7 + 5]] FROM generate_subscripts(p.bucket, 1) i ORDER BY i),
    dest_country = ARRAY(SELECT p.names[p.dim_ids[(i - 1) * 7 + 6]] FROM generate_subscripts(p.bucket, 1) i ORDER BY i),
    dest_type = ARRAY(SELECT p.names[p.dim_ids[(i - 1) * 7 + 7]] FROM generate_subscripts(p.bucket, 1) i ORDER BY i),
    ev_source = ARRAY(SELECT p.names[p.ev_source_ids[i]] FROM generate_subscripts(p.ev_second, 1) i ORDER BY i)
WHERE p.dim_ids IS NOT NULL;
UPDATE kpi_pending SET ev_source = '{}' WHERE ev_source IS NULL;
ALTER TABLE kpi_pending
    DROP COLUMN names,
    DROP COLUMN dim_ids,
    DROP COLUMN ev_source_ids,
    ALTER COLUMN source SET NOT NULL,
    ALTER COLUMN direction SET NOT NULL,
    ALTER COLUMN disposition SET NOT NULL,
    ALTER COLUMN account_code SET NOT NULL,
    ALTER COLUMN dest_prefix SET NOT NULL,
    ALTER COLUMN ev_source SET NOT NULL;
"#;

sql_migration!(UP, DOWN);
