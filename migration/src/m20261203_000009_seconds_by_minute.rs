//! Per-second call counts kept one row per source and minute (`kpi_second_minute`): the
//! offsets in the minute of the seconds in which calls started or ended (`slots`, ascending)
//! and their counts (`delta`, `ends_on`) as parallel arrays. Calls spread thinly over time
//! (a backfill of weeks) made two or three rows a call in `kpi_second`; a minute row is what
//! the fold rewrites and a reader fetches.
//!
//! The existing seconds are packed in place; `kpi_second_hour` is unchanged (its net changes
//! and peaks are the same seconds'). Folders of the previous version fail on the missing
//! table and leave their pending sums for a folder of this one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
SET LOCAL TimeZone = 'UTC';
LOCK TABLE kpi_second IN ACCESS EXCLUSIVE MODE;
CREATE TABLE kpi_second_minute (
    source  TEXT        NOT NULL,
    minute  TIMESTAMPTZ NOT NULL,
    slots   SMALLINT[]  NOT NULL,
    delta   INTEGER[]   NOT NULL,
    ends_on INTEGER[]   NOT NULL,
    PRIMARY KEY (source, minute)
);
INSERT INTO kpi_second_minute
SELECT source, date_trunc('minute', second, 'UTC'),
       array_agg(mod(mod(extract(epoch FROM second)::int8, 60) + 60, 60)::int2 ORDER BY second),
       array_agg(delta ORDER BY second), array_agg(ends_on ORDER BY second)
FROM kpi_second GROUP BY 1, 2;
DROP TABLE kpi_second;
"#;

const DOWN: &str = r#"
LOCK TABLE kpi_second_minute IN ACCESS EXCLUSIVE MODE;
CREATE TABLE kpi_second (
    source  TEXT        NOT NULL,
    second  TIMESTAMPTZ NOT NULL,
    delta   INTEGER     NOT NULL,
    ends_on INTEGER     NOT NULL,
    PRIMARY KEY (source, second)
);
INSERT INTO kpi_second
SELECT k.source, k.minute + u.slot * interval '1 second', u.delta, u.ends_on
FROM kpi_second_minute k, unnest(k.slots, k.delta, k.ends_on) AS u(slot, delta, ends_on);
DROP TABLE kpi_second_minute;
"#;

sql_migration!(UP, DOWN);
