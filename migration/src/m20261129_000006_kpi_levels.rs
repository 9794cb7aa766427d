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

// The trait is declared by async_trait with an elided SchemaManager lifetime.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
