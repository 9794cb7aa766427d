//! The OpenAPI document as served at `/schema` and inside the docs pages.
//!
//! poem-openapi writes the paths, parameters and schemas; this module adds what it cannot
//! know: who may call each operation. The security schemes go in `components`, and every
//! operation gets the `security` requirement, role list (`x-roles`), role sentence and
//! 401/403 answers that [`crate::auth::required_roles`] and [`crate::auth::accepts_basic`]
//! enforce, so what is enforced and what is documented come from one table. The pass is
//! generic over every path and method: an operation added later is covered without a line
//! here.

use crate::auth::{Role, accepts_basic, required_roles};
use poem::endpoint::make_sync;
use poem::http::Method;
use poem::web::Html;
use poem::{Endpoint, IntoResponse, Response};
use poem_openapi::{OpenApi, OpenApiService};
use serde_json::{Map, Value, json};

/// The bearer-token scheme.
pub const BEARER: &str = "bearerAuth";
/// HTTP Basic: any user name, a token as the password (the ingest routes only).
pub const BASIC: &str = "basicAuth";

/// The HTTP methods an OpenAPI path item can hold.
pub const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Who may call an operation, as the auth table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Open,
    /// A token of one of these roles.
    Roles(&'static [Role]),
    /// Open by default; needs one of these roles when `CDR_METRICS_PUBLIC=false`.
    OpenUnlessPrivate(&'static [Role]),
}

impl Access {
    /// The table's answer for a concrete request path, under both `CDR_METRICS_PUBLIC`
    /// settings, so the document is true whichever the server runs with.
    pub fn of(method: &Method, path: &str) -> Access {
        match (required_roles(true, method, path), required_roles(false, method, path)) {
            (None, None) => Access::Open,
            (None, Some(roles)) => Access::OpenUnlessPrivate(roles),
            (Some(roles), _) => Access::Roles(roles),
        }
    }

    /// Roles named in the document (`x-roles`); empty when the operation is open.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Access::Open => &[],
            Access::Roles(roles) | Access::OpenUnlessPrivate(roles) => roles,
        }
    }
}

/// A concrete path for a path template: each `{parameter}` becomes a sample value, so the
/// template can be matched against the auth table (`/jobs/{id}` → `/jobs/sample`).
pub fn sample_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| if segment.starts_with('{') && segment.ends_with('}') { "sample" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a concrete path is an instance of a path template: `/jobs/abc` of `/jobs/{id}`.
pub fn template_matches(template: &str, path: &str) -> bool {
    let mut parts = path.split('/');
    let all = template.split('/').all(|segment| match parts.next() {
        Some(part) if segment.starts_with('{') && segment.ends_with('}') => !part.is_empty(),
        Some(part) => part == segment,
        None => false,
    });
    all && parts.next().is_none()
}

/// `a`, `a` or `b`, `a`, `b` or `c`, each in backquotes.
fn role_names(roles: &[Role]) -> String {
    let names: Vec<String> = roles.iter().map(|r| format!("`{}`", r.name())).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// "the `read` or `admin` roles"
fn the_roles(roles: &[Role]) -> String {
    let plural = if roles.len() == 1 { "role" } else { "roles" };
    format!("the {} {plural}", role_names(roles))
}

/// What the operation's description gains, and its `security` requirement.
fn describe(access: Access, basic: bool) -> (String, Value) {
    let mut schemes = vec![json!({ BEARER: [] })];
    if basic {
        schemes.push(json!({ BASIC: [] }));
    }
    let basic_note = if basic {
        " A bearer token, or HTTP Basic credentials with any user name and a token as the password."
    } else {
        ""
    };
    match access {
        Access::Open => ("Open: no token needed.".to_string(), json!([])),
        Access::Roles(roles) => {
            (format!("Requires {}.{basic_note}", the_roles(roles)), Value::Array(schemes))
        }
        Access::OpenUnlessPrivate(roles) => {
            // `{}` first: no credentials at all also satisfies the requirement.
            let mut alternatives = vec![json!({})];
            alternatives.extend(schemes);
            (
                format!(
                    "Open by default; with `CDR_METRICS_PUBLIC=false`, requires {}.{basic_note}",
                    the_roles(roles)
                ),
                Value::Array(alternatives),
            )
        }
    }
}

fn error_response(description: &str, www_authenticate: bool) -> Value {
    let mut response = json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
    });
    if www_authenticate {
        response["headers"] = json!({
            "WWW-Authenticate": {
                "description": "The schemes the operation takes: `Bearer`, and `Basic realm=\"cdr\"` where Basic credentials are taken.",
                "required": true,
                "schema": { "type": "string" }
            }
        });
    }
    response
}

/// Adds the security schemes, and to every operation its security requirement, roles and
/// 401/403 answers. `auth_disabled` adds a note that this instance enforces none of it.
pub fn secure(doc: &mut Value, auth_disabled: bool) {
    let components = doc.as_object_mut().map(|d| d.entry("components").or_insert_with(|| json!({})));
    if let Some(Value::Object(components)) = components {
        components.insert(
            "securitySchemes".into(),
            json!({
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token of `CDR_AUTH_TOKENS`: `Authorization: Bearer <token>`. Its role (`ingest`, `read` or `admin`) decides what it may do."
                },
                BASIC: {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Any user name, a token as the password: for switches whose HTTP clients can only send a user and a password. Taken only by the operations that list it."
                }
            }),
        );
    }
    if auth_disabled && let Some(info) = doc.get_mut("info").and_then(Value::as_object_mut) {
        let text = info.get("description").and_then(Value::as_str).unwrap_or("").to_string();
        info.insert(
            "description".into(),
            Value::String(format!(
                "{text}\n\nThis instance runs without authentication (local development): the security requirements below are not enforced here."
            )),
        );
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (template, item) in paths.iter_mut() {
        let path = sample_path(template);
        let Some(item) = item.as_object_mut() else { continue };
        for (name, operation) in item.iter_mut() {
            let Some(operation) = operation.as_object_mut() else { continue };
            let Ok(method) = Method::from_bytes(name.to_ascii_uppercase().as_bytes()) else { continue };
            if !METHODS.contains(&name.as_str()) {
                continue;
            }
            secure_operation(operation, Access::of(&method, &path), accepts_basic(&method, &path));
        }
    }
}

fn secure_operation(operation: &mut Map<String, Value>, access: Access, basic: bool) {
    let (sentence, security) = describe(access, basic);
    let description = match operation.get("description").and_then(Value::as_str) {
        Some(text) if !text.is_empty() => format!("{text}\n\n{sentence}"),
        _ => sentence,
    };
    operation.insert("description".into(), Value::String(description));
    operation.insert("security".into(), security);
    operation.insert("x-roles".into(), json!(access.roles().iter().map(|r| r.name()).collect::<Vec<_>>()));
    if access == Access::Open {
        return;
    }
    if let Some(Value::Object(responses)) = operation.get_mut("responses") {
        responses
            .entry("401")
            .or_insert_with(|| error_response("No valid credentials (`code`: `unauthorized`).", true));
        responses.entry("403").or_insert_with(|| {
            error_response("The token's role may not do this (`code`: `forbidden`).", false)
        });
    }
}

/// The served document and the docs pages that embed it.
#[derive(Clone)]
pub struct Docs {
    /// The document, secured.
    pub document: Value,
    json: String,
    swagger_ui: String,
    redoc: String,
}

impl Docs {
    /// Builds the document from poem-openapi's, and the Swagger UI and ReDoc pages around it
    /// (poem-openapi's own pages and assets, with its document swapped for this one).
    pub fn new<T: OpenApi>(api: &OpenApiService<T, ()>, auth_disabled: bool) -> Docs {
        let original = api.spec();
        let mut document: Value =
            serde_json::from_str(&original).expect("poem-openapi writes its document as JSON");
        secure(&mut document, auth_disabled);
        let json = serde_json::to_string_pretty(&document).expect("a JSON value serialises");
        // Inside a <script> element, `</` could end the script early; `<\/` is the same JSON.
        let embedded = json.replace("</", "<\\/");
        Docs {
            swagger_ui: embed(api.swagger_ui_html(), &original, &embedded),
            redoc: embed(api.redoc_html(), &original, &embedded),
            document,
            json,
        }
    }

    /// `GET /schema`.
    pub fn spec_endpoint(&self) -> impl Endpoint + 'static {
        let json = self.json.clone();
        make_sync(move |_| {
            Response::builder().content_type("application/json; charset=utf-8").body(json.clone())
        })
    }

    /// `GET /schema/swagger-ui`.
    pub fn swagger_ui(&self) -> impl Endpoint + 'static {
        let html = self.swagger_ui.clone();
        make_sync(move |_| Html(html.clone()).into_response())
    }

    /// `GET /schema/redoc`.
    pub fn redoc(&self) -> impl Endpoint + 'static {
        let html = self.redoc.clone();
        make_sync(move |_| Html(html.clone()).into_response())
    }
}

/// Swaps the document poem-openapi embedded in a page for ours. poem-openapi has no public
/// function that builds a page from a given document; its page is its template with the
/// document pasted in verbatim, once.
fn embed(page: String, original: &str, document: &str) -> String {
    assert_eq!(
        page.matches(original).count(),
        1,
        "poem-openapi no longer embeds its document verbatim in its docs pages"
    );
    page.replacen(original, document, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_sample_paths() {
        assert_eq!(sample_path("/jobs/{id}"), "/jobs/sample");
        assert_eq!(sample_path("/jobs/{id}/retry"), "/jobs/sample/retry");
        assert_eq!(sample_path("/search"), "/search");
        assert!(template_matches("/jobs/{id}", "/jobs/abc"));
        assert!(template_matches("/jobs/{id}/retry", "/jobs/abc/retry"));
        assert!(!template_matches("/jobs/{id}", "/jobs/"));
        assert!(!template_matches("/jobs/{id}", "/jobs/a/b"));
        assert!(!template_matches("/jobs/{id}", "/jobs"));
    }

    #[test]
    fn access_follows_the_table() {
        assert_eq!(Access::of(&Method::GET, "/healthz"), Access::Open);
        assert_eq!(Access::of(&Method::POST, "/reindex"), Access::Roles(&[Role::Admin]));
        assert_eq!(
            Access::of(&Method::GET, "/metrics"),
            Access::OpenUnlessPrivate(&[Role::Read, Role::Admin])
        );
    }

    #[test]
    fn operations_get_requirements_roles_and_answers() {
        let mut doc = json!({
            "info": { "title": "t", "version": "1" },
            "paths": {
                "/cdrs": { "post": { "responses": {} } },
                "/jobs/{id}": { "get": { "description": "Get a job.", "responses": {} } },
                "/healthz": { "get": { "responses": {} } },
                "/metrics": { "get": { "responses": {} } }
            }
        });
        secure(&mut doc, true);
        assert_eq!(doc["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        assert_eq!(doc["components"]["securitySchemes"][BASIC]["scheme"], "basic");
        assert!(doc["info"]["description"].as_str().unwrap().contains("without authentication"));

        let post = &doc["paths"]["/cdrs"]["post"];
        assert_eq!(post["security"], json!([{ BEARER: [] }, { BASIC: [] }]));
        assert_eq!(post["x-roles"], json!(["ingest", "admin"]));
        assert!(post["description"].as_str().unwrap().starts_with("Requires the `ingest` or `admin` roles."));
        assert_eq!(post["responses"]["401"]["headers"]["WWW-Authenticate"]["required"], true);
        assert!(post["responses"]["403"].is_object());

        let job = &doc["paths"]["/jobs/{id}"]["get"];
        assert_eq!(job["security"], json!([{ BEARER: [] }]));
        assert_eq!(job["description"], "Get a job.\n\nRequires the `ingest`, `read` or `admin` roles.");

        let health = &doc["paths"]["/healthz"]["get"];
        assert_eq!(health["security"], json!([]));
        assert_eq!(health["x-roles"], json!([]));
        assert!(health["responses"].get("401").is_none());

        let metrics = &doc["paths"]["/metrics"]["get"];
        assert_eq!(metrics["security"], json!([{}, { BEARER: [] }]));
        assert!(metrics["description"].as_str().unwrap().contains("`CDR_METRICS_PUBLIC=false`, requires"));
    }

    #[test]
    fn the_page_embeds_the_new_document() {
        let page = "<script>let spec = {\"a\": 1};</script>".to_string();
        assert_eq!(embed(page, "{\"a\": 1}", "{\"b\": 2}"), "<script>let spec = {\"b\": 2};</script>");
    }
}
