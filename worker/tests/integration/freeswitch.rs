//! FreeSWITCH's mod_json_cdr as a real client: its three encode modes, encode-values on and
//! off, HTTP Basic credentials mapped onto the API's tokens, and posts of one CDR each
//! batched into shared jobs.

use crate::common::{TestApp, eventually, real_file};
use base64::Engine as _;
use jobs::cdr::formats::freeswitch_json;
use poem::http::StatusCode;
use serde_json::Value;
use std::time::Duration;

const INGEST: &str = "ingest-token-0123456789";
const READ: &str = "read-token-0123456789ab";

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The module's URL encoder: unreserved characters and `,/$!'()*` stay, the rest is `%XX`.
fn url_encode(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b',')
        .remove(b'/')
        .remove(b'$')
        .remove(b'!')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')')
        .remove(b'*');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

async fn post(
    app: &TestApp,
    query: &str,
    content_type: &str,
    auth: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(format!("/cdrs/freeswitch{query}"))
        .header("Authorization", auth)
        .header("User-Agent", "freeswitch-json/1.0")
        .content_type(content_type)
        .body(body)
        .send()
        .await;
    let status = resp.0.status();
    (status, resp.json().await.value().deserialize::<Value>())
}

#[tokio::test]
async fn mod_json_cdr_posts_in_every_encode_mode_with_basic_credentials() {
    let mut app = TestApp::with_auth(&format!("ingest:{INGEST},read:{READ}")).await;
    app.start_worker().await;
    let creds = basic("freeswitch", INGEST);

    // The 2018 body (encode off, callflow an array after a transfer) as the module sends it.
    let json_2018 = real_file("freeswitch-json-2018-01-11.json");
    let doc: Value = serde_json::from_slice(&json_2018).expect("json");
    let uuid = doc["variables"]["uuid"].as_str().expect("uuid").to_string();
    let (status, body) =
        post(&app, &format!("?uuid={uuid}"), "application/json", &creds, json_2018.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // The 2013 body (encode-values on, callflow an object) posted with encode=true, and the
    // same document again with encode=base64 and with the JSON labelled as a form (the
    // module's disable-100-continue): all one record.
    let json_2013 =
        String::from_utf8(real_file("freeswitch-json-2013-05-16-urlencoded.json")).expect("utf-8");
    let compact =
        serde_json::to_string(&serde_json::from_str::<Value>(&json_2013).expect("json")).expect("json");
    let bodies = [
        ("application/x-www-form-urlencoded", format!("cdr={}", url_encode(&compact))),
        (
            "application/x-www-form-base64-encoded",
            format!("cdr={}", base64::engine::general_purpose::STANDARD.encode(compact.as_bytes())),
        ),
        ("application/x-www-form-urlencoded", compact.clone()),
    ];
    for (content_type, body) in bodies {
        let (status, answer) = post(&app, "?source=fs-2013", content_type, &creds, body.into_bytes()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{content_type}: {answer}");
    }
    // Job states need a reading token; the stored batches say the same.
    eventually(Duration::from_secs(60), "four posts stored", || async {
        match app.count("SELECT coalesce(sum(received), 0)::bigint FROM ingest_batches").await {
            4 => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE source = 'fs-2013'").await, 1);

    // Fields: parties from the newest caller profile, exact UTC times from *_uepoch, the
    // switch's seconds, the disposition from what happened, values URL-decoded.
    // The exact microsecond of start_uepoch, and the other leg's uuid.
    let start_us =
        doc["variables"]["start_uepoch"].as_str().expect("start_uepoch").parse::<i64>().expect("µs");
    let start = chrono::DateTime::from_timestamp_micros(start_us).expect("time").to_rfc3339();
    let bleg = doc["variables"]["bridge_uuid"].as_str().expect("bridge_uuid").to_string();
    let q = |sql: &str| sql.replace("{uuid}", &uuid).replace("{start}", &start).replace("{bleg}", &bleg);
    assert_eq!(
        app.count(&q(
            "SELECT count(*) FROM cdrs WHERE call_id = '{uuid}' AND source = 'FSDev1' AND billsec = 68 \
             AND duration = 71 AND disposition = 'ANSWERED' AND disposition_raw IS NULL \
             AND hangup_cause = 'NORMAL_CLEARING' AND linked_id = '{bleg}' \
             AND start_time = '{start}' AND record_key = ''"
        ))
        .await,
        1,
        "the 2018 CDR as stored"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE source = 'fs-2013' AND src_number = '1001' AND dest_number = '1002' \
             AND start_time = '2013-05-16 12:33:28.847154+00' AND billsec = 21 AND account_code = '1001' \
             AND extra->'variables'->>'effective_caller_id_name' = 'Extension 1001'"
        )
        .await,
        1,
        "the 2013 CDR as stored"
    );

    // A URL with a query of its own: the module appends `?uuid=` after it.
    let mut other = doc.clone();
    other["variables"]["uuid"] = Value::from("url-with-query-1");
    let (status, body) = post(
        &app,
        "?source=fs-q?uuid=url-with-query-1",
        "application/json",
        &creds,
        other.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    eventually(Duration::from_secs(60), "the post from a URL with a query stored", || async {
        match app
            .count("SELECT count(*) FROM cdrs WHERE source = 'fs-q' AND call_id = 'url-with-query-1'")
            .await
        {
            1 => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;

    // Credentials: none, a wrong token, a token whose role cannot ingest, a bearer token.
    let (status, _) = post(&app, "", "application/json", "", json_2018.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) =
        post(&app, "", "application/json", &basic("freeswitch", "not-a-token-at-all"), json_2018.clone())
            .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&app, "", "application/json", &basic("freeswitch", READ), json_2018.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&app, "", "application/json", &format!("Bearer {INGEST}"), json_2018).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Basic is for the ingest routes only.
    let resp = app.client.get("/search").header("Authorization", basic("x", READ)).send().await;
    resp.assert_status(StatusCode::UNAUTHORIZED);

    // What no switch could have written is refused 4xx, naming the field.
    let mut broken = doc.clone();
    broken["variables"]["start_uepoch"] = Value::from("0");
    broken["variables"]["start_epoch"] = Value::from("0");
    broken["variables"]["start_stamp"] = Value::from("never");
    let (status, body) = post(&app, "", "application/json", &creds, broken.to_string().into_bytes()).await;
    assert_eq!(
        (status, body["rejected"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("start_time"))
    );
    let (status, body) = post(&app, "", "application/json", &creds, b"cdr=%%".to_vec()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_body")));
    app.cleanup().await;
}

#[tokio::test]
async fn concurrent_single_cdr_posts_share_jobs_and_each_is_stored_once() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let posts = 200;
    let answers = futures::future::join_all((0..posts).map(|n| {
        let doc =
            freeswitch_json::example(&format!("fs-batch-{n}"), "1001", "1002", 1_700_000_000_000_000 + n, 10);
        let client = &app.client;
        async move {
            let resp = client
                .post("/cdrs/freeswitch")
                .content_type("application/json")
                .body(doc.to_string())
                .send()
                .await;
            let status = resp.0.status();
            (status, resp.json().await.value().deserialize::<Value>())
        }
    }))
    .await;
    let mut jobs: Vec<String> = Vec::new();
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
        jobs.push(body["job_id"].as_str().expect("job").to_string());
    }
    jobs.sort();
    jobs.dedup();
    assert!(jobs.len() < posts as usize, "{} posts became {} jobs", posts, jobs.len());
    let mut received = 0;
    for job in &jobs {
        received += app.wait_succeeded(job).await["counts"]["received"].as_u64().expect("received");
    }
    assert_eq!(received, posts as u64);
    eventually(Duration::from_secs(30), "every post stored", || async {
        match app.count("SELECT count(*) FROM cdrs WHERE call_id LIKE 'fs-batch-%'").await {
            n if n == posts => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;
    // Small batches are indexed together, and every row reaches the index.
    let status = app.wait_in_sync(Duration::from_secs(60)).await;
    assert_eq!(status["index_count"], posts, "{status}");
    app.cleanup().await;
}
