//! The API fuzzed from its own OpenAPI document by schemathesis: every operation for server
//! errors, and the GET operations with every check schemathesis has (responses against
//! their schemas, status codes, headers, `Allow` on 405, authentication enforced where
//! declared, valid data accepted and invalid data refused). After each run, no handler may
//! have panicked (`cdr_api_panics_total` stays 0); and forged cursors and malformed
//! filters are refused as the client's error, never answered 5xx.

use crate::common::{TestApp, answered_cdr};
use base64::Engine as _;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;

const ADMIN: &str = "fuzz-admin-token-0123456789";

/// Runs `schemathesis run <base>/schema` with `args` and the admin token; the report.
async fn schemathesis(base: &str, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new("schemathesis")
            .arg("run")
            .arg(format!("{base}/schema"))
            .args(args)
            .args(["--request-timeout", "20", "--no-color"])
            .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
            .env("SCHEMATHESIS_HOOKS", "")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("schemathesis finished within 10 minutes")
    .expect("schemathesis is installed by scripts/test (pip install schemathesis==4.32.5)");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "schemathesis found failures:\n{report}");
    assert!(report.contains("passed"), "schemathesis ran nothing:\n{report}");
    report
}

/// `cdr_api_panics_total` as `/metrics` exports it. The counter is exported from the start,
/// so a scrape without it fails rather than reading as "no panic".
async fn panics_counted(base: &str) -> u64 {
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("cdr_api_panics_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("cdr_api_panics_total is not exported:\n{text}"))
}

#[tokio::test]
async fn schemathesis_finds_no_server_error() {
    let app = TestApp::with_auth(&format!("admin:{ADMIN}")).await;
    let (base, server) =
        app.serve_api(api::auth::Auth::from_spec(&format!("admin:{ADMIN}"), true).expect("auth")).await;
    schemathesis(&base, &["--checks", "not_a_server_error", "--max-examples", "40"]).await;
    // A panic caught by the API answers a JSON 500, which the check above already refuses;
    // the counter also sees one whose 500 a check might let through.
    assert_eq!(panics_counted(&base).await, 0, "a handler panicked during the fuzz run");
    server.abort();
    app.cleanup().await;
}

/// Calls answered and not (no answer time, no hangup cause) on two days apart, so searches
/// return null fields and the `/stats` histogram has empty buckets with null ratios.
fn mixed_calls() -> Value {
    let mut calls = Vec::new();
    for n in 0..6 {
        let mut call = answered_cdr(n);
        if n % 2 == 1 {
            let obj = call.as_object_mut().expect("object");
            obj.remove("answer_time");
            obj.remove("hangup_cause");
            obj.remove("direction");
            obj.remove("account_code");
            obj.insert("disposition".into(), json!("NO ANSWER"));
        }
        if n >= 3 {
            call["start_time"] = json!("2026-03-04T10:00:00Z");
            call["end_time"] = json!("2026-03-04T10:01:00Z");
            if n % 2 == 0 {
                call["answer_time"] = json!("2026-03-04T10:00:05Z");
            }
        }
        calls.push(call);
    }
    Value::Array(calls)
}

#[tokio::test]
async fn schemathesis_every_check_on_the_get_operations() {
    let mut app = TestApp::with_auth(&format!("admin:{ADMIN}")).await;
    app.start_worker().await;
    let (base, server) =
        app.serve_api(api::auth::Auth::from_spec(&format!("admin:{ADMIN}"), true).expect("auth")).await;
    let accepted = reqwest::Client::new()
        .post(format!("{base}/cdrs"))
        .bearer_auth(ADMIN)
        .json(&mixed_calls())
        .send()
        .await
        .expect("POST /cdrs");
    assert_eq!(accepted.status(), 202);
    let job: Value = accepted.json().await.expect("202 body");
    let client = reqwest::Client::new();
    crate::common::eventually(Duration::from_secs(90), "the batch was not indexed", || async {
        let status: Value = client
            .get(format!("{base}/sync-status"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if status["in_sync"] == true && status["database_count"] == 6 {
            Ok(())
        } else {
            Err(format!("{status} (job {})", job["job_id"]))
        }
    })
    .await;

    // Every check, on every GET operation but the two below.
    schemathesis(
        &base,
        &[
            "--checks",
            "all",
            "--include-method",
            "GET",
            "--exclude-path",
            "/search",
            "--exclude-path",
            "/stats",
            "--max-examples",
            "150",
        ],
    )
    .await;
    // Every check but `positive_data_acceptance` on `/search` and `/stats`. Their
    // parameters are documented as strings whose syntax each description states (numbers,
    // times, seconds, flags, sorts, intervals), and some rules involve two parameters or the
    // server's own output, which OpenAPI cannot state at all: `from` before `to`,
    // `min_duration` ≤ `max_duration`, at most 10,000 histogram buckets for the window, and
    // a `cursor` only as a previous page returned it. Schemathesis counts the 400s those
    // rules give as valid data refused. Every other check, negative data included, runs.
    schemathesis(
        &base,
        &[
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--include-path",
            "/search",
            "--include-path",
            "/stats",
            "--max-examples",
            "150",
        ],
    )
    .await;
    assert_eq!(panics_counted(&base).await, 0, "a handler panicked during the fuzz run");
    server.abort();
    app.cleanup().await;
}

/// A cursor made by hand: the hex of `{"s": sort, "a": after}`, as the API writes its own.
fn forged_cursor(sort: &str, after: Value) -> String {
    json!({ "s": sort, "a": after }).to_string().bytes().map(|b| format!("{b:02x}")).collect()
}

/// Strings of garbage from a fixed seed: hex of even and odd lengths, base64, and any bytes
/// percent-encoded (invalid UTF-8 included). Deterministic, so a failure can be replayed.
fn garbage(n: usize) -> Vec<String> {
    let mut seed: u64 = 0x0bad_c0de_5eed;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..n)
        .map(|i| {
            let len = (next() % 80) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| (next() & 0xff) as u8).collect();
            match i % 3 {
                0 => bytes.iter().map(|b| format!("{:x}", b & 0x0f)).collect(),
                1 => base64::engine::general_purpose::URL_SAFE.encode(&bytes),
                _ => percent_encoding::percent_encode(&bytes, percent_encoding::NON_ALPHANUMERIC).to_string(),
            }
        })
        .collect()
}

/// Whether a response is the API's JSON error body.
fn is_error_body(content_type: Option<&str>, body: &Value) -> bool {
    content_type.is_some_and(|c| c.starts_with("application/json"))
        && body["code"].as_str().is_some_and(|c| !c.is_empty())
        && body["message"].is_string()
}

/// Forged cursors (multi-byte characters, hex of JSON no page ends on, base64 and hex
/// garbage) and malformed filters are the client's error: a 4xx with the JSON error body,
/// never a 5xx, a dropped connection or a panic. A cursor of two integers the API never
/// handed out still reaches the engine, which must not refuse it either.
#[tokio::test]
async fn forged_cursors_and_malformed_filters_are_4xx_json_never_5xx() {
    let app = TestApp::new().await;
    app.search().ensure().await.expect("the index exists");
    let mut refused: Vec<String> = [
        "/search?cursor=a%C3%A9a",
        "/search?cursor=%F0%90%80%80",
        "/search?cursor=%C3%A9%C3%A9",
        "/search?cursor=zz",
        "/search?cursor=7b7d",
        "/search?cursor=%2B1",
        "/search?cursor=AAAA%3D%3D",
        "/search?to=%2B262142-12-31",
        "/stats?end_date=%2B262142-12-31",
        "/search?from=2026-02-30",
        "/search?from=2026-03-02&to=2026-03-01",
        "/search?min_duration=99999999999999999999",
        "/search?max_duration=-1",
        "/search?disposition=%00",
        "/search?limit=%F0%9F%98%80",
        "/search?sort=duration:sideways",
        "/search?src_number=*",
        "/stats?interval=%C3%A9",
        "/stats?top=101",
        "/stats?peak=perhaps",
        "/search?%FF=1",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    // Hex the API would decode, of JSON it never writes: the engine refuses a string (400)
    // and a null (500!) as a sort value, so these must stop before reaching it.
    for after in [json!(["abc", 1]), json!([null, null]), json!([1.5, 2]), json!([1]), json!({"a": 1})] {
        refused.push(format!("/search?cursor={}", forged_cursor("start_time:desc", after)));
    }
    refused.push(format!(
        "/search?sort=duration:asc&cursor={}",
        forged_cursor("start_time:desc", json!([1, 2]))
    ));
    // An empty value is an absent one (the first page), so only non-empty garbage here.
    for g in garbage(120).into_iter().filter(|g| !g.is_empty()) {
        refused.push(format!("/search?cursor={g}"));
    }
    for path in &refused {
        let resp = app.client.get(path).send().await;
        let status = resp.0.status();
        let content_type =
            resp.0.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.json().await.value().deserialize::<Value>();
        assert!(status.is_client_error(), "{path}: {status} {body}");
        assert!(is_error_body(content_type.as_deref(), &body), "{path}: {content_type:?} {body}");
    }

    // Garbage in every parameter of both endpoints: anything but a 5xx, and JSON.
    let names =
        ["from", "to", "min_duration", "disposition", "src_number", "sort", "limit", "interval", "top"];
    for (i, g) in garbage(90).into_iter().enumerate() {
        let endpoint = if i % 2 == 0 { "/search" } else { "/stats" };
        let path = format!("{endpoint}?{}={g}", names[i % names.len()]);
        let resp = app.client.get(&path).send().await;
        let status = resp.0.status();
        let body = resp.json().await.value().deserialize::<Value>();
        assert!(!status.is_server_error(), "{path}: {status} {body}");
    }

    // Integers no page ended on, at the edges of the range: a (here empty) page.
    for after in [json!([i64::MAX, i64::MIN]), json!([0, -1]), json!([-1, i64::MAX])] {
        for sort in ["start_time:desc", "duration:asc", "billsec:desc"] {
            let path = format!("/search?sort={sort}&cursor={}", forged_cursor(sort, after.clone()));
            let resp = app.client.get(&path).send().await;
            let status = resp.0.status();
            let body = resp.json().await.value().deserialize::<Value>();
            assert_eq!(status.as_u16(), 200, "{path}: {body}");
            assert_eq!(body["items"], json!([]), "{path}");
        }
    }

    let metrics = app.client.get("/metrics").send().await;
    metrics.assert_status_is_ok();
    let text = metrics.0.into_body().into_string().await.expect("metrics text");
    assert!(text.lines().any(|l| l == "cdr_api_panics_total 0"), "a handler panicked:\n{text}");
    app.cleanup().await;
}
