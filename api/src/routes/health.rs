//! `GET /healthz` and `GET /readyz`.

use super::Tag;
use crate::error::ApiError;
use crate::state::AppState;
use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, OpenApi};
use std::collections::BTreeMap;
use std::time::Duration;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct HealthApi;

#[derive(ApiResponse)]
pub enum Ready {
    /// Every dependency answered.
    #[oai(status = 200)]
    Ok(Json<BTreeMap<String, String>>),
}

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Liveness: the process answers
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Readiness: PostgreSQL, Redis and RabbitMQ each answer within 2 s
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self, state: Data<&AppState>) -> Result<Ready, ApiError> {
        let ingest_queue = jobs::job::queue_of::<jobs::ingest::IngestJob>(&state.publisher);
        let (db, redis, amqp) = tokio::join!(
            tokio::time::timeout(CHECK_TIMEOUT, jobs::db::ping(&state.db)),
            tokio::time::timeout(CHECK_TIMEOUT, state.jobs.ping()),
            tokio::time::timeout(CHECK_TIMEOUT, state.publisher.queue_depth(&ingest_queue)),
        );
        let mut report = BTreeMap::new();
        let mut down = None;
        let mut check = |name: &str, ok: Result<(), String>| {
            match ok {
                Ok(()) => report.insert(name.to_string(), "ok".to_string()),
                Err(e) => {
                    down.get_or_insert((name.to_string(), e.clone()));
                    report.insert(name.to_string(), e)
                }
            };
        };
        check("postgres", flatten(db.map(|r| r.map_err(|e| e.to_string()))));
        check("redis", flatten(redis.map(|r| r.map_err(|e| e.to_string()))));
        check("rabbitmq", flatten(amqp.map(|r| r.map(|_| ()).map_err(|e| e.to_string()))));
        match down {
            None => Ok(Ready::Ok(Json(report))),
            Some((name, e)) => Err(ApiError::unavailable(&name, e)),
        }
    }
}

fn flatten(r: Result<Result<(), String>, tokio::time::error::Elapsed>) -> Result<(), String> {
    r.unwrap_or_else(|_| Err("timed out".into()))
}
