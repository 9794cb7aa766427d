//! The retention schedule: every worker follows the same cron expression, and each tick
//! becomes exactly one queued job, whichever workers saw it.
//!
//! The job's id names the tick, and the first worker to claim the tick in Redis queues it;
//! the others see the claim and do nothing. Once queued, the job is a durable message like
//! any other: a worker killed mid-run leaves it unacknowledged, and another takes it over.

use super::MaintenanceJob;
use crate::queue::{PublishError, Publisher};
use crate::state::JobStore;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How long a tick's claim is remembered: longer than any clock skew between workers.
const TICK_CLAIM_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    #[error("job state store: {0}")]
    JobState(#[from] redis::RedisError),
    #[error("{0}")]
    Publish(#[from] PublishError),
}

/// Queues the run of the tick at `tick` unless another worker did; `true` when this call
/// queued it.
pub async fn queue_tick(
    jobs: &JobStore,
    publisher: &Publisher,
    tick: DateTime<Utc>,
) -> Result<bool, ScheduleError> {
    let job = MaintenanceJob::scheduled(tick);
    if jobs.try_lease(&format!("tick:{}", job.job_id), &job.job_id, TICK_CLAIM_TTL).await?.is_err() {
        return Ok(false);
    }
    queue(jobs, publisher, &job).await?;
    Ok(true)
}

/// Records a retention job's state and publishes it on the maintenance queue.
pub async fn queue(
    jobs: &JobStore,
    publisher: &Publisher,
    job: &MaintenanceJob,
) -> Result<(), ScheduleError> {
    jobs.create(&job.initial_state()).await?;
    crate::job::publish(publisher, job).await?;
    tracing::info!(job_id = %job.job_id, dry_run = job.dry_run, "retention job queued");
    Ok(())
}
