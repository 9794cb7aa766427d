//! The whole API fuzzed from its own OpenAPI document by schemathesis: no server errors.

use crate::common::TestApp;
use std::process::Stdio;
use std::time::Duration;

const ADMIN: &str = "fuzz-admin-token-0123456789";

#[tokio::test]
async fn schemathesis_finds_no_server_error() {
    let app = TestApp::with_auth(&format!("admin:{ADMIN}")).await;
    let (base, server) =
        app.serve_api(api::auth::Auth::from_spec(&format!("admin:{ADMIN}"), true).expect("auth")).await;

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
