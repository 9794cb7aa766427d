//! Short-window batching of single-CDR posts into ingest jobs.
//!
//! A switch that posts each call as it ends (FreeSWITCH's mod_json_cdr) sends thousands of
//! one-record requests a second. Each becoming a job of its own would cost a broker confirm,
//! a job state and a database transaction per call. Instead, records arriving within a few
//! milliseconds of each other share one job: each request waits until the broker confirmed
//! the job holding its record, so every answer still means "durably queued", and a failed
//! publish fails every request of the batch (the switch retries or spools them).

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
    /// The longest a record waits for others before its batch is sent.
    pub linger: Duration,
    /// The most records in one batch.
    pub max_records: usize,
    /// Batches being published at once.
    pub in_flight: usize,
}

impl Default for BatchWindow {
    fn default() -> Self {
        BatchWindow { linger: Duration::from_millis(5), max_records: 1000, in_flight: 4 }
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
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + window.linger;
        while batch.len() < window.max_records {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(item) => batch.push(item),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let enqueuer = enqueuer.clone();
        tokio::spawn(async move {
            flush(&enqueuer, batch).await;
            drop(permit);
        });
    }
}

async fn flush(enqueuer: &Enqueuer, batch: Vec<(Cdr, Reply)>) {
    let (cdrs, replies): (Vec<Cdr>, Vec<Reply>) = batch.into_iter().unzip();
    let job = IngestJob {
        job_id: jobs::new_job_id(),
        enqueued_at: Utc::now(),
        received: cdrs.len() as u64,
        rejected: 0,
        cdrs,
    };
    let outcome = match enqueuer.check_backlog().await {
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
