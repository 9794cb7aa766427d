//! Switch CSV files, as switches write them, through POST /cdrs.

use crate::common::TestApp;
use poem::http::StatusCode;
use serde_json::Value;

async fn post_csv(app: &TestApp, query: &str, body: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(format!("/cdrs?{query}"))
        .content_type("text/csv")
        .body(body.to_string())
        .send()
        .await;
    let status = resp.0.status();
    (status, resp.json().await.value().deserialize::<Value>())
}

async fn row(app: &TestApp, call_id: &str, columns: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = format!("SELECT {columns} FROM cdrs WHERE call_id = '{call_id}'");
    let row = app
        .db
        .query_one_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("{call_id} not stored"));
    (0..11).map(|i| row.try_get_by_index::<Option<String>>(i).expect("text").unwrap_or_default()).collect()
}

const COLUMNS: &str = "source, src_number, dest_number, to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), \
    coalesce(to_char(answer_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), ''), duration::text, billsec::text, \
    disposition, coalesce(hangup_cause, ''), coalesce(account_code, ''), extra::text";

#[tokio::test]
async fn asterisk_master_csv_is_stored_field_by_field_and_only_once() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    // A UTF-8 BOM, Windows line endings, doubled quotes inside clid, an empty unquoted
    // answer, numbers quoted and not, a SIP user as the callee, a caller with no number, and
    // a row that cannot be a call (it ends before it starts).
    let file = "\u{feff}\"acme\",\"1001\",\"5551234\",\"from-internal\",\"\"\"Alice\"\" <1001>\",\"SIP/1001-00000001\",\"SIP/trunk-00000002\",\"Dial\",\"SIP/trunk/5551234,30\",\"2026-03-01 10:00:00\",\"2026-03-01 10:00:05\",\"2026-03-01 10:01:05\",\"65\",\"60\",\"ANSWERED\",\"DOCUMENTATION\",\"1709287200.1\",\"\"\r\n\
,\"1002\",\"5559999\",\"from-internal\",\"\"\"Bob\"\" <1002>\",\"SIP/1002-00000003\",,\"Dial\",\"SIP/trunk/5559999,30\",\"2026-03-01 11:00:00\",,\"2026-03-01 11:00:20\",20,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1709290800.2\",\r\n\
\"acme\",\"1003\",\"not-a-number\",\"from-internal\",\"\",\"SIP/1003-00000004\",,\"Dial\",\"\",\"2026-03-01 12:00:00\",,\"2026-03-01 12:00:02\",2,0,\"FAILED\",\"DOCUMENTATION\",\"1709294400.3\",\r\n\
,,\"5550000\",\"from-trunk\",\"\",\"SIP/trunk-00000005\",,\"Dial\",\"\",\"2026-03-01 13:00:00\",,\"2026-03-01 13:00:09\",9,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1709298000.4\",\r\n\
,\"1004\",\"5550001\",\"from-trunk\",\"\",\"SIP/trunk-00000006\",,\"Dial\",\"\",\"2026-03-01 14:00:00\",,\"2026-03-01 13:00:00\",0,0,\"FAILED\",\"DOCUMENTATION\",\"1709301600.5\",\r\n";
    let (status, accepted) = post_csv(&app, "source=pbx-ast&timezone=Europe/Paris", file).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(
        (accepted["accepted"].clone(), accepted["format"].clone()),
        (Value::from(4), Value::from("asterisk"))
    );
    let rejected = &accepted["rejected"][0];
    assert_eq!(
        (rejected["index"].clone(), rejected["field"].clone()),
        (Value::from(4), Value::from("end_time"))
    );
    assert!(rejected["reason"].as_str().expect("reason").starts_with("line 5:"), "{rejected}");
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;

    // Paris is UTC+1 in March: 10:00 local is 09:00 UTC.
    let answered = row(&app, "1709287200.1", COLUMNS).await;
    assert_eq!(
        answered[..10],
        [
            "pbx-ast",
            "1001",
            "5551234",
            "2026-03-01 09:00:00",
            "2026-03-01 09:00:05",
            "65",
            "60",
            "ANSWERED",
            "",
            "acme"
        ]
    );
    let extra: Value = serde_json::from_str(&answered[10]).expect("extra");
    assert_eq!(extra["clid"], "\"Alice\" <1001>");
    assert_eq!(extra["lastdata"], "SIP/trunk/5551234,30");
    assert_eq!(extra["dstchannel"], "SIP/trunk-00000002");
    let unanswered = row(&app, "1709290800.2", COLUMNS).await;
    assert_eq!(unanswered[3..10], ["2026-03-01 10:00:00", "", "20", "0", "NO ANSWER", "", ""]);
    let sip_user = row(&app, "1709294400.3", COLUMNS).await;
    assert_eq!(sip_user[1..3], ["1003", "not-a-number"]);
    let withheld = row(&app, "1709298000.4", COLUMNS).await;
    assert_eq!(withheld[1..3], ["", "5550000"]);
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE call_id = '1709298000.4' AND caller_withheld").await,
        1
    );

    // The same file again stores nothing new.
    let (_, again) = post_csv(&app, "source=pbx-ast&timezone=Europe/Paris&format=asterisk", file).await;
    let job = app.wait_succeeded(again["job_id"].as_str().expect("id")).await;
    assert_eq!(
        (job["counts"]["inserted"].clone(), job["counts"]["duplicates"].clone()),
        (Value::from(0), Value::from(4))
    );
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 4);
    app.cleanup().await;
}

#[tokio::test]
async fn asterisk_extended_keeps_linkedid_for_forked_legs() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let leg = |uniqueid: &str, dst: &str, disposition: &str, answer: &str, billsec: u32| {
        format!(
            "\"acme\",\"1001\",\"{dst}\",\"from-internal\",\"\",\"SIP/1001-1\",\"SIP/{dst}-2\",\"Dial\",\"\",\"2026-03-01 10:00:00\",{answer},\"2026-03-01 10:00:30\",30,{billsec},\"{disposition}\",\"DOCUMENTATION\",\"{uniqueid}\",\"\",\"\",\"1709287200.10\",\"7\"\n"
        )
    };
    let file = leg("1709287200.11", "2001", "ANSWERED", "\"2026-03-01 10:00:10\"", 20)
        + &leg("1709287200.12", "2002", "NO ANSWER", "", 0);
    let (status, accepted) = post_csv(&app, "source=pbx-ast", &file).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["accepted"], 2);
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE extra->>'linkedid' = '1709287200.10'").await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE linked_id = '1709287200.10' AND record_key = 'seq:7'")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE call_id = '1709287200.11' AND billsec = 20").await,
        1
    );
    app.cleanup().await;
}

#[tokio::test]
async fn freeswitch_csv_maps_hangup_causes_and_keeps_them() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let file = "\"Alice\",\"1000\",\"5551234\",\"default\",\"2026-03-01 10:00:00\",\"2026-03-01 10:00:04\",\"2026-03-01 10:02:04\",\"124\",\"120\",\"NORMAL_CLEARING\",\"a1b2c3d4-0000-4000-8000-000000000001\",\"\",\"acme\",\"PCMU\",\"PCMU\"\n\
\"Bob\",\"1001\",\"5550000\",\"default\",\"2026-03-01 10:05:00\",\"\",\"2026-03-01 10:05:10\",\"10\",\"0\",\"USER_BUSY\",\"a1b2c3d4-0000-4000-8000-000000000002\",\"\",\"acme\",\"PCMU\",\"PCMU\"\n\
\"Carol\",\"1002\",\"5550001\",\"default\",\"2026-03-01 10:06:00\",\"\",\"2026-03-01 10:06:30\",\"30\",\"0\",\"NO_USER_RESPONSE\",\"a1b2c3d4-0000-4000-8000-000000000003\",\"\",\"\",\"PCMU\",\"PCMU\"\n\
\"Dave\",\"1003\",\"5550002\",\"default\",\"2026-03-01 10:07:00\",\"\",\"2026-03-01 10:07:01\",\"1\",\"0\",\"ORIGINATOR_CANCEL\",\"a1b2c3d4-0000-4000-8000-000000000004\",\"\",\"\",\"PCMU\",\"PCMU\"\n\
\"Alice\",\"1000\",\"5551234\",\"default\",\"2026-03-01 10:00:00\",\"2026-03-01 10:00:04\",\"2026-03-01 10:02:04\",\"124\",\"120\",\"NORMAL_CLEARING\",\"a1b2c3d4-0000-4000-8000-000000000001\",\"\",\"acme\",\"PCMU\",\"PCMU\"\n";
    let (status, accepted) = post_csv(&app, "format=freeswitch&source=fs-1", file).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["accepted"], 5);
    let job = app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    // The repeated uuid is one call.
    assert_eq!(
        (job["counts"]["inserted"].clone(), job["counts"]["duplicates"].clone()),
        (Value::from(4), Value::from(1))
    );
    let expect = [
        ("a1b2c3d4-0000-4000-8000-000000000001", "ANSWERED", "NORMAL_CLEARING", "120"),
        ("a1b2c3d4-0000-4000-8000-000000000002", "BUSY", "USER_BUSY", "0"),
        ("a1b2c3d4-0000-4000-8000-000000000003", "NO ANSWER", "NO_USER_RESPONSE", "0"),
        // The caller gave up before an answer.
        ("a1b2c3d4-0000-4000-8000-000000000004", "NO ANSWER", "ORIGINATOR_CANCEL", "0"),
    ];
    for (uuid, disposition, cause, billsec) in expect {
        let r = row(&app, uuid, COLUMNS).await;
        assert_eq!(
            (r[7].as_str(), r[8].as_str(), r[6].as_str(), r[0].as_str()),
            (disposition, cause, billsec, "fs-1"),
            "{uuid}"
        );
    }
    let alice = row(&app, expect[0].0, COLUMNS).await;
    let extra: Value = serde_json::from_str(&alice[10]).expect("extra");
    assert_eq!(
        (extra["caller_id_name"].clone(), extra["read_codec"].clone()),
        (Value::from("Alice"), Value::from("PCMU"))
    );
    app.cleanup().await;
}

#[tokio::test]
async fn generic_csv_with_a_header_and_format_errors() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let file = "call_id,source,src_number,dest_number,start_time,end_time,disposition,codec\n\
g-1,pbx-x,100,200,2026-03-01 10:00:00,2026-03-01 10:00:30,NO ANSWER,opus\n\
g-2,pbx-x,100,abc,2026-03-01 10:01:00,2026-03-01 10:01:30,NO ANSWER,opus\n\
g-3,pbx-x,100\n";
    let (status, accepted) = post_csv(&app, "", file).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["accepted"], 2);
    let reasons: Vec<(String, String)> = accepted["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (r["field"].as_str().unwrap_or("").to_string(), r["reason"].as_str().unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].1.starts_with("line 4:") && reasons[0].1.contains("columns"), "{reasons:?}");
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE call_id = 'g-1' AND extra->>'codec' = 'opus'").await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE call_id = 'g-2' AND dest_number = 'abc'").await, 1);

    let (status, body) = post_csv(&app, "", "a,b,c\n1,2,3\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["details"]["parameter"], "format", "{body}");
    let (status, body) = post_csv(&app, "format=cisco", file).await;
    assert_eq!(
        (status, body["details"]["parameter"].clone()),
        (StatusCode::BAD_REQUEST, Value::from("format"))
    );
    let (status, body) = post_csv(&app, "timezone=Mars/Olympus", file).await;
    assert_eq!(
        (status, body["details"]["parameter"].clone()),
        (StatusCode::BAD_REQUEST, Value::from("timezone"))
    );
    app.cleanup().await;
}

/// `cdr-load import` sends a directory of Master.csv files through the API, chunked.
#[tokio::test]
async fn the_import_command_stores_a_directory_once() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let (base, server) = app.serve_api(api::auth::Auth::disabled()).await;
    let dir = std::env::temp_dir().join(format!("cdr-import-{}", app.name));
    std::fs::create_dir_all(&dir).expect("dir");
    for file in 0..2 {
        let rows: String = (0..5)
            .map(|n| {
                format!(
                    "\"acme\",\"100{n}\",\"555000{n}\",\"ctx\",\"\",\"SIP/a\",\"SIP/b\",\"Dial\",\"\",\"2026-03-01 10:0{n}:00\",\"2026-03-01 10:0{n}:02\",\"2026-03-01 10:0{n}:12\",\"12\",\"10\",\"ANSWERED\",\"DOCUMENTATION\",\"imp-{file}-{n}\",\"\"\n"
                )
            })
            .collect();
        std::fs::write(dir.join(format!("Master-{file}.csv")), rows).expect("write");
    }
    let load = std::path::Path::new(env!("CARGO_BIN_EXE_cdr-worker")).with_file_name("cdr-load");
    // Async: the API under test runs on this test's runtime.
    let import = || {
        tokio::process::Command::new(&load)
            .args(["--url", base.as_str(), "--json", "import", "--format", "asterisk"])
            .args(["--source", "pbx-import", "--chunk", "3", "--wait"])
            .arg(&dir)
            .output()
    };
    let first = import().await.expect("run cdr-load import");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let summary: Value = serde_json::from_slice(&first.stdout).expect("summary");
    assert_eq!(
        (summary["files"].clone(), summary["accepted"].clone(), summary["inserted"].clone()),
        (Value::from(2), Value::from(10), Value::from(10))
    );
    assert_eq!(summary["jobs"], 4, "two files of five rows in chunks of three");
    let second: Value =
        serde_json::from_slice(&import().await.expect("run cdr-load import").stdout).expect("summary");
    assert_eq!((second["inserted"].clone(), second["duplicates"].clone()), (Value::from(0), Value::from(10)));
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE source = 'pbx-import'").await, 10);
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    app.cleanup().await;
}
