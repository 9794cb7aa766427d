//! Connecting to PostgreSQL and bringing its schema up to date.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};
use std::time::Duration;

/// Advisory-lock key that serialises migrations between replicas starting together.
const MIGRATION_LOCK: i64 = 0x0C0D_5EED;

/// Opens the pool. Statement logging stays off: one line per batch insert would drown the logs.
pub async fn connect(url: &str, pool_size: u32) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(pool_size)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Applies pending migrations while holding a PostgreSQL advisory lock, so any number of API
/// and worker replicas can start at once and exactly one of them migrates.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let pool = db.get_postgres_connection_pool();
    let mut lock_conn = pool.acquire().await.map_err(|e| DbErr::Custom(e.to_string()))?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *lock_conn)
        .await
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let result = Migrator::up(db, None).await;
    let unlock =
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *lock_conn).await;
    result?;
    unlock.map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(())
}

/// Cheap liveness probe used by readiness checks.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_string(db.get_database_backend(), "SELECT 1")).await.map(|_| ())
}
