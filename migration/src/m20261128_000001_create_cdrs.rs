//! The `cdrs` table and the per-job commit record.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE cdrs (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          TEXT        NOT NULL,
    call_id         TEXT        NOT NULL,
    src_number      TEXT        NOT NULL,
    dest_number     TEXT        NOT NULL,
    start_time      TIMESTAMPTZ NOT NULL,
    answer_time     TIMESTAMPTZ,
    end_time        TIMESTAMPTZ NOT NULL,
    duration        INTEGER     NOT NULL CHECK (duration >= 0),
    billsec         INTEGER     NOT NULL CHECK (billsec >= 0 AND billsec <= duration),
    disposition     TEXT        NOT NULL
                    CHECK (disposition IN ('ANSWERED', 'NO ANSWER', 'BUSY', 'FAILED', 'CONGESTION')),
    call_successful BOOLEAN     NOT NULL,
    hangup_cause    TEXT,
    direction       TEXT,
    account_code    TEXT,
    extra           JSONB       NOT NULL DEFAULT '{}'::jsonb,
    job_id          TEXT        NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT cdrs_source_call_id_key UNIQUE (source, call_id),
    CHECK (end_time >= start_time)
);
CREATE INDEX cdrs_source_start_idx ON cdrs (source, start_time);
CREATE INDEX cdrs_src_number_start_idx ON cdrs (src_number, start_time);
CREATE INDEX cdrs_dest_number_start_idx ON cdrs (dest_number, start_time);
CREATE INDEX cdrs_job_id_idx ON cdrs (job_id);

CREATE TABLE ingest_batches (
    job_id       TEXT        PRIMARY KEY,
    received     INTEGER     NOT NULL,
    inserted     INTEGER     NOT NULL,
    duplicates   INTEGER     NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"#;

const DOWN: &str = "DROP TABLE IF EXISTS ingest_batches; DROP TABLE IF EXISTS cdrs;";

sql_migration!(UP, DOWN);
