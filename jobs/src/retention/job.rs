//! The retention job's message.

use crate::state::{JobCounts, JobKind, JobState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The kind a retention run's state shows.
pub const KIND: &str = "retention";

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
        JobState::enqueued(self.job_id.clone(), JobKind::new(KIND), JobCounts::default(), self.enqueued_at)
    }
}

/// A retention run; its failure is in its state. A run that lost to another one in progress
/// is not retried (the next tick, or an operator, starts another).
impl crate::job::Job for MaintenanceJob {
    const QUEUE: &'static str = "maintenance";
    const KINDS: &'static [&'static str] = &[KIND];
    type Runner = super::RetentionRunner;

    fn runner(env: &crate::job::WorkerEnv) -> super::RetentionRunner {
        super::RetentionRunner {
            db: env.db.clone(),
            jobs: env.jobs.clone(),
            search: env.search.clone(),
            publisher: env.publisher.clone(),
            policy: env.settings.retention,
        }
    }

    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn initial_state(&self) -> JobState {
        self.initial_state()
    }

    fn schedule(settings: &crate::job::WorkerSettings) -> Option<&str> {
        Some(&settings.retention_schedule)
    }

    fn for_tick(at: DateTime<Utc>) -> Option<Self> {
        Some(MaintenanceJob::scheduled(at))
    }

    async fn run(
        &self,
        runner: &super::RetentionRunner,
        _attempt: u32,
    ) -> Result<(), crate::job::AttemptError> {
        if let Err(e) = runner.run(self).await {
            tracing::warn!(job_id = %self.job_id, error = %e, "retention job ended in failure");
        }
        Ok(())
    }
}
