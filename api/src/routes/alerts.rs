//! `/alerts`: alert rules, what fired, templates, and an evaluation on request.

use super::Tag;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::routes::cdrs::JobAccepted;
use crate::state::AppState;
use jobs::alerts::evaluate::AlertsJob;
use jobs::alerts::store::{self, Event, Rule, StoreError};
use jobs::alerts::templates::Template;
use jobs::alerts::{RuleError, RuleSpec};
use jobs::state::JobStatus;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

pub struct AlertsApi;

#[derive(Debug, Object)]
pub struct RuleList {
    pub items: Vec<Rule>,
}

#[derive(Debug, Object)]
pub struct EventList {
    pub items: Vec<Event>,
}

#[derive(Debug, Object)]
pub struct TemplateList {
    pub items: Vec<Template>,
}

#[derive(ApiResponse)]
pub enum RuleResponse {
    #[oai(status = 200)]
    Ok(Json<Rule>),
}

#[derive(ApiResponse)]
pub enum RuleCreated {
    /// Saved; evaluated from the next tick of `CDR_ALERT_SCHEDULE`.
    #[oai(status = 201)]
    Created(Json<Rule>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum RuleDeleted {
    /// Deleted; its events stay listed.
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum EvaluationAccepted {
    /// Queued: follow it at the Location.
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>, #[oai(header = "Location")] String),
}

fn invalid(e: RuleError) -> ApiError {
    ApiError::Unprocessable(Json(ErrorBody {
        details: Some(serde_json::json!({ "field": e.field })),
        ..ErrorBody::new(ErrorCode::InvalidRule, e.to_string())
    }))
}

fn stored(e: StoreError) -> ApiError {
    match e {
        StoreError::NameTaken(_) => {
            ApiError::Conflict(Json(ErrorBody::new(ErrorCode::Conflict, e.to_string())))
        }
        StoreError::Database(e) => ApiError::unavailable("postgresql", e),
    }
}

fn no_rule(id: i64) -> ApiError {
    ApiError::not_found(format!("no alert rule {id}"))
}

#[OpenApi(tag = "Tag::Alerts")]
impl AlertsApi {
    /// List alert rules
    ///
    /// Every rule with its state: whether it fires, its last reading and when it was taken.
    #[oai(path = "/alerts/rules", method = "get")]
    async fn list_rules(&self, state: Data<&AppState>) -> Result<Json<RuleList>, ApiError> {
        let items = store::list(&state.db).await.map_err(|e| ApiError::unavailable("postgresql", e))?;
        Ok(Json(RuleList { items }))
    }

    /// Create an alert rule
    ///
    /// A metric (`asr`, `acd`, `ner`, `attempts`, `answered_minutes`, `revenue`, `cost`,
    /// `margin`) over `/search` filters and a sliding window, with a condition: `above` or
    /// `below` a threshold, or `drop_vs_week` / `rise_vs_week` by more than a fraction of the
    /// same window a week earlier. The rule fires only with at least `min_attempts` calls in
    /// the window. Firing and resolving are listed at `/alerts` and POSTed to `webhook_url`,
    /// signed with `webhook_secret` (`X-CDR-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
    /// "<unix>.<body>">`). 422 names the field to change.
    #[oai(path = "/alerts/rules", method = "post")]
    async fn create_rule(
        &self,
        state: Data<&AppState>,
        spec: Json<RuleSpec>,
    ) -> Result<RuleCreated, ApiError> {
        spec.0.validate().map_err(invalid)?;
        let rule = store::create(&state.db, &spec.0).await.map_err(stored)?;
        tracing::info!(rule = %rule.name, id = rule.id, "alert rule created");
        let location = format!("/alerts/rules/{}", rule.id);
        Ok(RuleCreated::Created(Json(rule), location))
    }

    /// Get an alert rule
    #[oai(path = "/alerts/rules/:id", method = "get")]
    async fn get_rule(&self, state: Data<&AppState>, id: Path<i64>) -> Result<RuleResponse, ApiError> {
        let rule = store::get(&state.db, id.0).await.map_err(|e| ApiError::unavailable("postgresql", e))?;
        rule.map(|r| RuleResponse::Ok(Json(r))).ok_or_else(|| no_rule(id.0))
    }

    /// Replace an alert rule
    ///
    /// The whole definition (give `webhook_secret` again to keep notifications signed). Its
    /// state stays: the next evaluation reads the new definition.
    #[oai(path = "/alerts/rules/:id", method = "put")]
    async fn replace_rule(
        &self,
        state: Data<&AppState>,
        id: Path<i64>,
        spec: Json<RuleSpec>,
    ) -> Result<RuleResponse, ApiError> {
        spec.0.validate().map_err(invalid)?;
        let rule = store::replace(&state.db, id.0, &spec.0).await.map_err(stored)?;
        rule.map(|r| RuleResponse::Ok(Json(r))).ok_or_else(|| no_rule(id.0))
    }

    /// Delete an alert rule
    #[oai(path = "/alerts/rules/:id", method = "delete")]
    async fn delete_rule(&self, state: Data<&AppState>, id: Path<i64>) -> Result<RuleDeleted, ApiError> {
        if store::delete(&state.db, id.0).await.map_err(|e| ApiError::unavailable("postgresql", e))? {
            Ok(RuleDeleted::Deleted)
        } else {
            Err(no_rule(id.0))
        }
    }

    /// Snooze an alert rule
    ///
    /// For `minutes` (1 to 10,080) the rule neither fires nor resolves (its readings are
    /// still taken); `minutes=0` wakes it.
    #[oai(path = "/alerts/rules/:id/snooze", method = "post")]
    async fn snooze_rule(
        &self,
        state: Data<&AppState>,
        id: Path<i64>,
        #[oai(validator(maximum(value = "10080")))] minutes: Query<u32>,
    ) -> Result<RuleResponse, ApiError> {
        let until =
            (minutes.0 > 0).then(|| chrono::Utc::now() + chrono::Duration::minutes(i64::from(minutes.0)));
        let rule = store::snooze(&state.db, id.0, until)
            .await
            .map_err(|e| ApiError::unavailable("postgresql", e))?;
        rule.map(|r| RuleResponse::Ok(Json(r))).ok_or_else(|| no_rule(id.0))
    }

    /// List alerts
    ///
    /// What fired and resolved, newest first, with what became of each notification.
    #[oai(path = "/alerts", method = "get")]
    async fn list_events(
        &self,
        state: Data<&AppState>,
        /// One rule's alerts.
        rule_id: Query<Option<i64>>,
        /// `firing` or `resolved`.
        #[oai(name = "state", validator(pattern = "^(firing|resolved)$"))]
        state_filter: Query<Option<String>>,
        /// At most this many (1–1000, default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<EventList>, ApiError> {
        let items = store::events(&state.db, rule_id.0, state_filter.0.as_deref(), limit.0.unwrap_or(100))
            .await
            .map_err(|e| ApiError::unavailable("postgresql", e))?;
        Ok(Json(EventList { items }))
    }

    /// Rule templates
    ///
    /// Built-in rules for common fraud patterns (calls to premium destinations, a spike of
    /// attempts from one source, bursts of short calls, an ASR collapse, an account's spend
    /// spike): replace the example filters and POST one to `/alerts/rules`.
    #[oai(path = "/alerts/templates", method = "get")]
    async fn templates(&self) -> Json<TemplateList> {
        Json(TemplateList { items: jobs::alerts::templates::all() })
    }

    /// Evaluate the rules now
    ///
    /// Queues an evaluation of every enabled rule over windows ending at `at` (default now),
    /// as the schedule does every minute.
    #[oai(path = "/alerts/evaluate", method = "post")]
    async fn evaluate(
        &self,
        state: Data<&AppState>,
        /// RFC 3339; windows end at its last whole minute.
        at: Query<Option<chrono::DateTime<chrono::Utc>>>,
    ) -> Result<EvaluationAccepted, ApiError> {
        let job = AlertsJob::at(at.0.unwrap_or_else(chrono::Utc::now));
        jobs::job::enqueue(&state.jobs, &state.publisher, &job, &job.initial_state()).await.map_err(|e| {
            match e {
                jobs::job::EnqueueError::State(e) => ApiError::unavailable("redis", e),
                other => ApiError::unavailable("rabbitmq", other),
            }
        })?;
        let location = format!("/jobs/{}", job.job_id);
        Ok(EvaluationAccepted::Accepted(
            Json(JobAccepted { job_id: job.job_id, status: JobStatus::Enqueued }),
            location,
        ))
    }
}
