//! Monthly partitions of `cdrs`: where records land, duplicates across partitions, records
//! refused for their age, and the conversion of a database filled by the previous version.

use crate::common::{TestApp, admin_url, answered_cdr, url_with_db};
use api::cli::Limits;
use chrono::{Duration as Days, Utc};
use jobs::retention::RetentionPolicy;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use std::time::Duration;

/// Call `id` starting at `start` (RFC 3339, any zone), one minute long.
fn call(id: &str, start: &str) -> Value {
    let mut cdr = answered_cdr(0);
    cdr["call_id"] = json!(id);
    cdr["start_time"] = json!(start);
    let fields = cdr.as_object_mut().expect("object");
    fields.remove("answer_time");
    fields.remove("end_time");
    cdr["duration"] = json!(60);
    cdr["billsec"] = json!(50);
    cdr
}

async fn partitions_of(app: &TestApp) -> Vec<(String, String)> {
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT call_id, tableoid::regclass::text AS partition FROM cdrs ORDER BY call_id",
        ))
        .await
        .expect("query");
    rows.iter()
        .map(|r| (r.try_get("", "call_id").expect("call_id"), r.try_get("", "partition").expect("partition")))
        .collect()
}

#[tokio::test]
async fn records_land_in_their_utc_month_and_duplicates_are_found_in_any_month() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let first = app
        .ingest(&json!([
            call("a", "2026-01-31T23:30:00-05:00"), // February in UTC
            call("b", "2026-01-31T23:59:59.500Z"),
            call("c", "2026-02-01T00:00:00Z"),
            call("d", "2026-02-01T00:30:00+01:00"), // January in UTC
            call("e", "2024-06-15T12:00:00Z"),      // two years late: a month of its own
        ]))
        .await;
    let job = app.wait_succeeded(first["job_id"].as_str().expect("id")).await;
    assert_eq!(job["counts"]["inserted"], 5, "{job}");
    let expected: Vec<(String, String)> = [
        ("a", "cdrs_2026_02"),
        ("b", "cdrs_2026_01"),
        ("c", "cdrs_2026_02"),
        ("d", "cdrs_2026_01"),
        ("e", "cdrs_2024_06"),
    ]
    .iter()
    .map(|(c, p)| (c.to_string(), p.to_string()))
    .collect();
    assert_eq!(partitions_of(&app).await, expected);

    // Copies arriving later — in a batch that also makes a new month's partition, and in
    // the same zone-shifted notation — conflict with the originals in their partitions.
    let again = app
        .ingest(&json!([
            call("b", "2026-02-01T00:59:59.500+01:00"),
            call("f", "2026-03-01T00:00:00Z"),
            call("e", "2024-06-15T12:00:00Z"),
        ]))
        .await;
    let job = app.wait_succeeded(again["job_id"].as_str().expect("id")).await;
    assert_eq!((&job["counts"]["inserted"], &job["counts"]["duplicates"]), (&json!(1), &json!(2)), "{job}");
    let later = app.ingest(&json!([call("a", "2026-02-01T04:30:00Z")])).await;
    let job = app.wait_succeeded(later["job_id"].as_str().expect("id")).await;
    assert_eq!(job["counts"]["duplicates"], 1, "{job}");
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 6);
    assert_eq!(app.count("SELECT count(*) FROM ONLY cdrs").await, 0, "the parent holds no rows itself");

    let status = app.wait_in_sync(Duration::from_secs(60)).await;
    assert_eq!(status["database_count"], 6, "{status}");
    let page = app.client.get("/search?limit=100").send().await.json().await.value().deserialize::<Value>();
    assert_eq!((page["items"].as_array().map(Vec::len), &page["total"]), (Some(6), &json!(6)), "{page}");
    app.assert_rollups_match_rows().await;
    app.cleanup().await;
}

#[tokio::test]
async fn records_older_than_the_retention_are_refused_naming_their_start() {
    let limits = Limits {
        retention: RetentionPolicy { raw_months: Some(12), rollup_months: None },
        ..Limits::default()
    };
    let app = TestApp::with_limits(limits).await;
    let old = (Utc::now() - Days::days(14 * 31)).to_rfc3339();
    let recent = (Utc::now() - Days::days(40)).to_rfc3339();
    let resp = app.post_json(&json!([call("old", &old), call("recent", &recent)])).await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let body = resp.json().await.value().deserialize::<Value>();
    assert_eq!(body["accepted"], 1, "{body}");
    let refused = &body["rejected"][0];
    assert_eq!((&refused["index"], &refused["field"]), (&json!(0), &json!("start_time")), "{body}");
    assert!(refused["reason"].as_str().unwrap_or_default().contains("CDR_RETENTION_MONTHS=12"), "{body}");

    // A batch of nothing but expired records is refused whole, naming each.
    let resp = app.post_json(&json!([call("old", &old)])).await;
    resp.assert_status(poem::http::StatusCode::UNPROCESSABLE_ENTITY);
    let body = resp.json().await.value().deserialize::<Value>();
    assert_eq!(body["rejected"][0]["field"], "start_time", "{body}");
    app.cleanup().await;
}

/// The schema of the previous version (every migration before the partitioning), filled as
/// it filled it, converts in place: every row kept with its id, months split into
/// partitions, and ingest afterwards still finds the old rows' duplicates.
#[tokio::test]
async fn an_unpartitioned_database_of_the_previous_version_converts_in_place() {
    use migration::MigratorTrait as _;
    let name = format!("t{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = Database::connect(admin_url()).await.expect("PostgreSQL is up");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create database");
    let db = jobs::db::connect(&url_with_db(&admin_url(), &name), 2).await.expect("connect");
    migration::Migrator::up(&db, Some(9)).await.expect("the previous version's schema");
    let exec = |sql: &'static str| {
        let db = db.clone();
        async move { db.execute_unprepared(sql).await.expect(sql) }
    };
    exec(
        "INSERT INTO cdrs (source, call_id, record_key, src_number, dest_number, start_time, end_time, duration, billsec, \
                           disposition, call_successful, job_id, extra) \
         SELECT 'pbx', 'old-' || g, CASE WHEN g % 7 = 0 THEN 'seq:' || g ELSE '' END, '100', '200', \
                timestamptz '2025-11-20 00:00:00+00' + g * interval '41 minutes', \
                timestamptz '2025-11-20 00:00:00+00' + g * interval '41 minutes' + interval '90 s', 90, 80, 'ANSWERED', true, \
                'job-' || (g / 500), jsonb_build_object('n', g) \
         FROM generate_series(1, 3000) g",
    )
    .await;
    exec("INSERT INTO index_failures (cdr_id, job_id, error) SELECT id, job_id, 'refused' FROM cdrs WHERE id % 500 = 0")
        .await;
    // The columns of that version: later versions add derived ones, empty for old rows.
    let fingerprint = "SELECT count(*)::text || ':' || md5(string_agg((to_jsonb(c) - ARRAY['src_e164', 'dest_e164', \
         'dest_country', 'dest_type', 'sell_rating', 'sell_cost', 'sell_currency', 'sell_prefix', 'sell_deck', 'buy_rating', \
         'buy_cost', 'buy_currency', 'buy_prefix', 'buy_deck', 'derived_at'])::text, '|' ORDER BY id)) AS f FROM cdrs c";
    let read = |sql: &'static str| {
        let db = db.clone();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .expect(sql)
                .expect("a row");
            row.try_get_by_index::<String>(0).expect("text")
        }
    };
    let before = read(fingerprint).await;

    jobs::db::migrate(&db).await.expect("the conversion");
    assert_eq!(read(fingerprint).await, before, "every row kept, ids and columns alike");
    assert_eq!(
        read("SELECT count(*)::text FROM cdrs WHERE dest_e164 IS NULL AND sell_rating IS NULL AND derived_at IS NULL").await,
        "3000",
        "rows stored before numbers and money have no derived values until a re-rate"
    );
    assert_eq!(read("SELECT relkind::text FROM pg_class WHERE relname = 'cdrs'").await, "p");
    assert_eq!(
        read("SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'cdrs'::regclass").await,
        "cdrs_2025_11,cdrs_2025_12,cdrs_2026_01,cdrs_2026_02"
    );
    assert_eq!(read("SELECT count(*)::text FROM index_failures").await, "6");

    let store = jobs::store::CdrStore::new(db.clone());
    let old = jobs::cdr::parse_record(
        0,
        &json!({ "source": "pbx", "call_id": "old-7", "record_key": "seq:7", "src_number": "100", "dest_number": "200",
                 "start_time": "2025-11-20T04:47:00Z", "duration": 90, "billsec": 80, "disposition": "ANSWERED" }),
        "pbx",
    )
    .expect("a record");
    let new = jobs::cdr::parse_record(1, &call("new", "2026-02-10T10:00:00Z"), "pbx").expect("a record");
    let outcome = store.store_batch("after-upgrade", &[old, new]).await.expect("stored");
    assert_eq!((outcome.inserted, outcome.duplicates), (1, 1), "the old row is found as a duplicate");
    assert_eq!(
        read("SELECT (id > 3000)::text FROM cdrs WHERE call_id = 'new'").await,
        "true",
        "ids continue after the old ones"
    );
    db.close().await.ok();
    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}
