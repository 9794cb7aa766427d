//! KPI rollups reshaped into the cuboids `/stats` reads: per minute, hour and day by
//! (source, direction, disposition), and per hour by account code first. One table over
//! every dimension at once compresses a busy minute hardly at all (a thousand calls to a
//! few hundred destination prefixes and fifty accounts are a thousand rows); these hold
//! tens of rows per bucket, so a month reads a few thousand rows.
//!
//! The pending sums keep every dimension (the destination prefix included), so a new
//! cuboid can be folded from them later. The cuboids are rebuilt from `cdrs` here, with the
//! pending sums cleared in the same transaction (they are counted in the rebuild), while
//! ingest and folding are held off by the table locks.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SUMS: &str =
    "attempts BIGINT NOT NULL, effective BIGINT NOT NULL, billsec BIGINT NOT NULL, duration BIGINT NOT NULL";

fn up_sql() -> String {
    format!(
        r#"
LOCK TABLE cdrs, kpi_pending, kpi_totals IN EXCLUSIVE MODE;
DROP TABLE kpi_minute, kpi_hour, kpi_day;
CREATE TABLE kpi_minute (
    bucket TIMESTAMPTZ NOT NULL, source TEXT NOT NULL, direction TEXT NOT NULL, disposition TEXT NOT NULL, {SUMS},
    PRIMARY KEY (bucket, source, direction, disposition)
);
CREATE TABLE kpi_hour (LIKE kpi_minute INCLUDING ALL);
CREATE TABLE kpi_day (LIKE kpi_minute INCLUDING ALL);
CREATE TABLE kpi_account_hour (
    account_code TEXT NOT NULL, bucket TIMESTAMPTZ NOT NULL, source TEXT NOT NULL, direction TEXT NOT NULL,
    disposition TEXT NOT NULL, {SUMS},
    PRIMARY KEY (account_code, bucket, source, direction, disposition)
);
CREATE TEMP TABLE kpi_rebuilt ON COMMIT DROP AS
SELECT date_trunc('minute', start_time, 'UTC') AS bucket, source, coalesce(direction, '') AS direction,
       disposition, coalesce(account_code, '') AS account_code, count(*) AS attempts,
       count(*) FILTER (WHERE disposition IN ('ANSWERED', 'BUSY', 'NO ANSWER') OR hangup_cause = 'CALL_REJECTED') AS effective,
       coalesce(sum(billsec), 0) AS billsec, coalesce(sum(duration), 0) AS duration
FROM cdrs GROUP BY 1, 2, 3, 4, 5;
INSERT INTO kpi_minute SELECT bucket, source, direction, disposition, sum(attempts), sum(effective), sum(billsec), sum(duration)
FROM kpi_rebuilt GROUP BY 1, 2, 3, 4;
INSERT INTO kpi_hour SELECT date_trunc('hour', bucket, 'UTC'), source, direction, disposition,
       sum(attempts), sum(effective), sum(billsec), sum(duration)
FROM kpi_rebuilt GROUP BY 1, 2, 3, 4;
INSERT INTO kpi_day SELECT date_trunc('day', bucket, 'UTC'), source, direction, disposition,
       sum(attempts), sum(effective), sum(billsec), sum(duration)
FROM kpi_rebuilt GROUP BY 1, 2, 3, 4;
INSERT INTO kpi_account_hour SELECT account_code, date_trunc('hour', bucket, 'UTC'), source, direction, disposition,
       sum(attempts), sum(effective), sum(billsec), sum(duration)
FROM kpi_rebuilt GROUP BY 1, 2, 3, 4, 5;
DELETE FROM kpi_pending;
UPDATE kpi_totals SET attempts = (SELECT count(*) FROM cdrs) WHERE id = 1;
"#
    )
}

/// Back to the single all-dimension shape of the earlier migrations, rebuilt the same way.
const DOWN: &str = r#"
LOCK TABLE cdrs, kpi_pending, kpi_totals IN EXCLUSIVE MODE;
DROP TABLE kpi_minute, kpi_hour, kpi_day, kpi_account_hour;
CREATE TABLE kpi_minute (
    bucket TIMESTAMPTZ NOT NULL, source TEXT NOT NULL, direction TEXT NOT NULL, disposition TEXT NOT NULL,
    account_code TEXT NOT NULL, dest_prefix TEXT NOT NULL,
    attempts BIGINT NOT NULL, effective BIGINT NOT NULL, billsec BIGINT NOT NULL, duration BIGINT NOT NULL,
    PRIMARY KEY (bucket, source, direction, disposition, account_code, dest_prefix)
);
CREATE TABLE kpi_hour (LIKE kpi_minute INCLUDING ALL);
CREATE TABLE kpi_day (LIKE kpi_minute INCLUDING ALL);
INSERT INTO kpi_minute
SELECT date_trunc('minute', start_time, 'UTC'), source, coalesce(direction, ''), disposition,
       coalesce(account_code, ''),
       coalesce(substring(regexp_replace(dest_number, '^(\+|00)', '') from '^[0-9]{1,3}'), ''),
       count(*), count(*) FILTER (WHERE disposition IN ('ANSWERED', 'BUSY', 'NO ANSWER') OR hangup_cause = 'CALL_REJECTED'),
       coalesce(sum(billsec), 0), coalesce(sum(duration), 0)
FROM cdrs GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO kpi_hour SELECT date_trunc('hour', bucket, 'UTC'), source, direction, disposition, account_code, dest_prefix,
       sum(attempts), sum(effective), sum(billsec), sum(duration) FROM kpi_minute GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO kpi_day SELECT date_trunc('day', bucket, 'UTC'), source, direction, disposition, account_code, dest_prefix,
       sum(attempts), sum(effective), sum(billsec), sum(duration) FROM kpi_minute GROUP BY 1, 2, 3, 4, 5, 6;
DELETE FROM kpi_pending;
UPDATE kpi_totals SET attempts = (SELECT count(*) FROM cdrs) WHERE id = 1;
"#;

sql_migration!(&up_sql(), DOWN);
