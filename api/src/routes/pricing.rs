//! `/dialling-plans` and `/rate-decks`: how each source writes numbers, and what calls cost.

use super::Tag;
use super::cdrs::{invalid_parameter, read_body};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use jobs::numbers::DiallingPlanSpec;
use jobs::numbers::plans;
use jobs::rating::deck::read_deck;
use jobs::rating::store::{self as decks, DeckSummary, SaveError};
use jobs::rating::{AppliesTo, Side};
use poem::Body;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};

use super::sync::{ReindexResponse, start_rebuild};
use jobs::rating::rerate::RerateScope;
use jobs::reindex::ReindexJob;
use jobs::search::{ParamError, parse_filters};

pub struct PricingApi;

/// Most bytes a rate deck may have (a 50,000-prefix deck is about 3 MB).
const MAX_DECK_BYTES: usize = 64 * 1024 * 1024;

/// A source's dialling plan with the source it belongs to.
#[derive(Debug, Object)]
pub struct NamedPlan {
    /// The source (`*`: every source without a plan of its own).
    pub source: String,
    pub plan: DiallingPlanSpec,
}

#[derive(Debug, Object)]
pub struct PlanList {
    pub items: Vec<NamedPlan>,
}

#[derive(ApiResponse)]
pub enum PlanListResponse {
    #[oai(status = 200)]
    Ok(Json<PlanList>),
}

#[derive(ApiResponse)]
pub enum PlanResponse {
    #[oai(status = 200)]
    Ok(Json<NamedPlan>),
}

#[derive(ApiResponse)]
pub enum DeletePlanResponse {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

/// A rate deck file.
#[derive(ApiRequest)]
pub enum DeckBody {
    /// `prefix,destination,rate_per_minute,connect_fee,min_seconds,increment_seconds,currency`.
    #[oai(content_type = "text/csv")]
    Csv(Binary<Body>),
}

#[derive(Debug, Object)]
pub struct DeckList {
    pub items: Vec<DeckSummary>,
}

#[derive(ApiResponse)]
pub enum DeckListResponse {
    #[oai(status = 200)]
    Ok(Json<DeckList>),
}

#[derive(ApiResponse)]
pub enum DeckCreated {
    /// Saved; calls ingested from now on are priced by it where it applies. Calls already
    /// stored keep their price until a re-rate (`POST /rerate`).
    #[oai(status = 201)]
    Created(Json<DeckSummary>),
}

fn unprocessable(code: ErrorCode, message: impl Into<String>, details: serde_json::Value) -> ApiError {
    ApiError::Unprocessable(Json(ErrorBody { details: Some(details), ..ErrorBody::new(code, message) }))
}

fn required<'a>(name: &str, value: &'a Option<String>) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid_parameter(name, "required"))
}

#[OpenApi(tag = "Tag::Pricing")]
impl PricingApi {
    /// List dialling plans
    #[oai(path = "/dialling-plans", method = "get")]
    async fn list_plans(&self, state: Data<&AppState>) -> Result<PlanListResponse, ApiError> {
        let saved = plans::list(&state.db).await.map_err(|e| ApiError::unavailable("postgresql", e))?;
        let items = saved.into_iter().map(|(source, plan)| NamedPlan { source, plan }).collect();
        Ok(PlanListResponse::Ok(Json(PlanList { items })))
    }

    /// Get a source's dialling plan
    #[oai(path = "/dialling-plans/:source", method = "get")]
    async fn get_plan(&self, state: Data<&AppState>, source: Path<String>) -> Result<PlanResponse, ApiError> {
        let saved = plans::list(&state.db).await.map_err(|e| ApiError::unavailable("postgresql", e))?;
        match saved.into_iter().find(|(s, _)| *s == source.0) {
            Some((source, plan)) => Ok(PlanResponse::Ok(Json(NamedPlan { source, plan }))),
            None => Err(ApiError::not_found(format!("no dialling plan for source {:?}", source.0))),
        }
    }

    /// Save a source's dialling plan
    ///
    /// How the source's switch writes numbers that are not international: its home country
    /// (national numbers and the country's own trunk and international prefixes), extra
    /// international or trunk prefixes, and tech or routing prefixes to strip. Source `*`
    /// applies to every source without a plan of its own. CDRs ingested from now on are
    /// normalised by it; stored ones keep their derived values until a re-rate.
    #[oai(path = "/dialling-plans/:source", method = "put")]
    async fn put_plan(
        &self,
        state: Data<&AppState>,
        source: Path<String>,
        plan: Json<DiallingPlanSpec>,
    ) -> Result<PlanResponse, ApiError> {
        if source.0.is_empty() || source.0.len() > 255 {
            return Err(invalid_parameter("source", "1 to 255 characters"));
        }
        if let Err(e) = plan.0.plan() {
            return Err(unprocessable(
                ErrorCode::Unprocessable,
                format!("{}: {}", e.field, e.reason),
                serde_json::json!({ "field": e.field }),
            ));
        }
        plans::put(&state.db, &source.0, &plan.0)
            .await
            .map_err(|e| ApiError::unavailable("postgresql", e))?;
        Ok(PlanResponse::Ok(Json(NamedPlan { source: source.0, plan: plan.0 })))
    }

    /// Delete a source's dialling plan
    #[oai(path = "/dialling-plans/:source", method = "delete")]
    async fn delete_plan(
        &self,
        state: Data<&AppState>,
        source: Path<String>,
    ) -> Result<DeletePlanResponse, ApiError> {
        match plans::delete(&state.db, &source.0).await {
            Ok(true) => Ok(DeletePlanResponse::Deleted),
            Ok(false) => Err(ApiError::not_found(format!("no dialling plan for source {:?}", source.0))),
            Err(e) => Err(ApiError::unavailable("postgresql", e)),
        }
    }

    /// List rate deck versions
    #[oai(path = "/rate-decks", method = "get")]
    async fn list_decks(&self, state: Data<&AppState>) -> Result<DeckListResponse, ApiError> {
        let items = decks::list(&state.db).await.map_err(|e| ApiError::unavailable("postgresql", e))?;
        Ok(DeckListResponse::Ok(Json(DeckList { items })))
    }

    /// Upload a rate deck version
    ///
    /// A CSV price list with the header
    /// `prefix,destination,rate_per_minute,connect_fee,min_seconds,increment_seconds,currency`.
    /// A call is priced by the longest prefix of its E.164 destination, in the version in
    /// force at its start: `connect_fee` plus `rate_per_minute` over the billed seconds (at
    /// least `min_seconds`, then whole `increment_seconds`: 60/60, 1/1, 30/6), rounded to 6
    /// places; unanswered calls cost nothing. Versions are never edited: upload a new one with
    /// a later `effective_from`. The sell side prices customers (`applies_to=account:<code>`),
    /// the buy side carriers (`applies_to=source:<name>`); `all` prices every call no more
    /// specific deck does. Every deck shares one currency.
    #[oai(path = "/rate-decks", method = "post")]
    async fn post_deck(
        &self,
        state: Data<&AppState>,
        /// A name for people (`EU wholesale 2026-12`).
        name: Query<Option<String>>,
        /// `sell` (the customer's price) or `buy` (the carrier's cost).
        side: Query<Option<String>>,
        /// `account:<code>`, `source:<name>` or `all`.
        applies_to: Query<Option<String>>,
        /// RFC 3339: calls starting from this instant on are priced by this version.
        effective_from: Query<Option<String>>,
        body: DeckBody,
    ) -> Result<DeckCreated, ApiError> {
        let name = required("name", &name.0)?;
        if name.len() > 255 {
            return Err(invalid_parameter("name", "longer than 255 characters"));
        }
        let side: Side = required("side", &side.0)?.parse().map_err(|e| invalid_parameter("side", e))?;
        let applies_to: AppliesTo =
            required("applies_to", &applies_to.0)?.parse().map_err(|e| invalid_parameter("applies_to", e))?;
        let effective_from =
            chrono::DateTime::parse_from_rfc3339(required("effective_from", &effective_from.0)?)
                .map_err(|e| invalid_parameter("effective_from", format!("not RFC 3339: {e}")))?
                .to_utc();
        let DeckBody::Csv(Binary(body)) = body;
        let bytes = read_body(body, MAX_DECK_BYTES).await?;
        let deck = read_deck(&bytes).map_err(|e| {
            unprocessable(
                ErrorCode::InvalidRecords,
                format!("rate deck refused: {e}"),
                serde_json::json!({ "line": e.line, "field": e.field }),
            )
        })?;
        match decks::save(&state.db, name, side, &applies_to, effective_from, &deck).await {
            Ok(summary) => {
                tracing::info!(deck = summary.id, side = side.as_str(), %applies_to, prefixes = summary.prefixes, "rate deck saved");
                Ok(DeckCreated::Created(Json(summary)))
            }
            Err(e @ SaveError::Exists { .. }) => {
                Err(ApiError::Conflict(Json(ErrorBody::new(ErrorCode::Conflict, e.to_string()))))
            }
            Err(e @ SaveError::Currency { .. }) => Err(unprocessable(
                ErrorCode::Unprocessable,
                e.to_string(),
                serde_json::json!({ "field": "currency" }),
            )),
            Err(SaveError::Database(e)) => Err(ApiError::unavailable("postgresql", e)),
        }
    }

    /// Re-rate stored calls
    ///
    /// Prices the calls starting in `[from, to)` again (of one account or source when given)
    /// by the dialling plans and rate decks of now, after a deck or plan changed: their
    /// numbers and prices are updated where they changed, the previous price kept in
    /// `rating_history`, the KPI rollups and the search index follow. A job on the rebuild
    /// queue (`kind: "rerate"`): progress (`rerate.scanned`, `rerate.changed`) in
    /// `/jobs/{id}`; committed chunk by chunk, so a killed re-rate resumes where it stopped
    /// and never counts a call twice. 409 while another re-rate runs.
    #[allow(unused_variables)]
    #[oai(path = "/rerate", method = "post")]
    async fn rerate(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        /// Earliest `start_time` (inclusive): RFC 3339 or `YYYY-MM-DD`.
        from: Query<Option<String>>,
        /// Latest `start_time` (exclusive): RFC 3339 or `YYYY-MM-DD` (that whole day).
        to: Query<Option<String>>,
        account_code: Query<Option<String>>,
        source: Query<Option<String>>,
    ) -> Result<ReindexResponse, ApiError> {
        let pairs = ApiError::query_pairs(req)?;
        let known = ["from", "to", "account_code", "source"];
        if let Some((name, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(ApiError::parameter(ParamError::new(
                name,
                format!("unknown parameter; known: {}", known.join(", ")),
            )));
        }
        let filters = parse_filters(&pairs, &[]).map_err(ApiError::parameter)?;
        let (Some(from), Some(to)) = (filters.from, filters.to) else {
            let missing = if filters.from.is_none() { "from" } else { "to" };
            return Err(invalid_parameter(missing, "required: a re-rate covers a bounded window"));
        };
        let scope = RerateScope { from, to, account_code: filters.account_code, source: filters.source };
        start_rebuild(&state, ReindexJob::rerate(scope)).await
    }
}
