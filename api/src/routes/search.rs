//! `GET /search` and `GET /stats`, answered from Elasticsearch.
//!
//! Parameters are read from the raw query string, so that an unknown one (a typo that
//! would silently widen the query) is refused by name; they are also declared below so the
//! OpenAPI document lists them.

use super::Tag;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use jobs::search::{
    DEFAULT_LIMIT, DEFAULT_TOP, Interval, MAX_LIMIT, ParamError, SearchError, SearchPage, SearchRequest,
    Sort, Stats, StatsRequest, parse_filters, parse_flag, validate_cursor,
};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

pub struct SearchApi;

#[derive(ApiResponse)]
pub enum SearchResponse {
    /// A page of matching CDRs (an empty list when nothing matches).
    #[oai(status = 200)]
    Ok(Json<SearchPage>),
}

#[derive(ApiResponse)]
pub enum StatsResponse {
    /// KPIs over the matching CDRs.
    #[oai(status = 200)]
    Ok(Json<Stats>),
}

fn param_error(e: ParamError) -> ApiError {
    ApiError::BadRequest(Json(ErrorBody {
        details: Some(serde_json::json!({ "parameter": e.parameter })),
        ..ErrorBody::new("invalid_parameter", format!("{}: {}", e.parameter, e.reason))
    }))
}

fn engine_error(e: SearchError) -> ApiError {
    match e {
        SearchError::Status { status: 400, body } if body.contains("too_many_buckets") => param_error(
            ParamError::new("interval", "too fine for the data's time span; choose a coarser one"),
        ),
        other => ApiError::unavailable("elasticsearch", other),
    }
}

fn query_pairs(req: &Request) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.uri().query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request("invalid_parameter", format!("unreadable query string: {e}")))
}

fn last<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn whole(pairs: &[(String, String)], name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
    match last(pairs, name) {
        None => Ok(default),
        Some(v) => v.trim().parse::<usize>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
            param_error(ParamError::new(name, format!("expected a whole number from 1 to {max}, got {v:?}")))
        }),
    }
}

#[OpenApi(tag = "Tag::Search")]
impl SearchApi {
    /// Search CDRs
    ///
    /// All filters are optional and combine with AND. Numbers match exactly, or by prefix
    /// with a trailing `*` (`dest_number=4420*`). `from`/`to` bound `start_time` (`to` is
    /// exclusive; a plain date as `to` includes that day). Pages follow `next_cursor`, which
    /// stays stable however deep the paging goes. An unknown parameter is a 400.
    #[allow(clippy::too_many_arguments, unused_variables)]
    #[oai(path = "/search", method = "get")]
    async fn search(
        &self,
        state: Data<&AppState>,
        req: &Request,
        /// Switch or tenant that sent the CDR.
        source: Query<Option<String>>,
        /// Calling number, or a prefix ending in `*`.
        src_number: Query<Option<String>>,
        /// Called number, or a prefix ending in `*`.
        dest_number: Query<Option<String>>,
        /// Earliest `start_time` (inclusive): RFC 3339 or `YYYY-MM-DD`. Alias: `start_date`.
        from: Query<Option<String>>,
        /// Latest `start_time` (exclusive): RFC 3339 or `YYYY-MM-DD` (whole day). Alias: `end_date`.
        to: Query<Option<String>>,
        /// Minimum duration in seconds.
        min_duration: Query<Option<String>>,
        /// Maximum duration in seconds.
        max_duration: Query<Option<String>>,
        /// Minimum billable seconds.
        min_billsec: Query<Option<String>>,
        /// ANSWERED, NO ANSWER, BUSY, FAILED or CONGESTION; repeat or comma-separate for several.
        disposition: Query<Vec<String>>,
        /// true or false.
        call_successful: Query<Option<String>>,
        direction: Query<Option<String>>,
        account_code: Query<Option<String>>,
        /// The switch's call id.
        call_id: Query<Option<String>>,
        /// `start_time`, `duration` or `billsec`, with `:asc` or `:desc` (default `start_time:desc`).
        sort: Query<Option<String>>,
        /// Items per page, 1–1000 (default 50).
        limit: Query<Option<String>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<SearchResponse, ApiError> {
        let pairs = query_pairs(req)?;
        let filters = parse_filters(&pairs, &["sort", "limit", "cursor"]).map_err(param_error)?;
        let sort =
            last(&pairs, "sort").map(Sort::parse).transpose().map_err(param_error)?.unwrap_or_default();
        let request = SearchRequest {
            filters,
            sort,
            limit: whole(&pairs, "limit", DEFAULT_LIMIT, MAX_LIMIT)?,
            cursor: last(&pairs, "cursor").map(str::to_string),
        };
        let after = validate_cursor(&request).map_err(param_error)?;
        let page = state.search.search_page(&request, after).await.map_err(engine_error)?;
        Ok(SearchResponse::Ok(Json(page)))
    }

    /// KPIs over a window
    ///
    /// The same filters as `/search`, plus `interval` for the histogram and `top` for the
    /// number rankings. ASR = answered / attempts; ACD = billable seconds of answered calls /
    /// answered calls; NER = (answered + busy + no answer + rejected by the callee) /
    /// attempts. Ratios are null when undefined (no attempts, no answered call).
    #[allow(clippy::too_many_arguments, unused_variables)]
    #[oai(path = "/stats", method = "get")]
    async fn stats(
        &self,
        state: Data<&AppState>,
        req: &Request,
        source: Query<Option<String>>,
        src_number: Query<Option<String>>,
        dest_number: Query<Option<String>>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        min_duration: Query<Option<String>>,
        max_duration: Query<Option<String>>,
        min_billsec: Query<Option<String>>,
        disposition: Query<Vec<String>>,
        call_successful: Query<Option<String>>,
        direction: Query<Option<String>>,
        account_code: Query<Option<String>>,
        call_id: Query<Option<String>>,
        /// minute, hour, day, week or month; by default chosen from the window.
        interval: Query<Option<String>>,
        /// Entries in `top_destinations` and `top_sources`, 1–100 (default 10).
        top: Query<Option<String>>,
        /// `true` adds `peak_concurrent_calls`: the most calls in progress at once, sampled
        /// every `resolution_seconds` (one second for windows up to about 2¾ hours, at most
        /// 10,000 samples). It costs two more passes over the window's calls.
        peak: Query<Option<String>>,
    ) -> Result<StatsResponse, ApiError> {
        let pairs = query_pairs(req)?;
        let filters = parse_filters(&pairs, &["interval", "top", "peak"]).map_err(param_error)?;
        let interval = last(&pairs, "interval").map(Interval::parse).transpose().map_err(param_error)?;
        let top = whole(&pairs, "top", DEFAULT_TOP, jobs::search::MAX_LIMIT.min(100))?;
        let mut request = StatsRequest::new(filters, interval, top).map_err(param_error)?;
        request.peak = last(&pairs, "peak")
            .map(|v| parse_flag("peak", v))
            .transpose()
            .map_err(param_error)?
            .unwrap_or(false);
        let stats = state.search.stats(&request).await.map_err(engine_error)?;
        Ok(StatsResponse::Ok(Json(stats)))
    }
}
