//! `kpi_account_day`: one account's sums per day (by source, direction and disposition), so
//! a month for one account reads about thirty rows per combination instead of seven hundred
//! hourly ones, and costs the same at ten million calls a month as at one.
//!
//! Filled from the account's hours in place. Folds are held off meanwhile (pending sums are
//! locked), so every sum is in the hours or still pending, never in both or neither; stop
//! workers of the previous version before starting new ones (they would not fold into it).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
LOCK TABLE kpi_pending, kpi_account_hour IN EXCLUSIVE MODE;
CREATE TABLE kpi_account_day (LIKE kpi_account_hour INCLUDING ALL);
INSERT INTO kpi_account_day
SELECT account_code, date_trunc('day', bucket, 'UTC'), source, direction, disposition,
       sum(attempts), sum(effective), sum(billsec), sum(duration),
       sum(sell_rated), sum(buy_rated), sum(sell_micros), sum(buy_micros)
FROM kpi_account_hour GROUP BY 1, 2, 3, 4, 5;
"#;

const DOWN: &str = "DROP TABLE kpi_account_day;";

sql_migration!(UP, DOWN);
