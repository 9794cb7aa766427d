//! Hourly and daily KPI rollups beside the per-minute ones, so a long window reads a few
//! rows per hour or day instead of one per minute. Filled by the same fold statement as
//! `kpi_minute`, from the same pending sums, so all levels agree at every commit.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE kpi_hour (LIKE kpi_minute INCLUDING ALL);
CREATE TABLE kpi_day (LIKE kpi_minute INCLUDING ALL);
INSERT INTO kpi_hour
SELECT date_trunc('hour', bucket, 'UTC'), source, direction, disposition, account_code, dest_prefix,
       sum(attempts), sum(effective), sum(billsec), sum(duration)
FROM kpi_minute GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO kpi_day
SELECT date_trunc('day', bucket, 'UTC'), source, direction, disposition, account_code, dest_prefix,
       sum(attempts), sum(effective), sum(billsec), sum(duration)
FROM kpi_minute GROUP BY 1, 2, 3, 4, 5, 6;
"#;

const DOWN: &str = "DROP TABLE IF EXISTS kpi_day; DROP TABLE IF EXISTS kpi_hour;";

sql_migration!(UP, DOWN);
