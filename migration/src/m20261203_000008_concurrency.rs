//! Per-second call counts for exact peak concurrency from the rollups: for every second in
//! which calls started or ended, the calls starting minus those ending (`delta`) and those
//! ending exactly on the second (`ends_on`), per source and for all sources together
//! (source `''`). `kpi_second_hour` keeps each hour's net change exactly (folded with the
//! seconds) and its highest running count (`rise`, first reached at `rise_at`), which a
//! later pass recomputes for the hours marked `dirty`; `version` lets that pass tell that an
//! hour changed under it.
//!
//! Existing rows get their seconds here; sums still pending carry no seconds (the new
//! arrays default to empty), so nothing is counted twice.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
SET LOCAL TimeZone = 'UTC';
LOCK TABLE cdrs, kpi_pending IN EXCLUSIVE MODE;
ALTER TABLE kpi_pending
    ADD COLUMN ev_source TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN ev_second TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    ADD COLUMN ev_delta INTEGER[] NOT NULL DEFAULT '{}',
    ADD COLUMN ev_ends_on INTEGER[] NOT NULL DEFAULT '{}';
CREATE TABLE kpi_second (
    source  TEXT        NOT NULL,
    second  TIMESTAMPTZ NOT NULL,
    delta   INTEGER     NOT NULL,
    ends_on INTEGER     NOT NULL,
    PRIMARY KEY (source, second)
);
CREATE TABLE kpi_second_hour (
    source  TEXT        NOT NULL,
    bucket  TIMESTAMPTZ NOT NULL,
    net     BIGINT      NOT NULL,
    rise    BIGINT      NOT NULL DEFAULT 0,
    rise_at TIMESTAMPTZ,
    dirty   BOOLEAN     NOT NULL DEFAULT true,
    version BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (source, bucket)
);
CREATE INDEX kpi_second_hour_dirty_idx ON kpi_second_hour (bucket) WHERE dirty;
INSERT INTO kpi_second
SELECT scope, second, sum(delta), sum(ends_on) FROM (
    SELECT source, date_trunc('second', start_time) AS second, 1 AS delta, 0 AS ends_on FROM cdrs
    UNION ALL
    SELECT source, date_trunc('second', e), -1, (e = date_trunc('second', e) AND e > start_time)::int
    FROM (SELECT source, start_time, coalesce(end_time, start_time + duration * interval '1 second') AS e FROM cdrs) x
) ev CROSS JOIN LATERAL (VALUES (ev.source), ('')) s(scope)
GROUP BY 1, 2;
INSERT INTO kpi_second_hour (source, bucket, net)
SELECT source, date_trunc('hour', second, 'UTC'), sum(delta) FROM kpi_second GROUP BY 1, 2;
"#;

const DOWN: &str = "DROP TABLE IF EXISTS kpi_second_hour; DROP TABLE IF EXISTS kpi_second; \
    ALTER TABLE kpi_pending DROP COLUMN IF EXISTS ev_source, DROP COLUMN IF EXISTS ev_second, \
    DROP COLUMN IF EXISTS ev_delta, DROP COLUMN IF EXISTS ev_ends_on;";

sql_migration!(UP, DOWN);
