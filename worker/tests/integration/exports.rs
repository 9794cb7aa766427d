//! Exports end to end: the rows `/search` matches, written by a worker into a file and
//! downloaded whole or resumed, in each format, and an export killed half-way.

use crate::common::{TestApp, eventually};
use poem::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

/// `n` calls over two sources, three destinations, every disposition and a day of starts.
fn calls(range: std::ops::Range<usize>) -> Value {
    let dispositions = ["ANSWERED", "BUSY", "NO ANSWER", "FAILED"];
    Value::Array(
        range
            .map(|n| {
                let disposition = dispositions[n % 4];
                let billsec = if disposition == "ANSWERED" { (n % 300) as u64 } else { 0 };
                json!({
                    "call_id": format!("exp-{n}"),
                    "source": if n % 3 == 0 { "pbx-b" } else { "pbx-a" },
                    "src_number": format!("+1415555{:04}", n % 10_000),
                    "dest_number": match n % 3 { 0 => format!("4420{:07}", n), 1 => format!("3314{:06}", n), _ => format!("1212{:07}", n) },
                    "start_time": format!("2026-03-01T{:02}:{:02}:{:02}Z", (n / 3600) % 24, (n / 60) % 60, n % 60),
                    "duration": billsec + 5,
                    "billsec": billsec,
                    "disposition": disposition,
                    "account_code": format!("acct-{}", n % 7),
                    "x_trunk": format!("t{}", n % 2),
                })
            })
            .collect(),
    )
}

async fn post_export(app: &TestApp, query: &str) -> (StatusCode, Value, Option<String>) {
    let resp = app.client.post(format!("/exports?{query}")).send().await;
    let status = resp.0.status();
    let location = resp.0.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, resp.json().await.value().deserialize::<Value>(), location)
}

/// Starts an export and waits for it to succeed; returns its final state.
async fn export(app: &TestApp, query: &str) -> Value {
    let (status, body, location) = post_export(app, query).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{query}: {body}");
    let id = body["job_id"].as_str().expect("job id").to_string();
    assert_eq!(location.as_deref(), Some(format!("/jobs/{id}").as_str()));
    app.wait_job(&id, Duration::from_secs(120), |j| j["status"] == "succeeded" || j["status"] == "failed")
        .await
}

async fn download(
    app: &TestApp,
    id: &str,
    range: Option<&str>,
) -> (StatusCode, Vec<u8>, poem::http::HeaderMap) {
    let mut req = app.client.get(format!("/exports/{id}/download"));
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let resp = req.send().await;
    let status = resp.0.status();
    let headers = resp.0.headers().clone();
    let body = resp.0.into_body().into_vec().await.expect("body");
    (status, body, headers)
}

/// Every call id `/search` returns for `query`, paged by cursor.
async fn searched_ids(app: &TestApp, query: &str) -> (u64, BTreeSet<String>) {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/search?{query}&limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let resp = app.client.get(&path).send().await;
        resp.assert_status_is_ok();
        let page = resp.json().await.value().deserialize::<Value>();
        let total = page["total"].as_u64().expect("total");
        for item in page["items"].as_array().expect("items") {
            assert!(
                ids.insert(item["call_id"].as_str().expect("call id").to_string()),
                "search repeated a row"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (total, ids),
        }
    }
}

fn ndjson_ids(body: &[u8]) -> Vec<String> {
    std::str::from_utf8(body)
        .expect("utf-8")
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("a JSON line")["call_id"]
                .as_str()
                .expect("call_id")
                .to_string()
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn exports_hold_exactly_the_rows_search_matches_in_every_format() {
    let mut app = TestApp::new().await;
    app.worker_env.push(("CDR_EXPORT_PAGE_ROWS".into(), "400".into()));
    app.start_worker().await;
    for chunk in [0..1000, 1000..2000, 2000..2600] {
        let accepted = app.ingest(&calls(chunk)).await;
        app.wait_succeeded(accepted["job_id"].as_str().expect("job id")).await;
    }
    app.wait_in_sync(Duration::from_secs(60)).await;

    // The same filters mean the same rows: several queries, each compared with /search.
    for query in [
        "source=pbx-a",
        "dest_number=4420*&min_billsec=1",
        "disposition=BUSY,FAILED&from=2026-03-01T00:10:00Z&to=2026-03-01T00:30:00Z",
        "account_code=acct-3&direction=",
        "",
    ] {
        let job = export(&app, &format!("{query}&format=ndjson")).await;
        assert_eq!(job["status"], "succeeded", "{query}: {job}");
        assert_eq!(job["kind"], "export");
        let detail = &job["detail"];
        let (total, searched) = searched_ids(&app, query).await;
        assert_eq!(detail["rows"].as_u64(), Some(total), "{query}: {detail}");
        assert_eq!(detail["expected"].as_u64(), Some(total), "{query}");
        let id = job["id"].as_str().expect("id");
        let (status, body, headers) = download(&app, id, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(detail["bytes"].as_u64(), Some(body.len() as u64));
        assert_eq!(detail["sha256"].as_str(), Some(sha256(&body).as_str()), "the checksum is the file's");
        assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/x-ndjson"));
        let exported = ndjson_ids(&body);
        assert_eq!(exported.len() as u64, total, "{query}: every row once");
        assert_eq!(
            exported.iter().cloned().collect::<BTreeSet<_>>(),
            searched,
            "{query}: the rows /search returns"
        );
    }

    // CSV, gzip-compressed, chosen columns in the order asked, the switch's extra fields as
    // JSON: the rows of pbx-b in start-time order.
    let job = export(&app, "source=pbx-b&format=csv.gz&columns=call_id,start_time,billsec,extra").await;
    let id = job["id"].as_str().expect("id").to_string();
    let (status, gz, headers) = download(&app, &id, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz.as_slice()).read_to_string(&mut text).expect("gunzip");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        ["call_id", "start_time", "billsec", "extra"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a CSV row")).collect();
    assert_eq!(rows.len(), 867, "every third call of 2,600 is pbx-b's");
    let starts: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "rows are in start-time order");
    let first: Value = serde_json::from_str(&rows[0][3]).expect("extra is JSON");
    assert_eq!(first["x_trunk"], "t0", "the switch's own fields are exported");

    // A download resumed with Range gives the rest of the same bytes.
    let (status, part, headers) = download(&app, &id, Some("bytes=100-")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, gz[100..]);
    assert_eq!(
        headers.get("content-range").and_then(|v| v.to_str().ok()),
        Some(format!("bytes 100-{}/{}", gz.len() - 1, gz.len()).as_str())
    );
    let (status, _, _) = download(&app, &id, Some(&format!("bytes={}-", gz.len()))).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);

    // Bad requests are refused naming their parameter; nothing is queued for them.
    for (query, parameter) in [
        ("format=xlsx", "format"),
        ("columns=call_id,price", "columns"),
        ("min_billsec=soon", "min_billsec"),
        ("limit=10", "limit"),
    ] {
        let (status, body, _) = post_export(&app, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["details"]["parameter"], parameter, "{query}: {body}");
    }

    // What cannot be downloaded: no such export, a job of another kind, a file expired.
    assert_eq!(download(&app, "no-such-export", None).await.0, StatusCode::NOT_FOUND);
    let other = app.ingest(&calls(5000..5001)).await;
    assert_eq!(download(&app, other["job_id"].as_str().expect("id"), None).await.0, StatusCode::NOT_FOUND);
    std::fs::remove_file(app.export_dir().join(format!("{id}.csv.gz")))
        .expect("the file is where it is served from");
    let (status, body, _) = download(&app, &id, None).await;
    assert_eq!(status, StatusCode::GONE, "{}", String::from_utf8_lossy(&body));

    app.cleanup().await;
}

#[tokio::test]
async fn an_export_killed_half_way_starts_over_and_writes_every_row_once() {
    let mut app = TestApp::new().await;
    app.worker_env.push(("CDR_EXPORT_PAGE_ROWS".into(), "250".into()));
    app.start_worker().await;
    let accepted = app.ingest(&calls(0..1500)).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("job id")).await;
    app.wait_in_sync(Duration::from_secs(60)).await;
    app.stop_worker().await;

    // The worker dies after writing its third page.
    app.start_worker_with_failpoints("export-after-page=2*off->return").await;
    let (status, body, _) = post_export(&app, "format=ndjson").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["job_id"].as_str().expect("id").to_string();
    app.wait_worker_died(Duration::from_secs(60)).await;
    let partial = app.export_dir().join(format!("{id}.ndjson.part"));
    assert!(partial.exists(), "the dead worker left its partial file");
    assert_eq!(download(&app, &id, None).await.0, StatusCode::CONFLICT, "not downloadable half-written");

    // Meanwhile more calls arrive; the next worker exports from a new snapshot.
    app.start_worker().await;
    let job = app.wait_job(&id, Duration::from_secs(120), |j| j["status"] == "succeeded").await;
    let (status, file, _) = download(&app, &id, None).await;
    assert_eq!(status, StatusCode::OK);
    let exported = ndjson_ids(&file);
    let unique: BTreeSet<String> = exported.iter().cloned().collect();
    assert_eq!(exported.len(), 1500, "every row once: {}", job["detail"]);
    assert_eq!(unique.len(), 1500);
    assert_eq!(job["detail"]["sha256"].as_str(), Some(sha256(&file).as_str()));
    assert!(!partial.exists(), "the partial file became the finished one");

    // An export while ingest goes on holds exactly its snapshot: no row twice, none lost
    // against the count it started from.
    let ingesting = {
        let more = calls(1500..4500);
        let client = &app;
        async move {
            for chunk in more.as_array().expect("calls").chunks(500) {
                client.ingest(&Value::Array(chunk.to_vec())).await;
            }
        }
    };
    let exporting = async {
        // Once the new calls have begun to arrive.
        eventually(Duration::from_secs(30), "ingest under way", || async {
            let stored = app.count("SELECT count(*) FROM cdrs").await;
            if stored > 1500 { Ok(()) } else { Err(format!("{stored} stored")) }
        })
        .await;
        export(&app, "format=ndjson").await
    };
    let ((), job) = tokio::join!(ingesting, exporting);
    let id = job["id"].as_str().expect("id");
    let (_, file, _) = download(&app, id, None).await;
    let exported = ndjson_ids(&file);
    let unique: BTreeSet<&String> = exported.iter().collect();
    assert_eq!(unique.len(), exported.len(), "no row twice");
    assert_eq!(
        Some(exported.len() as u64),
        job["detail"]["expected"].as_u64(),
        "the snapshot's rows, all of them"
    );
    assert!(exported.len() >= 1500);
    eventually(Duration::from_secs(60), "the later rows are indexed too", || async {
        let (total, _) = searched_ids(&app, "").await;
        if total == 4500 { Ok(()) } else { Err(format!("{total} indexed")) }
    })
    .await;
    app.cleanup().await;
}
