//! Retention runs asked for through the API; scheduled ones are queued by the clock like
//! any scheduled job kind ([`crate::job::queue_tick`]).

use super::MaintenanceJob;
use crate::job::EnqueueError;
use crate::queue::Publisher;
use crate::state::JobStore;

/// Records a retention job's state and publishes it on the maintenance queue.
pub async fn queue(jobs: &JobStore, publisher: &Publisher, job: &MaintenanceJob) -> Result<(), EnqueueError> {
    crate::job::enqueue(jobs, publisher, job, &job.initial_state()).await?;
    tracing::info!(job_id = %job.job_id, dry_run = job.dry_run, "retention job queued");
    Ok(())
}
