#![doc = include_str!("../README.md")]

pub use sea_orm_migration::prelude::*;

/// The `MigrationTrait` of a migration written as SQL: `up` and `down` run the statements
/// given, in the migration's transaction. The name stays with `DeriveMigrationName` in the
/// migration's own file (it is recorded in the database).
macro_rules! sql_migration {
    ($up:expr, $down:expr) => {
        // The trait is declared by async_trait with an elided SchemaManager lifetime.
        #[expect(elided_lifetimes_in_paths)]
        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared($up).await?;
                Ok(())
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared($down).await?;
                Ok(())
            }
        }
    };
}

mod m20261128_000001_create_cdrs;
mod m20261128_000002_index_tracking;
mod m20261129_000003_records_as_written;
mod m20261129_000004_sweep_tracking;
mod m20261129_000005_kpi_rollups;
mod m20261129_000006_kpi_levels;
mod m20261203_000007_kpi_cuboids;
mod m20261203_000008_concurrency;
mod m20261203_000009_seconds_by_minute;
mod m20261204_000010_monthly_partitions;
mod m20261205_000011_numbers_and_rating;
mod m20261207_000012_alerts;
mod m20261207_000013_account_days;
mod m20261207_000014_pending_lz4;
mod m20261207_000015_pending_names;
mod m20261208_000016_pending_span;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_cdrs::Migration),
            Box::new(m20261128_000002_index_tracking::Migration),
            Box::new(m20261129_000003_records_as_written::Migration),
            Box::new(m20261129_000004_sweep_tracking::Migration),
            Box::new(m20261129_000005_kpi_rollups::Migration),
            Box::new(m20261129_000006_kpi_levels::Migration),
            Box::new(m20261203_000007_kpi_cuboids::Migration),
            Box::new(m20261203_000008_concurrency::Migration),
            Box::new(m20261203_000009_seconds_by_minute::Migration),
            Box::new(m20261204_000010_monthly_partitions::Migration),
            Box::new(m20261205_000011_numbers_and_rating::Migration),
            Box::new(m20261207_000012_alerts::Migration),
            Box::new(m20261207_000013_account_days::Migration),
            Box::new(m20261207_000014_pending_lz4::Migration),
            Box::new(m20261207_000015_pending_names::Migration),
            Box::new(m20261208_000016_pending_span::Migration),
        ]
    }
}
