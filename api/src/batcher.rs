//! Short-window batching of single-CDR posts into ingest jobs.
//!
//! A switch that posts each call as it ends (FreeSWITCH's mod_json_cdr) sends thousands of
//! one-record requests a second. Each becoming a job of its own would cost a broker confirm,
//! a job state and a database transaction per call. Instead records share jobs the way a
//! database shares a log flush among commits: while a job is being published, the records
//! that arrive wait and form the next one. An idle system publishes a record at once (no
//! added latency); a busy one publishes fewer, larger jobs. Each request waits until the
//! broker confirmed the job holding its record, so every answer still means "durably
//! queued", and a failed publish fails every request of the batch (the switch retries or
//! spools them).

use crate::enqueue::Enqueuer;
use crate::error::ApiError;
use chrono::Utc;
use jobs::cdr::Cdr;
use jobs::ingest::IngestJob;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// How a batcher groups records.
#[derive(Debug, Clone, Copy)]
pub struct BatchWindow {
    /// How long the first record of a batch waits for company. Without it, an idle-looking
    /// moment publishes jobs of one or two records, and the workers' cost per job (a
    /// transaction, an index request) caps the rate far below what larger jobs reach.
    pub linger: Duration,
    /// The most records in one batch.
    pub max_records: usize,
    /// Batches being published at once; records arriving while all are busy form the next.
    pub in_flight: usize,
    /// How long a queue-depth reading stands before backpressure asks the broker again.
    pub depth_check_every: Duration,
}

impl Default for BatchWindow {
    fn default() -> Self {
        BatchWindow {
            linger: Duration::from_millis(2),
            max_records: 1000,
            in_flight: 2,
            depth_check_every: Duration::from_millis(200),
        }
    }
}

type Reply = oneshot::Sender<Result<String, ApiError>>;

/// Hands records to the batching task; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(Cdr, Reply)>,
}

impl Batcher {
    /// Starts the batching task on the current runtime.
    pub fn start(enqueuer: Enqueuer, window: BatchWindow) -> Batcher {
        let (tx, rx) = mpsc::channel(window.max_records * window.in_flight.max(1) * 2);
        tokio::spawn(run(rx, enqueuer, window));
        Batcher { tx }
    }

    /// Queues one record; returns the id of the job it was stored in once the broker
    /// confirmed that job.
    pub async fn submit(&self, cdr: Cdr) -> Result<String, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((cdr, reply))
            .await
            .map_err(|_| ApiError::unavailable("batcher", "the batching task has stopped"))?;
        answer.await.map_err(|_| ApiError::unavailable("batcher", "the batch was dropped"))?
    }
}

async fn run(mut rx: mpsc::Receiver<(Cdr, Reply)>, enqueuer: Enqueuer, window: BatchWindow) {
    let permits = Arc::new(Semaphore::new(window.in_flight.max(1)));
    let backlog = Arc::new(BacklogCheck::new(window.depth_check_every));
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + window.linger;
        let mut batch = vec![first];
        while batch.len() < window.max_records {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(item) => batch.push(item),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Then a publishing slot: while every slot is busy, records keep arriving and join
        // this batch.
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        while batch.len() < window.max_records {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (enqueuer, backlog) = (enqueuer.clone(), backlog.clone());
        tokio::spawn(async move {
            flush(&enqueuer, &backlog, batch).await;
            drop(permit);
        });
    }
}

/// The backlog check of [`Enqueuer::check_backlog`], asked of the broker at most once per
/// interval: at thousands of batches a second, a round trip each would cost more than the
/// publish itself, and a fraction of a second of staleness changes nothing for backpressure.
struct BacklogCheck {
    every: Duration,
    last: tokio::sync::Mutex<Option<(tokio::time::Instant, Result<(), ApiError>)>>,
}

impl BacklogCheck {
    fn new(every: Duration) -> Self {
        BacklogCheck { every, last: tokio::sync::Mutex::new(None) }
    }

    async fn check(&self, enqueuer: &Enqueuer) -> Result<(), ApiError> {
        let mut last = self.last.lock().await;
        if let Some((at, outcome)) = last.as_ref()
            && at.elapsed() < self.every
        {
            return outcome.clone();
        }
        let outcome = enqueuer.check_backlog().await;
        *last = Some((tokio::time::Instant::now(), outcome.clone()));
        outcome
    }
}

async fn flush(enqueuer: &Enqueuer, backlog: &BacklogCheck, batch: Vec<(Cdr, Reply)>) {
    let (cdrs, replies): (Vec<Cdr>, Vec<Reply>) = batch.into_iter().unzip();
    let job = IngestJob {
        job_id: jobs::new_job_id(),
        enqueued_at: Utc::now(),
        received: cdrs.len() as u64,
        rejected: 0,
        cdrs,
    };
    let outcome = match backlog.check(enqueuer).await {
        Ok(()) => enqueuer.enqueue(&job).await,
        Err(e) => Err(e),
    };
    match &outcome {
        Ok(()) => {
            tracing::info!(job_id = %job.job_id, records = job.cdrs.len(), "batched ingest job enqueued")
        }
        Err(e) => tracing::warn!(records = job.cdrs.len(), error = ?e, "batched ingest job refused"),
    }
    for reply in replies {
        let _ = reply.send(outcome.clone().map(|()| job.job_id.clone()));
    }
}
