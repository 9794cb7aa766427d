//! Alert rules and their events in PostgreSQL.

use super::{Condition, Metric, RuleSpec};
use chrono::{DateTime, Utc};
use poem_openapi::Object;
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use std::collections::BTreeMap;

/// A rule as it is listed: its definition (never its webhook secret) and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct Rule {
    pub id: i64,
    pub name: String,
    pub filters: BTreeMap<String, String>,
    pub metric: Metric,
    pub condition: Condition,
    pub threshold: f64,
    pub window_minutes: u32,
    pub min_attempts: u64,
    #[oai(nullable)]
    pub webhook_url: Option<String>,
    /// Whether notifications are signed (a secret was given).
    pub signed: bool,
    pub enabled: bool,
    /// No state change is made (nothing fires or resolves) until then.
    #[oai(nullable)]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// Whether the rule is firing now.
    pub firing: bool,
    /// The metric at the last evaluation (null: undefined, e.g. a ratio of no calls).
    #[oai(nullable)]
    pub last_value: Option<f64>,
    /// The same window a week earlier, for change conditions.
    #[oai(nullable)]
    pub last_baseline: Option<f64>,
    #[oai(nullable)]
    pub last_attempts: Option<i64>,
    #[oai(nullable)]
    pub last_evaluated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Rule {
    /// The rule's definition, with the secret kept beside it.
    pub fn spec(&self, webhook_secret: Option<String>) -> RuleSpec {
        RuleSpec {
            name: self.name.clone(),
            filters: self.filters.clone(),
            metric: self.metric,
            condition: self.condition,
            threshold: self.threshold,
            window_minutes: self.window_minutes,
            min_attempts: self.min_attempts,
            webhook_url: self.webhook_url.clone(),
            webhook_secret,
            enabled: self.enabled,
        }
    }
}

/// A firing or a resolving, and what became of its notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct Event {
    pub id: i64,
    /// Null once the rule was deleted.
    #[oai(nullable)]
    pub rule_id: Option<i64>,
    pub rule_name: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub metric: String,
    #[oai(nullable)]
    pub value: Option<f64>,
    #[oai(nullable)]
    pub baseline: Option<f64>,
    pub threshold: f64,
    pub attempts: i64,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// Whether a webhook is notified.
    pub notified: bool,
    /// When the webhook answered 2xx.
    #[oai(nullable)]
    pub delivered_at: Option<DateTime<Utc>>,
    pub delivery_attempts: i32,
    #[oai(nullable)]
    pub last_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a rule named {0:?} exists already")]
    NameTaken(String),
    #[error("{0}")]
    Database(#[from] DbErr),
}

pub(crate) fn db_err(e: sqlx::Error) -> DbErr {
    DbErr::Custom(format!("alerts: {e}"))
}

/// `$sql` with a rule's columns after it (every statement reading rules back is a literal).
macro_rules! rule_sql {
    ($sql:literal) => {
        concat!(
            $sql,
            " id, name, filters::text AS filters, metric, condition, threshold, window_minutes, min_attempts, \
             webhook_url, webhook_secret, enabled, snoozed_until, firing, last_value, last_baseline, last_attempts, \
             last_evaluated_at, created_at, updated_at"
        )
    };
    ($sql:literal, $tail:literal) => {
        concat!(rule_sql!($sql), " ", $tail)
    };
}

/// A rule read back, with its secret.
pub(crate) fn rule_of(row: &PgRow) -> Result<(Rule, Option<String>), DbErr> {
    let filters: String = row.try_get("filters").map_err(db_err)?;
    let metric: String = row.try_get("metric").map_err(db_err)?;
    let condition: String = row.try_get("condition").map_err(db_err)?;
    let window: i32 = row.try_get("window_minutes").map_err(db_err)?;
    let min_attempts: i64 = row.try_get("min_attempts").map_err(db_err)?;
    let secret: Option<String> = row.try_get("webhook_secret").map_err(db_err)?;
    let rule = Rule {
        id: row.try_get("id").map_err(db_err)?,
        name: row.try_get("name").map_err(db_err)?,
        filters: serde_json::from_str(&filters).map_err(|e| DbErr::Custom(format!("alert filters: {e}")))?,
        metric: Metric::parse(&metric)
            .ok_or_else(|| DbErr::Custom(format!("unknown alert metric {metric:?}")))?,
        condition: Condition::parse(&condition)
            .ok_or_else(|| DbErr::Custom(format!("unknown alert condition {condition:?}")))?,
        threshold: row.try_get("threshold").map_err(db_err)?,
        window_minutes: u32::try_from(window).unwrap_or(1),
        min_attempts: u64::try_from(min_attempts).unwrap_or(0),
        webhook_url: row.try_get("webhook_url").map_err(db_err)?,
        signed: secret.is_some(),
        enabled: row.try_get("enabled").map_err(db_err)?,
        snoozed_until: row.try_get("snoozed_until").map_err(db_err)?,
        firing: row.try_get("firing").map_err(db_err)?,
        last_value: row.try_get("last_value").map_err(db_err)?,
        last_baseline: row.try_get("last_baseline").map_err(db_err)?,
        last_attempts: row.try_get("last_attempts").map_err(db_err)?,
        last_evaluated_at: row.try_get("last_evaluated_at").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
    };
    Ok((rule, secret))
}

fn taken(e: sqlx::Error, name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
            StoreError::NameTaken(name.to_string())
        }
        _ => StoreError::Database(db_err(e)),
    }
}

/// Saves a new rule (checked by the caller).
pub async fn create(db: &DatabaseConnection, spec: &RuleSpec) -> Result<Rule, StoreError> {
    let sql = rule_sql!(
        "INSERT INTO alert_rules (name, filters, metric, condition, threshold, window_minutes, min_attempts, webhook_url, webhook_secret, enabled) \
         VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING"
    );
    let row = bind_spec(sqlx::query(sql), spec)
        .fetch_one(db.get_postgres_connection_pool())
        .await
        .map_err(|e| taken(e, &spec.name))?;
    Ok(rule_of(&row)?.0)
}

/// Replaces rule `id`'s definition (its state stays; the next evaluation reads the new one).
pub async fn replace(db: &DatabaseConnection, id: i64, spec: &RuleSpec) -> Result<Option<Rule>, StoreError> {
    let sql = rule_sql!(
        "UPDATE alert_rules SET name = $1, filters = $2::jsonb, metric = $3, condition = $4, threshold = $5, \
         window_minutes = $6, min_attempts = $7, webhook_url = $8, webhook_secret = $9, enabled = $10, updated_at = now() \
         WHERE id = $11 RETURNING"
    );
    let row = bind_spec(sqlx::query(sql), spec)
        .bind(id)
        .fetch_optional(db.get_postgres_connection_pool())
        .await
        .map_err(|e| taken(e, &spec.name))?;
    Ok(row.map(|r| rule_of(&r)).transpose()?.map(|(rule, _)| rule))
}

fn bind_spec<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    spec: &'q RuleSpec,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(spec.name.trim().to_string())
        .bind(serde_json::to_string(&spec.filters).unwrap_or_else(|_| "{}".into()))
        .bind(spec.metric.as_str())
        .bind(spec.condition.as_str())
        .bind(spec.threshold)
        .bind(i32::try_from(spec.window_minutes).unwrap_or(i32::MAX))
        .bind(i64::try_from(spec.min_attempts).unwrap_or(i64::MAX))
        .bind(spec.webhook_url.as_deref())
        .bind(spec.webhook_secret.as_deref())
        .bind(spec.enabled)
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<Rule>, DbErr> {
    let rows = sqlx::query(rule_sql!("SELECT", "FROM alert_rules ORDER BY id"))
        .fetch_all(db.get_postgres_connection_pool())
        .await
        .map_err(db_err)?;
    rows.iter().map(|r| rule_of(r).map(|(rule, _)| rule)).collect()
}

/// Every enabled rule with its webhook secret, for an evaluation.
pub async fn enabled(db: &DatabaseConnection) -> Result<Vec<(Rule, Option<String>)>, DbErr> {
    let rows = sqlx::query(rule_sql!("SELECT", "FROM alert_rules WHERE enabled ORDER BY id"))
        .fetch_all(db.get_postgres_connection_pool())
        .await
        .map_err(db_err)?;
    rows.iter().map(rule_of).collect()
}

pub async fn get(db: &DatabaseConnection, id: i64) -> Result<Option<Rule>, DbErr> {
    let row = sqlx::query(rule_sql!("SELECT", "FROM alert_rules WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.get_postgres_connection_pool())
        .await
        .map_err(db_err)?;
    Ok(row.map(|r| rule_of(&r)).transpose()?.map(|(rule, _)| rule))
}

/// Deletes rule `id`; its events stay. `false` when there was none.
pub async fn delete(db: &DatabaseConnection, id: i64) -> Result<bool, DbErr> {
    let done = sqlx::query("DELETE FROM alert_rules WHERE id = $1")
        .bind(id)
        .execute(db.get_postgres_connection_pool())
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

/// Snoozes rule `id` until `until` (`None` wakes it).
pub async fn snooze(
    db: &DatabaseConnection,
    id: i64,
    until: Option<DateTime<Utc>>,
) -> Result<Option<Rule>, DbErr> {
    let row = sqlx::query(rule_sql!(
        "UPDATE alert_rules SET snoozed_until = $2, updated_at = now() WHERE id = $1 RETURNING"
    ))
    .bind(id)
    .bind(until)
    .fetch_optional(db.get_postgres_connection_pool())
    .await
    .map_err(db_err)?;
    Ok(row.map(|r| rule_of(&r)).transpose()?.map(|(rule, _)| rule))
}

/// Events, newest first, of one rule and one state if given.
pub async fn events(
    db: &DatabaseConnection,
    rule_id: Option<i64>,
    state: Option<&str>,
    limit: u32,
) -> Result<Vec<Event>, DbErr> {
    let rows = sqlx::query(
        "SELECT id, rule_id, rule_name, state, metric, value, baseline, threshold, attempts, window_from, window_to, at, \
                webhook_url IS NOT NULL AS notified, delivered_at, delivery_attempts, last_error \
         FROM alert_events WHERE ($1::int8 IS NULL OR rule_id = $1) AND ($2::text IS NULL OR state = $2) \
         ORDER BY at DESC, id DESC LIMIT $3",
    )
    .bind(rule_id)
    .bind(state)
    .bind(i64::from(limit))
    .fetch_all(db.get_postgres_connection_pool())
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                id: r.try_get("id").map_err(db_err)?,
                rule_id: r.try_get("rule_id").map_err(db_err)?,
                rule_name: r.try_get("rule_name").map_err(db_err)?,
                state: r.try_get("state").map_err(db_err)?,
                metric: r.try_get("metric").map_err(db_err)?,
                value: r.try_get("value").map_err(db_err)?,
                baseline: r.try_get("baseline").map_err(db_err)?,
                threshold: r.try_get("threshold").map_err(db_err)?,
                attempts: r.try_get("attempts").map_err(db_err)?,
                window_from: r.try_get("window_from").map_err(db_err)?,
                window_to: r.try_get("window_to").map_err(db_err)?,
                at: r.try_get("at").map_err(db_err)?,
                notified: r.try_get("notified").map_err(db_err)?,
                delivered_at: r.try_get("delivered_at").map_err(db_err)?,
                delivery_attempts: r.try_get("delivery_attempts").map_err(db_err)?,
                last_error: r.try_get("last_error").map_err(db_err)?,
            })
        })
        .collect()
}

/// Whether each rule fires now, by name, for the metrics.
pub async fn firing(db: &DatabaseConnection) -> Result<Vec<(String, bool)>, DbErr> {
    sqlx::query_as::<_, (String, bool)>("SELECT name, firing FROM alert_rules WHERE enabled")
        .fetch_all(db.get_postgres_connection_pool())
        .await
        .map_err(db_err)
}
