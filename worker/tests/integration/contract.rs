//! What the OpenAPI document promises beyond its schemas, held by the API: `Allow` on a
//! 405, and an empty query value taken as absent wherever the document admits it.

use crate::common::TestApp;
use poem::http::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_method_the_resource_lacks_is_405_with_allow_and_the_error_body() {
    let app = TestApp::new().await;
    for (method, path, allow) in [
        ("DELETE", "/search", "GET, HEAD"),
        ("PUT", "/cdrs", "POST"),
        ("PATCH", "/jobs/01jsampleid", "GET, HEAD"),
        ("GET", "/jobs/01jsampleid/retry", "POST"),
        ("POST", "/schema", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
    ] {
        let method = poem::http::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = app.client.request(method.clone(), path).send().await;
        resp.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        resp.assert_header("Allow", allow);
        let body = resp.json().await.value().deserialize::<Value>();
        assert_eq!(body["code"], "method_not_allowed", "{method} {path}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn empty_query_values_are_absent_where_the_document_admits_them() {
    let app = TestApp::new().await;
    for path in [
        "/search?source=&dest_number=&limit=&cursor=&disposition=",
        "/search?source",
        "/stats?from=&to=&interval=&top=&peak=",
    ] {
        let resp = app.client.get(path).send().await;
        assert_eq!(resp.0.status(), StatusCode::OK, "{path}");
    }
    // The other parameters are still read: `limit=0` is refused by name.
    let resp = app.client.get("/search?source=&limit=0").send().await;
    resp.assert_status(StatusCode::BAD_REQUEST);
    let body = resp.json().await.value().deserialize::<Value>();
    assert_eq!(body["details"]["parameter"], "limit");
    // Where the document forbids an empty value (an integer, an enum), it is refused.
    for path in ["/jobs?status=failed&limit=", "/jobs?status="] {
        let resp = app.client.get(path).send().await;
        assert_eq!(resp.0.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    app.client.get("/jobs?status=failed").send().await.assert_status_is_ok();
    app.cleanup().await;
}
