//! The OpenAPI document and the docs pages, served from the binary.

use crate::common::TestApp;
use poem::http::StatusCode;
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
    let post = &paths["/cdrs"]["post"]["responses"];
    for status in ["202", "400", "413", "422", "503"] {
        assert!(post.get(status).is_some(), "POST /cdrs {status} undocumented");
    }

    for page in ["/schema/swagger-ui", "/schema/redoc"] {
        let resp = app.client.get(page).send().await;
        assert_eq!(resp.0.status(), StatusCode::OK, "{page}");
        let html = resp.0.into_body().into_string().await.expect("html");
        // The script is inlined: no CDN is needed to render.
        assert!(html.len() > 100_000, "{page} does not embed its assets");
        assert!(!html.contains("unpkg.com") && !html.contains("cdn.jsdelivr"), "{page} loads from a CDN");
    }
    app.cleanup().await;
}
