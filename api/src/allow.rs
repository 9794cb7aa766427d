//! `Allow` on every 405 answer (RFC 9110 §15.5.6): the methods the resource has.
//!
//! poem's router answers 405 without saying which methods the path takes, so this
//! middleware names them: the methods of the OpenAPI document's path (any operation added
//! later is covered), plus those of the plain routes the application also serves. `HEAD` is
//! listed wherever `GET` is, since the router answers it with the `GET` handler.

use crate::openapi::{METHODS, template_matches};
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use serde_json::Value;
use std::sync::Arc;

/// A path template (`/jobs/{id}`) and the methods it takes.
#[derive(Debug, Clone)]
struct Resource {
    template: String,
    allow: HeaderValue,
}

impl Resource {
    fn new(template: &str, methods: &[Method]) -> Option<Resource> {
        let mut names: Vec<&str> = methods.iter().map(Method::as_str).collect();
        if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            names.push("HEAD");
        }
        let allow = HeaderValue::from_str(&names.join(", ")).ok()?;
        Some(Resource { template: template.to_string(), allow })
    }
}

/// Adds `Allow` to 405 answers; build it with [`AllowHeader::from_document`].
#[derive(Debug, Clone, Default)]
pub struct AllowHeader {
    resources: Arc<Vec<Resource>>,
}

impl AllowHeader {
    /// Every path of an OpenAPI document with its documented methods.
    pub fn from_document(document: &Value) -> AllowHeader {
        let mut resources = Vec::new();
        if let Some(paths) = document.get("paths").and_then(Value::as_object) {
            for (template, item) in paths {
                let methods: Vec<Method> = item
                    .as_object()
                    .into_iter()
                    .flat_map(|item| item.keys())
                    .filter(|name| METHODS.contains(&name.as_str()))
                    .filter_map(|name| Method::from_bytes(name.to_ascii_uppercase().as_bytes()).ok())
                    .collect();
                resources.extend(Resource::new(template, &methods));
            }
        }
        AllowHeader { resources: Arc::new(resources) }
    }

    /// A route served outside the document.
    #[must_use]
    pub fn route(mut self, path: &str, methods: &[Method]) -> AllowHeader {
        Arc::make_mut(&mut self.resources).extend(Resource::new(path, methods));
        self
    }

    fn allow(&self, path: &str) -> Option<&HeaderValue> {
        self.resources.iter().find(|r| template_matches(&r.template, path)).map(|r| &r.allow)
    }
}

impl<E: Endpoint> Middleware<E> for AllowHeader {
    type Output = AllowHeaderEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AllowHeaderEndpoint { inner: ep, allow: self.clone() }
    }
}

pub struct AllowHeaderEndpoint<E> {
    inner: E,
    allow: AllowHeader,
}

impl<E: Endpoint> Endpoint for AllowHeaderEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let allow = self.allow.allow(req.uri().path()).cloned();
        let mut resp = match self.inner.call(req).await {
            Ok(out) => out.into_response(),
            Err(err) => err.into_response(),
        };
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && !resp.headers().contains_key(header::ALLOW)
            && let Some(allow) = allow
        {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_match_concrete_paths() {
        let allow = AllowHeader::from_document(&json!({
            "paths": {
                "/jobs/{id}": { "get": {}, "parameters": [] },
                "/jobs/{id}/retry": { "post": {} },
                "/cdrs": { "post": {}, "summary": "x" }
            }
        }))
        .route("/metrics", &[Method::GET]);
        assert_eq!(allow.allow("/jobs/abc").map(|v| v.to_str().unwrap()), Some("GET, HEAD"));
        assert_eq!(allow.allow("/jobs/abc/retry").map(|v| v.to_str().unwrap()), Some("POST"));
        assert_eq!(allow.allow("/cdrs").map(|v| v.to_str().unwrap()), Some("POST"));
        assert_eq!(allow.allow("/metrics").map(|v| v.to_str().unwrap()), Some("GET, HEAD"));
        assert!(allow.allow("/jobs/").is_none());
        assert!(allow.allow("/jobs/a/b").is_none());
        assert!(allow.allow("/nowhere").is_none());
    }
}
