//! An empty query value is an absent one, wherever the document allows the empty string.
//!
//! Forms and generated clients send `?source=` for a field left blank. Where the OpenAPI
//! document admits an empty string for a query parameter (a plain `string`, or an array of
//! them), `?source=` or a bare `?source` means "no value" and the parameter's default
//! applies. Where the document forbids it (an integer, an enum, a pattern), the empty
//! value is left in place and refused with a 400, as the document says. The rule is read
//! from the document, so parameters added later follow it without a line here.

use crate::openapi::{METHODS, template_matches};
use poem::http::Uri;
use poem::{Endpoint, Middleware, Request};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Whether a parameter schema admits `""`; a reference or any constraint counts as no.
fn admits_empty(schema: &Value) -> bool {
    const CONSTRAINTS: [&str; 6] = ["$ref", "enum", "pattern", "format", "allOf", "oneOf"];
    let Some(schema) = schema.as_object() else { return false };
    if CONSTRAINTS.iter().any(|k| schema.contains_key(*k))
        || schema.get("minLength").and_then(Value::as_u64).is_some_and(|n| n > 0)
    {
        return false;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => true,
        Some("array") => schema.get("items").is_some_and(admits_empty),
        _ => false,
    }
}

/// The query string without the empty-valued pairs of `names`; `None` when nothing goes.
pub fn without_empty_values(query: &str, names: &BTreeSet<String>) -> Option<String> {
    let keep: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            !(value.is_empty() && (name.is_empty() || names.contains(name)))
        })
        .collect();
    let kept = keep.join("&");
    (kept.len() != query.len()).then_some(kept)
}

/// Removes empty values of the parameters that admit them, before routing.
#[derive(Debug, Clone, Default)]
pub struct EmptyValuesAbsent {
    /// Path template, method and the query parameters whose empty value is dropped.
    routes: Arc<Vec<(String, String, BTreeSet<String>)>>,
}

impl EmptyValuesAbsent {
    pub fn from_document(document: &Value) -> EmptyValuesAbsent {
        let mut routes = Vec::new();
        for (template, item) in document.get("paths").and_then(Value::as_object).into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                if !METHODS.contains(&method.as_str()) {
                    continue;
                }
                let names: BTreeSet<String> = operation
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query" && admits_empty(&p["schema"]))
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect();
                routes.push((template.clone(), method.to_ascii_uppercase(), names));
            }
        }
        EmptyValuesAbsent { routes: Arc::new(routes) }
    }

    fn names(&self, method: &str, path: &str) -> Option<&BTreeSet<String>> {
        self.routes.iter().find(|(t, m, _)| m == method && template_matches(t, path)).map(|(_, _, n)| n)
    }
}

impl<E: Endpoint> Middleware<E> for EmptyValuesAbsent {
    type Output = EmptyValuesAbsentEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        EmptyValuesAbsentEndpoint { inner: ep, rule: self.clone() }
    }
}

pub struct EmptyValuesAbsentEndpoint<E> {
    inner: E,
    rule: EmptyValuesAbsent,
}

impl<E: Endpoint> Endpoint for EmptyValuesAbsentEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let method = if req.method() == poem::http::Method::HEAD { "GET" } else { req.method().as_str() };
        if let Some(query) = req.uri().query()
            && let Some(names) = self.rule.names(method, req.uri().path())
            && let Some(kept) = without_empty_values(query, names)
        {
            let path = req.uri().path();
            let path_and_query = if kept.is_empty() { path.to_string() } else { format!("{path}?{kept}") };
            let mut parts = req.uri().clone().into_parts();
            if let Ok(pq) = path_and_query.parse() {
                parts.path_and_query = Some(pq);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_values_of_named_parameters_go() {
        let names: BTreeSet<String> = ["source", "disposition"].map(String::from).into();
        assert_eq!(without_empty_values("source=&limit=5", &names).as_deref(), Some("limit=5"));
        assert_eq!(without_empty_values("source", &names).as_deref(), Some(""));
        assert_eq!(without_empty_values("source=a&&disposition=", &names).as_deref(), Some("source=a"));
        assert_eq!(without_empty_values("limit=&source=%20", &names), None);
        assert_eq!(without_empty_values("source=a", &names), None);
    }

    #[test]
    fn the_document_says_which_parameters_admit_empty() {
        let rule = EmptyValuesAbsent::from_document(&json!({ "paths": { "/jobs": { "get": { "parameters": [
            { "name": "source", "in": "query", "schema": { "type": "string" } },
            { "name": "tags", "in": "query", "schema": { "type": "array", "items": { "type": "string" } } },
            { "name": "limit", "in": "query", "schema": { "type": "integer" } },
            { "name": "status", "in": "query", "schema": { "$ref": "#/components/schemas/S" } },
            { "name": "code", "in": "query", "schema": { "type": "string", "minLength": 1 } },
            { "name": "id", "in": "path", "schema": { "type": "string" } }
        ] } } } }));
        let names = rule.names("GET", "/jobs").unwrap();
        assert_eq!(names.iter().collect::<Vec<_>>(), ["source", "tags"]);
        assert!(rule.names("POST", "/jobs").is_none());
    }
}
