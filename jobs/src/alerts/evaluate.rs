//! The evaluation job: every enabled rule read over its window, and its state changed when
//! the reading crosses its condition.

use super::store::{self, Rule, db_err};
use super::webhook::WebhookJob;
use super::{Reading, Verdict, verdict};
use crate::rollups::read::RollupStats;
use crate::search::{Interval, SearchIndex, StatsRequest, parse_filters};
use crate::state::{JobCounts, JobKind, JobState, JobStatus, JobStore};
use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use tracing::{info, warn};

/// The kind an evaluation's state shows.
pub const KIND: &str = "alerts";

/// An undelivered notification whose job has not answered for this long is queued again.
const REQUEUE_AFTER_SECS: i64 = 300;

/// One evaluation of every enabled rule at an instant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertsJob {
    pub job_id: String,
    pub enqueued_at: DateTime<Utc>,
    /// Windows end at this instant's last whole minute.
    pub at: DateTime<Utc>,
}

impl AlertsJob {
    /// An evaluation at `at`, asked for.
    pub fn at(at: DateTime<Utc>) -> Self {
        AlertsJob { job_id: format!("alerts-{}", crate::new_job_id()), enqueued_at: Utc::now(), at }
    }

    pub fn initial_state(&self) -> JobState {
        JobState::enqueued(self.job_id.clone(), JobKind::new(KIND), JobCounts::default(), self.enqueued_at)
    }
}

/// What an evaluation reports in `/jobs/{id}` (`detail`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationReport {
    pub rules: u64,
    pub fired: u64,
    pub resolved: u64,
    /// Rules that could not be read (their state is unchanged).
    pub unreadable: u64,
    /// Undelivered notifications queued again.
    pub requeued: u64,
}

#[derive(Clone)]
pub struct AlertRunner {
    pub db: DatabaseConnection,
    pub jobs: JobStore,
    pub publisher: crate::queue::Publisher,
    pub search: SearchIndex,
    pub rollups: RollupStats,
}

/// A state change: `Some(true)` fires, `Some(false)` resolves.
fn transition(rule: &Rule, verdict: Verdict) -> Option<bool> {
    match (rule.firing, verdict) {
        (false, Verdict::Breached) => Some(true),
        (true, Verdict::Clear) => Some(false),
        _ => None,
    }
}

const RECORD_TRANSITION: &str = r"
WITH changed AS (
    UPDATE alert_rules SET firing = $2, last_value = $3, last_baseline = $4, last_attempts = $5,
           last_evaluated_at = now()
    WHERE id = $1 AND firing = NOT $2
    RETURNING id, name, metric, threshold, webhook_url, webhook_secret
)
INSERT INTO alert_events (rule_id, rule_name, state, metric, value, baseline, threshold, attempts,
                          window_from, window_to, evaluation, webhook_url, webhook_secret)
SELECT id, name, CASE WHEN $2 THEN 'firing' ELSE 'resolved' END, metric, $3, $4, threshold, $5, $6, $7, $8,
       webhook_url, webhook_secret
FROM changed
ON CONFLICT (rule_id, evaluation) DO NOTHING
RETURNING id, webhook_url IS NOT NULL AS notified";

const RECORD_READING: &str = "UPDATE alert_rules SET last_value = $2, last_baseline = $3, last_attempts = $4, \
     last_evaluated_at = now() WHERE id = $1";

impl AlertRunner {
    pub async fn run(&self, job: &AlertsJob) -> Result<(), DbErr> {
        if let Ok(Some(state)) = self.jobs.get(&job.job_id).await
            && state.status == JobStatus::Succeeded
        {
            return Ok(());
        }
        if let Err(e) = self.jobs.start_attempt(&job.initial_state()).await {
            warn!(job_id = %job.job_id, error = %e, "could not record the evaluation's start");
        }
        match self.evaluate(job).await {
            Ok(report) => {
                let _ = self.jobs.set_detail(&job.job_id, &report).await;
                let counts = JobCounts { received: report.rules, ..JobCounts::default() };
                let _ = self.jobs.mark_succeeded(&job.job_id, &counts).await;
                crate::metrics::count_job(KIND, "succeeded");
                if report.fired + report.resolved > 0 {
                    info!(job_id = %job.job_id, fired = report.fired, resolved = report.resolved, "alert rules evaluated");
                }
                Ok(())
            }
            Err(e) => {
                let _ = self
                    .jobs
                    .mark_failed(
                        &job.job_id,
                        crate::error_code::ErrorCode::DatabaseUnavailable,
                        &e.to_string(),
                    )
                    .await;
                crate::metrics::count_job(KIND, "failed");
                Err(e)
            }
        }
    }

    async fn evaluate(&self, job: &AlertsJob) -> Result<EvaluationReport, DbErr> {
        let mut report =
            EvaluationReport { requeued: self.requeue_undelivered().await?, ..Default::default() };
        let end = job.at.duration_trunc(Duration::minutes(1)).unwrap_or(job.at);
        for (rule, _secret) in store::enabled(&self.db).await? {
            report.rules += 1;
            let reading = match self.read(&rule, end).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(rule = %rule.name, error = %e, "alert rule not evaluated");
                    report.unreadable += 1;
                    continue;
                }
            };
            let snoozed = rule.snoozed_until.is_some_and(|t| t > Utc::now());
            let change = if snoozed { None } else { transition(&rule, verdict(&rule.spec(None), &reading)) };
            let pool = self.db.get_postgres_connection_pool();
            let attempts = i64::try_from(reading.attempts).unwrap_or(i64::MAX);
            let Some(firing) = change else {
                sqlx::query(RECORD_READING)
                    .bind(rule.id)
                    .bind(reading.value)
                    .bind(reading.baseline)
                    .bind(attempts)
                    .execute(pool)
                    .await
                    .map_err(db_err)?;
                continue;
            };
            let window_from = end - Duration::minutes(i64::from(rule.window_minutes));
            let event = sqlx::query(RECORD_TRANSITION)
                .bind(rule.id)
                .bind(firing)
                .bind(reading.value)
                .bind(reading.baseline)
                .bind(attempts)
                .bind(window_from)
                .bind(end)
                .bind(&job.job_id)
                .fetch_optional(pool)
                .await
                .map_err(db_err)?;
            let Some(event) = event else { continue };
            let state = if firing { "firing" } else { "resolved" };
            if firing {
                report.fired += 1;
            } else {
                report.resolved += 1;
            }
            crate::metrics::metrics().alert_transitions.with_label_values(&[state]).inc();
            info!(rule = %rule.name, state, value = ?reading.value, attempts = reading.attempts, "alert {state}");
            let id: i64 = event.try_get("id").map_err(db_err)?;
            let notified: bool = event.try_get("notified").map_err(db_err)?;
            if notified {
                // Best effort: an event whose job is not queued now is queued by the next
                // evaluation.
                self.queue_delivery(id).await;
            }
        }
        Ok(report)
    }

    /// The rule's metric over the window ending at `end` (and a week earlier when needed).
    async fn read(&self, rule: &Rule, end: DateTime<Utc>) -> Result<Reading, crate::rollups::AnswerError> {
        let window = Duration::minutes(i64::from(rule.window_minutes));
        let spec = rule.spec(None);
        let (value, attempts) = self.read_window(&spec, end - window, end).await?;
        let baseline = if rule.condition.needs_baseline() {
            let week = Duration::days(7);
            self.read_window(&spec, end - window - week, end - week).await?.0
        } else {
            None
        };
        Ok(Reading { value, baseline, attempts })
    }

    async fn read_window(
        &self,
        spec: &super::RuleSpec,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(Option<f64>, u64), crate::rollups::AnswerError> {
        let mut pairs = spec.filter_pairs();
        pairs.push(("from".into(), from.to_rfc3339()));
        pairs.push(("to".into(), to.to_rfc3339()));
        let filters = parse_filters(&pairs, &[]).map_err(crate::rollups::AnswerError::Parameter)?;
        let request = StatsRequest::new(filters, Some(Interval::Day), 0)
            .map_err(crate::rollups::AnswerError::Parameter)?;
        let stats = crate::rollups::answer(&self.rollups, &self.search, &request).await?;
        Ok((spec.metric.of(&stats), stats.total_calls))
    }

    /// Queues the delivery of event `id` and notes when.
    async fn queue_delivery(&self, id: i64) {
        let job = WebhookJob::new(id);
        match crate::job::enqueue(&self.jobs, &self.publisher, &job, &job.initial_state()).await {
            Ok(()) => {
                let marked = sqlx::query("UPDATE alert_events SET queued_at = now() WHERE id = $1")
                    .bind(id)
                    .execute(self.db.get_postgres_connection_pool())
                    .await;
                if let Err(e) = marked {
                    warn!(event = id, error = %e, "could not note that a notification was queued");
                }
            }
            Err(e) => {
                warn!(event = id, error = %e, "could not queue a notification; the next evaluation will")
            }
        }
    }

    /// Queues again the notifications not delivered whose job was never queued or has not
    /// answered for a while (its receiver was down past its attempts).
    async fn requeue_undelivered(&self) -> Result<u64, DbErr> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM alert_events WHERE delivered_at IS NULL AND webhook_url IS NOT NULL \
             AND (queued_at IS NULL OR queued_at < now() - make_interval(secs => $1)) ORDER BY id LIMIT 1000",
        )
        .bind(REQUEUE_AFTER_SECS as f64)
        .fetch_all(self.db.get_postgres_connection_pool())
        .await
        .map_err(db_err)?;
        for id in &ids {
            self.queue_delivery(*id).await;
        }
        Ok(ids.len() as u64)
    }
}

/// An evaluation that fails is recorded and not retried: the next tick evaluates again.
impl crate::job::Job for AlertsJob {
    const QUEUE: &'static str = "alerts";
    const KINDS: &'static [&'static str] = &[KIND];
    type Runner = AlertRunner;

    fn runner(env: &crate::job::WorkerEnv) -> AlertRunner {
        AlertRunner {
            db: env.db.clone(),
            jobs: env.jobs.clone(),
            publisher: env.publisher.clone(),
            search: env.search.clone(),
            rollups: RollupStats::new(env.db.clone()),
        }
    }

    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn initial_state(&self) -> JobState {
        self.initial_state()
    }

    fn schedule(settings: &crate::job::WorkerSettings) -> Option<&str> {
        Some(&settings.alert_schedule)
    }

    fn for_tick(at: DateTime<Utc>) -> Option<Self> {
        Some(AlertsJob {
            job_id: format!("alerts-{}", at.format("%Y%m%dt%H%M%S")),
            enqueued_at: Utc::now(),
            at,
        })
    }

    async fn run(&self, runner: &AlertRunner, _attempt: u32) -> Result<(), crate::job::AttemptError> {
        if let Err(e) = runner.run(self).await {
            warn!(job_id = %self.job_id, error = %e, "alert evaluation failed; the next tick evaluates again");
        }
        Ok(())
    }
}
