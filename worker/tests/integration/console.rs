//! The web console in a real headless Chromium against the real stack: sign-in, every page
//! with generated data, numbers equal to the API's, filters changed through the form, search
//! paged, a failed job retried as admin and refused as read, a phone's width, no console
//! errors; a screenshot of each page under `target/console-screenshots/`.

use crate::common::browser::Browser;
use crate::common::{TestApp, workspace_dir};
use serde_json::{Value, json};
use std::time::Duration;

const ADMIN: &str = "console-admin-token-0001";
const READ: &str = "console-read-token-00001";

fn calls(range: std::ops::Range<usize>) -> Value {
    Value::Array(
        range
            .map(|n| {
                let answered = n % 4 != 0;
                json!({
                    "call_id": format!("con-{n:04}"),
                    "source": if n % 3 == 0 { "pbx-b" } else { "pbx-a" },
                    "src_number": format!("+1415555{:04}", n),
                    "dest_number": format!("44207{:06}", n % 40),
                    "start_time": format!("2026-03-01T{:02}:{:02}:00Z", (n / 60) % 24, n % 60),
                    "duration": if answered { 70 } else { 0 },
                    "billsec": if answered { 60 } else { 0 },
                    "disposition": if answered { "ANSWERED" } else { "NO ANSWER" },
                })
            })
            .collect(),
    )
}

/// A thousands-separated number as the console writes it.
fn n(v: &Value) -> String {
    let digits = v.as_u64().expect("a count").to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

async fn api(app: &TestApp, path: &str) -> Value {
    let resp = app.client.get(path).send().await;
    resp.assert_status_is_ok();
    resp.json().await.value().deserialize::<Value>()
}

async fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/console")).await;
    browser.fill("#token", token).await;
    browser.click("#signin-submit").await;
    browser.rendered("pipeline").await;
}

/// A failed ingest job: a batch the database refuses (an end before its start).
async fn failed_job(app: &TestApp) -> String {
    app.publish_refused_job("refused-1").await;
    app.wait_job("refused-1", Duration::from_secs(60), |j| j["status"] == "failed").await;
    "refused-1".to_string()
}

#[tokio::test]
async fn the_console_shows_what_the_api_says_on_every_page() {
    let spec = format!("admin:{ADMIN},read:{READ}");
    // The test's own client goes without a token; the browser's API (served on a port)
    // requires one.
    let mut app = TestApp::new().await;
    app.start_worker().await;
    for chunk in [0..400, 400..800] {
        let resp = app
            .client
            .post("/cdrs")
            .header("authorization", format!("Bearer {ADMIN}"))
            .content_type("application/json")
            .body(calls(chunk).to_string())
            .send()
            .await;
        let accepted = resp.json().await.value().deserialize::<Value>();
        app.wait_succeeded(accepted["job_id"].as_str().expect("job id")).await;
    }
    let failed = failed_job(&app).await;
    app.wait_in_sync(Duration::from_secs(60)).await;
    let (base, server) = app.serve_api(api::auth::Auth::from_spec(&spec, true).expect("tokens")).await;
    let shots = workspace_dir().join("target").join("console-screenshots");
    let browser = Browser::start(1280, 900).await;

    // Signing in: a wrong token is refused on the page; a read token gets in.
    browser.goto(&format!("{base}/console")).await;
    browser.fill("#token", "not-a-token-of-this-api").await;
    browser.click("#signin-submit").await;
    browser.text_when("#signin .message", |t| !t.is_empty()).await;
    browser.screenshot(&shots.join("sign-in.png")).await;
    sign_in(&browser, &base, READ).await;

    // Pipeline: the stored and indexed counts are /sync-status's.
    let sync = api(&app, "/sync-status").await;
    browser.text_when("#stat-stored", |t| t == n(&sync["database_count"])).await;
    browser.text_when("#stat-indexed", |t| t == n(&sync["index_count"])).await;
    browser.text_when("#stat-in-sync", |t| t == "yes").await;
    browser.text_when("#stat-workers", |t| t == "1").await;
    // The refused job waits in its dead-letter queue, and is the one failed job.
    browser.text_when("#stat-parked", |t| t == "1").await;
    let counts = api(&app, "/jobs/counts").await;
    assert_eq!(counts["failed"], 1, "{counts}");
    assert!(counts["succeeded"].as_u64().unwrap_or(0) >= 2, "both batches' jobs succeeded: {counts}");
    browser.text_when("#stat-jobs-failed", |t| t == "1").await;
    browser.text_when("#stat-jobs-succeeded", |t| t.parse::<u64>().is_ok_and(|v| v >= 2)).await;
    // The failed job is listed; as read, retrying it is refused.
    browser.find(&format!("button.retry[data-job='{failed}']")).await;
    browser.screenshot(&shots.join("pipeline.png")).await;
    browser.click(&format!("button.retry[data-job='{failed}']")).await;
    browser.text_when("main .message.error", |t| t.starts_with("Refused")).await;
    assert_eq!(api(&app, &format!("/jobs/{failed}")).await["status"], "failed", "nothing was retried");

    // KPIs: each figure equals /stats for the same filters, then for a filter changed in the form.
    let window = "from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z";
    for (source, via_form) in [("pbx-a", false), ("pbx-b", true)] {
        if via_form {
            browser.fill("#kpis-form input[name=source]", source).await;
            browser.click("#kpis-apply").await;
            let hash = browser.eval("return window.location.hash;", json!([])).await;
            assert!(
                hash.as_str().unwrap_or_default().contains("source=pbx-b"),
                "the URL carries the filters: {hash}"
            );
        } else {
            browser.goto(&format!("{base}/console#/kpis?{window}&source={source}&interval=hour")).await;
        }
        let stats = api(&app, &format!("/stats?{window}&source={source}&interval=hour")).await;
        browser.text_when("#kpi-total_calls", |t| t == n(&stats["total_calls"])).await;
        browser.text_when("#kpi-answered_calls", |t| t == n(&stats["answered_calls"])).await;
        let asr = format!("{:.1} %", stats["asr"].as_f64().expect("asr") * 100.0);
        browser.text_when("#kpi-asr", |t| t == asr).await;
        browser.find("#chart-calls canvas").await;
    }
    // Rankings follow the figures, from the index: the same numbers /stats gives with `top`.
    browser.goto(&format!("{base}/console#/kpis?{window}&interval=hour&top=3")).await;
    let ranked = api(&app, &format!("/stats?{window}&interval=hour&top=3&breakdown=dest_country")).await;
    let stats = api(&app, &format!("/stats?{window}&interval=hour")).await;
    assert_eq!(stats["answered_by"], "rollups", "the figures' own request: {stats}");
    browser.text_when("#kpi-answered_by", |t| t == "rollups").await;
    browser.text_when("#kpi-total_calls", |t| t == n(&ranked["total_calls"])).await;
    let first = ranked["top_destinations"][0]["number"].as_str().expect("a top destination").to_string();
    browser
        .text_when("#kpi-rankings .panel:first-child tbody tr:first-child td:first-child", |t| t == first)
        .await;
    let rows = browser
        .eval(
            "return document.querySelectorAll('#kpi-rankings .panel:first-child tbody tr').length;",
            json!([]),
        )
        .await;
    assert_eq!(
        rows.as_u64(),
        Some(ranked["top_destinations"].as_array().map_or(0, |a| a.len() as u64)),
        "{ranked}"
    );
    browser.screenshot(&shots.join("kpis.png")).await;

    // Search: the total and the second page are /search's; a click shows the whole record.
    browser.goto(&format!("{base}/console#/search?source=pbx-a&sort=start_time:asc")).await;
    let first = api(&app, "/search?source=pbx-a&sort=start_time:asc&limit=25").await;
    browser.text_when("#search-total", |t| t == format!("{} CDRs", n(&first["total"]))).await;
    browser.click("#search-next").await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second =
        api(&app, &format!("/search?source=pbx-a&sort=start_time:asc&limit=25&cursor={cursor}")).await;
    let expected = second["items"][0]["call_id"].as_str().expect("call id").to_string();
    browser.text_when("#search-results tbody tr:first-child td:last-child", |t| t == expected).await;
    browser.click("#search-results tbody tr:first-child").await;
    browser.text_when("#search-record", |t| t.contains(&expected) && t.contains("\"extra\"")).await;
    browser.screenshot(&shots.join("search.png")).await;
    browser.click("#search-prev").await;
    let first_id = first["items"][0]["call_id"].as_str().expect("call id").to_string();
    browser.text_when("#search-results tbody tr:first-child td:last-child", |t| t == first_id).await;

    // Jobs: any job by id, with its counts.
    browser.goto(&format!("{base}/console#/jobs?id={failed}")).await;
    browser.text_when("#job-status", |t| t == "failed").await;
    browser.screenshot(&shots.join("jobs.png")).await;
    browser.goto(&format!("{base}/console#/alerts")).await;
    browser.rendered("alerts").await;
    browser.screenshot(&shots.join("alerts.png")).await;
    let errors = browser.console_errors().await;
    // The refused retry and the wrong token are answered 403/401 on purpose; nothing else may fail.
    let unexpected: Vec<&String> =
        errors.iter().filter(|e| !e.contains("403") && !e.contains("401")).collect();
    assert!(unexpected.is_empty(), "console errors: {unexpected:?}");

    // As admin the retry is accepted: the job is queued again.
    browser.click("#signout").await;
    sign_in(&browser, &base, ADMIN).await;
    browser.click(&format!("button.retry[data-job='{failed}']")).await;
    browser.text_when("main .message", |t| t.contains("queued again")).await;

    // A phone's width: every page fits without scrolling sideways.
    browser.resize(390, 844).await;
    for (page, hash) in [
        ("pipeline", "#/pipeline".to_string()),
        ("kpis", format!("#/kpis?{window}&interval=hour")),
        ("search", "#/search".into()),
        ("jobs", format!("#/jobs?id={failed}")),
        ("alerts", "#/alerts".into()),
    ] {
        browser.goto(&format!("{base}/console{hash}")).await;
        let ms = browser.rendered(page).await;
        let overflow =
            browser.eval("return document.documentElement.scrollWidth - window.innerWidth;", json!([])).await;
        assert!(overflow.as_i64().unwrap_or(1) <= 0, "{page} is wider than a phone: {overflow}");
        browser.screenshot(&shots.join(format!("{page}-phone.png"))).await;
        println!("console page {page} rendered in {ms:.0} ms");
    }
    browser.quit().await;
    server.abort();
    app.cleanup().await;
}
