//! KPI rollups kept exactly in step with the stored rows.

use crate::common::{TestApp, answered_cdr, batch, eventually};
use sea_orm::ConnectionTrait as _;
use serde_json::{Value, json};
use std::time::Duration;

/// Waits until `n` calls are stored.
async fn wait_stored(app: &TestApp, n: i64) {
    eventually(Duration::from_secs(120), "every call stored", || async {
        let stored = app.count("SELECT count(*) FROM cdrs").await;
        if stored == n { Ok(()) } else { Err(stored.to_string()) }
    })
    .await;
}

async fn wait_folded(app: &TestApp) {
    eventually(Duration::from_secs(30), "pending rollup sums folded", || async {
        let pending = app.count("SELECT count(*) FROM kpi_pending").await;
        if pending == 0 { Ok(()) } else { Err(pending.to_string()) }
    })
    .await;
}

/// Call `n` starting at `start` (RFC 3339), given by its duration and billed seconds instead
/// of its answer and end times.
fn call_at(n: usize, start: String, duration: usize, billsec: usize) -> Value {
    let mut cdr = answered_cdr(n);
    cdr["start_time"] = json!(start);
    let fields = cdr.as_object_mut().expect("object");
    fields.remove("answer_time");
    fields.remove("end_time");
    cdr["duration"] = json!(duration);
    cdr["billsec"] = json!(billsec);
    cdr
}

#[tokio::test]
async fn pending_sums_are_folded_as_soon_as_ingest_pauses() {
    let mut app = TestApp::new().await;
    // The timer alone would not fold for an hour.
    app.worker_env.push(("CDR_ROLLUP_FOLD_MS".into(), "3600000".into()));
    app.start_worker().await;
    let rows: Vec<Value> = (0..200).map(answered_cdr).collect();
    let accepted = app.ingest(&Value::Array(rows)).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    wait_folded(&app).await;
    let folded = app.count("SELECT coalesce(sum(attempts), 0)::int8 FROM kpi_day").await;
    assert_eq!(folded, 200, "every stored call is in the daily rollups");
    app.assert_rollups_match_rows().await;
}

#[tokio::test]
async fn rollups_count_each_stored_row_once_through_duplicates_and_replays() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    // Mixed dispositions, directions, accounts, prefixes and minutes.
    let rows: Vec<Value> = (0..300)
        .map(|n| {
            let start = format!("2026-03-01T10:{:02}:{:02}Z", n % 7, n % 60);
            let mut cdr = call_at(n, start, n % 90, if n % 3 == 0 { n % 60 } else { 0 });
            cdr["disposition"] =
                json!(["ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CONGESTION"][n % 3 * (n % 2 + 1) % 5]);
            if cdr["disposition"] != "ANSWERED" {
                cdr["billsec"] = json!(0);
            }
            if n % 11 == 0 {
                cdr["hangup_cause"] = json!("CALL_REJECTED");
                cdr["disposition"] = json!("FAILED");
            }
            cdr["direction"] = json!(["inbound", "outbound"][n % 2]);
            cdr["account_code"] = if n % 4 == 0 { Value::Null } else { json!(format!("acct-{}", n % 4)) };
            cdr["dest_number"] = json!(["+442071234567", "0049301234", "100", "s", "33612345678"][n % 5]);
            cdr
        })
        .collect();
    let first = app.ingest(&Value::Array(rows.clone())).await;
    app.wait_succeeded(first["job_id"].as_str().expect("id")).await;
    // The same rows again (all duplicates), and half of them with 100 new ones.
    let again = app.ingest(&Value::Array(rows.clone())).await;
    let job = app.wait_succeeded(again["job_id"].as_str().expect("id")).await;
    assert_eq!(job["counts"]["duplicates"], 300);
    let mut mixed: Vec<Value> = rows[..150].to_vec();
    mixed.extend((1000..1100).map(answered_cdr));
    let third = app.ingest(&Value::Array(mixed)).await;
    app.wait_succeeded(third["job_id"].as_str().expect("id")).await;
    assert_eq!(app.count("SELECT count(*) FROM cdrs").await, 400);
    app.assert_rollups_match_rows().await;
    wait_folded(&app).await;
    app.assert_rollups_match_rows().await;
    assert_eq!(app.count("SELECT attempts FROM kpi_totals").await, 400);
    // A record without an account code is counted under the empty one.
    let accounts = app.count("SELECT count(DISTINCT account_code) FROM kpi_account_hour WHERE account_code IN ('', 'acct-1', 'acct-2', 'acct-3')").await;
    assert_eq!(accounts, 4);
    let status = app.wait_in_sync(Duration::from_secs(60)).await;
    assert_eq!(status["database_count"], 400, "counted from the rollups: {status}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_job_delivered_twice_adds_its_sums_once() {
    let mut app = TestApp::new().await;
    // Stored directly twice, as two racing deliveries of one job would.
    let dests = ["+442071234567", "0049301234", "100", "s", "33612345678"];
    let cdrs: Vec<_> = (0..50)
        .map(|n| {
            let mut cdr = answered_cdr(n);
            cdr["dest_number"] = json!(dests[n % 5]);
            jobs::cdr::parse_record(n, &cdr, "s").expect("valid")
        })
        .collect();
    let store = jobs::store::CdrStore::new(app.db.clone());
    let job_id = jobs::new_job_id();
    let (a, b) = tokio::join!(store.store_batch(&job_id, &cdrs), store.store_batch(&job_id, &cdrs));
    let (a, b) = (a.expect("first"), b.expect("second"));
    // Both report the one commit; only one of them made it.
    assert_eq!((a.inserted, b.inserted), (50, 50), "{a:?} {b:?}");
    assert!(a.replayed != b.replayed, "{a:?} {b:?}");
    let pending =
        format!("SELECT coalesce(sum(attempts), 0)::int8 FROM ({}) p", jobs::rollups::pending_rows("TRUE"));
    assert_eq!(app.count(&pending).await, 50);
    assert_eq!(app.count("SELECT count(*) FROM kpi_pending").await, 1, "one row for the one commit");
    // Pending arrays are compressed with LZ4, not pglz (which cost more than the append).
    let not_lz4 = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'kpi_pending'::regclass \
         AND attnum > 0 AND NOT attisdropped AND attlen = -1 AND attcompression <> 'l'";
    assert_eq!(app.count(not_lz4).await, 0, "every array column of kpi_pending uses LZ4");
    // Destination prefixes as derived: the international prefix dropped, non-digits give none.
    let prefixes = format!(
        "SELECT count(DISTINCT dest_prefix) FROM ({}) p WHERE dest_prefix IN ('442', '493', '100', '336', '')",
        jobs::rollups::pending_rows("TRUE")
    );
    assert_eq!(app.count(&prefixes).await, 5);
    app.assert_rollups_match_rows().await;
    app.start_worker().await;
    wait_folded(&app).await;
    app.assert_rollups_match_rows().await;
    app.cleanup().await;
}

/// Pending rows name their dimensions by number; rows of the earlier shape, which spell them
/// out (and which re-rating still appends), are read and folded beside them.
#[tokio::test]
async fn pending_rows_of_either_shape_are_read_and_folded_alike() {
    let mut app = TestApp::new().await;
    let dests = ["+442071234567", "0049301234", "100", "s", "33612345678"];
    let batch = |from: usize| -> Vec<jobs::cdr::Cdr> {
        (from..from + 60)
            .map(|n| {
                let mut cdr = answered_cdr(n);
                cdr["dest_number"] = json!(dests[n % 5]);
                cdr["account_code"] = json!(format!("acct-{}", n % 4));
                cdr["source"] = json!(format!("pbx-{}", n % 3));
                jobs::cdr::parse_record(n, &cdr, "s").expect("valid")
            })
            .collect()
    };
    let store = jobs::store::CdrStore::new(app.db.clone());
    store.store_batch(&jobs::new_job_id(), &batch(0)).await.expect("first batch");
    let numbered = "SELECT count(*) FROM kpi_pending WHERE dim_ids IS NOT NULL AND source IS NULL";
    assert_eq!(app.count(numbered).await, 1, "ingest appends the numbered shape");
    // The first batch's row rewritten as earlier versions wrote it.
    let spell = |i: usize| {
        format!(
            "ARRAY(SELECT names[dim_ids[(g - 1) * 7 + {i}]] FROM generate_subscripts(bucket, 1) g ORDER BY g)"
        )
    };
    let spelled = format!(
        "UPDATE kpi_pending SET source = {}, direction = {}, disposition = {}, account_code = {}, dest_prefix = {}, \
         dest_country = {}, dest_type = {}, \
         ev_source = ARRAY(SELECT names[ev_source_ids[g]] FROM generate_subscripts(ev_second, 1) g ORDER BY g), \
         names = NULL, dim_ids = NULL, ev_source_ids = NULL",
        spell(1),
        spell(2),
        spell(3),
        spell(4),
        spell(5),
        spell(6),
        spell(7)
    );
    app.db.execute_unprepared(&spelled).await.expect("spell the pending row out");
    store.store_batch(&jobs::new_job_id(), &batch(60)).await.expect("second batch");
    assert_eq!(app.count(numbered).await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM kpi_pending WHERE dim_ids IS NULL AND source IS NOT NULL").await,
        1
    );
    let pending =
        format!("SELECT coalesce(sum(attempts), 0)::int8 FROM ({}) p", jobs::rollups::pending_rows("TRUE"));
    assert_eq!(app.count(&pending).await, 120);
    let accounts = format!(
        "SELECT count(DISTINCT (account_code, source, dest_prefix)) FROM ({}) p",
        jobs::rollups::pending_rows("TRUE")
    );
    assert_eq!(
        app.count(&accounts).await,
        60,
        "4 accounts × 3 sources × 5 prefixes, as 60 calls combine them"
    );
    app.assert_rollups_match_rows().await;
    app.start_worker().await;
    wait_folded(&app).await;
    app.assert_rollups_match_rows().await;
    app.cleanup().await;
}

/// Rows purged by hand leave their sums behind until the rollups are rebuilt, for a window
/// of days or for everything; the rebuild is a job like any other.
#[tokio::test]
async fn a_rollup_rebuild_after_a_manual_purge_matches_the_rows_again() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    // Three days, 100 calls each.
    let rows: Vec<Value> = (0..300)
        .map(|n| call_at(n, format!("2026-03-0{}T10:{:02}:00Z", 1 + n / 100, n % 60), 60, 50))
        .collect();
    let accepted = app.ingest(&Value::Array(rows)).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("id")).await;
    wait_folded(&app).await;
    // A purge by hand: half of March 2nd, and all of March 3rd.
    app.count("WITH d AS (DELETE FROM cdrs WHERE start_time >= '2026-03-02T10:30:00Z' RETURNING 1) SELECT count(*) FROM d")
        .await;
    let day = |d: &str| format!("SELECT coalesce(sum(attempts), 0)::int8 FROM kpi_day WHERE bucket = '{d}'");
    assert_eq!(app.count(&day("2026-03-02")).await, 100, "sums outlive the purge until rebuilt");

    let rebuild = |query: &'static str| {
        let app = &app;
        async move {
            let resp = app.client.post(format!("/rollups/rebuild{query}")).send().await;
            let status = resp.0.status();
            (status, resp.json().await.value().deserialize::<Value>())
        }
    };
    for (query, parameter) in
        [("?from=2026-03-02T10:00:00Z", "from"), ("?to=2026-03-02&colour=red", "colour")]
    {
        let (status, body) = rebuild(query).await;
        assert_eq!(status, poem::http::StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["details"]["parameter"], parameter, "{body}");
    }
    // March 2nd alone: the 3rd keeps its stale sums.
    let (status, body) = rebuild("?from=2026-03-02&to=2026-03-03").await;
    assert_eq!(status, poem::http::StatusCode::ACCEPTED, "{body}");
    let job = app.wait_succeeded(body["job_id"].as_str().expect("id")).await;
    assert_eq!((&job["kind"], &job["counts"]["received"]), (&json!("rollup_rebuild"), &json!(50)), "{job}");
    // Of 10:00–11:39, the minutes before 10:30 stayed.
    assert_eq!(app.count(&day("2026-03-02")).await, 50);
    assert_eq!(app.count(&day("2026-03-03")).await, 100);
    // Everything.
    let (_, body) = rebuild("").await;
    app.wait_succeeded(body["job_id"].as_str().expect("id")).await;
    assert_eq!(app.count(&day("2026-03-03")).await, 0);
    app.assert_rollups_match_rows().await;
    let stats = app.client.get("/stats").send().await.json().await.value().deserialize::<Value>();
    assert_eq!((&stats["answered_by"], &stats["total_calls"]), (&json!("rollups"), &json!(150)), "{stats}");
    app.cleanup().await;
}

/// `batches` batches of 200 calls queued while no worker runs, then one worker taking them
/// one at a time; returns what the test watches the ingest queue with.
async fn queue_a_backlog(
    app: &mut TestApp,
    batches: usize,
    env: &[(&str, &str)],
) -> (jobs::queue::Publisher, String) {
    for b in 0..batches {
        app.ingest(&batch(b * 200..(b + 1) * 200)).await;
    }
    let topology = jobs::queue::Topology::new(&app.name);
    let publisher = jobs::queue::Publisher::new(&app.settings.amqp_url, topology.clone());
    let queue = topology.queue("ingest");
    for (k, v) in [("CDR_WORKER_CONCURRENCY", "1"), ("CDR_WORKER_PREFETCH", "1")].iter().chain(env) {
        app.worker_env.push(((*k).into(), (*v).into()));
    }
    app.start_worker().await;
    (publisher, queue)
}

#[tokio::test]
async fn a_backlog_is_stored_before_its_sums_are_folded() {
    let mut app = TestApp::new().await;
    let (publisher, queue) = queue_a_backlog(&mut app, 60, &[]).await;
    let stored_during_backlog = std::sync::atomic::AtomicBool::new(false);
    eventually(Duration::from_secs(120), "the backlog stored", || async {
        // Read in this order: nothing is queued meanwhile, so a queue still holding batches
        // held them when the sums were read.
        let folded = app.count("SELECT attempts FROM kpi_totals WHERE id = 1").await;
        let pending = app.count("SELECT count(*) FROM kpi_pending").await;
        let waiting = publisher.queue_depth(&queue).await.expect("queue depth");
        if waiting == 0 {
            return Ok(());
        }
        assert_eq!(folded, 0, "sums were folded while {waiting} batches still waited to be stored");
        if pending > 0 {
            stored_during_backlog.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Err(format!("{waiting} batches waiting, {pending} stored"))
    })
    .await;
    assert!(
        stored_during_backlog.into_inner(),
        "no batch was seen stored while others waited: the test saw no backlog"
    );
    wait_stored(&app, 12_000).await;
    wait_folded(&app).await;
    assert_eq!(app.count("SELECT coalesce(sum(attempts), 0)::int8 FROM kpi_day").await, 12_000);
    app.assert_rollups_match_rows().await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_backlog_is_folded_as_it_goes_once_too_many_batches_are_pending() {
    let mut app = TestApp::new().await;
    let (publisher, queue) = queue_a_backlog(&mut app, 120, &[("CDR_ROLLUP_MAX_PENDING", "3")]).await;
    eventually(Duration::from_secs(120), "sums folded while batches still waited", || async {
        let folded = app.count("SELECT attempts FROM kpi_totals WHERE id = 1").await;
        let waiting = publisher.queue_depth(&queue).await.expect("queue depth");
        assert!(
            waiting > 0 || folded > 0,
            "the backlog was stored without a fold: more than 3 batches pending"
        );
        if folded > 0 && waiting > 0 {
            Ok(())
        } else {
            Err(format!("{folded} attempts folded, {waiting} batches waiting"))
        }
    })
    .await;
    wait_stored(&app, 24_000).await;
    wait_folded(&app).await;
    assert_eq!(app.count("SELECT coalesce(sum(attempts), 0)::int8 FROM kpi_day").await, 24_000);
    app.assert_rollups_match_rows().await;
    app.cleanup().await;
}
