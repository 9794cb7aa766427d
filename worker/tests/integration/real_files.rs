//! Real files from real switches (`../shared/real-cdrs/`, read at run time, never copied):
//! every row stored as the switch wrote it, with the figures counted by hand in that
//! folder's README, and a second import storing nothing new.

use crate::common::{TestApp, real_file, workspace_dir};
use poem::http::StatusCode;
use serde_json::Value;

/// rows, distinct call ids, Σ billsec, answered — as the folder's README gives them.
type Facts = (i64, i64, i64, i64);

const CSV_FILES: [(&str, Facts); 7] = [
    ("asterisk-testsuite-self_test-Master.csv", (2, 2, 14, 2)),
    ("asterisk-testsuite-cdrlib-good.csv", (5, 1, 12, 2)),
    ("asterisk11-bugadm-Master.csv", (105, 105, 2609, 94)),
    ("freeswitch-raspi-Master-aleg.csv", (2, 2, 13, 2)),
    ("freeswitch-raspi-Master-ableg.csv", (4, 4, 26, 4)),
    ("freeswitch-raspi-callcenter-ableg.csv", (2, 2, 13, 2)),
    ("cdr-stats-CDRImport-2015-10-26.csv", (5, 5, 110, 5)),
];

const JSON_FILES: [(&str, Facts); 2] = [
    ("freeswitch-json-2018-01-11.json", (1, 1, 68, 1)),
    ("freeswitch-json-2013-05-16-urlencoded.json", (1, 1, 21, 1)),
];

async fn facts(app: &TestApp, source: &str) -> Facts {
    let q = |what: &str| format!("SELECT ({what})::bigint FROM cdrs WHERE source = '{source}'");
    (
        app.count(&q("count(*)")).await,
        app.count(&q("count(DISTINCT call_id)")).await,
        app.count(&q("coalesce(sum(billsec), 0)")).await,
        app.count(&q("count(*) FILTER (WHERE disposition = 'ANSWERED')")).await,
    )
}

/// Posts a body, waits for its job, returns (inserted, duplicates).
async fn import(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> (u64, u64, Value) {
    let resp = app.client.post(path).content_type(content_type).body(body).send().await;
    let status = resp.0.status();
    let accepted = resp.json().await.value().deserialize::<Value>();
    assert_eq!(status, StatusCode::ACCEPTED, "{path}: {accepted}");
    assert_eq!(accepted["rejected"], Value::Array(vec![]), "{path}: nothing refused");
    let job = app.wait_succeeded(accepted["job_id"].as_str().expect("job id")).await;
    let counts = &job["counts"];
    (counts["inserted"].as_u64().unwrap_or(0), counts["duplicates"].as_u64().unwrap_or(0), accepted)
}

#[tokio::test]
async fn every_real_file_imports_whole_with_its_hand_counted_figures_and_only_once() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    for (file, expected) in CSV_FILES {
        let path = format!("/cdrs?source={file}");
        let (inserted, duplicates, accepted) = import(&app, &path, "text/csv", real_file(file)).await;
        assert_eq!((inserted, duplicates), (expected.0 as u64, 0), "{file}: {accepted}");
        assert_eq!(facts(&app, file).await, expected, "{file} read as {}", accepted["format"]);
        let (inserted, duplicates, _) = import(&app, &path, "text/csv", real_file(file)).await;
        assert_eq!((inserted, duplicates), (0, expected.0 as u64), "{file} imported twice");
    }
    for (file, expected) in JSON_FILES {
        let path = format!("/cdrs/freeswitch?source={file}");
        let (inserted, _, _) = import(&app, &path, "application/json", real_file(file)).await;
        assert_eq!(inserted, 1, "{file}");
        assert_eq!(facts(&app, file).await, expected, "{file}");
        let (inserted, duplicates, _) = import(&app, &path, "application/json", real_file(file)).await;
        assert_eq!((inserted, duplicates), (0, 1), "{file} posted twice");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_real_files_keep_what_the_switch_wrote() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let file = "asterisk11-bugadm-Master.csv";
    let (_, _, accepted) = import(&app, "/cdrs?source=bugadm", "text/csv", real_file(file)).await;
    assert_eq!(accepted["format"], "asterisk");
    // Dialplan extensions and empty callers are stored as written; the empty ones flagged.
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE dest_number = 's'").await, 8);
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE dest_number = 't'").await, 7);
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE src_number = '' AND caller_withheld").await, 5);
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE disposition_raw = 'NO ANSWER'").await, 7);
    // Dialplan extensions get no E.164 form and are counted as extensions, never guessed.
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE dest_number IN ('s', 't') AND dest_type = 'extension' AND dest_e164 IS NULL").await,
        15
    );

    // CDR-Stats dials Spain in E.164: every call's country is found, the ranges libphonenumber
    // lists typed (650… mobile), the others kept as dialled with type unknown; its callers are
    // national digits with no plan for the source, so they stay unresolved.
    import(&app, "/cdrs?source=cdrstats", "text/csv", real_file("cdr-stats-CDRImport-2015-10-26.csv")).await;
    let cdrstats = |what: &str| format!("SELECT count(*) FROM cdrs WHERE source = 'cdrstats' AND {what}");
    assert_eq!(app.count(&cdrstats("dest_country = 'ES' AND dest_e164 = dest_number")).await, 5);
    assert_eq!(app.count(&cdrstats("dest_type = 'mobile'")).await, 2);
    assert_eq!(app.count(&cdrstats("dest_type = 'unknown'")).await, 3);
    assert_eq!(app.count(&cdrstats("src_e164 IS NULL")).await, 5);

    // Asterisk's own test file: five different rows under one uniqueid are five records,
    // each with the switch's billsec (7 > the 5 s duration included) and disposition.
    let (_, _, _) =
        import(&app, "/cdrs?source=good", "text/csv", real_file("asterisk-testsuite-cdrlib-good.csv")).await;
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE source = 'good' AND call_id = '1231977075.0' AND src_number = 'test'").await,
        5
    );
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE source = 'good' AND billsec = 7 AND duration = 5").await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(DISTINCT record_key) FROM cdrs WHERE source = 'good' AND record_key LIKE 'row:%'"
        )
        .await,
        5
    );

    // FreeSWITCH legs are paired: the b-leg's linked_id is the a-leg's uuid.
    import(&app, "/cdrs?source=fs", "text/csv", real_file("freeswitch-raspi-Master-ableg.csv")).await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE source = 'fs' AND (call_id = '02132a5c-b9b1-4dbf-b79c-bdf408854867' \
             OR linked_id = '02132a5c-b9b1-4dbf-b79c-bdf408854867')"
        )
        .await,
        2
    );
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE source = 'fs' AND dest_number = '*1003'").await, 1);

    // Asterisk's deliberately broken file: refused, naming the line.
    let resp = app
        .client
        .post("/cdrs?source=buggy")
        .content_type("text/csv")
        .body(real_file("asterisk-testsuite-cdrlib-buggy.csv"))
        .send()
        .await;
    assert_eq!(resp.0.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = resp.json().await.value().deserialize::<Value>();
    let reason = body["rejected"][0]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("line 1:") && reason.contains("quoted field"), "{body}");
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(1), "{body}");
    app.cleanup().await;
}

/// `cdr-load import` sends real files in chunks cut at record boundaries, bytes untouched:
/// the server tells each file's layout from its first rows, and a header row is repeated
/// in every chunk of a layout that has one.
#[tokio::test]
async fn the_import_command_reads_real_files_in_chunks_by_their_detected_layout() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let (base, server) = app.serve_api(api::auth::Auth::disabled()).await;
    let dir = workspace_dir().join("..").join("shared").join("real-cdrs");
    let load = std::path::Path::new(env!("CARGO_BIN_EXE_cdr-worker")).with_file_name("cdr-load");
    let import = || {
        tokio::process::Command::new(&load)
            .args(["--url", base.as_str(), "--json", "import", "--source", "real", "--chunk", "7", "--wait"])
            .arg(dir.join("cdr-stats-CDRImport-2015-10-26.csv"))
            .arg(dir.join("asterisk11-bugadm-Master.csv"))
            .output()
    };
    let first = import().await.expect("run cdr-load import");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let summary: Value = serde_json::from_slice(&first.stdout).expect("summary");
    assert_eq!(
        (summary["accepted"].clone(), summary["inserted"].clone(), summary["rejected"].clone()),
        (Value::from(110), Value::from(110), Value::from(0)),
        "{summary}"
    );
    assert_eq!(facts(&app, "real").await, (110, 110, 2609 + 110, 99));
    let second: Value =
        serde_json::from_slice(&import().await.expect("import again").stdout).expect("summary");
    assert_eq!(
        (second["inserted"].clone(), second["duplicates"].clone()),
        (Value::from(0), Value::from(110))
    );
    server.abort();
    app.cleanup().await;
}
