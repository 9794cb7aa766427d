//! Records kept as the switch wrote them: a record key beside the call id (legs and rows
//! after a transfer share a call id), the disposition as written, the grouping of legs, the
//! withheld caller as a flag of its own, end times the switch did not give, billable seconds
//! that exceed the duration; and saved CSV mappings.
//!
//! On a large table the new unique index is built before the old one is dropped, so ingest
//! stays idempotent throughout; the build holds a lock that blocks writes while it runs.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE cdrs ADD COLUMN record_key TEXT NOT NULL DEFAULT '';
ALTER TABLE cdrs ADD COLUMN disposition_raw TEXT;
ALTER TABLE cdrs ADD COLUMN linked_id TEXT;
ALTER TABLE cdrs ADD COLUMN caller_withheld BOOLEAN NOT NULL DEFAULT false;
UPDATE cdrs SET caller_withheld = true WHERE src_number = 'anonymous';
ALTER TABLE cdrs ALTER COLUMN end_time DROP NOT NULL;
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'cdrs'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%billsec <= duration%'
    LOOP
        EXECUTE format('ALTER TABLE cdrs DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
ALTER TABLE cdrs ADD CONSTRAINT cdrs_billsec_non_negative CHECK (billsec >= 0);
CREATE UNIQUE INDEX cdrs_identity_key ON cdrs (source, call_id, record_key);
ALTER TABLE cdrs ADD CONSTRAINT cdrs_identity_key UNIQUE USING INDEX cdrs_identity_key;
ALTER TABLE cdrs DROP CONSTRAINT cdrs_source_call_id_key;

CREATE TABLE csv_mappings (
    name       TEXT        PRIMARY KEY,
    layout     JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS csv_mappings;
ALTER TABLE cdrs ADD CONSTRAINT cdrs_source_call_id_key UNIQUE (source, call_id);
ALTER TABLE cdrs DROP CONSTRAINT IF EXISTS cdrs_identity_key;
ALTER TABLE cdrs DROP CONSTRAINT IF EXISTS cdrs_billsec_non_negative;
ALTER TABLE cdrs DROP COLUMN IF EXISTS caller_withheld;
ALTER TABLE cdrs DROP COLUMN IF EXISTS linked_id;
ALTER TABLE cdrs DROP COLUMN IF EXISTS disposition_raw;
ALTER TABLE cdrs DROP COLUMN IF EXISTS record_key;
"#;

sql_migration!(UP, DOWN);
