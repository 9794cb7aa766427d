//! The OpenAPI document and the docs pages, served from the binary.

use crate::common::TestApp;
use poem::http::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint_and_the_pages_render_offline() {
    let app = TestApp::new().await;
    let resp = app.client.get("/schema").send().await;
    resp.assert_status_is_ok();
    let spec = resp.json().await.value().deserialize::<Value>();
    assert!(spec["openapi"].as_str().expect("version").starts_with("3."));
    let paths = spec["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/cdrs", "post"),
        ("/jobs/{id}", "get"),
        ("/search", "get"),
        ("/stats", "get"),
        ("/sync-status", "get"),
        ("/reindex", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing");
    }
    let search_params: Vec<&str> = paths["/search"]["get"]["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["source", "dest_number", "from", "to", "disposition", "sort", "limit", "cursor"] {
        assert!(search_params.contains(&p), "/search parameter {p} undocumented");
    }
    // An export takes exactly the filters /search takes (so an empty one means the same).
    let export_params: Vec<&str> = paths["/exports"]["post"]["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    let mut expected: Vec<&str> =
        search_params.iter().copied().filter(|p| !["sort", "limit", "cursor"].contains(p)).collect();
    expected.extend(["format", "columns"]);
    assert_eq!(export_params, expected);
    assert!(paths["/exports/{id}/download"]["get"]["responses"].get("206").is_some());
    let post = &paths["/cdrs"]["post"]["responses"];
    for status in ["202", "400", "413", "422", "503"] {
        assert!(post.get(status).is_some(), "POST /cdrs {status} undocumented");
    }

    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(
        schemes["bearerAuth"],
        serde_json::json!({
            "type": "http", "scheme": "bearer", "description": schemes["bearerAuth"]["description"]
        })
    );
    assert_eq!(schemes["basicAuth"]["type"], "http");
    assert_eq!(schemes["basicAuth"]["scheme"], "basic");
    let search = &paths["/search"]["get"];
    assert_eq!(search["security"], serde_json::json!([{ "bearerAuth": [] }]));
    assert!(search["description"].as_str().expect("text").contains("Requires the `read` or `admin` roles."));
    assert!(search["responses"]["401"]["headers"].get("WWW-Authenticate").is_some());

    for page in ["/schema/swagger-ui", "/schema/redoc"] {
        let resp = app.client.get(page).send().await;
        assert_eq!(resp.0.status(), StatusCode::OK, "{page}");
        let html = resp.0.into_body().into_string().await.expect("html");
        // The script is inlined: no CDN is needed to render.
        assert!(html.len() > 100_000, "{page} does not embed its assets");
        assert!(!html.contains("unpkg.com") && !html.contains("cdn.jsdelivr"), "{page} loads from a CDN");
        // The page shows the served document, security schemes and roles included.
        assert!(
            html.contains("\"securitySchemes\"") && html.contains("\"x-roles\""),
            "{page}: not the served document"
        );
    }
    app.cleanup().await;
}

/// `{id}` → a sample segment, as a client would fill it in.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "01jsampleid" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_operation_documents_the_roles_the_api_enforces() {
    let app = TestApp::new().await;
    let spec = app.client.get("/schema").send().await.json().await.value().deserialize::<Value>();
    let mut seen = 0;
    for (template, item) in spec["paths"].as_object().expect("paths") {
        for (name, op) in item.as_object().expect("path item") {
            let Ok(method) = Method::from_bytes(name.to_ascii_uppercase().as_bytes()) else { continue };
            if op.get("responses").is_none() {
                continue;
            }
            seen += 1;
            let path = concrete(template);
            let enforced = api::auth::required_roles(true, &method, &path);
            assert_eq!(enforced, api::auth::required_roles(false, &method, &path), "{name} {template}");
            let names: Vec<&str> = enforced.unwrap_or(&[]).iter().map(|r| r.name()).collect();
            assert_eq!(op["x-roles"], serde_json::json!(names), "{name} {template}: x-roles");
            let mut security = Vec::new();
            if enforced.is_some() {
                security.push(serde_json::json!({ "bearerAuth": [] }));
                if api::auth::accepts_basic(&method, &path) {
                    security.push(serde_json::json!({ "basicAuth": [] }));
                }
                for status in ["401", "403"] {
                    assert!(
                        op["responses"].get(status).is_some(),
                        "{name} {template}: {status} undocumented"
                    );
                }
                let text = op["description"].as_str().expect("description");
                for role in &names {
                    assert!(text.contains(&format!("`{role}`")), "{name} {template}: {role} not said");
                }
            }
            assert_eq!(op["security"], Value::Array(security), "{name} {template}: security");
        }
    }
    assert!(seen >= 10, "only {seen} operations in the document");
    app.cleanup().await;
}
