//! What every request handler shares.

use crate::batcher::{BatchWindow, Batcher};
use crate::cli::Limits;
use crate::enqueue::Enqueuer;
use jobs::config::ServiceSettings;
use jobs::queue::Publisher;
use jobs::rollups::read::RollupStats;
use jobs::search::SearchIndex;
use jobs::state::JobStore;
use jobs::store::mappings::MappingStore;
use sea_orm::DatabaseConnection;

#[derive(Clone)]
pub struct AppState {
    pub publisher: Publisher,
    pub jobs: JobStore,
    pub db: DatabaseConnection,
    pub search: SearchIndex,
    /// KPIs from the pre-aggregated sums, for the `/stats` requests they can answer.
    pub rollups: RollupStats,
    pub limits: Limits,
    /// Saved CSV mappings.
    pub mappings: MappingStore,
    /// Groups single-CDR posts into ingest jobs.
    pub batcher: Batcher,
    /// Who may call what; `AppState::connect` starts with none (set it before serving).
    pub auth: crate::auth::Auth,
}

impl AppState {
    /// Connects to every service (see `jobs::connect`).
    pub async fn connect(services: &ServiceSettings, limits: Limits) -> anyhow::Result<Self> {
        limits.retention.validate().map_err(anyhow::Error::msg)?;
        let jobs::connect::Connections { db, jobs, publisher, search } =
            jobs::connect::connect(services).await?;
        let enqueuer = Enqueuer { publisher: publisher.clone(), jobs: jobs.clone(), limits: limits.clone() };
        let window = BatchWindow {
            linger: std::time::Duration::from_millis(limits.batch_linger_ms),
            in_flight: limits.batch_in_flight.max(1),
            ..BatchWindow::default()
        };
        let batcher = Batcher::start(enqueuer, window);
        Ok(AppState {
            publisher,
            jobs,
            mappings: MappingStore::new(db.clone()),
            rollups: RollupStats::new(db.clone()),
            db,
            search,
            limits,
            batcher,
            auth: crate::auth::Auth::disabled(),
        })
    }

    /// The ingest job publisher of this state.
    pub fn enqueuer(&self) -> Enqueuer {
        Enqueuer { publisher: self.publisher.clone(), jobs: self.jobs.clone(), limits: self.limits.clone() }
    }
}
