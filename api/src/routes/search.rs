//! `GET /search` and `GET /stats`, answered from Elasticsearch.
//!
//! Parameters are read from the raw query string, so that an unknown one (a typo that
//! would silently widen the query) is refused by name; they are also declared below so the
//! OpenAPI document lists them.

use super::Tag;
use crate::error::ApiError;
use crate::state::AppState;
use jobs::rollups::AnswerError;
use jobs::search::{
    DEFAULT_LIMIT, DEFAULT_TOP, Interval, MAX_LIMIT, MAX_TOP, ParamError, SearchError, SearchPage,
    SearchRequest, Sort, Stats, StatsRequest, parse_filters, parse_flag, validate_cursor,
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

/// An engine error as the answer to the client. A 400 from the engine is a query it refused
/// for what the client sent: the client's to fix, so a 400 naming the parameter when it can
/// be told; anything else (unreachable, overloaded, failing) is a 503 to retry.
/// `sent` pairs each parameter with the values of it the engine received.
fn engine_error(e: SearchError, sent: &[(&str, String)]) -> ApiError {
    match e {
        SearchError::Status { status: 400, body } if body.contains("too_many_buckets") => {
            ApiError::parameter(ParamError::new(
                "interval",
                "too fine for the data's time span; choose a coarser one",
            ))
        }
        SearchError::Status { status: 400, body } => {
            ApiError::invalid_query(refused_parameter(&body, sent), engine_reason(&body))
        }
        other => ApiError::unavailable("elasticsearch", other),
    }
}

/// The parameter a refusal is about: the cursor when the engine names `search_after`, or
/// the parameter whose value it quotes (it writes values in brackets: `failed to parse date
/// field [x]`).
fn refused_parameter<'a>(body: &str, sent: &[(&'a str, String)]) -> Option<&'a str> {
    if body.contains("search_after") && sent.iter().any(|(p, _)| *p == "cursor") {
        return Some("cursor");
    }
    sent.iter().find(|(_, v)| body.contains(&format!("[{v}]"))).map(|(p, _)| *p)
}

/// The engine's reason for a refusal, without the rest of its answer (index and node names).
fn engine_reason(body: &str) -> String {
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let error = parsed.get("error").unwrap_or(&parsed);
    let reason = error["root_cause"][0]["reason"].as_str().or_else(|| error["reason"].as_str());
    reason.unwrap_or("invalid query").chars().take(300).collect()
}

/// What of the filters reaches the engine as written by the client, for [`refused_parameter`].
fn sent_bounds(filters: &jobs::search::Filters) -> Vec<(&'static str, String)> {
    let mut sent = Vec::new();
    if let Some(from) = filters.from {
        sent.push(("from", from.to_rfc3339()));
    }
    if let Some(to) = filters.to {
        sent.push(("to", to.to_rfc3339()));
    }
    sent
}

fn last<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn whole(pairs: &[(String, String)], name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
    match last(pairs, name) {
        None => Ok(default),
        Some(v) => v.trim().parse::<usize>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
            ApiError::parameter(ParamError::new(
                name,
                format!("expected a whole number from 1 to {max}, got {v:?}"),
            ))
        }),
    }
}

/// `top`: 0 (no rankings, the default) to [`MAX_TOP`].
fn top_param(pairs: &[(String, String)]) -> Result<usize, ApiError> {
    match last(pairs, "top") {
        None => Ok(DEFAULT_TOP),
        Some(v) => v.trim().parse::<usize>().ok().filter(|n| *n <= MAX_TOP).ok_or_else(|| {
            ApiError::parameter(ParamError::new(
                "top",
                format!("expected a whole number from 0 to {MAX_TOP}, got {v:?}"),
            ))
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
        /// The callee's E.164 form (`+447400123456`), or a prefix ending in `*` (`+447*`).
        dest_e164: Query<Option<String>>,
        /// ISO 3166-1 alpha-2 country of the callee's number; comma-separate for several.
        dest_country: Query<Option<String>>,
        /// The callee's number type (`mobile`, `fixed_line`, `toll_free`, `premium_rate`, …,
        /// or `extension`, `sip_user`, `invalid`, `unresolved`, `empty`); comma-separate for several.
        dest_type: Query<Option<String>>,
        /// `start_time`, `duration` or `billsec`, with `:asc` or `:desc` (default `start_time:desc`).
        sort: Query<Option<String>>,
        /// Items per page, 1–1000 (default 50).
        limit: Query<Option<String>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<SearchResponse, ApiError> {
        let pairs = ApiError::query_pairs(req)?;
        let filters = parse_filters(&pairs, &["sort", "limit", "cursor"]).map_err(ApiError::parameter)?;
        let sort = last(&pairs, "sort")
            .map(Sort::parse)
            .transpose()
            .map_err(ApiError::parameter)?
            .unwrap_or_default();
        let request = SearchRequest {
            filters,
            sort,
            limit: whole(&pairs, "limit", DEFAULT_LIMIT, MAX_LIMIT)?,
            cursor: last(&pairs, "cursor").map(str::to_string),
        };
        let after = validate_cursor(&request).map_err(ApiError::parameter)?;
        let mut sent = sent_bounds(&request.filters);
        for value in after.iter().flat_map(|a| a.as_array().into_iter().flatten()) {
            sent.push(("cursor", value.to_string()));
        }
        let page = state.search.search_page(&request, after).await.map_err(|e| engine_error(e, &sent))?;
        Ok(SearchResponse::Ok(Json(page)))
    }

    /// KPIs over a window
    ///
    /// The same filters as `/search`, plus `interval` for the histogram and `top` for the
    /// number rankings. ASR = answered / attempts; ACD = billable seconds of answered calls /
    /// answered calls; NER = (answered + busy + no answer + rejected by the callee) /
    /// attempts. Ratios are null when undefined (no attempts, no answered call).
    ///
    /// Answered from the KPI rollups (constant cost at any data size, `answered_by:
    /// "rollups"`) when every filter is one of `source`, `direction`, `disposition`,
    /// `account_code`, the window's bounds fall on whole minutes (whole hours with
    /// `account_code`), and neither `top` nor `peak` is asked; otherwise from the CDRs in the
    /// search index (`answered_by: "index"`, with `fallback_reason`). Both give the same
    /// figures.
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
        dest_e164: Query<Option<String>>,
        dest_country: Query<Option<String>>,
        dest_type: Query<Option<String>>,
        /// minute, hour, day, week or month; by default chosen from the window.
        interval: Query<Option<String>>,
        /// Entries in `top_destinations` and `top_sources`, 0–100 (default 0: no rankings).
        top: Query<Option<String>>,
        /// `true` adds `peak_concurrent_calls`: the most calls in progress at once, sampled
        /// every `resolution_seconds` (one second for windows up to about 2¾ hours, at most
        /// 10,000 samples). It costs two more passes over the window's calls.
        peak: Query<Option<String>>,
        /// `dest_country` and/or `dest_type` (comma-separated): calls, minutes and money per
        /// destination country or number type; the first `top` with `top=N`, all otherwise.
        breakdown: Query<Option<String>>,
    ) -> Result<StatsResponse, ApiError> {
        let pairs = ApiError::query_pairs(req)?;
        let filters =
            parse_filters(&pairs, &["interval", "top", "peak", "breakdown"]).map_err(ApiError::parameter)?;
        let interval =
            last(&pairs, "interval").map(Interval::parse).transpose().map_err(ApiError::parameter)?;
        let top = top_param(&pairs)?;
        let mut request = StatsRequest::new(filters, interval, top).map_err(ApiError::parameter)?;
        request.peak = last(&pairs, "peak")
            .map(|v| parse_flag("peak", v))
            .transpose()
            .map_err(ApiError::parameter)?
            .unwrap_or(false);
        request.breakdowns = StatsRequest::parse_breakdowns(
            pairs.iter().filter(|(k, _)| k == "breakdown").map(|(_, v)| v.as_str()),
        )
        .map_err(ApiError::parameter)?;
        let sent = sent_bounds(&request.filters);
        let stats =
            jobs::rollups::answer(&state.rollups, &state.search, &request).await.map_err(|e| match e {
                AnswerError::Parameter(e) => ApiError::parameter(e),
                AnswerError::Search(e) => engine_error(e, &sent),
                other => ApiError::unavailable("elasticsearch", other),
            })?;
        Ok(StatsResponse::Ok(Json(stats)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::IntoResponse;

    fn answer(e: ApiError) -> (u16, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status().as_u16();
        let body = futures::executor::block_on(resp.into_body().into_json::<serde_json::Value>());
        (status, body.unwrap_or_default())
    }

    #[test]
    fn engine_refusals_are_400s_naming_the_parameter_and_outages_503s() {
        // As Elasticsearch answers a search_after value it cannot read.
        let refused = r#"{"error":{"root_cause":[{"type":"parse_exception","reason":"failed to parse date field [abc] with format [strict_date_optional_time||epoch_millis]"}],"type":"search_phase_execution_exception","failed_shards":[{"index":"secret-index"}]},"status":400}"#;
        let status = |status| SearchError::Status { status, body: refused.to_string() };
        let (code, body) =
            answer(engine_error(status(400), &[("from", "x".into()), ("cursor", "abc".into())]));
        assert_eq!((code, body["code"].as_str()), (400, Some("invalid_query")));
        assert_eq!(body["details"]["parameter"], "cursor");
        assert!(body["message"].as_str().unwrap_or_default().contains("failed to parse date field [abc]"));
        assert!(!body.to_string().contains("secret-index"), "{body}");
        // The parameter stays unnamed when the refusal does not tell it.
        let (code, body) = answer(engine_error(status(400), &[("from", "2026-01-01T00:00:00+00:00".into())]));
        assert_eq!((code, body["code"].as_str()), (400, Some("invalid_query")));
        assert!(body.get("details").is_none_or(serde_json::Value::is_null), "{body}");
        let (code, body) = answer(engine_error(
            SearchError::Status { status: 400, body: "search_after has 1 value(s) but sort has 2".into() },
            &[("cursor", "1".into())],
        ));
        assert_eq!((code, body["details"]["parameter"].as_str()), (400, Some("cursor")));
        // The engine's own trouble (down, overloaded, failing) stays a 503 to retry.
        for e in [status(500), status(429), SearchError::Unreachable("connection refused".into())] {
            let (code, body) = answer(engine_error(e, &[]));
            assert_eq!((code, body["code"].as_str()), (503, Some("search_unavailable")));
        }
        let (_, body) = answer(engine_error(
            SearchError::Status { status: 400, body: "{\"error\":{\"reason\":\"too_many_buckets\"}}".into() },
            &[],
        ));
        assert_eq!(body["details"]["parameter"], "interval");
    }
}
