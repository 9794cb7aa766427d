//! CSV layouts beyond the stock three, each from a file written the way the switch or tool
//! writes it: every Asterisk `cdr_csv` setting, `cdr_custom`, a Grandstream UCM export, a
//! spreadsheet's rewrite of a FreeSWITCH file, encodings, and saved mappings.

use crate::common::TestApp;
use poem::http::StatusCode;
use serde_json::{Value, json};

async fn post_csv(app: &TestApp, query: &str, body: impl Into<Vec<u8>>) -> (StatusCode, Value) {
    let resp =
        app.client.post(format!("/cdrs?{query}")).content_type("text/csv").body(body.into()).send().await;
    let status = resp.0.status();
    (status, resp.json().await.value().deserialize::<Value>())
}

/// Posts a file that must be accepted whole, waits for its job; returns (format, inserted).
async fn import(app: &TestApp, query: &str, body: impl Into<Vec<u8>>) -> (String, u64) {
    let (status, accepted) = post_csv(app, query, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{query}: {accepted}");
    assert_eq!(accepted["rejected"], json!([]), "{query}");
    let job = app.wait_succeeded(accepted["job_id"].as_str().expect("job")).await;
    (
        accepted["format"].as_str().unwrap_or_default().to_string(),
        job["counts"]["inserted"].as_u64().unwrap_or(0),
    )
}

/// One Asterisk `cdr_csv` row: the sixteen fixed columns and whatever the settings append.
fn asterisk_row(src: &str, dst: &str, disposition: &str, billsec: u32, tail: &str) -> String {
    format!(
        "\"\",\"{src}\",\"{dst}\",\"from-internal\",\"\"\"Ivan\"\" <{src}>\",\"SIP/{src}-0000001\",\"\",\"Dial\",\"SIP/{dst},30\",\"2026-05-04 10:00:00\",\"2026-05-04 10:00:03\",\"2026-05-04 10:00:20\",20,{billsec},\"{disposition}\",\"DOCUMENTATION\"{tail}\n"
    )
}

#[tokio::test]
async fn every_asterisk_cdr_csv_setting_is_read_and_its_identity_kept() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    // loguniqueid=no, loguserfield=no: sixteen columns, no id at all; two rows that differ
    // only in billsec are two records.
    let minimal =
        asterisk_row("100", "s", "ANSWERED", 17, "") + &asterisk_row("100", "s", "ANSWERED", 16, "");
    assert_eq!(import(&app, "source=a16", minimal.clone()).await, ("asterisk-minimal".into(), 2));
    assert_eq!(import(&app, "source=a16", minimal).await.1, 0, "the same file again");
    // loguserfield only: seventeen columns, the last a note, not an id.
    let userfield = asterisk_row("jerbeartest", "t", "CHANUNAVAIL", 0, ",\"vip caller\"");
    assert_eq!(import(&app, "source=a17", userfield).await, ("asterisk-nouniqueid".into(), 1));
    // loguniqueid only: seventeen columns ending in a unique id (with a system name).
    let uniqueid = asterisk_row("&", "*1001", "NO ANSWER", 3, ",\"pbx1-1746352800.7\"");
    assert_eq!(import(&app, "source=a17u", uniqueid).await, ("asterisk-nouserfield".into(), 1));
    // newcdrcolumns only: nineteen; with uniqueid: twenty. Same uniqueid, two sequences:
    // two records; both legs found by their linkedid.
    let ext_min = asterisk_row("101", "102", "ANSWERED", 17, ",\"\",\"1746352800.1\",\"4\"");
    assert_eq!(import(&app, "source=a19", ext_min).await, ("asterisk-extended-minimal".into(), 1));
    let legs = asterisk_row("101", "102", "ANSWERED", 17, ",\"1746352800.1\",\"\",\"1746352800.1\",\"5\"")
        + &asterisk_row("101", "103", "NO ANSWER", 0, ",\"1746352800.1\",\"\",\"1746352800.1\",\"6\"");
    assert_eq!(import(&app, "source=a21", legs).await, ("asterisk-extended-nouserfield".into(), 2));

    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE source = 'a16' AND call_id LIKE 'derived-%'").await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE source = 'a17' AND src_number = 'jerbeartest' AND dest_number = 't' \
              AND disposition = 'FAILED' AND disposition_raw = 'CHANUNAVAIL' AND extra->>'userfield' = 'vip caller'")
            .await,
        1
    );
    // NO ANSWER with billsec 3 and an answer time, as Asterisk writes them: kept.
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE source = 'a17u' AND call_id = 'pbx1-1746352800.7' AND src_number = '&' \
              AND dest_number = '*1001' AND disposition = 'NO ANSWER' AND billsec = 3 AND answer_time IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE source = 'a21' AND call_id = '1746352800.1' \
              AND record_key IN ('seq:5', 'seq:6') AND linked_id = '1746352800.1'"
        )
        .await,
        2
    );
    app.cleanup().await;
}

#[tokio::test]
async fn cdr_custom_grandstream_and_spreadsheet_files_are_read() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    // cdr_custom with the stock Master.csv mapping: clid first, quoted empty answer,
    // accountcode after amaflags, an unquoted sequence.
    let custom = "\"\"\"Olga\"\" <201>\",\"201\",\"74951234567\",\"from-internal\",\"SIP/201-01\",\"SIP/trunk-02\",\"Dial\",\"SIP/trunk/74951234567\",\"2026-05-04 11:00:00\",\"\",\"2026-05-04 11:00:25\",\"25\",\"0\",\"BUSY\",\"DOCUMENTATION\",\"sales\",\"1746356400.3\",\"\",12\n";
    assert_eq!(import(&app, "source=custom", custom).await, ("asterisk-custom".into(), 1));
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE source = 'custom' AND account_code = 'sales' AND disposition = 'BUSY' \
                   AND answer_time IS NULL AND record_key = 'seq:12' AND extra->>'clid' = '\"Olga\" <201>'")
            .await,
        1
    );

    // A Grandstream UCM export: one call over two rows (the ring group's two legs) sharing
    // Session and Unique ID; talk time as H:MM:SS.
    let header = "Account Code,Caller Number,Callee Number,Context,CallerID Number,Source Channel,Dest. Channel,Last app.,Last date,Start Time,Answer Time,End Time,Call Time,Talk Time,Disposition,AMA Flags,Unique ID,Log Userfield,Dest Channel Extension,Caller Name,Answered by,Session,Premier Caller,Action Type,Source Trunk Name,Destination Trunk Name\n";
    let ucm = format!(
        "{header}\
,0551234567,6401,from-trunk,0551234567,PJSIP/trunk-1,PJSIP/6401-2,Dial,PJSIP/6401,2022-08-22 09:34:32,,2022-08-22 09:34:47,15,0,NO ANSWER,DOCUMENTATION,1661157236.2641,Inbound,6401,Caller,,1661157236570719-07917330699,,RINGGROUP[6400],Trunk A,\n\
,0551234567,6402,from-trunk,0551234567,PJSIP/trunk-1,PJSIP/6402-3,Dial,PJSIP/6402,2022-08-22 09:34:32,2022-08-22 09:34:40,2022-08-22 09:35:52,0:01:20,0:01:12,ANSWERED,DOCUMENTATION,1661157236.2641,Inbound,6402,Caller,6402,1661157236570719-07917330699,,RINGGROUP[6400],Trunk A,\n"
    );
    assert_eq!(
        import(&app, "source=ucm&timezone=Asia/Jerusalem", ucm.clone()).await,
        ("grandstream-ucm".into(), 2)
    );
    assert_eq!(import(&app, "source=ucm&timezone=Asia/Jerusalem", ucm).await.1, 0, "the same export again");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE source = 'ucm' AND call_id = '1661157236.2641' \
                   AND linked_id = '1661157236570719-07917330699'"
        )
        .await,
        2
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE source = 'ucm' AND dest_number = '6402' AND billsec = 72 \
                   AND duration = 80 AND extra->>'Talk Time' = '0:01:12' \
                   AND start_time = '2022-08-22 06:34:32+00'"
        )
        .await,
        1
    );

    // A FreeSWITCH file that went through a spreadsheet: no quotes, `yyyy/m/d h:mm` times.
    let sheet = "Extension 1001,1001,1002,default,2020/2/10 22:41,2020/2/10 22:41,2020/2/10 22:43,95,93,NORMAL_CLEARING,6f3c1d2e-0000-4000-8000-00000000aa01,,1001,PCMA,PCMA\n";
    assert_eq!(import(&app, "source=sheet", sheet).await, ("freeswitch".into(), 1));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE source = 'sheet' AND start_time = '2020-02-10 22:41:00+00' \
                   AND disposition = 'ANSWERED' AND billsec = 93"
        )
        .await,
        1
    );
    app.cleanup().await;
}

#[tokio::test]
async fn names_in_other_charsets_are_decoded_never_refused() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    // A Windows-1251 caller name ("Ґена Петров") in an otherwise ASCII Asterisk file.
    let mut row = b"\"\",\"300\",\"301\",\"ctx\",\"\"\"".to_vec();
    row.extend_from_slice(b"\xa5\xe5\xed\xe0 \xcf\xe5\xf2\xf0\xee\xe2");
    row.extend_from_slice(
        b"\"\" <300>\",\"SIP/300-1\",\"\",\"Dial\",\"\",\"2026-05-04 12:00:00\",\"\",\"2026-05-04 12:00:09\",9,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1746360000.9\",\"\"\n",
    );
    import(&app, "source=cp1251&charset=windows-1251", row.clone()).await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE source = 'cp1251' AND extra->>'clid' = '\"Ґена Петров\" <300>'"
        )
        .await,
        1
    );
    // No charset declared: Windows-1252, so every byte still becomes a character.
    import(&app, "source=fallback", row.clone()).await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE source = 'fallback' AND extra->>'clid' = '\"¥åíà Ïåòðîâ\" <300>'"
        )
        .await,
        1
    );
    // The Content-Type's charset parameter works too.
    let resp = app
        .client
        .post("/cdrs?source=header")
        .content_type("text/csv; charset=windows-1251")
        .body(row)
        .send()
        .await;
    resp.assert_status(StatusCode::ACCEPTED);
    let accepted = resp.json().await.value().deserialize::<Value>();
    app.wait_succeeded(accepted["job_id"].as_str().expect("job")).await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM cdrs WHERE source = 'header' AND extra->>'clid' = '\"Ґена Петров\" <300>'"
        )
        .await,
        1
    );
    let (status, body) = post_csv(&app, "charset=klingon", "x").await;
    assert_eq!((status, body["details"]["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some("charset")));
    app.cleanup().await;
}

#[tokio::test]
async fn saved_mappings_read_an_operators_own_layout() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let mapping = json!({
        "description": "Acme PBX web export",
        "fields": {
            "call_id": "Ref", "src_number": "From", "dest_number": "To", "start_time": "Begin",
            "duration": "Secs", "billsec": "Talk", "disposition": "Result", "direction": "Dir"
        },
        "time_formats": ["%d.%m.%Y %H:%M:%S"],
        "timezone": "Europe/Berlin",
        "values": {
            "disposition": { "OK": "ANSWERED", "NOANS": "NO ANSWER", "BSY": "BUSY" },
            "direction": { "I": "inbound", "O": "outbound" }
        },
        "identity": "call_id"
    });
    let put = |name: &str, body: Value| {
        app.client
            .put(format!("/mappings/{name}"))
            .content_type("application/json")
            .body(body.to_string())
            .send()
    };
    put("acme-pbx", mapping.clone()).await.assert_status(StatusCode::CREATED);
    put("acme-pbx", mapping.clone()).await.assert_status(StatusCode::OK);
    let listed = app.client.get("/mappings").send().await.json().await.value().deserialize::<Value>();
    let names: Vec<&str> =
        listed["items"].as_array().expect("items").iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(
        names.contains(&"acme-pbx")
            && names.contains(&"asterisk-extended")
            && names.contains(&"grandstream-ucm"),
        "{names:?}"
    );

    let file = "Ref,From,To,Begin,Secs,Talk,Result,Dir,Notes\n";
    let body = format!(
        "{file}A-1,0301234567,+49891234,04.05.2026 12:00:00,65,60,OK,O,first\nA-2,0301234567,+49891235,04.05.2026 12:05:00,30,0,FAX,I,\n"
    );
    // Named, and detected by its header row.
    assert_eq!(import(&app, "source=acme&format=acme-pbx", body.clone()).await, ("acme-pbx".into(), 2));
    assert_eq!(import(&app, "source=acme", body).await, ("acme-pbx".into(), 0));
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE source = 'acme' AND call_id = 'A-1' AND disposition = 'ANSWERED' \
                   AND disposition_raw = 'OK' AND direction = 'outbound' AND extra->>'Dir' = 'O' \
                   AND start_time = '2026-05-04 10:00:00+00' AND extra->>'Notes' = 'first'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE call_id = 'A-2' AND disposition = 'FAILED' AND disposition_raw = 'FAX'")
            .await,
        1
    );

    // Refused: a mapping that cannot work, a built-in's name, an unknown format.
    let resp = put("broken", json!({"fields": {"start_time": "Begin", "colour": "Red"}})).await;
    resp.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let body = resp.json().await.value().deserialize::<Value>();
    assert!(body["message"].as_str().unwrap_or_default().contains("colour"), "{body}");
    put("asterisk", mapping).await.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = post_csv(&app, "format=nope", "a\n").await;
    assert_eq!((status, body["details"]["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some("format")));
    app.client.delete("/mappings/acme-pbx").send().await.assert_status(StatusCode::NO_CONTENT);
    app.client.get("/mappings/acme-pbx").send().await.assert_status(StatusCode::NOT_FOUND);
    app.client.get("/mappings/freeswitch").send().await.assert_status_is_ok();
    app.cleanup().await;
}
