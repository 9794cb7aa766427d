//! What every request handler shares.

use crate::cli::Limits;
use jobs::config::ServiceSettings;
use jobs::queue::Publisher;
use jobs::search::SearchIndex;
use jobs::state::JobStore;
use sea_orm::DatabaseConnection;

#[derive(Clone)]
pub struct AppState {
    pub publisher: Publisher,
    pub jobs: JobStore,
    pub db: DatabaseConnection,
    pub search: SearchIndex,
    pub limits: Limits,
    /// Who may call what; `AppState::connect` starts with none (set it before serving).
    pub auth: crate::auth::Auth,
}

impl AppState {
    /// Connects to every service (see `jobs::connect`).
    pub async fn connect(services: &ServiceSettings, limits: Limits) -> anyhow::Result<Self> {
        let jobs::connect::Connections { db, jobs, publisher, search } =
            jobs::connect::connect(services).await?;
        Ok(AppState { publisher, jobs, db, search, limits, auth: crate::auth::Auth::disabled() })
    }
}
