//! KPI rollups: per-minute sums over the dimensions KPIs are asked by, kept exactly in step
//! with `cdrs`.
//!
//! Each ingest transaction appends its batch's sums to `kpi_pending` as one row of parallel
//! arrays (append-only: concurrent writers never wait on each other's counters, and a batch
//! spread over many minutes costs one tuple, not one per minute); a folder moves pending sums into
//! `kpi_minute` with one `DELETE … RETURNING` feeding an upsert, so every sum is counted
//! once whatever crashes. Readers add what is still pending. `kpi_totals` holds the
//! folded row count, so counting all CDRs costs a lookup, not a scan.
//!
//! An existing installation's rows are summed in place when this migration runs (a scan of
//! `cdrs`, once).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE kpi_pending (
    job_id       TEXT          NOT NULL,
    bucket       TIMESTAMPTZ[] NOT NULL,
    source       TEXT[]        NOT NULL,
    direction    TEXT[]        NOT NULL,
    disposition  TEXT[]        NOT NULL,
    account_code TEXT[]        NOT NULL,
    dest_prefix  TEXT[]        NOT NULL,
    attempts     BIGINT[]      NOT NULL,
    effective    BIGINT[]      NOT NULL,
    billsec      BIGINT[]      NOT NULL,
    duration     BIGINT[]      NOT NULL
);
CREATE TABLE kpi_minute (
    bucket       TIMESTAMPTZ NOT NULL,
    source       TEXT        NOT NULL,
    direction    TEXT        NOT NULL,
    disposition  TEXT        NOT NULL,
    account_code TEXT        NOT NULL,
    dest_prefix  TEXT        NOT NULL,
    attempts     BIGINT      NOT NULL,
    effective    BIGINT      NOT NULL,
    billsec      BIGINT      NOT NULL,
    duration     BIGINT      NOT NULL,
    PRIMARY KEY (bucket, source, direction, disposition, account_code, dest_prefix)
);
CREATE TABLE kpi_totals (
    id       SMALLINT PRIMARY KEY CHECK (id = 1),
    attempts BIGINT   NOT NULL
);
INSERT INTO kpi_minute
SELECT date_trunc('minute', start_time, 'UTC'), source, coalesce(direction, ''), disposition,
       coalesce(account_code, ''),
       coalesce(substring(regexp_replace(dest_number, '^(\+|00)', '') from '^[0-9]{1,3}'), ''),
       count(*), count(*) FILTER (WHERE disposition IN ('ANSWERED', 'BUSY', 'NO ANSWER') OR hangup_cause = 'CALL_REJECTED'),
       coalesce(sum(billsec), 0), coalesce(sum(duration), 0)
FROM cdrs GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO kpi_totals VALUES (1, (SELECT count(*) FROM cdrs));
"#;

const DOWN: &str =
    "DROP TABLE IF EXISTS kpi_totals; DROP TABLE IF EXISTS kpi_minute; DROP TABLE IF EXISTS kpi_pending;";

sql_migration!(UP, DOWN);
