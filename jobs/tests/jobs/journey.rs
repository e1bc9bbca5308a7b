//! A real person, end to end (issue 16): from an empty warehouse and database, through the
//! real API process, the real nightly cron script (which runs the real binary's jobs), the real
//! notification dispatcher and a webhook receiver started here.
//!
//! A new subject signs in, finds a fund by typing its name, starts a SIP and chooses webhook
//! notifications. Each night's NAV file is made by `nav sample` and served over local HTTP,
//! the bank's debit report too. The API's clock is set (`serve --now`) to the evening of the
//! first night, so the SIP is created through the API exactly as a person would create it
//! that evening; the nights that execute it follow, months apart, as the cron script runs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::api::{claims, hs256, Api};
use crate::support::{sipline_async, Postgres};

const SEED: &str = "11";
const SCHEMES: &str = "300";

/// Serves a folder over HTTP (`/NAME`), 404 for what is not there, as AMFI's and the bank's
/// servers would.
async fn file_server(root: PathBuf) -> String {
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::get(
            move |axum::extract::Path(name): axum::extract::Path<String>| {
                let path = root.join(name);
                async move {
                    match std::fs::read(path) {
                        Ok(bytes) => (StatusCode::OK, bytes),
                        Err(_) => (StatusCode::NOT_FOUND, Vec::new()),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// A webhook receiver: every notification body it was sent.
async fn webhook_receiver() -> (Arc<Mutex<Vec<Value>>>, String) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = axum::Router::new().fallback(axum::routing::post(move |body: String| {
        let sink = sink.clone();
        async move {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body)));
            StatusCode::NO_CONTENT
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/sipline", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (received, url)
}

/// The kinds of notifications the receiver got for `sip_id`, in order.
fn kinds_for(received: &Mutex<Vec<Value>>, sip_id: i64) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n["payload"]["sip_id"].as_i64() == Some(sip_id))
        .map(|n| n["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The nights of one test: its own folder (warehouse, the files served as AMFI's and the
/// bank's, the cron logs), a file server over it and a webhook receiver.
struct Night {
    _dir: tempfile::TempDir,
    warehouse: PathBuf,
    database_url: String,
    served: PathBuf,
    nav_url: String,
    debits_url: String,
    logs: PathBuf,
    webhook_url: String,
}

impl Night {
    /// A new folder and its servers; the webhook's deliveries are in the returned list.
    async fn start(database_url: &str) -> (Self, Arc<Mutex<Vec<Value>>>) {
        let dir = tempfile::tempdir().unwrap();
        let served = dir.path().join("served");
        std::fs::create_dir_all(&served).unwrap();
        let base = file_server(served.clone()).await;
        let (received, webhook_url) = webhook_receiver().await;
        let night = Self {
            warehouse: dir.path().join("warehouse"),
            database_url: database_url.to_string(),
            served,
            nav_url: format!("{base}/NAVAll.txt"),
            debits_url: format!("{base}/debits_{{date}}.csv"),
            logs: dir.path().join("logs"),
            webhook_url,
            _dir: dir,
        };
        (night, received)
    }

    /// AMFI's file for `date` on the server, then `sipline-nightly.sh date`, then one
    /// dispatcher pass, as cron runs them.
    async fn run(&self, date: &str) {
        sipline_async(&[
            "nav",
            "sample",
            "--format",
            "amfi",
            "--date",
            date,
            "--schemes",
            SCHEMES,
            "--seed",
            SEED,
            "--out",
            self.served.join("NAVAll.txt").to_str().unwrap(),
        ])
        .await
        .assert_ok();
        let log = self.nightly(date).await;
        assert!(
            log.contains(&format!("nightly run for {date} done")),
            "{log}"
        );
        self.dispatch().await;
    }

    /// A market holiday the list does not have: AMFI publishes nothing new, so the server
    /// still holds the previous business day's file. The night ends waiting, exit 0.
    async fn run_on_an_unlisted_holiday(&self, date: &str) {
        let log = self.nightly(date).await;
        assert!(
            log.contains(&format!("no NAV dated {date} by the deadline: waiting")),
            "{log}"
        );
        assert!(
            !log.contains("sip execute"),
            "nothing ran past the ingest: {log}"
        );
    }

    /// `sipline-nightly.sh date` as cron runs it (no waiting for a late file): its log.
    async fn nightly(&self, date: &str) -> String {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/cron/sipline-nightly.sh");
        // The night runs at 23:00 IST on its date, by the jobs' clock (`--now`), whatever the
        // wall clock says: cron's binary is this one with the clock set.
        let binary = self.served.with_file_name("sipline-at-night");
        // Written once: rewriting a script while an earlier child may still hold it open for
        // execution risks ETXTBSY.
        if !binary.exists() {
            std::fs::write(
                &binary,
                format!(
                    "#!/bin/sh\nexec '{}' --now \"$SIPLINE_TEST_NOW\" \"$@\"\n",
                    env!("CARGO_BIN_EXE_sipline")
                ),
            )
            .unwrap();
            std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let status = tokio::process::Command::new("bash")
            .arg(&script)
            .arg(date)
            .env("SIPLINE_BIN", &binary)
            .env("SIPLINE_TEST_NOW", format!("{date}T23:00:00+05:30"))
            .env("SIPLINE_WAREHOUSE", &self.warehouse)
            .env("DATABASE_URL", &self.database_url)
            .env("SIPLINE_AMFI_NAVALL_URL", &self.nav_url)
            .env("SIPLINE_DEBIT_REPORT_URL", &self.debits_url)
            .env("SIPLINE_NAV_DEADLINE_SECS", "0")
            .env("SIPLINE_LOG_DIR", &self.logs)
            .env("NO_COLOR", "1")
            .status()
            .await
            .unwrap();
        let log = std::fs::read_to_string(self.logs.join(format!("nightly-{date}.log")))
            .unwrap_or_default();
        assert!(status.success(), "nightly {date}: {status}\n{log}");
        log
    }

    /// One dispatcher pass, as the notify DAG or cron runs it.
    async fn dispatch(&self) {
        let dispatch = tokio::process::Command::new(env!("CARGO_BIN_EXE_sipline"))
            .args(["notify", "dispatch", "--database-url", &self.database_url])
            .env("SIPLINE_WEBHOOK_URL", &self.webhook_url)
            .env("SIPLINE_WEBHOOK_SECRET", "journey-webhook-secret")
            .env("NO_COLOR", "1")
            .output()
            .await
            .unwrap();
        assert!(
            dispatch.status.success(),
            "{}",
            String::from_utf8_lossy(&dispatch.stderr)
        );
    }

    fn debit_report(&self, date: &str, lines: &[String]) {
        let mut text = String::from("sip_id,due_date,amount,status,reason_code\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(self.served.join(format!("debits_{date}.csv")), text).unwrap();
    }
}

/// A new subject's token, the first Axis large-cap fund open for SIPs that a search finds,
/// and notifications by webhook.
async fn signed_in_with_a_fund(api: &Api, subject: &str) -> (String, i64) {
    let token = hs256(&claims(subject));
    let (status, found) = api
        .get(
            "/v1/schemes?q=axis%20large%20cap&open_for_sip=true",
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let scheme_code = found["schemes"][0]["scheme_code"].as_i64().unwrap();
    let (status, _, preferences) = api
        .send(
            reqwest::Method::PUT,
            "/v1/users/me/notification-preferences",
            Some(&token),
            Some(json!({ "channels": ["webhook"], "time_zone": "Asia/Kolkata" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preferences}");
    (token, scheme_code)
}

fn money(value: &Value) -> f64 {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_person_signs_in_finds_a_fund_invests_is_valued_told_reversed_and_cancelled() {
    let pg = Postgres::start().await;
    let (night, received) = Night::start(&pg.url).await;

    // The scheme master: the first night's file, before anyone can search it.
    let first_night = "2026-06-01";
    night.run(first_night).await;

    // Sign in: a token for a subject nobody has seen.
    let api = Api::start_at(&pg.url, "2026-06-01T19:00:00+05:30").await;
    let mut subject = claims("auth0|journey-first-sip");
    subject["email"] = json!("asha@example.com");
    let token = hs256(&subject);
    let (status, me) = api.get("/v1/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let user_id = me["user_id"].as_i64().unwrap();

    // Find a fund as a person types it, and open it.
    let (status, found) = api
        .get(
            "/v1/schemes?q=axis%20large%20cap&open_for_sip=true",
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let mut scheme = None;
    for candidate in found["schemes"].as_array().unwrap() {
        assert!(
            candidate["scheme_name"]
                .as_str()
                .unwrap()
                .starts_with("Axis Large Cap"),
            "{found}"
        );
        let code = candidate["scheme_code"].as_i64().unwrap();
        let (_, detail) = api.get(&format!("/v1/schemes/{code}"), Some(&token)).await;
        if detail["nav_date"] == json!(first_night) {
            scheme = Some(detail);
            break;
        }
    }
    let scheme = scheme.expect("an Axis large-cap scheme with today's NAV");
    let scheme_code = scheme["scheme_code"].as_i64().unwrap();

    // Notifications by webhook; then the SIP.
    let (status, _, preferences) = api
        .send(
            reqwest::Method::PUT,
            "/v1/users/me/notification-preferences",
            Some(&token),
            Some(json!({ "channels": ["webhook"], "time_zone": "Asia/Kolkata" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preferences}");
    // The evening of 1 June, after the cut-off: the SIP starts tomorrow, the 2nd.
    let start = "2026-06-02";
    let (status, sip) = api
        .post(
            "/v1/users/me/sips",
            &token,
            json!({ "scheme_code": scheme_code, "amount": "5000", "sip_day": 2, "start_date": start }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sip}");
    let sip_id = sip["sip_id"].as_i64().unwrap();

    assert_eq!(sip["effective_from"], "2026-06-02", "{sip}");
    assert_eq!(sip["next_instalment"]["due_date"], "2026-06-02", "{sip}");

    // The nights of its first two instalments (2 June, 2 July).
    night.run("2026-06-02").await;
    night.run("2026-07-02").await;

    let (status, investments) = api.get("/v1/users/me/investments", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{investments}");
    let instalments = investments["investments"].as_array().unwrap();
    assert_eq!(instalments.len(), 2, "{investments}");
    for (row, due) in instalments.iter().zip(["2026-07-02", "2026-06-02"]) {
        assert_eq!(row["status"], "executed", "{row}");
        assert_eq!(row["due_date"], due);
        assert_eq!(row["nav_date"], due, "the NAV of the due date");
        assert_eq!(row["amount"], "5000.00");
        assert!(money(&row["units"]) > 0.0);
    }
    let units: f64 = instalments.iter().map(|r| money(&r["units"])).sum();
    let (status, portfolio) = api.get("/v1/users/me/portfolio", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{portfolio}");
    assert_eq!(portfolio["as_of"], "2026-07-02");
    assert_eq!(portfolio["invested"], "10000.00");
    let line = &portfolio["lines"][0];
    assert_eq!(line["scheme_code"], scheme_code);
    // The sample file prices the scheme the same every day: no one-day change, and the line's
    // own XIRR is the portfolio's (one scheme).
    assert_eq!(line["day_change"], "0.00", "{portfolio}");
    assert!(
        (line["xirr"].as_f64().unwrap() - portfolio["xirr"].as_f64().unwrap()).abs() < 1e-12,
        "{portfolio}"
    );
    let value = money(&portfolio["current_value"]);
    assert!(
        (value - units * money(&line["nav"])).abs() < 0.01,
        "value {value} is units × NAV: {portfolio}"
    );
    for chart in ["pie", "line", "bar"] {
        let (status, body) = api
            .get(&format!("/v1/users/{user_id}/charts/{chart}"), Some(&token))
            .await;
        assert_eq!(status, StatusCode::OK, "{chart}: {body}");
    }
    assert_eq!(
        kinds_for(&received, sip_id),
        vec!["sip_executed", "sip_executed"]
    );

    // The bank returns the first debit after it was allotted: reversed the next night.
    night.debit_report(
        "2026-07-03",
        &[format!("{sip_id},2026-06-02,5000.00,returned,04")],
    );
    night.run("2026-07-03").await;
    let (_, portfolio) = api.get("/v1/users/me/portfolio", Some(&token)).await;
    assert_eq!(portfolio["invested"], "5000.00", "{portfolio}");
    assert!(money(&portfolio["current_value"]) < value);
    let (_, reversed) = api
        .get("/v1/users/me/investments?status=reversed", Some(&token))
        .await;
    assert_eq!(
        reversed["investments"][0]["due_date"], "2026-06-02",
        "{reversed}"
    );
    assert_eq!(kinds_for(&received, sip_id).last().unwrap(), "sip_reversed");

    // The next two debits fail: cancelled on the third failure in a row, and told.
    night.debit_report(
        "2026-08-03",
        &[format!("{sip_id},2026-08-02,5000.00,returned,04")],
    );
    night.run("2026-08-03").await;
    night.debit_report(
        "2026-09-02",
        &[format!("{sip_id},2026-09-02,5000.00,returned,04")],
    );
    night.run("2026-09-02").await;
    let (_, detail) = api
        .get(&format!("/v1/users/me/sips/{sip_id}"), Some(&token))
        .await;
    assert_eq!(detail["status"], "cancelled", "{detail}");
    let (_, failed) = api
        .get("/v1/users/me/investments?status=failed", Some(&token))
        .await;
    assert_eq!(
        failed["investments"].as_array().unwrap().len(),
        2,
        "{failed}"
    );
    let told: BTreeMap<String, usize> =
        kinds_for(&received, sip_id)
            .into_iter()
            .fold(BTreeMap::new(), |mut counts, kind| {
                *counts.entry(kind).or_default() += 1;
                counts
            });
    assert_eq!(
        told,
        BTreeMap::from([
            ("sip_cancelled".to_string(), 1),
            ("sip_executed".to_string(), 2),
            ("sip_failed".to_string(), 2),
            ("sip_reversed".to_string(), 1),
        ]),
        "{:?}",
        kinds_for(&received, sip_id)
    );
}

/// A market holiday nobody listed (issue 35): Republic Day 2027 is a Tuesday, and the embedded
/// NSE list ends on 2026-12-31. A SIP due that day: the night of the 26th AMFI's file still
/// shows Monday's NAVs, so the nightly run ends waiting (exit 0, nothing failed, nobody paged);
/// Wednesday's file settles it — NAVs dated the 27th and none dated the 26th — and Wednesday's
/// run buys the instalment at Wednesday's NAV. Nothing waits for a NAV that cannot exist, and
/// nothing fails `no_nav`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_market_holiday_is_settled_by_the_next_days_file() {
    let pg = Postgres::start().await;
    let (night, received) = Night::start(&pg.url).await;
    night.run("2027-01-22").await;

    // Friday evening: a SIP on the 26th, starting tomorrow. The list knows no holiday then, so
    // the API says the 26th's NAV; nobody can know better before the day.
    let api = Api::start_at(&pg.url, "2027-01-22T19:00:00+05:30").await;
    let (token, scheme_code) = signed_in_with_a_fund(&api, "auth0|republic-day").await;
    let (status, sip) = api
        .post(
            "/v1/users/me/sips",
            &token,
            json!({ "scheme_code": scheme_code, "amount": "2500", "sip_day": 26, "start_date": "2027-01-23" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sip}");
    assert_eq!(sip["next_instalment"]["due_date"], "2027-01-26", "{sip}");
    let sip_id = sip["sip_id"].as_i64().unwrap();

    night.run("2027-01-25").await;
    // Monday evening, after the cut-off: a lumpsum gets Tuesday's NAV, as far as anyone knows.
    let monday = Api::start_at(&pg.url, "2027-01-25T19:00:00+05:30").await;
    let (status, order) = monday
        .post(
            "/v1/users/me/orders",
            &token,
            json!({ "kind": "purchase", "scheme_code": scheme_code, "amount": "1000" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["nav_date"], "2027-01-26", "{order}");
    let order_id = order["order_id"].as_i64().unwrap();
    night.run_on_an_unlisted_holiday("2027-01-26").await;
    night.run("2027-01-27").await;
    // Wednesday's run takes it too, at Wednesday's NAV: no NAV is dated the holiday.
    let (_, order) = api
        .get(&format!("/v1/users/me/orders/{order_id}"), Some(&token))
        .await;
    assert_eq!(order["status"], "executed", "{order}");
    assert_eq!(order["nav_date"], "2027-01-27", "{order}");
    let log = std::fs::read_to_string(night.logs.join("nightly-2027-01-27.log")).unwrap();
    assert!(
        log.contains("market holiday by the NAV data") && log.contains("2027-01-26"),
        "the run says the list and the data disagree: {log}"
    );

    let (status, investments) = api.get("/v1/users/me/investments", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{investments}");
    let rows = investments["investments"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{investments}");
    assert_eq!(rows[0]["status"], "executed", "{investments}");
    assert_eq!(rows[0]["due_date"], "2027-01-26");
    assert_eq!(
        rows[0]["nav_date"], "2027-01-27",
        "bought at the next business day's NAV"
    );
    let (_, latest) = api
        .get(&format!("/v1/schemes/{scheme_code}/nav"), Some(&token))
        .await;
    assert_eq!(latest["nav_date"], "2027-01-27", "{latest}");
    assert_eq!(money(&rows[0]["nav"]), money(&latest["nav"]), "{latest}");
    assert_eq!(kinds_for(&received, sip_id), vec!["sip_executed"]);
}

/// A money, units or NAV string in its smallest step: "10000.50" with `scale` 2 → 1000050.
fn scaled(value: &Value, scale: u32) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut fraction = fraction.to_string();
    assert!(fraction.len() <= scale as usize, "{text}");
    while fraction.len() < scale as usize {
        fraction.push('0');
    }
    let negative = whole.starts_with('-');
    let magnitude = whole.trim_start_matches('-').parse::<i64>().unwrap() * 10_i64.pow(scale)
        + fraction.parse::<i64>().unwrap_or(0);
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Money out (issue 36), a real person's path: buy a fund with a lumpsum, change one's mind
/// about a second one before the cut-off, top up, redeem half of the first purchase before a
/// fee falls due, see the NAV, the charges and the payout date, and hand the capital-gains
/// statement to a tax preparer — through the real API, the nightly cron script (which now runs
/// `orders execute` after `sip execute`) and the dispatcher. The sample NAV files price a
/// scheme the same every day, so every figure below is worked out by hand from the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_buys_tops_up_redeems_half_and_reads_the_capital_gains_statement() {
    let pg = Postgres::start().await;
    let (night, received) = Night::start(&pg.url).await;
    night.run("2026-06-01").await;

    // Monday 1 June 2026, 19:00 IST: after the cut-off, so orders get Tuesday's NAV.
    let api = Api::start_at(&pg.url, "2026-06-01T19:00:00+05:30").await;
    let (token, scheme_code) = signed_in_with_a_fund(&api, "auth0|journey-money-out").await;
    // The scheme's own terms, where the category's defaults (1% within a year, T+2) are not
    // its registrar's: 0.5% within 30 days, paid T+3, at least ₹500 a redemption.
    let rules = night.warehouse.with_file_name("rules.csv");
    std::fs::write(
        &rules,
        format!(
            "scheme_code,unit_decimals,exit_load,tax_class,payout_days,min_redemption\n\
             {scheme_code},3,30:50,equity,3,500\n"
        ),
    )
    .unwrap();
    sipline_async(&[
        "schemes",
        "rules",
        "--input",
        rules.to_str().unwrap(),
        "--warehouse",
        night.warehouse.to_str().unwrap(),
        "--database-url",
        &pg.url,
    ])
    .await
    .assert_ok();

    // Nothing held yet: a redemption is refused, naming the field.
    let (status, refused) = api
        .post(
            "/v1/users/me/orders",
            &token,
            json!({ "kind": "redemption", "scheme_code": scheme_code, "units": "1" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "units", "{refused}");

    let (status, lumpsum) = api
        .post(
            "/v1/users/me/orders",
            &token,
            json!({ "kind": "purchase", "scheme_code": scheme_code, "amount": "10000" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lumpsum}");
    assert_eq!(lumpsum["status"], "received");
    assert_eq!(
        lumpsum["nav_date"], "2026-06-02",
        "after the cut-off: the next business day"
    );
    // Cancellable until Tuesday's 15:00 IST cut-off.
    assert!(
        lumpsum["cancel_before"]
            .as_str()
            .unwrap()
            .starts_with("2026-06-02T09:30:00"),
        "{lumpsum}"
    );
    let lumpsum_id = lumpsum["order_id"].as_i64().unwrap();

    // A second purchase, thought better of before the cut-off.
    let (_, second) = api
        .post(
            "/v1/users/me/orders",
            &token,
            json!({ "kind": "purchase", "scheme_code": scheme_code, "amount": "2000" }),
        )
        .await;
    let second_id = second["order_id"].as_i64().unwrap();
    let cancel = format!("/v1/users/me/orders/{second_id}/cancel");
    let (status, cancelled) = api.post(&cancel, &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, again) = api.post(&cancel, &token, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // Tuesday night: the lumpsum executes at Tuesday's NAV; the cancelled one does not.
    night.run("2026-06-02").await;
    let (_, bought) = api
        .get(&format!("/v1/users/me/orders/{lumpsum_id}"), Some(&token))
        .await;
    assert_eq!(bought["status"], "executed", "{bought}");
    assert_eq!(bought["gross_amount"], "10000.00");
    // 10,00,000 paise × 5 / 1,00,005 = 49.9975 → ₹0.50.
    assert_eq!(bought["stamp_duty"], "0.50");
    let nav = scaled(&bought["executed_nav"], 8);
    let units = scaled(&bought["executed_units"], 4);
    // ₹9,999.50 at the NAV, rounded down to three decimals.
    let expected_units = (999_950_i128 * 1_000_000 * 1_000 / i128::from(nav)) as i64 * 10;
    assert_eq!(units, expected_units, "{bought}");
    let (_, second_after) = api
        .get(&format!("/v1/users/me/orders/{second_id}"), Some(&token))
        .await;
    assert_eq!(second_after["status"], "cancelled");
    let (_, portfolio) = api.get("/v1/users/me/portfolio", Some(&token)).await;
    assert_eq!(portfolio["as_of"], "2026-06-02", "{portfolio}");
    assert_eq!(portfolio["invested"], "10000.00", "{portfolio}");

    // Wednesday 3 June, 10:00 IST, before the cut-off: a top-up, and half of the first
    // purchase redeemed (units held one day: the 1% exit load applies).
    let api = Api::start_at(&pg.url, "2026-06-03T10:00:00+05:30").await;
    let (status, top_up) = api
        .post(
            "/v1/users/me/orders",
            &token,
            json!({ "kind": "purchase", "scheme_code": scheme_code, "amount": "5000" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{top_up}");
    assert_eq!(top_up["nav_date"], "2026-06-03");
    // Half, to the scheme's three decimals (a finer figure is refused).
    let half = units / 20 * 10;
    // The half's share of the lot's ₹0.50 stamp duty, to the paisa.
    let duty_share = (50 * half * 2 + units) / (2 * units);
    let (status, too_much) = api
        .post(
            "/v1/users/me/orders",
            &token,
            json!({ "kind": "redemption", "scheme_code": scheme_code,
                    "units": format!("{}.{:04}", (units + 10) / 10_000, (units + 10) % 10_000) }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{too_much}");
    assert_eq!(too_much["errors"][0]["field"], "units");
    let (status, too_little) = api
        .post(
            "/v1/users/me/orders",
            &token,
            json!({ "kind": "redemption", "scheme_code": scheme_code, "amount": "100" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{too_little}");
    assert_eq!(too_little["errors"][0]["field"], "amount", "{too_little}");
    let (status, redemption) = api
        .post(
            "/v1/users/me/orders",
            &token,
            json!({ "kind": "redemption", "scheme_code": scheme_code,
                    "units": format!("{}.{:04}", half / 10_000, half % 10_000) }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{redemption}");
    assert_eq!(redemption["nav_date"], "2026-06-03");
    let redemption_id = redemption["order_id"].as_i64().unwrap();

    night.run("2026-06-03").await;
    let (_, sold) = api
        .get(
            &format!("/v1/users/me/orders/{redemption_id}"),
            Some(&token),
        )
        .await;
    assert_eq!(sold["status"], "executed", "{sold}");
    // Gross: half the units at the (same) NAV; the scheme's 0.5% exit load; STT 0.001%; paid
    // T+3 business days after Wednesday's NAV: Monday 8 June.
    let gross = ((i128::from(half) * i128::from(nav) + 5_000_000_000) / 10_000_000_000) as i64;
    assert_eq!(scaled(&sold["gross_amount"], 2), gross, "{sold}");
    let load = (gross * 50 + 5_000) / 10_000;
    assert_eq!(scaled(&sold["exit_load"], 2), load, "{sold}");
    let stt = (gross + 50_000) / 100_000;
    assert_eq!(scaled(&sold["stt"], 2), stt, "{sold}");
    assert_eq!(scaled(&sold["net_amount"], 2), gross - load - stt);
    assert_eq!(sold["payout_date"], "2026-06-08", "{sold}");
    // First in, first out: the half comes from the first lot, bought at the same NAV, so the
    // gain is what the sale cost: the load and the half's share of that lot's ₹0.50 stamp duty.
    assert_eq!(
        scaled(&sold["realised_gain"], 2),
        -(load + duty_share),
        "{sold}"
    );

    // The portfolio: what is still held was paid (the other half of the first lot, and the
    // top-up). The half sold took out its purchase value, its share of the duty, and its
    // share of what the ₹9,999.50 paid beyond the units' value (units are allotted rounded
    // down): a sale of every unit would leave nothing invested.
    let lot_value = ((i128::from(units) * i128::from(nav) + 5_000_000_000) / 10_000_000_000) as i64;
    let residue = 999_950 - lot_value;
    // At most one unit step (0.001) at the NAV, in paise, and the paisa's rounding.
    assert!(
        (0..=nav / 1_000_000_000 + 1).contains(&residue),
        "{residue}"
    );
    let residue_share = (residue * half * 2 + units) / (2 * units);
    let (_, portfolio) = api.get("/v1/users/me/portfolio", Some(&token)).await;
    assert_eq!(portfolio["as_of"], "2026-06-03");
    assert_eq!(
        scaled(&portfolio["invested"], 2),
        1_500_000 - (gross + duty_share + residue_share),
        "{portfolio}"
    );

    // The capital-gains statement of FY 2026-27, as JSON and as CSV.
    let (status, gains) = api
        .get("/v1/users/me/capital-gains?fy=2026-27", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{gains}");
    let lot = &gains["lots"][0];
    assert_eq!(gains["lots"].as_array().unwrap().len(), 1, "{gains}");
    assert_eq!(lot["purchase_date"], "2026-06-02");
    assert_eq!(lot["sale_date"], "2026-06-03");
    assert_eq!(lot["term"], "short");
    assert_eq!(lot["tax_class"], "equity");
    assert_eq!(scaled(&lot["units"], 4), half);
    assert_eq!(scaled(&lot["gain"], 2), -(load + duty_share));
    assert_eq!(gains["totals"][0]["term"], "short", "{gains}");
    let (status, content_type, csv) = api
        .send(
            reqwest::Method::GET,
            "/v1/users/me/capital-gains?fy=2026-27&format=csv",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let csv = csv.as_str().unwrap().to_string();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[0].starts_with("scheme_code,scheme_name,isin,tax_class,term"),
        "{csv}"
    );
    assert!(lines[1].starts_with(&format!("{scheme_code},")), "{csv}");
    assert!(lines[2].starts_with("TOTAL,,,equity,short,"), "{csv}");
    let (_, last_year) = api
        .get("/v1/users/me/capital-gains?fy=2025-26", Some(&token))
        .await;
    assert_eq!(last_year["lots"], json!([]), "{last_year}");

    // The warehouse's rows agree with an oracle written from the rules alone: its FIFO over
    // the executed legs (the lots bought, the units sold) gives the same pieces, money and
    // terms as `realized_gains`.
    let warehouse = warehouse::Warehouse::open(night.warehouse.to_str().unwrap()).unwrap();
    let mut legs = Vec::new();
    let mut realized = Vec::new();
    for date in warehouse.dates(warehouse::Table::Orders).await.unwrap() {
        for bucket in 0..warehouse::BUCKETS {
            let part = warehouse::Part::dated_bucket(date, bucket);
            legs.extend(
                warehouse
                    .read_rows::<pipeline::orders::OrderOutcome>(part)
                    .await
                    .unwrap()
                    .unwrap_or_default(),
            );
            realized.extend(
                warehouse
                    .read_rows::<pipeline::orders::RealizedGain>(part)
                    .await
                    .unwrap()
                    .unwrap_or_default(),
            );
        }
    }
    let lots: Vec<_> = legs
        .iter()
        .filter(|l| l.executed && l.leg.buys())
        .map(|l| crate::gains_oracle::OracleLot {
            date: l.nav_date,
            units: l.units.0,
            nav: l.nav.unwrap().scaled(),
            stamp_duty: l.stamp_duty.0,
        })
        .collect();
    let sales: Vec<_> = legs
        .iter()
        .filter(|l| l.executed && !l.leg.buys())
        .map(|l| crate::gains_oracle::OracleSale {
            date: l.nav_date,
            units: l.units.0,
            nav: l.nav.unwrap().scaled(),
        })
        .collect();
    assert_eq!((lots.len(), sales.len()), (2, 1));
    let rules = crate::gains_oracle::OracleRules {
        tax_class: crate::gains_oracle::TaxClass::Equity,
        exit_load: vec![(30, 50)],
        fmv_2018_01_31: None,
    };
    let (expected, totals) = crate::gains_oracle::oracle_gains(&lots, &sales, &rules).unwrap();
    assert_eq!(realized.len(), expected.len());
    for (ours, theirs) in realized.iter().zip(&expected) {
        let l = &ours.lot;
        assert_eq!(
            (
                l.purchase_date,
                l.units.0,
                l.purchase_value.0,
                l.stamp_duty.0
            ),
            (
                theirs.purchase_date,
                theirs.units,
                theirs.purchase_value,
                theirs.stamp_duty
            )
        );
        assert_eq!(
            (
                l.gross_sale_value.0,
                l.exit_load.0,
                l.stt.0,
                l.cost.0,
                l.gain.0
            ),
            (
                theirs.gross_sale_value,
                theirs.exit_load,
                theirs.stt,
                theirs.cost,
                theirs.gain
            )
        );
        assert_eq!(
            l.term == pipeline::orders::lots::Term::Long,
            theirs.term == crate::gains_oracle::Term::Long
        );
        assert_eq!(l.fy, theirs.fy);
    }
    assert_eq!(totals[0].net_proceeds, scaled(&sold["net_amount"], 2));

    // The account statement of the period: what they held before (nothing), what they hold
    // now (the portfolio's units, valued at the last NAV), and each order with its charges.
    let (status, statement) = api
        .get(
            "/v1/users/me/statement?from=2026-06-01&to=2026-06-03",
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{statement}");
    let holdings = statement["holdings"].as_array().unwrap();
    assert_eq!(holdings.len(), 1, "{statement}");
    assert_eq!(holdings[0]["opening_units"], "0.000");
    assert_eq!(
        scaled(&holdings[0]["closing_units"], 4),
        scaled(&portfolio["lines"][0]["units"], 4),
        "{statement}"
    );
    let kinds: Vec<&str> = statement["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["description"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Purchase", "Purchase", "Redemption"], "{statement}");
    let charges: i64 = statement["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| scaled(&t["charges"], 2))
        .sum();
    assert_eq!(scaled(&statement["charges"], 2), charges);
    assert!(charges > 0, "stamp duty, exit load and STT: {statement}");
    for (format, content_type, starts) in [
        ("csv", "text/csv; charset=utf-8", "statement,user_id"),
        ("pdf", "application/pdf", "%PDF-"),
    ] {
        let response = api
            .http
            .get(format!(
                "{}/v1/users/me/statement?from=2026-06-01&to=2026-06-03&format={format}",
                api.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], content_type);
        let body = response.bytes().await.unwrap();
        assert!(body.starts_with(starts.as_bytes()), "{format}");
        if format == "csv" {
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert_eq!(
                text.matches("\r\ntransaction,2026-06-0").count(),
                3,
                "{text}"
            );
        }
    }

    // Told by webhook: three executed orders (the lumpsum, the top-up, the redemption).
    let told: Vec<(i64, String)> = received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| {
            Some((
                n["payload"]["order_id"].as_i64()?,
                n["kind"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert_eq!(told.len(), 3, "{told:?}");
    assert!(
        told.iter().all(|(_, kind)| kind == "order_executed"),
        "{told:?}"
    );
    assert!(told.iter().any(|(id, _)| *id == redemption_id));
}

/// Every file under a folder.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The orders of one plan, oldest first.
fn orders_of_plan(orders: &Value, plan_id: i64) -> Vec<Value> {
    orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["plan_id"].as_i64() == Some(plan_id))
        .cloned()
        .collect()
}

/// Money out, month after month (issue 36): a person with a lumpsum draws a monthly income
/// with an SWP and moves money monthly into another fund of the same house with an STP,
/// pauses the STP for a month and resumes it, and is told when the SWP stops because the
/// holding can no longer pay it — through the real API, the nightly cron script and the
/// dispatcher. The plan day is the 4th: Thursday in June, Saturday in July (rolled to
/// Monday 6 July), Tuesday in August.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_draws_a_monthly_income_moves_money_monthly_and_is_told_when_the_source_runs_dry()
{
    let pg = Postgres::start().await;
    let (night, received) = Night::start(&pg.url).await;
    night.run("2026-06-01").await;
    let api = Api::start_at(&pg.url, "2026-06-01T19:00:00+05:30").await;
    let (token, scheme_code) = signed_in_with_a_fund(&api, "auth0|journey-plans").await;
    // Another open-ended scheme of the same fund house, for the STP.
    let pool = pg.pool().await;
    let target: i64 = sqlx::query_scalar(
        "SELECT t.scheme_code FROM schemes s JOIN schemes t ON t.fund_house = s.fund_house \
         WHERE s.scheme_code = $1 AND t.scheme_code <> s.scheme_code \
           AND sipline_open_ended(t.scheme_type) ORDER BY t.scheme_code LIMIT 1",
    )
    .bind(scheme_code)
    .fetch_one(&pool)
    .await
    .unwrap();
    let (status, lumpsum) = api
        .post(
            "/v1/users/me/orders",
            &token,
            json!({ "kind": "purchase", "scheme_code": scheme_code, "amount": "10000" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lumpsum}");
    night.run("2026-06-02").await;

    // Wednesday 3 June, 10:00 IST: the plans.
    let api = Api::start_at(&pg.url, "2026-06-03T10:00:00+05:30").await;
    for (body, field) in [
        (
            json!({ "kind": "swp", "scheme_code": target, "amount": "4000", "plan_day": 4 }),
            "scheme_code",
        ),
        (
            json!({ "kind": "stp", "scheme_code": scheme_code, "amount": "500", "plan_day": 4 }),
            "target_scheme_code",
        ),
        (
            json!({ "kind": "swp", "scheme_code": scheme_code, "amount": "4000", "plan_day": 29 }),
            "plan_day",
        ),
        (
            json!({ "kind": "swp", "scheme_code": scheme_code, "amount": "99.99", "plan_day": 4 }),
            "amount",
        ),
        (
            json!({ "kind": "swp", "scheme_code": scheme_code, "amount": "4000", "plan_day": 4,
                    "start_date": "2026-06-02" }),
            "start_date",
        ),
    ] {
        let (status, refused) = api.post("/v1/users/me/plans", &token, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["errors"][0]["field"], field, "{refused}");
    }
    let (status, swp) = api
        .post(
            "/v1/users/me/plans",
            &token,
            json!({ "kind": "swp", "scheme_code": scheme_code, "amount": "4000", "plan_day": 4 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{swp}");
    assert_eq!(swp["status"], "active");
    assert_eq!(swp["start_date"], "2026-06-03", "today by default");
    assert_eq!(
        swp["next_instalment"],
        json!({ "due_date": "2026-06-04", "nav_date": "2026-06-04" })
    );
    let swp_id = swp["plan_id"].as_i64().unwrap();
    let (status, stp) = api
        .post(
            "/v1/users/me/plans",
            &token,
            json!({ "kind": "stp", "scheme_code": scheme_code, "target_scheme_code": target,
                    "amount": "500", "plan_day": 4 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stp}");
    let stp_id = stp["plan_id"].as_i64().unwrap();

    night.run("2026-06-03").await;
    night.run("2026-06-04").await;
    let (_, orders) = api.get("/v1/users/me/orders", Some(&token)).await;
    let june_swp = &orders_of_plan(&orders, swp_id)[0];
    assert_eq!(june_swp["status"], "executed", "{june_swp}");
    assert_eq!(june_swp["kind"], "redemption");
    assert_eq!(june_swp["plan_due_date"], "2026-06-04");
    assert_eq!(june_swp["nav_date"], "2026-06-04");
    // The units are rounded up to the scheme's step so the person gets at least ₹4,000
    // before charges, and not a step more.
    let nav = scaled(&june_swp["executed_nav"], 8);
    let gross = scaled(&june_swp["gross_amount"], 2);
    let step_value = i64::try_from(i128::from(nav) * 10 / 100_000_000 / 100).unwrap() + 1;
    assert!(
        (400_000..400_000 + step_value.max(1)).contains(&gross),
        "{june_swp}"
    );
    assert!(
        scaled(&june_swp["net_amount"], 2) < gross,
        "exit load and STT"
    );
    assert!(june_swp["payout_date"].is_string());
    let june_stp = &orders_of_plan(&orders, stp_id)[0];
    assert_eq!(june_stp["status"], "executed", "{june_stp}");
    assert_eq!(june_stp["kind"], "switch");
    assert_eq!(june_stp["target_scheme_code"], target);
    assert!(scaled(&june_stp["target_units"], 4) > 0, "{june_stp}");
    let (_, portfolio) = api.get("/v1/users/me/portfolio", Some(&token)).await;
    let held: Vec<i64> = portfolio["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["scheme_code"].as_i64().unwrap())
        .collect();
    assert!(held.contains(&target), "the STP's units: {portfolio}");

    // Friday 5 June: the STP paused for July, through the GraphQL subgraph as an app using
    // it would; the plans read there as over REST.
    let api = Api::start_at(&pg.url, "2026-06-05T10:00:00+05:30").await;
    let change = "mutation($id: ID!, $key: String!) { changePlan(planId: $id, action: PAUSE, \
        idempotencyKey: $key) { planId status nextInstalment { dueDate } } }";
    let (_, paused) = crate::graphql::graphql(
        &api,
        Some(&token),
        change,
        json!({ "id": stp_id.to_string(), "key": "pause-stp" }),
    )
    .await;
    assert!(paused["errors"].is_null(), "{paused}");
    assert_eq!(paused["data"]["changePlan"]["status"], "paused", "{paused}");
    assert_eq!(paused["data"]["changePlan"]["nextInstalment"], Value::Null);
    let (status, again) = api
        .post(
            &format!("/v1/users/me/plans/{stp_id}/pause"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (_, listed) = crate::graphql::graphql(
        &api,
        Some(&token),
        "{ me { plans { plans { planId kind status nextInstalment { dueDate navDate } } } \
           orders { orders { orderId planId planDueDate status } } } }",
        json!({}),
    )
    .await;
    let plans = &listed["data"]["me"]["plans"]["plans"];
    assert_eq!(plans[0]["kind"], "swp", "{listed}");
    assert_eq!(
        plans[0]["nextInstalment"],
        json!({ "dueDate": "2026-07-04", "navDate": "2026-07-06" })
    );
    assert_eq!(plans[1]["status"], "paused");
    let instalments = listed["data"]["me"]["orders"]["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["planDueDate"] == "2026-06-04")
        .count();
    assert_eq!(instalments, 2, "{listed}");

    // 4 July is a Saturday: Monday's run places the SWP's July instalment at Monday's NAV.
    night.run("2026-07-06").await;
    let (_, orders) = api.get("/v1/users/me/orders", Some(&token)).await;
    let swp_orders = orders_of_plan(&orders, swp_id);
    assert_eq!(swp_orders.len(), 2, "{orders}");
    assert_eq!(swp_orders[1]["plan_due_date"], "2026-07-04");
    assert_eq!(swp_orders[1]["nav_date"], "2026-07-06");
    assert_eq!(swp_orders[1]["status"], "executed", "{}", swp_orders[1]);
    assert_eq!(
        orders_of_plan(&orders, stp_id).len(),
        1,
        "paused at July's cut-off: {orders}"
    );

    // Tuesday 7 July: the STP resumed; its next instalment is August's.
    let api = Api::start_at(&pg.url, "2026-07-07T10:00:00+05:30").await;
    let (status, resumed) = api
        .post(
            &format!("/v1/users/me/plans/{stp_id}/resume"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(
        resumed["next_instalment"],
        json!({ "due_date": "2026-08-04", "nav_date": "2026-08-04" })
    );

    // 4 August, 16:00 IST, after the day's cut-off and before the night: the STP paused and
    // resumed at once. No cut-off fell inside the pause, so the night still places August's
    // STP instalment (the plan was live at 15:00).
    let api = Api::start_at(&pg.url, "2026-08-04T16:00:00+05:30").await;
    for action in ["pause", "resume"] {
        let (status, changed) = api
            .post(
                &format!("/v1/users/me/plans/{stp_id}/{action}"),
                &token,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {changed}");
    }

    // August: what is left (about ₹1,500) cannot pay ₹4,000. The SWP's instalment fails,
    // taking nothing, and stops the plan; the STP's ₹500 (placed after it) still executes.
    night.run("2026-08-04").await;
    let (_, orders) = api.get("/v1/users/me/orders", Some(&token)).await;
    let august_swp = &orders_of_plan(&orders, swp_id)[2];
    assert_eq!(august_swp["status"], "failed", "{august_swp}");
    assert_eq!(august_swp["failure"], "insufficient_units");
    assert_eq!(august_swp["executed_units"], Value::Null);
    let august_stp = &orders_of_plan(&orders, stp_id)[1];
    assert_eq!(august_stp["status"], "executed", "{august_stp}");
    let (_, stopped) = api
        .get(&format!("/v1/users/me/plans/{swp_id}"), Some(&token))
        .await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert_eq!(stopped["stopped_reason"], "insufficient_units");
    assert_eq!(stopped["next_instalment"], Value::Null);
    let (_, plans) = api.get("/v1/users/me/plans", Some(&token)).await;
    let statuses: Vec<&str> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["stopped", "active"], "{plans}");
    // Never a negative holding: what is left of the source is still there.
    let (_, portfolio) = api.get("/v1/users/me/portfolio", Some(&token)).await;
    let source = portfolio["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["scheme_code"] == scheme_code)
        .unwrap()
        .clone();
    assert!(scaled(&source["units"], 4) > 0, "{portfolio}");

    // Re-running the night's orders after the plans changed (the STP cancelled the next
    // morning) places nothing new and writes the same bytes: a plan is read as it was at
    // the cut-off of the instalment's NAV date.
    let orders_folder = |date: &str| {
        let mut files: Vec<(PathBuf, Vec<u8>)> = walk(&night.warehouse.join("orders"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(date))
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        files.sort();
        files
    };
    let before = orders_folder("2026-08-04");
    assert!(!before.is_empty());
    let api = Api::start_at(&pg.url, "2026-08-05T10:00:00+05:30").await;
    let (status, cancelled) = api
        .post(
            &format!("/v1/users/me/plans/{stp_id}/cancel"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    // The stopped SWP resumed after a top-up would be: the re-run of the night that stopped
    // it must not stop it again.
    let (status, resumed_swp) = api
        .post(
            &format!("/v1/users/me/plans/{swp_id}/resume"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed_swp}");
    assert_eq!(resumed_swp["stopped_reason"], Value::Null);
    let count_orders = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM orders")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let orders_before = count_orders().await;
    let rerun = tokio::process::Command::new(env!("CARGO_BIN_EXE_sipline"))
        .args(["--now", "2026-08-05T11:00:00+05:30", "orders", "execute"])
        .args(["--date", "2026-08-04", "--database-url", &pg.url])
        .arg("--warehouse")
        .arg(&night.warehouse)
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&rerun.stdout);
    assert!(
        rerun.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert!(out.contains("plan_instalments=0 plans_stopped=0"), "{out}");
    assert_eq!(count_orders().await, orders_before);
    assert_eq!(orders_folder("2026-08-04"), before, "the same bytes");
    let (_, swp_after) = api
        .get(&format!("/v1/users/me/plans/{swp_id}"), Some(&token))
        .await;
    assert_eq!(swp_after["status"], "active", "{swp_after}");
    night.dispatch().await;

    // Told: each executed instalment, the failed one, and the plan that stopped.
    let told: Vec<Value> = received.lock().unwrap().clone();
    let stopped_told: Vec<&Value> = told
        .iter()
        .filter(|n| n["kind"] == "plan_stopped")
        .collect();
    assert_eq!(stopped_told.len(), 1, "{told:?}");
    assert_eq!(stopped_told[0]["payload"]["plan_id"], swp_id);
    assert_eq!(stopped_told[0]["payload"]["reason"], "insufficient_units");
    assert_eq!(stopped_told[0]["payload"]["due_date"], "2026-08-04");
    let executed_instalments = told
        .iter()
        .filter(|n| n["kind"] == "order_executed" && n["payload"]["plan_id"].is_i64())
        .count();
    assert_eq!(
        executed_instalments, 4,
        "June's two, July's SWP, August's STP"
    );

    // Every span in which a plan was live is kept: the STP's from its creation to the June
    // pause, and from the July resume to the cancellation (the pause and resume at once on
    // 4 August reopened it: no cut-off fell inside).
    let spans: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT to_char(active_since AT TIME ZONE 'Asia/Kolkata', 'YYYY-MM-DD HH24:MI'), \
                to_char(inactive_since AT TIME ZONE 'Asia/Kolkata', 'YYYY-MM-DD HH24:MI') \
           FROM plan_spans WHERE plan_id = $1 ORDER BY active_since",
    )
    .bind(stp_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        spans,
        [
            ("2026-06-03 10:00".into(), Some("2026-06-05 10:00".into())),
            ("2026-07-07 10:00".into(), Some("2026-08-05 10:00".into())),
        ]
    );

    // A night that never ran, caught up after a pause and resume. A ₹200 SWP due Monday 10
    // August; that night does not run; the person pauses it at 17:00 (after the day's
    // cut-off) and resumes it the next day at 16:00 (after that day's: a cut-off fell inside
    // the pause, so it is live again only from then). The operator then runs the night of
    // the 10th: the plan was live at the 10th's cut-off, so the instalment is placed and
    // executed as it would have been on time.
    let (status, small) = api
        .post(
            "/v1/users/me/plans",
            &token,
            json!({ "kind": "swp", "scheme_code": scheme_code, "amount": "200", "plan_day": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{small}");
    let small_id = small["plan_id"].as_i64().unwrap();
    assert_eq!(
        small["next_instalment"],
        json!({ "due_date": "2026-08-10", "nav_date": "2026-08-10" })
    );
    for (at, action) in [
        ("2026-08-10T17:00:00+05:30", "pause"),
        ("2026-08-11T16:00:00+05:30", "resume"),
    ] {
        let api = Api::start_at(&pg.url, at).await;
        let (status, changed) = api
            .post(
                &format!("/v1/users/me/plans/{small_id}/{action}"),
                &token,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {changed}");
        if action == "resume" {
            assert_eq!(
                changed["next_instalment"],
                json!({ "due_date": "2026-09-10", "nav_date": "2026-09-10" })
            );
        }
    }
    night.run("2026-08-10").await;
    let (_, orders) = api.get("/v1/users/me/orders", Some(&token)).await;
    let caught_up = orders_of_plan(&orders, small_id);
    assert_eq!(caught_up.len(), 1, "{orders}");
    assert_eq!(caught_up[0]["plan_due_date"], "2026-08-10");
    assert_eq!(caught_up[0]["nav_date"], "2026-08-10");
    assert_eq!(caught_up[0]["status"], "executed", "{}", caught_up[0]);
}

/// The whole record (issue 37 §7): a person who started a SIP fourteen months ago reads every
/// instalment, page by page, over REST and through the GraphQL subgraph — after the nightly
/// chain (housekeeping included, with its defaults) ran on each instalment's night. The SIP
/// day is the 6th: a Saturday in December 2025 and June 2026 and a Sunday in September 2026,
/// bought on the Monday after (worked out from a calendar, not from sipline's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_reads_fourteen_months_of_instalments_page_by_page() {
    let pg = Postgres::start().await;
    let (night, _received) = Night::start(&pg.url).await;
    night.run("2025-10-01").await;
    let api = Api::start_at(&pg.url, "2025-10-01T10:00:00+05:30").await;
    let (token, scheme_code) = signed_in_with_a_fund(&api, "auth0|journey-history").await;
    let (status, sip) = api
        .post(
            "/v1/users/me/sips",
            &token,
            json!({ "scheme_code": scheme_code, "amount": "1000", "sip_day": 6,
                    "start_date": "2025-10-01" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sip}");
    assert_eq!(sip["next_instalment"]["due_date"], "2025-10-06", "{sip}");
    let nights = [
        ("2025-10-06", "2025-10-06"),
        ("2025-11-06", "2025-11-06"),
        ("2025-12-06", "2025-12-08"),
        ("2026-01-06", "2026-01-06"),
        ("2026-02-06", "2026-02-06"),
        ("2026-03-06", "2026-03-06"),
        ("2026-04-06", "2026-04-06"),
        ("2026-05-06", "2026-05-06"),
        ("2026-06-06", "2026-06-08"),
        ("2026-07-06", "2026-07-06"),
        ("2026-08-06", "2026-08-06"),
        ("2026-09-06", "2026-09-07"),
        ("2026-10-06", "2026-10-06"),
        ("2026-11-06", "2026-11-06"),
    ];
    for (_, nav_date) in nights {
        night.run(nav_date).await;
    }
    // Newest first, as both read them.
    let expected: Vec<(String, String)> = nights
        .iter()
        .rev()
        .map(|(due, nav)| (due.to_string(), nav.to_string()))
        .collect();

    let api = Api::start_at(&pg.url, "2026-11-30T10:00:00+05:30").await;
    let mut read = Vec::new();
    let mut pages = 0;
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            None => "/v1/users/me/investments?limit=5".to_string(),
            Some(cursor) => format!("/v1/users/me/investments?limit=5&before={cursor}"),
        };
        let (status, page) = api.get(&path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for row in page["investments"].as_array().unwrap() {
            assert_eq!(row["status"], "executed", "{row}");
            assert_eq!(row["amount"], "1000.00", "{row}");
            read.push((
                row["due_date"].as_str().unwrap().to_string(),
                row["nav_date"].as_str().unwrap().to_string(),
            ));
        }
        match page["next_before"].as_str() {
            Some(cursor) => before = Some(cursor.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging does not end: {page}");
    }
    assert_eq!(
        read, expected,
        "every instalment since the first, over REST"
    );
    assert_eq!(pages, 3);

    let query = "query($before: String) { me { investments(first: 5, before: $before) { \
                   investments { dueDate navDate status } nextBefore } } }";
    let mut read = Vec::new();
    let mut before = Value::Null;
    for _ in 0..10 {
        let (_, answer) =
            crate::graphql::graphql(&api, Some(&token), query, json!({ "before": before })).await;
        assert!(answer["errors"].is_null(), "{answer}");
        let page = &answer["data"]["me"]["investments"];
        for row in page["investments"].as_array().unwrap() {
            assert_eq!(row["status"], "executed", "{row}");
            read.push((
                row["dueDate"].as_str().unwrap().to_string(),
                row["navDate"].as_str().unwrap().to_string(),
            ));
        }
        before = page["nextBefore"].clone();
        if before.is_null() {
            break;
        }
    }
    assert_eq!(
        read, expected,
        "every instalment since the first, over GraphQL"
    );
}
