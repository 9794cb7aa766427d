//! The apalis worker pool on the RabbitMQ backend.

use crate::cli::WorkerCli;
use crate::lenient::{Delivery, LenientBackend};
use anyhow::Context as _;
use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use apalis::prelude::*;
use apalis_amqp::{AmqpBackend, AmqpTask, Config};
use futures::FutureExt as _;
use futures::Sink;
use jobs::ingest::{IngestJob, IngestRunner};
use jobs::queue::{Publisher, Topology};
use jobs::state::JobStore;
use jobs::store::CdrStore;
use lapin::options::BasicNackOptions;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Pause before rebuilding the pool after the broker connection was lost.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Connects to every service, then runs the pool until `shutdown` resolves. Losing the
/// broker rebuilds the pool: unacknowledged messages are redelivered, and storing is
/// idempotent, so nothing is lost or stored twice.
pub async fn run(
    cli: WorkerCli,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let services = &cli.services;
    let db = jobs::db::connect(&services.database_url, services.db_pool_size)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    jobs::db::migrate(&db)
        .await
        .context("applying database migrations")?;
    let job_store = JobStore::connect(&services.redis_url, &services.namespace, services.job_ttl())
        .await
        .context("connecting to Redis (REDIS_URL)")?;
    let topology = Topology::new(&services.namespace);
    let publisher = Publisher::new(&services.amqp_url, topology.clone());
    publisher
        .queue_depth(&topology.ingest)
        .await
        .context("connecting to RabbitMQ (AMQP_URL)")?;

    let runner = Arc::new(IngestRunner {
        store: CdrStore::new(db),
        jobs: job_store,
        publisher,
        max_attempts: cli.max_attempts,
    });

    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    loop {
        let monitor = build_monitor(&cli, &topology, runner.clone()).await;
        let monitor = match monitor {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot reach the broker; retrying");
                tokio::select! {
                    () = shutdown.clone() => return Ok(()),
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
            info!("worker pool stopped");
            return Ok(());
        }
        warn!(result = ?result.err(), "worker pool ended without a shutdown signal; reconnecting");
        tokio::select! {
            () = shutdown.clone() => return Ok(()),
            () = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}

async fn build_monitor(
    cli: &WorkerCli,
    topology: &Topology,
    runner: Arc<IngestRunner>,
) -> anyhow::Result<Monitor> {
    let config = Config::default()
        .queue(topology.ingest.clone())
        .prefetch_count(cli.prefetch)
        .declare_options(Topology::queue_options())
        .declare_arguments(topology.ingest_arguments())
        // A failed attempt only reaches the broker when the job should run again later (a
        // transient failure, or shutdown cut its retries short): put it back in the queue.
        // Permanent failures are dead-lettered by the job itself.
        .nack_options(BasicNackOptions {
            requeue: true,
            multiple: false,
        });
    let mut backend = LenientBackend::new(
        AmqpBackend::<Delivery<IngestJob>>::new_from_addr(&cli.services.amqp_url)?
            .with_config(config),
    );
    // apalis-amqp 1.0.0 reports a fresh backend ready before its consumer exists, and its
    // first poll_next then panics. Opening the channel here first makes every worker's
    // poll_ready create its consumer before polling it.
    std::future::poll_fn(|cx| Sink::<AmqpTask>::poll_ready(Pin::new(backend.inner_mut()), cx))
        .await?;

    let mut backoff_maker =
        ExponentialBackoffMaker::new(cli.retry_min(), cli.retry_max(), 0.2, HasherRng::default())?;
    let backoff = backoff_maker.make_backoff();
    let retries = usize::try_from(cli.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    let concurrency = usize::from(cli.concurrency);
    let monitor = Monitor::new()
        .register(move |_restarts| {
            WorkerBuilder::new("cdr-ingest")
                .backend(backend.clone())
                .data(runner.clone())
                .concurrency(concurrency)
                .retry(RetryPolicy::retries(retries).with_backoff(backoff.clone()))
                .enable_tracing()
                .parallelize(tokio::spawn)
                .build(handle_ingest)
        })
        .shutdown_timeout(Duration::from_secs(cli.shutdown_timeout_secs));
    Ok(monitor)
}

/// One attempt at an ingest job. An error sends the job back for a later attempt.
async fn handle_ingest(
    delivery: Delivery<IngestJob>,
    runner: Data<Arc<IngestRunner>>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let job = match delivery {
        Delivery::Job(job) => job,
        Delivery::Unreadable { body, error } => {
            let reason = format!("unreadable ingest message: {error}");
            runner.dead_letter_unreadable(&body, &reason).await?;
            return Ok(());
        }
    };
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX);
    match AssertUnwindSafe(runner.run(&job, attempt))
        .catch_unwind()
        .await
    {
        Ok(result) => {
            result?;
        }
        Err(panic) => {
            // A panic is a bug that retrying will not fix: keep the job for inspection.
            let what = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            runner
                .dead_letter(&job, &format!("internal error: {what}"), attempt)
                .await?;
        }
    }
    Ok(())
}
