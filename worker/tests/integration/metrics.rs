//! Metrics move as jobs run: scrape, ingest, scrape again.

use crate::common::{TestApp, batch, eventually};
use std::time::Duration;

/// The value of one sample line (`name{labels} value`), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .unwrap_or(0.0)
}

async fn scrape_api(app: &TestApp) -> String {
    let resp = app.client.get("/metrics").send().await;
    resp.assert_status_is_ok();
    resp.0.into_body().into_string().await.expect("text")
}

#[tokio::test]
async fn metrics_change_as_a_batch_is_ingested_and_indexed() {
    let mut app = TestApp::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    app.worker_env.push(("CDR_WORKER_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
    app.start_worker().await;
    let worker_metrics = format!("http://127.0.0.1:{port}/metrics");
    let client = reqwest::Client::new();
    let scrape_worker = || {
        eventually(Duration::from_secs(10), "worker metrics never answered", || async {
            let response = client.get(&worker_metrics).send().await.map_err(|e| e.to_string())?;
            Ok(response.text().await.expect("text"))
        })
    };

    let api_before = scrape_api(&app).await;
    let worker_before = scrape_worker().await;
    let accepted = app.ingest(&batch(0..250)).await;
    let job = app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    app.wait_succeeded(job["index_job_id"].as_str().expect("index job")).await;
    let api_after = scrape_api(&app).await;
    let worker_after = scrape_worker().await;

    let received = "cdr_records_total{outcome=\"received\"}";
    assert!(sample(&api_after, received) - sample(&api_before, received) >= 250.0);
    let posted = "cdr_http_requests_total{route=\"/cdrs\",status=\"202\"}";
    assert!(sample(&api_after, posted) > sample(&api_before, posted));
    assert!(api_after.contains("cdr_http_request_duration_seconds_bucket{route=\"/cdrs\""));
    assert!(api_after.contains(&format!("cdr_queue_depth{{queue=\"{}.ingest\"}}", app.name)));
    assert!(api_after.contains("cdr_index_backlog"));

    for (series, delta) in [
        ("cdr_records_total{outcome=\"inserted\"}", 250.0),
        ("cdr_records_total{outcome=\"indexed\"}", 250.0),
        ("cdr_jobs_total{kind=\"ingest\",status=\"succeeded\"}", 1.0),
        ("cdr_jobs_total{kind=\"index\",status=\"succeeded\"}", 1.0),
    ] {
        assert_eq!(sample(&worker_after, series) - sample(&worker_before, series), delta, "{series}");
    }
    assert!(worker_after.contains("cdr_job_duration_seconds_count{kind=\"ingest\"} 1"));
    app.cleanup().await;
}
