//! The retention job's message.

use crate::state::{JobCounts, JobKind, JobState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Only one retention run works at a time, across every worker; this lease names it.
pub const LEASE: &str = "retention";

/// One retention run: scheduled (its id names the tick, so every worker that saw the tick
/// names the same job) or asked for through `POST /retention`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaintenanceJob {
    pub job_id: String,
    pub enqueued_at: DateTime<Utc>,
    /// List what would go, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl MaintenanceJob {
    pub fn new(dry_run: bool) -> Self {
        MaintenanceJob { job_id: crate::new_job_id(), enqueued_at: Utc::now(), dry_run }
    }

    /// The run of the schedule's tick at `tick`.
    pub fn scheduled(tick: DateTime<Utc>) -> Self {
        MaintenanceJob {
            job_id: format!("retention-{}", tick.format("%Y%m%dt%H%M%S")),
            enqueued_at: Utc::now(),
            dry_run: false,
        }
    }

    pub fn initial_state(&self) -> JobState {
        JobState::enqueued(self.job_id.clone(), JobKind::Retention, JobCounts::default(), self.enqueued_at)
    }
}
