//! `cdrs` partitioned by month of `start_time` (UTC), converted in place.
//!
//! Retention then drops a month whole instead of deleting its rows, and each month's
//! indexes stay the size of a month. PostgreSQL requires a unique key on a partitioned
//! table to contain the partition key, so a record's identity becomes
//! (`source`, `call_id`, `record_key`, `start_time`): a copy of a record carries the start
//! time of the original, so it lands in the same partition and conflicts there, whenever it
//! arrives. The primary key likewise becomes (`id`, `start_time`); ids still come from one
//! sequence, so they stay unique across months. `index_failures` loses its foreign key
//! (PostgreSQL cannot reference a partitioned table by `id` alone): retention deletes the
//! failures of a month with it.
//!
//! The conversion copies every row (the table is locked meanwhile: measured at about
//! 40 s per million rows on two cores, see the README), then drops the old table.
//! Partitions are named `cdrs_YYYY_MM`; `cdrs_ensure_partitions` creates missing ones, and is
//! what ingest and the scheduled maintenance call.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
LOCK TABLE cdrs IN ACCESS EXCLUSIVE MODE;
ALTER TABLE index_failures DROP CONSTRAINT IF EXISTS index_failures_cdr_id_fkey;
ALTER TABLE cdrs RENAME TO cdrs_unpartitioned;
ALTER TABLE cdrs_unpartitioned RENAME CONSTRAINT cdrs_identity_key TO cdrs_unpartitioned_identity_key;
ALTER TABLE cdrs_unpartitioned RENAME CONSTRAINT cdrs_pkey TO cdrs_unpartitioned_pkey;
DROP INDEX cdrs_source_start_idx, cdrs_src_number_start_idx, cdrs_dest_number_start_idx, cdrs_job_id_idx;

CREATE SEQUENCE cdr_ids AS BIGINT;
CREATE TABLE cdrs (
    id              BIGINT      NOT NULL DEFAULT nextval('cdr_ids'),
    source          TEXT        NOT NULL,
    call_id         TEXT        NOT NULL,
    src_number      TEXT        NOT NULL,
    dest_number     TEXT        NOT NULL,
    start_time      TIMESTAMPTZ NOT NULL,
    answer_time     TIMESTAMPTZ,
    end_time        TIMESTAMPTZ,
    duration        INTEGER     NOT NULL CHECK (duration >= 0),
    billsec         INTEGER     NOT NULL CONSTRAINT cdrs_billsec_non_negative CHECK (billsec >= 0),
    disposition     TEXT        NOT NULL
                    CHECK (disposition IN ('ANSWERED', 'NO ANSWER', 'BUSY', 'FAILED', 'CONGESTION')),
    call_successful BOOLEAN     NOT NULL,
    hangup_cause    TEXT,
    direction       TEXT,
    account_code    TEXT,
    extra           JSONB       NOT NULL DEFAULT '{}'::jsonb,
    job_id          TEXT        NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    record_key      TEXT        NOT NULL DEFAULT '',
    disposition_raw TEXT,
    linked_id       TEXT,
    caller_withheld BOOLEAN     NOT NULL DEFAULT false,
    CONSTRAINT cdrs_pkey PRIMARY KEY (id, start_time),
    CONSTRAINT cdrs_identity_key UNIQUE (source, call_id, record_key, start_time),
    CHECK (end_time >= start_time)
) PARTITION BY RANGE (start_time);
ALTER SEQUENCE cdr_ids OWNED BY cdrs.id;
CREATE INDEX cdrs_source_start_idx ON cdrs (source, start_time);
CREATE INDEX cdrs_src_number_start_idx ON cdrs (src_number, start_time);
CREATE INDEX cdrs_dest_number_start_idx ON cdrs (dest_number, start_time);
CREATE INDEX cdrs_job_id_idx ON cdrs (job_id);

-- The partition holding the month that begins on `month` (a first day, in UTC).
CREATE FUNCTION cdrs_partition_name(month date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'cdrs_' || to_char(month, 'YYYY_MM') $$;

-- Creates the partitions of the months given (any day of each) that do not exist yet, in
-- ascending order, and answers how many it created. A partition is created as a table and
-- then attached, which locks `cdrs` only against other attaches (SHARE UPDATE EXCLUSIVE),
-- not against reads and inserts; a concurrent creation of the same month is not an error.
CREATE FUNCTION cdrs_ensure_partitions(months date[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    m date;
    name text;
    created integer := 0;
BEGIN
    FOR m IN SELECT DISTINCT date_trunc('month', d)::date FROM unnest(months) d ORDER BY 1 LOOP
        name := cdrs_partition_name(m);
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        BEGIN
            EXECUTE format('CREATE TABLE %I (LIKE cdrs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
            EXECUTE format('ALTER TABLE cdrs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name,
                           m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END LOOP;
    RETURN created;
END $$;

SELECT cdrs_ensure_partitions(ARRAY(
    SELECT DISTINCT date_trunc('month', start_time AT TIME ZONE 'UTC')::date FROM cdrs_unpartitioned));
INSERT INTO cdrs (id, source, call_id, src_number, dest_number, start_time, answer_time, end_time,
                  duration, billsec, disposition, call_successful, hangup_cause, direction,
                  account_code, extra, job_id, ingested_at, record_key, disposition_raw, linked_id,
                  caller_withheld)
SELECT id, source, call_id, src_number, dest_number, start_time, answer_time, end_time,
       duration, billsec, disposition, call_successful, hangup_cause, direction,
       account_code, extra, job_id, ingested_at, record_key, disposition_raw, linked_id,
       caller_withheld
FROM cdrs_unpartitioned;
SELECT setval('cdr_ids', coalesce((SELECT max(id) FROM cdrs), 0) + 1, false);
DROP TABLE cdrs_unpartitioned;
"#;

/// Back to one table (rows copied again); records that differ only in their start time
/// cannot both go back under the old identity, so the migration fails on them rather than
/// drop one.
const DOWN: &str = r#"
LOCK TABLE cdrs IN ACCESS EXCLUSIVE MODE;
ALTER TABLE cdrs RENAME TO cdrs_partitioned;
ALTER TABLE cdrs_partitioned RENAME CONSTRAINT cdrs_identity_key TO cdrs_partitioned_identity_key;
ALTER TABLE cdrs_partitioned RENAME CONSTRAINT cdrs_pkey TO cdrs_partitioned_pkey;
DROP INDEX cdrs_source_start_idx, cdrs_src_number_start_idx, cdrs_dest_number_start_idx, cdrs_job_id_idx;
CREATE TABLE cdrs (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          TEXT        NOT NULL,
    call_id         TEXT        NOT NULL,
    src_number      TEXT        NOT NULL,
    dest_number     TEXT        NOT NULL,
    start_time      TIMESTAMPTZ NOT NULL,
    answer_time     TIMESTAMPTZ,
    end_time        TIMESTAMPTZ,
    duration        INTEGER     NOT NULL CHECK (duration >= 0),
    billsec         INTEGER     NOT NULL CONSTRAINT cdrs_billsec_non_negative CHECK (billsec >= 0),
    disposition     TEXT        NOT NULL
                    CHECK (disposition IN ('ANSWERED', 'NO ANSWER', 'BUSY', 'FAILED', 'CONGESTION')),
    call_successful BOOLEAN     NOT NULL,
    hangup_cause    TEXT,
    direction       TEXT,
    account_code    TEXT,
    extra           JSONB       NOT NULL DEFAULT '{}'::jsonb,
    job_id          TEXT        NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    record_key      TEXT        NOT NULL DEFAULT '',
    disposition_raw TEXT,
    linked_id       TEXT,
    caller_withheld BOOLEAN     NOT NULL DEFAULT false,
    CONSTRAINT cdrs_identity_key UNIQUE (source, call_id, record_key),
    CHECK (end_time >= start_time)
);
INSERT INTO cdrs (id, source, call_id, src_number, dest_number, start_time, answer_time, end_time,
                  duration, billsec, disposition, call_successful, hangup_cause, direction,
                  account_code, extra, job_id, ingested_at, record_key, disposition_raw, linked_id,
                  caller_withheld)
OVERRIDING SYSTEM VALUE
SELECT id, source, call_id, src_number, dest_number, start_time, answer_time, end_time,
       duration, billsec, disposition, call_successful, hangup_cause, direction,
       account_code, extra, job_id, ingested_at, record_key, disposition_raw, linked_id,
       caller_withheld
FROM cdrs_partitioned;
SELECT setval(pg_get_serial_sequence('cdrs', 'id'), coalesce((SELECT max(id) FROM cdrs), 0) + 1, false);
CREATE INDEX cdrs_source_start_idx ON cdrs (source, start_time);
CREATE INDEX cdrs_src_number_start_idx ON cdrs (src_number, start_time);
CREATE INDEX cdrs_dest_number_start_idx ON cdrs (dest_number, start_time);
CREATE INDEX cdrs_job_id_idx ON cdrs (job_id);
DROP TABLE cdrs_partitioned;
DROP FUNCTION cdrs_ensure_partitions(date[]);
DROP FUNCTION cdrs_partition_name(date);
DELETE FROM index_failures f WHERE NOT EXISTS (SELECT 1 FROM cdrs c WHERE c.id = f.cdr_id);
ALTER TABLE index_failures ADD CONSTRAINT index_failures_cdr_id_fkey
    FOREIGN KEY (cdr_id) REFERENCES cdrs (id) ON DELETE CASCADE;
"#;

sql_migration!(UP, DOWN);
