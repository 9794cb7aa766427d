//! Alerts end to end: rules read over generated traffic through `/stats`'s path, firing and
//! resolving once per transition, snooze and minimum attempts honoured, and a webhook
//! receiver that is down for a while getting every notification once, signed.

use crate::common::{TestApp, eventually};
use hmac::{Hmac, Mac};
use poem::EndpointExt as _;
use poem::http::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "alert-secret-for-tests-0001";

/// A notification as the receiver got it: its signature header and body.
type Notification = (String, Vec<u8>);

/// What the receiver was sent.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Notification>>>);

#[poem::handler]
async fn hook(req: &poem::Request, body: poem::Body, received: poem::web::Data<&Received>) -> StatusCode {
    let signature =
        req.headers().get("x-cdr-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = body.into_vec().await.unwrap_or_default();
    received.0.0.lock().expect("lock").push((signature, body));
    StatusCode::OK
}

/// `n` calls of trunk-x starting from `start` a few seconds apart, `answered` of them answered.
fn traffic(tag: &str, start: &str, n: usize, answered: usize) -> Value {
    let start: chrono::DateTime<chrono::Utc> = start.parse().expect("time");
    Value::Array(
        (0..n)
            .map(|i| {
                let ok = i < answered;
                json!({
                    "call_id": format!("{tag}-{i}"),
                    "source": "trunk-x",
                    "src_number": "+14155550100",
                    "dest_number": format!("4420{:07}", i),
                    "start_time": (start + chrono::Duration::seconds(i as i64 * 20)).to_rfc3339(),
                    "duration": if ok { 65 } else { 3 },
                    "billsec": if ok { 60 } else { 0 },
                    "disposition": if ok { "ANSWERED" } else { "FAILED" },
                })
            })
            .collect(),
    )
}

async fn send(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = match method {
        "POST" => app.client.post(path),
        "PUT" => app.client.put(path),
        "DELETE" => app.client.delete(path),
        _ => app.client.get(path),
    };
    let req = match body {
        Some(b) => req.content_type("application/json").body(b.to_string()),
        None => req,
    };
    let resp = req.send().await;
    let status = resp.0.status();
    let text = resp.0.into_body().into_string().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Runs an evaluation at `at` and waits for it.
async fn evaluate(app: &TestApp, at: &str) -> Value {
    let (status, body) = send(app, "POST", &format!("/alerts/evaluate?at={at}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = app
        .wait_job(body["job_id"].as_str().expect("id"), Duration::from_secs(60), |j| {
            j["status"] == "succeeded"
        })
        .await;
    assert_eq!(job["kind"], "alerts");
    job
}

async fn events(app: &TestApp, rule: i64) -> Vec<Value> {
    let (status, body) = send(app, "GET", &format!("/alerts?rule_id={rule}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().expect("items").clone()
}

fn rule(name: &str, port: u16, min_attempts: u64) -> Value {
    json!({
        "name": name,
        "filters": { "source": "trunk-x" },
        "metric": "asr",
        "condition": "below",
        "threshold": 0.5,
        "window_minutes": 10,
        "min_attempts": min_attempts,
        "webhook_url": format!("http://127.0.0.1:{port}/hook"),
        "webhook_secret": SECRET,
    })
}

#[tokio::test]
async fn an_asr_drop_fires_and_resolves_once_each_and_a_receiver_down_for_a_while_gets_both() {
    let mut app = TestApp::new().await;
    // Only the evaluations this test asks for run.
    app.worker_env.push(("CDR_ALERT_SCHEDULE".into(), "0 0 0 1 1 * 2099".into()));
    app.start_worker().await;
    // A port with nothing listening yet: the receiver is down.
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();

    let (status, a) = send(&app, "POST", "/alerts/rules", Some(rule("trunk-x asr", port, 10))).await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    assert_eq!(a["signed"], true);
    assert!(a.get("webhook_secret").is_none(), "the secret is never shown");
    let (_, busy) = send(&app, "POST", "/alerts/rules", Some(rule("needs many calls", port, 1000))).await;
    let (_, snoozed) = send(&app, "POST", "/alerts/rules", Some(rule("snoozed", port, 10))).await;
    let (status, woken) =
        send(&app, "POST", &format!("/alerts/rules/{}/snooze?minutes=60", snoozed["id"]), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(woken["snoozed_until"].is_string());
    let (status, dup) = send(&app, "POST", "/alerts/rules", Some(rule("trunk-x asr", port, 10))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");
    let (status, bad) = send(
        &app,
        "POST",
        "/alerts/rules",
        Some(json!({
        "name": "x", "filters": { "min_billsec": "soon" }, "metric": "asr", "condition": "below",
        "threshold": 0.5, "window_minutes": 10 })),
    )
    .await;
    assert_eq!(
        (status, bad["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("filters.min_billsec"))
    );
    let (a_id, busy_id, snoozed_id) = (
        a["id"].as_i64().expect("id"),
        busy["id"].as_i64().expect("id"),
        snoozed["id"].as_i64().expect("id"),
    );

    // A healthy window: 18 of 20 answered. Nothing fires.
    let job = app.ingest(&traffic("good", "2026-03-02T10:00:00Z", 20, 18)).await;
    app.wait_succeeded(job["job_id"].as_str().expect("id")).await;
    let done = evaluate(&app, "2026-03-02T10:10:00Z").await;
    assert_eq!(done["detail"]["rules"], 3);
    assert_eq!(done["detail"]["fired"], 0);
    let (_, read) = send(&app, "GET", &format!("/alerts/rules/{a_id}"), None).await;
    assert_eq!(read["last_value"], 0.9, "ASR of the window: {read}");
    assert_eq!(read["last_attempts"], 20);
    assert_eq!(read["firing"], false);

    // The next ten minutes: 4 of 20 answered. It fires, once, whatever how often it is read.
    let job = app.ingest(&traffic("bad", "2026-03-02T10:10:00Z", 20, 4)).await;
    app.wait_succeeded(job["job_id"].as_str().expect("id")).await;
    let done = evaluate(&app, "2026-03-02T10:20:00Z").await;
    assert_eq!(done["detail"]["fired"], 1, "{done}");
    evaluate(&app, "2026-03-02T10:20:30Z").await;
    let fired = events(&app, a_id).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["state"], "firing");
    assert_eq!(fired[0]["value"], 0.2);
    assert_eq!(fired[0]["attempts"], 20);
    assert!(events(&app, busy_id).await.is_empty(), "fewer calls than its minimum: it may not fire");
    assert!(events(&app, snoozed_id).await.is_empty(), "snoozed: it does not fire");
    let metrics = app.client.get("/metrics").send().await.0.into_body().into_string().await.expect("metrics");
    assert!(metrics.contains("cdr_alert_firing{rule=\"trunk-x asr\"} 1"), "{metrics}");

    // Recovered: 16 of 20. It resolves.
    let job = app.ingest(&traffic("again", "2026-03-02T10:20:00Z", 20, 16)).await;
    app.wait_succeeded(job["job_id"].as_str().expect("id")).await;
    let done = evaluate(&app, "2026-03-02T10:30:00Z").await;
    assert_eq!(done["detail"]["resolved"], 1, "{done}");
    let both = events(&app, a_id).await;
    assert_eq!(
        both.iter().map(|e| e["state"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        ["resolved", "firing"]
    );

    // The receiver is still down: the notifications wait, retried.
    eventually(Duration::from_secs(30), "delivery attempted while the receiver is down", || async {
        let evs = events(&app, a_id).await;
        if evs
            .iter()
            .all(|e| e["delivery_attempts"].as_i64().unwrap_or(0) >= 1 && e["delivered_at"].is_null())
        {
            Ok(())
        } else {
            Err(format!("{evs:?}"))
        }
    })
    .await;

    // It comes up: each transition arrives once, signed.
    let received = Received::default();
    let app_routes = poem::Route::new().at("/hook", poem::post(hook)).data(received.clone());
    let server = tokio::spawn(
        poem::Server::new(poem::listener::TcpListener::bind(format!("127.0.0.1:{port}"))).run(app_routes),
    );
    eventually(Duration::from_secs(60), "both notifications delivered", || async {
        let evs = events(&app, a_id).await;
        if evs.iter().all(|e| e["delivered_at"].is_string()) { Ok(()) } else { Err(format!("{evs:?}")) }
    })
    .await;
    // A later evaluation queues nothing again.
    let done = evaluate(&app, "2026-03-02T10:31:00Z").await;
    assert_eq!(done["detail"]["requeued"], 0);
    let got = received.0.lock().expect("lock").clone();
    assert_eq!(got.len(), 2, "once per transition");
    let mut states = Vec::new();
    for (signature, body) in &got {
        let (t, v1) = signature
            .strip_prefix("t=")
            .and_then(|s| s.split_once(",v1="))
            .unwrap_or_else(|| panic!("signature {signature:?}"));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        assert_eq!(hex::encode(mac.finalize().into_bytes()), v1, "the signature is the body's");
        let event: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(event["rule"], "trunk-x asr");
        states.push(event["state"].as_str().unwrap_or_default().to_string());
    }
    states.sort();
    assert_eq!(states, ["firing", "resolved"]);

    // Rules are managed, and their history outlives them.
    let (status, _) = send(&app, "DELETE", &format!("/alerts/rules/{a_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(send(&app, "GET", &format!("/alerts/rules/{a_id}"), None).await.0, StatusCode::NOT_FOUND);
    let (_, all) = send(&app, "GET", "/alerts?state=firing", None).await;
    assert!(all["items"].as_array().expect("items").iter().any(|e| e["rule_name"] == "trunk-x asr"));
    let (status, templates) = send(&app, "GET", "/alerts/templates", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(templates["items"].as_array().expect("items").len() >= 3);
    server.abort();
    app.cleanup().await;
}
