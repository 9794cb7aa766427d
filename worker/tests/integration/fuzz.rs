//! The whole API fuzzed from its own OpenAPI document by schemathesis: no server errors.

use crate::common::TestApp;
use poem::EndpointExt;
use poem::listener::TcpListener;
use std::process::Stdio;
use std::time::Duration;

const ADMIN: &str = "fuzz-admin-token-0123456789";

#[tokio::test]
async fn schemathesis_finds_no_server_error() {
    let app = TestApp::with_auth(&format!("admin:{ADMIN}")).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut settings = app.settings.clone();
    settings.namespace = app.name.clone();
    let mut state =
        api::state::AppState::connect(&settings, api::cli::Limits::default()).await.expect("state");
    state.auth = api::auth::Auth::from_spec(&format!("admin:{ADMIN}"), true).expect("auth");
    let server = tokio::spawn(
        poem::Server::new(TcpListener::bind(format!("127.0.0.1:{port}")))
            .run(api::app(state).map_to_response()),
    );
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new("schemathesis")
            .args([
                "run",
                &format!("{base}/schema"),
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "40",
                "--request-timeout",
                "20",
                "--header",
                &format!("Authorization: Bearer {ADMIN}"),
                "--no-color",
            ])
            .env("SCHEMATHESIS_HOOKS", "")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("schemathesis finished within 10 minutes")
    .expect("schemathesis is installed by scripts/test (pip install schemathesis)");
    server.abort();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "schemathesis found failures:\n{report}");
    assert!(report.contains("passed"), "schemathesis ran nothing:\n{report}");
    app.cleanup().await;
}
