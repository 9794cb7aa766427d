//! Delivering an alert event to its webhook: signed, retried while the receiver is down,
//! and marked delivered under the event's row lock, so each transition is delivered once.

use super::store::db_err;
use crate::error_code::ErrorCode;
use crate::state::{JobCounts, JobKind, JobState, JobStatus, JobStore};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use sqlx::Row as _;
use std::time::Duration;
use tracing::{info, warn};

/// The kind a delivery's state shows.
pub const KIND: &str = "webhook";

/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The delivery of one alert event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookJob {
    pub job_id: String,
    pub enqueued_at: DateTime<Utc>,
    pub event_id: i64,
}

impl WebhookJob {
    pub fn new(event_id: i64) -> Self {
        WebhookJob { job_id: crate::new_job_id(), enqueued_at: Utc::now(), event_id }
    }

    pub fn initial_state(&self) -> JobState {
        JobState::enqueued(self.job_id.clone(), JobKind::new(KIND), JobCounts::default(), self.enqueued_at)
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<unix seconds>.<body>">`: the receiver checks
/// the body and that it is recent.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    // HMAC takes a key of any length: an error here would be the library's.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).map_err(|e| format!("cannot sign: {e}"))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes())))
}

#[derive(Clone)]
pub struct WebhookRunner {
    pub db: DatabaseConnection,
    pub jobs: JobStore,
    pub client: reqwest::Client,
    pub max_attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Database(#[from] DbErr),
    #[error("the receiver {0}")]
    Receiver(String),
}

const LOCK_EVENT: &str = "SELECT id, rule_id, rule_name, state, metric, value, baseline, threshold, attempts, \
     window_from, window_to, at, webhook_url, webhook_secret, delivered_at FROM alert_events WHERE id = $1 FOR UPDATE";

impl WebhookRunner {
    /// One attempt. `Ok`: delivered (now or before), or out of attempts for this delivery
    /// (the next evaluation queues it again). `Err`: try again after a backoff.
    pub async fn run(&self, job: &WebhookJob, attempt: u32) -> Result<(), DeliveryError> {
        if let Ok(Some(state)) = self.jobs.get(&job.job_id).await
            && state.status == JobStatus::Succeeded
        {
            return Ok(());
        }
        let _ = self.jobs.start_attempt(&job.initial_state()).await;
        let mut txn = self.db.get_postgres_connection_pool().begin().await.map_err(db_err)?;
        let Some(row) =
            sqlx::query(LOCK_EVENT).bind(job.event_id).fetch_optional(&mut *txn).await.map_err(db_err)?
        else {
            let _ = self.jobs.mark_succeeded(&job.job_id, &JobCounts::default()).await;
            return Ok(());
        };
        let delivered: Option<DateTime<Utc>> = row.try_get("delivered_at").map_err(db_err)?;
        let url: Option<String> = row.try_get("webhook_url").map_err(db_err)?;
        let (None, Some(url)) = (delivered, url) else {
            // Delivered by another job of the same event (a re-queue that crossed this one).
            let _ = self.jobs.mark_succeeded(&job.job_id, &JobCounts::default()).await;
            return Ok(());
        };
        let secret: Option<String> = row.try_get("webhook_secret").map_err(db_err)?;
        let body = payload(&row)?;
        let outcome = self.post(&url, secret.as_deref(), job.event_id, &body).await;
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE alert_events SET delivered_at = now(), delivery_attempts = delivery_attempts + 1, last_error = NULL WHERE id = $1",
                )
                .bind(job.event_id)
                .execute(&mut *txn)
                .await
                .map_err(db_err)?;
                txn.commit().await.map_err(db_err)?;
                crate::metrics::metrics().webhook_deliveries.with_label_values(&["delivered"]).inc();
                let _ = self.jobs.mark_succeeded(&job.job_id, &JobCounts::default()).await;
                info!(event = job.event_id, "alert notification delivered");
                Ok(())
            }
            Err(reason) => {
                let last = attempt >= self.max_attempts;
                // Out of attempts: the event waits for the next evaluation to queue it again.
                sqlx::query(
                    "UPDATE alert_events SET delivery_attempts = delivery_attempts + 1, last_error = $2, \
                     queued_at = CASE WHEN $3 THEN NULL ELSE queued_at END WHERE id = $1",
                )
                .bind(job.event_id)
                .bind(&reason)
                .bind(last)
                .execute(&mut *txn)
                .await
                .map_err(db_err)?;
                txn.commit().await.map_err(db_err)?;
                crate::metrics::metrics().webhook_deliveries.with_label_values(&["failed"]).inc();
                if last {
                    let _ = self.jobs.mark_failed(&job.job_id, ErrorCode::Unavailable, &reason).await;
                    warn!(
                        event = job.event_id,
                        reason, "alert notification not delivered; queued again by the next evaluation"
                    );
                    return Ok(());
                }
                let _ = self.jobs.mark_retrying(&job.job_id, ErrorCode::Unavailable, &reason).await;
                Err(DeliveryError::Receiver(reason))
            }
        }
    }

    async fn post(&self, url: &str, secret: Option<&str>, event_id: i64, body: &[u8]) -> Result<(), String> {
        let mut request = self
            .client
            .post(url)
            .timeout(TIMEOUT)
            .header("content-type", "application/json")
            .header("x-cdr-event-id", event_id.to_string())
            .body(body.to_vec());
        if let Some(secret) = secret {
            request = request.header("x-cdr-signature", signature(secret, Utc::now().timestamp(), body)?);
        }
        match request.send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("answered {}", resp.status().as_u16())),
            Err(e) => Err(format!("could not be reached: {e}")),
        }
    }
}

/// What a receiver gets: the event, as `/alerts` lists it.
fn payload(row: &sqlx::postgres::PgRow) -> Result<Vec<u8>, DbErr> {
    let get = |name: &str| -> Result<serde_json::Value, DbErr> {
        let v: Option<String> = row.try_get(name).ok();
        Ok(v.map_or(serde_json::Value::Null, serde_json::Value::String))
    };
    let id: i64 = row.try_get("id").map_err(db_err)?;
    let rule_id: Option<i64> = row.try_get("rule_id").map_err(db_err)?;
    let value: Option<f64> = row.try_get("value").map_err(db_err)?;
    let baseline: Option<f64> = row.try_get("baseline").map_err(db_err)?;
    let threshold: f64 = row.try_get("threshold").map_err(db_err)?;
    let attempts: i64 = row.try_get("attempts").map_err(db_err)?;
    let from: DateTime<Utc> = row.try_get("window_from").map_err(db_err)?;
    let to: DateTime<Utc> = row.try_get("window_to").map_err(db_err)?;
    let at: DateTime<Utc> = row.try_get("at").map_err(db_err)?;
    let body = json!({
        "event_id": id,
        "rule_id": rule_id,
        "rule": get("rule_name")?,
        "state": get("state")?,
        "metric": get("metric")?,
        "value": value,
        "baseline": baseline,
        "threshold": threshold,
        "attempts": attempts,
        "window": { "from": from, "to": to },
        "at": at,
    });
    serde_json::to_vec(&body).map_err(|e| DbErr::Custom(format!("alert payload: {e}")))
}

/// Retried with backoff while the receiver is down; past the worker's attempts the event
/// waits for the next evaluation, which queues it again.
impl crate::job::Job for WebhookJob {
    const QUEUE: &'static str = "webhooks";
    const KINDS: &'static [&'static str] = &[KIND];
    const RETRIED: bool = true;
    type Runner = WebhookRunner;

    fn runner(env: &crate::job::WorkerEnv) -> WebhookRunner {
        WebhookRunner {
            db: env.db.clone(),
            jobs: env.jobs.clone(),
            client: reqwest::Client::new(),
            max_attempts: env.settings.max_attempts,
        }
    }

    fn concurrency(_settings: &crate::job::WorkerSettings) -> usize {
        4
    }

    fn prefetch(_settings: &crate::job::WorkerSettings) -> u16 {
        8
    }

    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn initial_state(&self) -> JobState {
        self.initial_state()
    }

    async fn run(&self, runner: &WebhookRunner, attempt: u32) -> Result<(), crate::job::AttemptError> {
        runner.run(self, attempt).await.map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_timestamp_and_body() {
        // RFC 4231 test case 2 ("Jefe"), with the message split as the signature splits it.
        let sig = signature("Jefe", 0, b"what do ya want for nothing?").expect("signed");
        assert!(sig.starts_with("t=0,v1="));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"0.what do ya want for nothing?");
        assert_eq!(sig, format!("t=0,v1={}", hex::encode(mac.finalize().into_bytes())));
        assert_ne!(signature("Jefe", 1, b"x"), signature("Jefe", 2, b"x"), "the timestamp is signed");
        assert_ne!(signature("Jefe", 1, b"x"), signature("Jeff", 1, b"x"));
        assert!(signature("", 1, b"x").is_ok(), "any key length");
    }
}
