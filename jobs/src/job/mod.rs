//! The one shape every background job has: a message type that names its queue and kinds,
//! says how workers take it, and runs itself with a runner built from the shared services.
//!
//! A kind of job is one module implementing [`Job`] plus its line in [`registry::each`]:
//! the queue topology, the worker pool, `--jobs`, `/jobs/{id}` and the replay of failed jobs
//! all read the registry, so none of them changes when a kind is added.

pub mod registry;

use crate::queue::{Outgoing, PublishError, Publisher};
use crate::search::SearchIndex;
use crate::state::{JobState, JobStore};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::Duration;

/// What a failed attempt reports to the worker: the message goes back to its queue and is
/// tried again later (with the kind's retry policy).
pub type AttemptError = Box<dyn std::error::Error + Send + Sync>;

/// A kind of background job: the message published on its queue.
pub trait Job: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The queue's name within a deployment (`<namespace>.<QUEUE>`), which is also how
    /// `--jobs` selects the jobs a worker takes.
    const QUEUE: &'static str;
    /// Every `kind` a job state of this message may show (a message type may carry several,
    /// as the rebuild queue does).
    const KINDS: &'static [&'static str];
    /// Whether a failed attempt is tried again in the same delivery, with backoff. Jobs that
    /// record their own failure and are restarted by an operator say no.
    const RETRIED: bool = false;

    /// What running a job needs, built once per worker pool from the shared services.
    type Runner: Send + Sync + 'static;

    fn runner(env: &WorkerEnv) -> Self::Runner;

    /// Jobs of this kind one worker process runs at once.
    fn concurrency(_settings: &WorkerSettings) -> usize {
        1
    }

    /// Messages the broker may hand one process ahead of time.
    fn prefetch(_settings: &WorkerSettings) -> u16 {
        1
    }

    /// The job's id: its message id and the key of its state.
    fn job_id(&self) -> &str;

    /// The state the job starts in (also used to recreate a state Redis lost).
    fn initial_state(&self) -> JobState;

    /// When the clock queues jobs of this kind, as a cron expression with seconds (UTC);
    /// `None` for kinds only queued on request.
    fn schedule(_settings: &WorkerSettings) -> Option<&str> {
        None
    }

    /// The job the tick at `at` queues. Its id names the tick, so every worker that saw the
    /// tick names the same job and only the first one queues it ([`queue_tick`]).
    fn for_tick(_at: DateTime<Utc>) -> Option<Self> {
        None
    }

    /// One attempt. `Ok` acknowledges the message (done, or failed for good and recorded);
    /// `Err` sends it back for a later attempt.
    fn run(
        &self,
        runner: &Self::Runner,
        attempt: u32,
    ) -> impl Future<Output = Result<(), AttemptError>> + Send;

    /// What becomes of a job whose attempt panicked (`reason`): a bug that retrying will not
    /// fix. By default the job is marked failed.
    fn crashed(
        &self,
        runner: &Self::Runner,
        env: &WorkerEnv,
        reason: &str,
        _attempt: u32,
    ) -> impl Future<Output = Result<(), AttemptError>> + Send {
        let _ = runner;
        async move {
            env.jobs
                .mark_failed(self.job_id(), crate::error_code::ErrorCode::InternalError, reason)
                .await
                .map_err(Into::into)
        }
    }
}

/// The settings of a worker process that job runners read.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Ingest jobs at once (each a PostgreSQL writer).
    pub concurrency: usize,
    /// Index jobs at once.
    pub index_concurrency: usize,
    pub prefetch: u16,
    /// Attempts per delivery before a transiently failing job is given up.
    pub max_attempts: u32,
    /// Rows per search-index bulk request.
    pub index_chunk: u64,
    pub retention: crate::retention::RetentionPolicy,
    /// When retention runs (cron with seconds, UTC).
    pub retention_schedule: String,
    /// When alert rules are evaluated (cron with seconds, UTC).
    pub alert_schedule: String,
    pub exports: crate::export::ExportSettings,
}

/// The services and settings every runner is built from.
#[derive(Clone)]
pub struct WorkerEnv {
    pub db: DatabaseConnection,
    pub jobs: JobStore,
    pub publisher: Publisher,
    pub search: SearchIndex,
    pub settings: WorkerSettings,
    /// The dialling plans and rate decks, loaded once per process for ingest and re-rating
    /// alike (large decks take a fraction of a second to load).
    pub catalogue: crate::rating::CatalogueCache,
}

/// The queue a job of type `J` goes to in `publisher`'s deployment.
pub fn queue_of<J: Job>(publisher: &Publisher) -> String {
    publisher.topology().queue(J::QUEUE)
}

/// Publishes `job` on its queue and waits for the broker's confirm.
pub async fn publish<J: Job>(publisher: &Publisher, job: &J) -> Result<(), PublishError> {
    let body = serde_json::to_vec(job)
        .map_err(|e| PublishError::NotConfirmed(format!("unserialisable job: {e}")))?;
    publisher
        .publish(Outgoing {
            queue: &queue_of::<J>(publisher),
            message_id: job.job_id(),
            body: &body,
            headers: Default::default(),
        })
        .await
}

/// Why a job could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    #[error("job state store unavailable: {0}")]
    State(#[from] redis::RedisError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Records `state` and publishes `job`. A job whose message did not reach the broker, or is
/// not known to have (a confirm that never came), is forgotten again and the caller told so:
/// no state waits `enqueued` for a message that may not exist. If that message did reach the
/// queue after all, the worker that takes it writes the state afresh (every job's runner
/// starts from [`Job::initial_state`] when it finds none).
pub async fn enqueue<J: Job>(
    jobs: &JobStore,
    publisher: &Publisher,
    job: &J,
    state: &JobState,
) -> Result<(), EnqueueError> {
    queue(jobs, publisher, job, state, false).await
}

/// [`enqueue`], except that a job whose publish was not confirmed keeps its state and is
/// reported queued-or-maybe (`Err` with [`PublishError::Unconfirmed`]), for a caller that
/// republishes the same job if it never runs, as the index sweeper does.
pub async fn enqueue_keeping_unconfirmed<J: Job>(
    jobs: &JobStore,
    publisher: &Publisher,
    job: &J,
    state: &JobState,
) -> Result<(), EnqueueError> {
    queue(jobs, publisher, job, state, true).await
}

async fn queue<J: Job>(
    jobs: &JobStore,
    publisher: &Publisher,
    job: &J,
    state: &JobState,
    keep_unconfirmed: bool,
) -> Result<(), EnqueueError> {
    jobs.create(state).await?;
    if let Err(e) = publish(publisher, job).await {
        let keep = keep_unconfirmed && matches!(e, PublishError::Unconfirmed(_));
        if !keep && let Err(de) = jobs.delete(job.job_id()).await {
            tracing::warn!(job_id = job.job_id(), error = %de, "could not forget the state of an unpublished job");
        }
        return Err(e.into());
    }
    Ok(())
}

/// How long a tick's claim is remembered: longer than any clock skew between workers.
const TICK_CLAIM_TTL: Duration = Duration::from_secs(24 * 3600);

/// Queues `job`, the job of a schedule's tick ([`Job::for_tick`]), unless another worker
/// did; `true` when this call queued it. Every worker follows the same schedule: the first
/// to claim the tick in Redis queues it, the others see the claim and do nothing. Once
/// queued, the job is a durable message like any other.
pub async fn queue_tick<J: Job>(
    jobs: &JobStore,
    publisher: &Publisher,
    job: &J,
) -> Result<bool, EnqueueError> {
    let id = job.job_id();
    if jobs.try_lease(&format!("tick:{id}"), id, TICK_CLAIM_TTL).await?.is_err() {
        return Ok(false);
    }
    enqueue(jobs, publisher, job, &job.initial_state()).await?;
    Ok(true)
}
