//! The apalis worker pool on the RabbitMQ backend: a worker for every registered job type
//! this process takes (see `jobs::job::registry`), the retention schedule, and the sync
//! sweeper and rollup folder beside them.

use crate::cli::WorkerCli;
use crate::lenient::{Delivery, LenientBackend};
use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use apalis::prelude::*;
use apalis_amqp::{AmqpBackend, AmqpTask, Config};
use futures::FutureExt as _;
use futures::Sink;
use futures::future::BoxFuture;
use jobs::error_code::ErrorCode;
use jobs::job::{Job, WorkerEnv, registry};
use jobs::queue::{Publisher, Topology, dead_letter_unreadable};
use jobs::retention::MaintenanceJob;
use jobs::state::JobStore;
use jobs::sync::Sweeper;
use lapin::options::BasicNackOptions;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Pause before rebuilding the pool after the broker connection was lost.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Everything the workers share.
#[derive(Clone)]
pub struct Runners {
    pub env: WorkerEnv,
    pub sweeper: Sweeper,
    pub folder: jobs::rollups::fold::Folder,
}

/// Connects to every service, applying migrations and creating the index if missing.
pub async fn connect(cli: &WorkerCli) -> anyhow::Result<Runners> {
    let jobs::connect::Connections { db, jobs: job_store, publisher, search } =
        jobs::connect::connect(&cli.services).await?;
    cli.retention.validate().map_err(anyhow::Error::msg)?;
    let env = WorkerEnv {
        db: db.clone(),
        jobs: job_store.clone(),
        publisher: publisher.clone(),
        search,
        settings: cli.worker_settings(),
        catalogue: Default::default(),
    };
    // Loaded now rather than by the first batch, which would wait for it.
    if cli.consumes(jobs::ingest::IngestJob::QUEUE)
        && let Err(e) = env.catalogue.current(&db).await
    {
        warn!(error = %e, "dialling plans and rate decks not loaded yet; the first batch loads them");
    }
    // The coming months' partitions exist from the start, whenever the schedule fires.
    MaintenanceJob::runner(&env).create_ahead(chrono::Utc::now()).await?;
    Ok(Runners {
        folder: jobs::rollups::fold::Folder::new(db.clone(), job_store.clone())
            .yielding_to(jobs::rollups::fold::IngestQueue::of(publisher.clone())),
        sweeper: Sweeper::new(db, job_store, publisher, Duration::from_secs(cli.sweep_grace_secs)),
        env,
    })
}

/// Runs the pool until `shutdown` resolves. Losing the broker rebuilds the pool:
/// unacknowledged messages are redelivered, and every job is idempotent.
pub async fn run(cli: WorkerCli, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let runners = connect(&cli).await?;
    let shutdown = Box::pin(shutdown).shared();
    let sweeper = tokio::spawn(
        runners.sweeper.clone().run(Duration::from_secs(cli.sweep_interval_secs), shutdown.clone()),
    );
    let cadence = jobs::rollups::fold::Cadence {
        every: Duration::from_millis(cli.rollup_fold_ms),
        on_pause: cli.rollup_fold_on_pause,
        max_pending: cli.rollup_max_pending,
    };
    let folder = tokio::spawn(runners.folder.clone().run(cadence, shutdown.clone()));
    let http = crate::http::serve(&cli.http_addr, runners.sweeper.clone(), shutdown.clone()).await?;
    // Outside the monitor: the monitor is rebuilt whenever the broker goes away, and a
    // schedule that never ends would keep it from noticing.
    let mut clocks =
        Clocks { cli: &cli, env: &runners.env, shutdown: shutdown.clone(), started: Vec::new(), error: None };
    registry::each(&mut clocks);
    if let Some(e) = clocks.error {
        return Err(e);
    }
    let schedules = clocks.started;
    loop {
        let monitor = match build_monitor(&cli, &runners).await {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot reach the broker; retrying");
                tokio::select! {
                    () = shutdown.clone() => break,
                    () = tokio::time::sleep(RECONNECT_DELAY) => continue,
                }
            }
        };
        let signal = shutdown.clone();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stopped.clone();
        let result = monitor
            .run_with_signal(async move {
                signal.await;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        if stopped.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        warn!(result = ?result.err(), "worker pool ended without a shutdown signal; reconnecting");
        tokio::select! {
            () = shutdown.clone() => break,
            () = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
    let _ = sweeper.await;
    let _ = folder.await;
    for schedule in schedules {
        let _ = schedule.await;
    }
    let _ = http.await;
    info!("worker pool stopped");
    Ok(())
}

/// A backend for one queue whose consumer is ready before any worker polls it.
async fn backend<T: DeserializeOwned + Send + 'static>(
    cli: &WorkerCli,
    topology: &Topology,
    queue: &str,
    prefetch: u16,
) -> anyhow::Result<LenientBackend<T>> {
    let config = Config::default()
        .queue(queue.to_string())
        .prefetch_count(prefetch)
        .declare_options(Topology::consumer_queue_options())
        .declare_arguments(topology.arguments(queue))
        // A failed attempt only reaches the broker when the job should run again later (a
        // transient failure, or shutdown cut its retries short): put it back in the queue.
        // Jobs that failed for good are dead-lettered by the job itself.
        .nack_options(BasicNackOptions { requeue: true, multiple: false });
    let mut backend = LenientBackend::new(
        AmqpBackend::<Delivery<T>>::new_from_addr(&cli.services.amqp_url)?.with_config(config),
    );
    // apalis-amqp 1.0.0 reports a fresh backend ready before its consumer exists, and its
    // first poll_next then panics. Opening the channel here first makes every worker's
    // poll_ready create its consumer before polling it.
    std::future::poll_fn(|cx| Sink::<AmqpTask>::poll_ready(Pin::new(backend.inner_mut()), cx)).await?;
    Ok(backend)
}

/// A worker of one job type added to a monitor.
type Registration = Box<dyn FnOnce(Monitor) -> Monitor + Send>;

/// Builds, for every registered job type this process takes, its queue's backend and a
/// registration of its worker.
struct Workers<'a> {
    cli: &'a WorkerCli,
    env: &'a WorkerEnv,
    backoff: ExponentialBackoff,
    retries: usize,
    pending: Vec<BoxFuture<'a, anyhow::Result<Registration>>>,
}

impl registry::Visit for Workers<'_> {
    fn job<J: Job>(&mut self) {
        if self.cli.consumes(J::QUEUE) {
            let (env, backoff, retries) = (self.env, self.backoff.clone(), self.retries);
            self.pending.push(Box::pin(worker::<J>(self.cli, env, backoff, retries)));
        }
    }
}

/// What one job type's handler gets: its runner, the services and its queue's full name.
struct Context<J: Job> {
    runner: J::Runner,
    env: WorkerEnv,
    queue: String,
}

async fn worker<J: Job>(
    cli: &WorkerCli,
    env: &WorkerEnv,
    backoff: ExponentialBackoff,
    retries: usize,
) -> anyhow::Result<Registration> {
    let queue = jobs::job::queue_of::<J>(&env.publisher);
    let backend = backend::<J>(cli, env.publisher.topology(), &queue, J::prefetch(&env.settings)).await?;
    let context = Arc::new(Context::<J> { runner: J::runner(env), env: env.clone(), queue: queue.clone() });
    let concurrency = J::concurrency(&env.settings);
    let retries = if J::RETRIED { retries } else { 0 };
    let name = format!("cdr-{}", J::QUEUE);
    Ok(Box::new(move |monitor: Monitor| {
        monitor.register(move |_restarts| {
            WorkerBuilder::new(name.as_str())
                .backend(backend.clone())
                .data(context.clone())
                .concurrency(concurrency)
                .retry(RetryPolicy::retries(retries).with_backoff(backoff.clone()))
                .enable_tracing()
                .parallelize(tokio::spawn)
                .build(handle::<J>)
        })
    }))
}

async fn build_monitor(cli: &WorkerCli, runners: &Runners) -> anyhow::Result<Monitor> {
    let env = &runners.env;
    // The consumers declare their queues passively: make sure they exist first.
    env.publisher.queue_depth(&jobs::job::queue_of::<jobs::ingest::IngestJob>(&env.publisher)).await?;
    let mut backoff_maker =
        ExponentialBackoffMaker::new(cli.retry_min(), cli.retry_max(), 0.2, HasherRng::default())?;
    let backoff: ExponentialBackoff = backoff_maker.make_backoff();
    let retries = usize::try_from(cli.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    let mut workers = Workers { cli, env, backoff, retries, pending: Vec::new() };
    registry::each(&mut workers);
    let mut monitor = Monitor::new();
    for registration in workers.pending {
        monitor = registration.await?(monitor);
    }
    let monitor = monitor.shutdown_timeout(Duration::from_secs(cli.shutdown_timeout_secs));
    Ok(monitor)
}

/// Runs a job attempt, turning a panic into its message: a panic is a bug that retrying
/// will not fix, and the caller decides what becomes of the job.
async fn guarded<T>(attempt: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(attempt).catch_unwind().await.map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("internal error: {message}")
    })
}

/// The job a delivery carries. A message that is not the job its queue carries is
/// dead-lettered instead, the job it names (if any) is failed, and `None` comes back: the
/// message may then be acknowledged.
async fn readable<T>(
    delivery: Delivery<T>,
    publisher: &Publisher,
    jobs: &JobStore,
    queue: &str,
) -> Result<Option<T>, BoxDynError> {
    let (body, error) = match delivery {
        Delivery::Job(job) => return Ok(Some(job)),
        Delivery::Unreadable { body, error } => (body, error),
    };
    let reason = format!("unreadable message on {queue}: {error}");
    if let Some(id) = dead_letter_unreadable(publisher, queue, &body, &reason).await?
        && let Err(e) = jobs.mark_failed(&id, ErrorCode::UnreadableMessage, &reason).await
    {
        warn!(job_id = %id, error = %e, "could not record the failed state of an unreadable message");
    }
    Ok(None)
}

/// One attempt at a job. An error sends the job back for a later attempt; a panic is what
/// the job type says it becomes.
async fn handle<J: Job>(
    delivery: Delivery<J>,
    context: Data<Arc<Context<J>>>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let env = &context.env;
    let Some(job) = readable(delivery, &env.publisher, &env.jobs, &context.queue).await? else {
        return Ok(());
    };
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX);
    match guarded(job.run(&context.runner, attempt)).await {
        Ok(result) => result,
        Err(reason) => job.crashed(&context.runner, env, &reason, attempt).await,
    }
}

/// Starts, for every registered job type this process takes that has a schedule, a clock
/// that queues its job at every tick.
struct Clocks<'a, S> {
    cli: &'a WorkerCli,
    env: &'a WorkerEnv,
    shutdown: S,
    started: Vec<tokio::task::JoinHandle<Result<(), WorkerError>>>,
    error: Option<anyhow::Error>,
}

impl<S: Future<Output = ()> + Clone + Send + 'static> registry::Visit for Clocks<'_, S> {
    fn job<J: Job>(&mut self) {
        use std::str::FromStr as _;
        let Some(expression) = J::schedule(&self.env.settings).filter(|_| self.cli.consumes(J::QUEUE)) else {
            return;
        };
        let schedule = match cron::Schedule::from_str(expression) {
            Ok(s) => s,
            Err(e) => {
                self.error = Some(anyhow::anyhow!("the schedule of {} jobs {expression:?}: {e}", J::QUEUE));
                return;
            }
        };
        let worker = WorkerBuilder::new(format!("cdr-{}-schedule", J::QUEUE))
            .backend(apalis_cron::CronScheduler::new(schedule))
            .data(Arc::new(self.env.clone()))
            .build(handle_tick::<J>);
        let signal = self.shutdown.clone();
        self.started.push(tokio::spawn(worker.run_until(async move {
            signal.await;
            Ok::<(), WorkerError>(())
        })));
    }
}

/// One tick of a job type's schedule: its job queued once for the deployment.
async fn handle_tick<J: Job>(tick: apalis_cron::Tick, env: Data<Arc<WorkerEnv>>) -> Result<(), BoxDynError> {
    let at = chrono::DateTime::from_timestamp(i64::try_from(tick.get_timestamp()).unwrap_or(0), 0)
        .unwrap_or_else(chrono::Utc::now);
    let Some(job) = J::for_tick(at) else { return Ok(()) };
    let job_id = job.job_id();
    match jobs::job::queue_tick(&env.jobs, &env.publisher, &job).await {
        Ok(true) => info!(job_id, queue = J::QUEUE, "scheduled job queued for this tick"),
        Ok(false) => {
            info!(job_id, queue = J::QUEUE, "scheduled job of this tick already queued by another worker")
        }
        Err(e) => {
            warn!(job_id, queue = J::QUEUE, error = %e, "could not queue the scheduled job of this tick")
        }
    }
    Ok(())
}
