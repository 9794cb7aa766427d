//! Numbers and money end to end: dialling plans, rate decks, derived fields in PostgreSQL and
//! the index, search filters and `/stats` money from both the rollups and the index.

use crate::common::{TestApp, eventually};
use poem::http::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const DECK_HEADER: &str =
    "prefix,destination,rate_per_minute,connect_fee,min_seconds,increment_seconds,currency\n";

async fn put_plan(app: &TestApp, source: &str, plan: Value) -> (StatusCode, Value) {
    let resp = app
        .client
        .put(format!("/dialling-plans/{source}"))
        .content_type("application/json")
        .body(plan.to_string())
        .send()
        .await;
    let status = resp.0.status();
    (status, resp.json().await.value().deserialize::<Value>())
}

async fn post_deck(app: &TestApp, query: &str, rows: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(format!("/rate-decks?{query}"))
        .content_type("text/csv")
        .body(format!("{DECK_HEADER}{rows}"))
        .send()
        .await;
    let status = resp.0.status();
    (status, resp.json().await.value().deserialize::<Value>())
}

async fn get(app: &TestApp, path: &str) -> Value {
    let resp = app.client.get(path).send().await;
    let status = resp.0.status();
    let body = resp.json().await.value().deserialize::<Value>();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// A call given by its start, billed seconds and disposition.
fn call(id: &str, source: &str, account: Option<&str>, dest: &str, start: &str, billsec: u32) -> Value {
    json!({
        "call_id": id,
        "source": source,
        "src_number": "02079460000",
        "dest_number": dest,
        "start_time": start,
        "duration": billsec + 5,
        "billsec": billsec,
        "disposition": if billsec > 0 { "ANSWERED" } else { "BUSY" },
        "account_code": account,
    })
}

fn ids(page: &Value) -> Vec<String> {
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["call_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn numbers_are_normalised_calls_priced_and_money_summed_alike_by_both_paths() {
    let mut app = TestApp::new().await;
    app.start_worker().await;

    // How each switch writes numbers.
    assert_eq!(put_plan(&app, "pbx-gb", json!({ "home_country": "GB" })).await.0, StatusCode::OK);
    assert_eq!(
        put_plan(&app, "trunk-us", json!({ "home_country": "us", "strip_prefixes": ["9"] })).await.0,
        StatusCode::OK
    );
    let (status, body) = put_plan(&app, "pbx-x", json!({ "home_country": "XX" })).await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("home_country")),
        "{body}"
    );
    assert_eq!(get(&app, "/dialling-plans").await["items"].as_array().map(Vec::len), Some(2));

    // acme's price list, changed at noon on 1 March; the carriers' cost for every call.
    let sell = "name=acme&side=sell&applies_to=account:acme&effective_from=2026-01-01T00:00:00Z";
    let (status, v1) = post_deck(
        &app,
        sell,
        "44,UK,0.012,0,60,60,EUR\n447,UK mobile,0.10,0.05,30,6,EUR\n33,France,0.60,0,1,1,EUR\n",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["prefixes"], 3);
    let noon = "name=acme-2&side=sell&applies_to=account:acme&effective_from=2026-03-01T12:00:00Z";
    let (status, v2) = post_deck(
        &app,
        noon,
        "44,UK,0.024,0,60,60,EUR\n447,UK mobile,0.10,0.05,30,6,EUR\n33,France,0.60,0,1,1,EUR\n",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    let (status, buy) = post_deck(
        &app,
        "name=carrier&side=buy&applies_to=all&effective_from=2026-01-01T00:00:00Z",
        "44,UK,0.006,0,1,1,EUR\n447,UK mobile,0.05,0,1,1,EUR\n",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{buy}");
    // Versions are never replaced; a bad row is named; currencies never mix.
    assert_eq!(post_deck(&app, noon, "44,UK,0.03,0,60,60,EUR\n").await.0, StatusCode::CONFLICT);
    let (status, body) = post_deck(
        &app,
        "name=x&side=sell&applies_to=all&effective_from=2026-01-01T00:00:00Z",
        "44,UK,0.03,0,60,60,EUR\n45,DK,cheap,0,60,60,EUR\n",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        (body["details"]["line"].as_u64(), body["details"]["field"].as_str()),
        (Some(3), Some("rate_per_minute")),
        "{body}"
    );
    let (status, body) = post_deck(
        &app,
        "name=x&side=sell&applies_to=all&effective_from=2026-01-01T00:00:00Z",
        "44,UK,0.03,0,60,60,USD\n",
    )
    .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("currency")),
        "{body}"
    );
    let (status, body) = post_deck(
        &app,
        "name=x&side=both&applies_to=all&effective_from=2026-01-01T00:00:00Z",
        "44,UK,0.03,0,60,60,EUR\n",
    )
    .await;
    assert_eq!(
        (status, body["details"]["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("side")),
        "{body}"
    );
    assert_eq!(get(&app, "/rate-decks").await["items"].as_array().map(Vec::len), Some(3));

    let calls = json!([
        // UK mobile, national: v1 30/6 with a fee: 0.05 + 0.10 × 96/60 = 0.21; buy 0.05 × 95/60.
        call("a", "pbx-gb", Some("acme"), "07400 123456", "2026-03-01T10:00:00Z", 95),
        // UK fixed after noon: v2 60/60, 0.024 × 3 = 0.072; buy 0.006 × 125/60 = 0.0125.
        call("b", "pbx-gb", Some("acme"), "0121 234 5678", "2026-03-01T13:00:00Z", 125),
        // From the US switch, outside line 9 and 011: France, 1/1: 0.60 × 37/60 = 0.37; buy unmatched.
        call("c", "trunk-us", Some("acme"), "9011 33 1 42 68 53 00", "2026-03-01T10:01:00Z", 37),
        // An extension: no number, nothing guessed.
        call("d", "pbx-gb", Some("acme"), "1001", "2026-03-01T10:02:00Z", 20),
        // Busy: priced at nothing, the connect fee included.
        call("e", "pbx-gb", Some("acme"), "+447400123457", "2026-03-01T10:03:00Z", 0),
        // No deck for this account: counted unrated, never zero.
        call("f", "pbx-gb", Some("other"), "+33142685300", "2026-03-01T10:04:00Z", 60),
    ]);
    let accepted = app.ingest(&calls).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("job id")).await;
    app.wait_in_sync(Duration::from_secs(60)).await;

    let a = &get(&app, "/search?call_id=a").await["items"][0];
    assert_eq!(a["dest_number"], "07400 123456", "the switch's value stays as written");
    assert_eq!(
        (a["dest_e164"].as_str(), a["dest_country"].as_str(), a["dest_type"].as_str()),
        (Some("+447400123456"), Some("GB"), Some("mobile"))
    );
    assert_eq!(a["src_e164"], "+442079460000");
    assert_eq!(
        (a["sell_cost"].as_str(), a["sell_prefix"].as_str(), a["sell_deck"].as_i64()),
        (Some("0.210000"), Some("447"), v1["id"].as_i64())
    );
    assert_eq!((a["buy_cost"].as_str(), a["sell_currency"].as_str()), (Some("0.079167"), Some("EUR")));
    let b = &get(&app, "/search?call_id=b").await["items"][0];
    assert_eq!(
        (b["sell_cost"].as_str(), b["sell_deck"].as_i64()),
        (Some("0.072000"), v2["id"].as_i64()),
        "the version in force at the start"
    );
    assert_eq!(b["buy_cost"], "0.012500");
    let c = &get(&app, "/search?call_id=c").await["items"][0];
    assert_eq!((c["dest_e164"].as_str(), c["dest_country"].as_str()), (Some("+33142685300"), Some("FR")));
    assert_eq!(
        (c["sell_cost"].as_str(), c["buy_rating"].as_str(), c["buy_cost"].as_str()),
        (Some("0.370000"), Some("unmatched"), None)
    );
    let d = &get(&app, "/search?call_id=d").await["items"][0];
    assert_eq!(
        (d["dest_e164"].as_str(), d["dest_type"].as_str(), d["sell_rating"].as_str()),
        (None, Some("extension"), Some("no_number"))
    );
    let e = &get(&app, "/search?call_id=e").await["items"][0];
    assert_eq!((e["sell_rating"].as_str(), e["sell_cost"].as_str()), (Some("rated"), Some("0.000000")));
    let f = &get(&app, "/search?call_id=f").await["items"][0];
    assert_eq!((f["sell_rating"].as_str(), f["sell_cost"].as_str()), (Some("no_deck"), None));
    // PostgreSQL holds the same as the index.
    assert_eq!(
        app.count("SELECT count(*) FROM cdrs WHERE sell_cost = 0.21 AND dest_e164 = '+447400123456'").await,
        1
    );

    // Filters on the derived fields.
    assert_eq!(ids(&get(&app, "/search?dest_country=GB").await), ["a", "b", "e"]);
    assert_eq!(ids(&get(&app, "/search?dest_country=fr,gb&dest_type=mobile").await), ["a", "e"]);
    assert_eq!(ids(&get(&app, "/search?dest_e164=%2B4474*").await), ["a", "e"]);
    assert_eq!(ids(&get(&app, "/search?dest_e164=%2B33142685300").await), ["c", "f"]);
    let resp = app.client.get("/search?dest_type=landline").send().await;
    resp.assert_status(StatusCode::BAD_REQUEST);

    // Money in /stats, the same from the rollups and from the index.
    let window = "from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z";
    let rollups = eventually(Duration::from_secs(30), "stats from the rollups", || async {
        let s = get(&app, &format!("/stats?{window}")).await;
        if s["answered_by"] == "rollups" && s["total_calls"] == 6 { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    // Broken down by destination: from the destination rollups, and (a filter they do not
    // keep) from the index; the same rows.
    let by_destination = get(&app, &format!("/stats?{window}&breakdown=dest_country,dest_type")).await;
    assert_eq!(by_destination["answered_by"], "rollups", "{by_destination}");
    let index = get(&app, &format!("/stats?{window}&breakdown=dest_country,dest_type&min_duration=0")).await;
    assert_eq!(index["answered_by"], "index", "{index}");
    assert_eq!(by_destination["by_dest_country"], index["by_dest_country"]);
    assert_eq!(by_destination["by_dest_type"], index["by_dest_type"]);
    for s in [&rollups, &by_destination, &index] {
        assert_eq!(
            (s["revenue"].as_str(), s["cost"].as_str(), s["margin"].as_str()),
            (Some("0.652000"), Some("0.091667"), Some("0.560333")),
            "{s}"
        );
        assert_eq!(s["rated_calls"], json!({ "sell": 4, "buy": 3 }), "{s}");
        assert_eq!(s["unrated_calls"], json!({ "sell": 2, "buy": 3 }), "{s}");
    }
    let by_country = index["by_dest_country"].as_array().cloned().unwrap_or_default();
    let row = |key: &str| by_country.iter().find(|r| r["key"] == key).cloned().unwrap_or(Value::Null);
    assert_eq!(
        (row("GB")["calls"].as_u64(), row("GB")["revenue"].as_str()),
        (Some(3), Some("0.282000")),
        "{index}"
    );
    assert_eq!(
        (row("FR")["calls"].as_u64(), row("FR")["revenue"].as_str(), row("FR")["cost"].as_str()),
        (Some(2), Some("0.370000"), Some("0.000000"))
    );
    assert_eq!(row("")["calls"], 1, "the extension has no country");
    let by_type = index["by_dest_type"].as_array().cloned().unwrap_or_default();
    assert!(by_type.iter().any(|r| r["key"] == "mobile" && r["calls"] == 2), "{index}");
    let top = get(&app, &format!("/stats?{window}&breakdown=dest_country&top=1")).await;
    assert_eq!(top["by_dest_country"].as_array().map(Vec::len), Some(1));
    assert_eq!(top["by_dest_country"][0]["key"], "GB");
    // A country's calls and money from the destination rollups, as the index counts them.
    let gb = get(&app, &format!("/stats?{window}&dest_country=GB&dest_type=mobile,fixed_line")).await;
    let gb_index =
        get(&app, &format!("/stats?{window}&dest_country=GB&dest_type=mobile,fixed_line&min_duration=0"))
            .await;
    assert_eq!(
        (gb["answered_by"].as_str(), gb_index["answered_by"].as_str()),
        (Some("rollups"), Some("index"))
    );
    for s in [&gb, &gb_index] {
        assert_eq!(
            (s["total_calls"].as_u64(), s["revenue"].as_str(), s["cost"].as_str()),
            (Some(3), Some("0.282000"), Some("0.091667")),
            "{s}"
        );
    }
    assert_eq!(gb["histogram"], gb_index["histogram"]);
    // One account's money from its own rollups.
    let acme = get(&app, &format!("/stats?{window}&account_code=acme")).await;
    assert_eq!(
        (acme["answered_by"].as_str(), acme["revenue"].as_str()),
        (Some("rollups"), Some("0.652000")),
        "{acme}"
    );
    app.assert_rollups_match_rows().await;

    // A switch whose plan is given only later: its national number has no country until a
    // re-rate, which moves the call between the destination rollups' countries.
    let late = app
        .ingest(&json!([call("g", "pbx-de", Some("other"), "030 123456", "2026-03-01T11:00:00Z", 30)]))
        .await;
    app.wait_succeeded(late["job_id"].as_str().expect("job id")).await;
    let countries = |s: &Value| -> Vec<(String, u64)> {
        let rows = s["by_dest_country"].as_array().cloned().unwrap_or_default();
        rows.iter()
            .map(|r| (r["key"].as_str().unwrap_or("?").to_string(), r["calls"].as_u64().unwrap_or(0)))
            .collect()
    };
    let before = get(&app, &format!("/stats?{window}&breakdown=dest_country")).await;
    assert!(countries(&before).contains(&(String::new(), 2)), "{before}");
    assert_eq!(put_plan(&app, "pbx-de", json!({ "home_country": "DE" })).await.0, StatusCode::OK);
    let resp = app.client.post("/rerate?from=2026-03-01&to=2026-03-01&source=pbx-de").send().await;
    resp.assert_status(StatusCode::ACCEPTED);
    let rerate = resp.json().await.value().deserialize::<Value>();
    let done = app.wait_succeeded(rerate["job_id"].as_str().expect("job id")).await;
    assert_eq!(
        (done["rerate"]["scanned"].as_u64(), done["rerate"]["changed"].as_u64()),
        (Some(1), Some(1)),
        "{done}"
    );
    let after = get(&app, &format!("/stats?{window}&breakdown=dest_country")).await;
    assert_eq!(after["answered_by"], "rollups");
    assert!(
        countries(&after).contains(&("DE".to_string(), 1)) && countries(&after).contains(&(String::new(), 1)),
        "{after}"
    );
    assert_eq!(after["total_calls"], 7);
    app.assert_rollups_match_rows().await;
    app.wait_in_sync(Duration::from_secs(60)).await;
    // An updated document is searchable at the index's next refresh: poll for it.
    let g = eventually(Duration::from_secs(30), "the re-rated document searchable", || async {
        let g = get(&app, "/search?call_id=g").await["items"][0].clone();
        if g["dest_country"] == "DE" { Ok(g) } else { Err(g.to_string()) }
    })
    .await;
    assert_eq!(
        (g["dest_e164"].as_str(), g["dest_country"].as_str()),
        (Some("+4930123456"), Some("DE")),
        "{g}"
    );
    app.cleanup().await;
}

/// Revenue over March 1st, as `/stats` answers it from the rollups (pending sums included).
async fn revenue(app: &TestApp) -> String {
    let s = get(app, "/stats?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z").await;
    assert_eq!(s["answered_by"], "rollups", "{s}");
    s["revenue"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_rerate_killed_half_way_resumes_and_counts_every_call_once() {
    let mut app = TestApp::new().await;
    app.start_worker().await;
    let deck = "name=flat&side=sell&applies_to=all&effective_from=2026-01-01T00:00:00Z";
    assert_eq!(post_deck(&app, deck, "44,UK,0.01,0,60,60,EUR\n").await.0, StatusCode::CREATED);
    // 5,000 one-minute calls: 2½ re-rate chunks.
    let calls: Vec<Value> = (0..5_000)
        .map(|n| {
            let start = format!("2026-03-01T{:02}:{:02}:{:02}Z", n / 3600 % 24, n / 60 % 60, n % 60);
            call(&format!("r{n}"), "pbx", Some("acme"), &format!("+4420794{n:05}"), &start, 60)
        })
        .collect();
    let accepted = app.ingest(&Value::Array(calls)).await;
    app.wait_succeeded(accepted["job_id"].as_str().expect("job id")).await;
    assert_eq!(revenue(&app).await, "50.000000");

    // The price doubles, back-dated; calls already stored keep theirs until a re-rate.
    let change = "name=flat-2&side=sell&applies_to=all&effective_from=2026-02-01T00:00:00Z";
    let (status, v2) = post_deck(&app, change, "44,UK,0.02,0,60,60,EUR\n").await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(revenue(&app).await, "50.000000");

    // Killed before its second chunk commits: the first stays, the second rolls back.
    app.stop_worker().await;
    app.start_worker_with_failpoints("rerate-before-commit=1*off->return").await;
    let resp = app.client.post("/rerate?from=2026-03-01&to=2026-03-01&account_code=acme").send().await;
    resp.assert_status(StatusCode::ACCEPTED);
    let job = resp.json().await.value().deserialize::<Value>();
    let job_id = job["job_id"].as_str().expect("job id").to_string();
    let died = app.wait_worker_died(Duration::from_secs(60)).await;
    assert!(!died.success(), "{died:?}");
    let chunk = jobs::rating::rerate::CHUNK;
    assert_eq!(app.count("SELECT count(*) FROM cdrs WHERE sell_cost = 0.02").await, chunk);
    assert_eq!(app.count("SELECT count(*) FROM rating_history").await, chunk);
    assert_eq!(revenue(&app).await, format!("{:.6}", 50.0 + 0.01 * chunk as f64), "one chunk's change");
    // A second re-rate waits for this one.
    let resp = app.client.post("/rerate?from=2026-03-01&to=2026-03-02").send().await;
    resp.assert_status(StatusCode::CONFLICT);

    app.start_worker().await;
    let done = app.wait_succeeded(&job_id).await;
    assert_eq!(done["kind"], "rerate");
    assert_eq!(done["rerate"]["scanned"], 5_000, "{done}");
    assert_eq!(done["rerate"]["changed"], 5_000, "{done}");
    assert_eq!(revenue(&app).await, "100.000000");
    assert_eq!(
        app.count("SELECT count(*) FROM rating_history WHERE sell_cost = 0.01").await,
        5_000,
        "previous prices kept"
    );
    assert_eq!(app.count(&format!("SELECT count(*) FROM cdrs WHERE sell_deck = {}", v2["id"])).await, 5_000);
    app.assert_rollups_match_rows().await;
    // The index follows: every call's new price, and the index's sum equals the rollups'.
    app.wait_in_sync(Duration::from_secs(90)).await;
    // In sync means indexed; searchable follows at the index's next refresh (every second).
    let want = (Some("0.020000".to_string()), v2["id"].as_i64());
    eventually(Duration::from_secs(30), "call r1 searchable at its new price", || async {
        let r1 = &get(&app, "/search?call_id=r1").await["items"][0];
        let seen = (r1["sell_cost"].as_str().map(str::to_string), r1["sell_deck"].as_i64());
        if seen == want { Ok(()) } else { Err(format!("{seen:?}")) }
    })
    .await;
    let index = eventually(Duration::from_secs(60), "the index's revenue follows", || async {
        let s = get(
            &app,
            "/stats?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z&breakdown=dest_country&min_duration=0",
        )
        .await;
        if s["revenue"] == "100.000000" { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    assert_eq!(index["answered_by"], "index");

    // Run again, it finds nothing to change and counts nothing twice.
    let resp = app.client.post("/rerate?from=2026-03-01&to=2026-03-02").send().await;
    resp.assert_status(StatusCode::ACCEPTED);
    let again = resp.json().await.value().deserialize::<Value>();
    let again = app.wait_succeeded(again["job_id"].as_str().expect("job id")).await;
    assert_eq!(
        (again["rerate"]["scanned"].as_u64(), again["rerate"]["changed"].as_u64()),
        (Some(5_000), Some(0))
    );
    assert_eq!(revenue(&app).await, "100.000000");
    // A window is required.
    let resp = app.client.post("/rerate?from=2026-03-01").send().await;
    resp.assert_status(StatusCode::BAD_REQUEST);
    app.cleanup().await;
}
