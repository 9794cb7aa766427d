//! The web console at `/console`: a few static files compiled into the binary (no separate
//! server, no CDN, works offline). The page holds no data itself; everything it shows comes
//! from the API with the token the user signs in with.

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Path;
use poem::{IntoResponse, Response, handler};

/// Every file the console is made of: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../console/index.html")),
    ("console.js", "text/javascript; charset=utf-8", include_bytes!("../console/console.js")),
    ("console.css", "text/css; charset=utf-8", include_bytes!("../console/console.css")),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/vendor/uPlot.iife.min.js"),
    ),
    ("uPlot.min.css", "text/css; charset=utf-8", include_bytes!("../console/vendor/uPlot.min.css")),
];

/// Scripts and styles from this origin only, nothing framed, no plug-ins.
const POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
     object-src 'none'; frame-ancestors 'none'; base-uri 'none'";

fn file(name: &str) -> Response {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut resp = Response::builder()
        .content_type(*content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(*bytes);
    resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    resp
}

/// `GET /console`: the page.
#[handler]
pub fn page() -> Response {
    file("index.html")
}

/// `GET /console/{file}`: its scripts and styles.
#[handler]
pub fn asset(Path(name): Path<String>) -> Response {
    file(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_served() {
        let html = std::str::from_utf8(FILES[0].2).expect("utf-8");
        for name in ["console.js", "console.css", "uPlot.iife.min.js", "uPlot.min.css"] {
            assert!(html.contains(&format!("/console/{name}")), "{name} is not loaded by the page");
            assert_eq!(file(name).status(), StatusCode::OK);
        }
        assert_eq!(file("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "the page loads nothing from elsewhere"
        );
    }
}
