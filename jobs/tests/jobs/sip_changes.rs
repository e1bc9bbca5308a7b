//! SIP changes through the real API process take effect at the daily cut-off, the API says
//! when, and `sips export` agrees (issue 17 §2, issue 16 §3): a SIP created after the cut-off
//! on its own start day has its first instalment next month, and the response said so; one
//! created before it is due today. Changes (amount, pause) are kept as history, shown on the
//! SIP, and validated; another user's SIP is a 404.

use chrono::{Datelike, NaiveDate};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::{claims, hs256, Api};
use crate::support::{ingest_fixture_into_postgres, sipline_async, Postgres};

/// The instant these tests run at, by the API's and the jobs' clock (`--now`): a Wednesday,
/// the 10th, noon in India — a business day whose SIP day exists in every month. The date
/// rules at the instants that break them (weekends, holidays, month and year ends, the
/// cut-off) are `date_rules.rs`.
const NOW: &str = "2027-03-10T12:00:00+05:30";

fn today_ist() -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 3, 10).unwrap()
}

async fn set_cutoff(pool: &sqlx::PgPool, cutoff: &str) {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{database}\" SET sipline.sip_cutoff = '{cutoff}'"
    )))
    .execute(pool)
    .await
    .unwrap();
}

async fn patch(api: &Api, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = api
        .send(reqwest::Method::PATCH, path, Some(token), Some(body))
        .await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_take_effect_at_the_cut_off_and_the_api_says_when() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    let warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    let wh = warehouse.path().to_str().unwrap().to_string();

    // Every moment is after a 00:00 cut-off: today's changes apply from tomorrow.
    set_cutoff(&pool, "00:00").await;
    let api = Api::start_at(&pg.url, NOW).await;
    let token = hs256(&claims("auth0|cut-off-tester"));
    let other = hs256(&claims("auth0|someone-else"));
    let today = today_ist();
    let tomorrow = today.succ_opt().unwrap();
    let sip_day = today.day().min(28);
    let sips = "/v1/users/me/sips";
    let new_sip = json!({ "scheme_code": 119552, "amount": "1000.00", "sip_day": sip_day,
                          "start_date": today });
    let (status, late) = api.post(sips, &token, new_sip.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{late}");
    assert_eq!(late["effective_from"], json!(tomorrow), "{late}");
    let first_due = |body: &Value| {
        NaiveDate::parse_from_str(
            body["next_instalment"]["due_date"].as_str().unwrap(),
            "%Y-%m-%d",
        )
        .unwrap()
    };
    // Created after the cut-off on its own SIP day: the first instalment is next month's.
    assert_eq!(first_due(&late).day(), sip_day, "{late}");
    assert_eq!(
        first_due(&late),
        NaiveDate::from_ymd_opt(2027, 4, 10).unwrap(),
        "{late}"
    );
    assert_eq!(late["next_instalment"]["amount"], "1000.00");
    let late_id = late["sip_id"].as_i64().unwrap();

    // Today's snapshot (its cut-off has passed) does not hold it: the batch agrees with the API.
    let exported = sipline_async(&[
        "sips",
        "export",
        "--date",
        &today.to_string(),
        "--now",
        NOW,
        "--warehouse",
        &wh,
        "--database-url",
        &pg.url,
    ])
    .await;
    exported.assert_ok();
    assert!(exported.stdout.contains(" sips=0 "), "{}", exported.stdout);

    // A cut-off at the end of the day: a SIP created now is due today, if today is its day.
    drop(api);
    set_cutoff(&pool, "23:59:59.999").await;
    let api = Api::start_at(&pg.url, NOW).await;
    let (status, early) = api.post(sips, &token, new_sip.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{early}");
    assert_eq!(early["effective_from"], json!(today), "{early}");
    assert_eq!(first_due(&early), today, "{early}");
    // A change never applies before an earlier change of the same SIP, whatever the cut-off
    // became meanwhile: the late SIP's amendment waits for its creation, tomorrow.
    let (status, amended_late) = patch(
        &api,
        &format!("{sips}/{late_id}"),
        &token,
        json!({ "amount": "1200.00" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{amended_late}");
    assert_eq!(amended_late["effective_from"], json!(tomorrow));

    // Change the amount: history kept, validated, effective from today's batch.
    let one = format!("{sips}/{}", early["sip_id"].as_i64().unwrap());
    let (status, changed) = patch(&api, &one, &token, json!({ "amount": "2500.00" })).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            changed["amount"].as_str(),
            changed["effective_from"].clone()
        ),
        (Some("2500.00"), json!(today))
    );
    assert_eq!(changed["next_instalment"]["amount"], "2500.00");
    for (body, field) in [
        (json!({ "amount": "50" }), "amount"),
        (json!({ "sip_day": 31 }), "sip_day"),
        (json!({ "step_up_pct": "101" }), "step_up_pct"),
        (json!({ "end_date": "2020-01-01" }), "end_date"),
        (json!({}), "body"),
    ] {
        let (status, problem) = patch(&api, &one, &token, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert!(problem.to_string().contains(field), "{body}: {problem}");
    }
    let (status, _) = patch(&api, &one, &token, json!({ "nickname": "x" })).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    // No field of the amendment is nullable: an explicit null is refused (Schemathesis found
    // `{"amount": null, "sip_day": 11}` accepted as a change of the day alone), and changes
    // nothing.
    for field in ["amount", "step_up_pct", "sip_day", "end_date"] {
        let mut body = json!({ "sip_day": 11 });
        body[field] = Value::Null;
        let (status, problem) = patch(&api, &one, &token, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert!(
            problem.to_string().contains(field) && problem.to_string().contains("null"),
            "{body}: {problem}"
        );
    }
    let (status, unchanged) = api.get(&one, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unchanged["amount"], "2500.00", "{unchanged}");
    let (status, _) = patch(&api, &one, &other, json!({ "amount": "2000" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's SIP");
    let (status, _) = api.get(&one, Some(&other)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Pause through the next instalment: `until` is the last skipped day, so the one after
    // it is next; pausing through the day before it skips nothing.
    let next = first_due(&changed);
    let (status, paused) = api
        .post(&format!("{one}/pause"), &token, json!({ "until": next }))
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused_until"], json!(next));
    assert!(first_due(&paused) > next, "{paused}");
    let (status, resumed) = api.post(&format!("{one}/resume"), &token, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first_due(&resumed), next);
    // The next instalment is today's: pausing through yesterday is pausing in the past.
    assert_eq!(next, today);
    let (status, problem) = api
        .post(
            &format!("{one}/pause"),
            &token,
            json!({ "until": today.pred_opt().unwrap() }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem.to_string().contains("until"), "{problem}");

    // The SIP shows its history, newest first.
    let (status, detail) = api.get(&one, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let kinds: Vec<&str> = detail["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.last(), Some(&"create"), "{detail}");
    assert!(
        kinds.contains(&"amend") && kinds.contains(&"pause"),
        "{detail}"
    );
    assert_eq!(detail["changes"][kinds.len() - 1]["amount"], "1000.00");
    assert_eq!(
        detail["changes"][kinds.len() - 1]["effective_from"],
        json!(today)
    );

    // Cancelled: no next instalment, and no more changes.
    let (status, cancelled) = api.post(&format!("{one}/cancel"), &token, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["next_instalment"], Value::Null);
    let (status, _) = patch(&api, &one, &token, json!({ "amount": "3000" })).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// A JSON `POST` with an `Idempotency-Key`: its status, whether it was a replay, its body.
/// Owned arguments, so racing tries can be spawned.
async fn post_with_key(
    http: reqwest::Client,
    url: String,
    token: String,
    key: &'static str,
    body: Value,
) -> (StatusCode, bool, Value) {
    let response = http
        .post(url)
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let status = response.status();
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    (status, replayed, body)
}

/// `POST …/sips` (and `POST …/alerts`) with an `Idempotency-Key`: a retry (also one racing the
/// first) gets the stored response and creates no second mandate; the key with another body is
/// a 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_sip_creation_with_its_key_debits_once() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    let api = Api::start_at(&pg.url, NOW).await;
    let token = hs256(&claims("auth0|retries-a-lot"));
    let start = today_ist() + chrono::Duration::days(3);
    let body =
        json!({ "scheme_code": 119552, "amount": "1000.00", "sip_day": 10, "start_date": start });
    let post = |key: &'static str, body: Value| {
        let url = format!("{}/v1/users/me/sips", api.base);
        post_with_key(api.http.clone(), url, token.clone(), key, body)
    };
    let (status, replayed, first) = post("create-1", body.clone()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    let (status, replayed, again) = post("create-1", body.clone()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again, first, "the stored response, byte for byte");
    // Key order and spacing are not a different request.
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{"start_date": "{start}", "sip_day": 10, "amount": "1000.00", "scheme_code": 119552}}"#
    ))
    .unwrap();
    assert_eq!(
        post("create-1", reordered).await.2["sip_id"],
        first["sip_id"]
    );
    let mut other = body.clone();
    other["amount"] = "2000.00".into();
    let (status, _, problem) = post("create-1", other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    // Eight concurrent first tries of a new key: one mandate.
    let racing: Vec<_> = (0..8)
        .map(|_| tokio::spawn(post("create-2", body.clone())))
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in racing {
        let (status, _, created) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{created}");
        ids.insert(created["sip_id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    // The scheme's rules change after the first request: the retry still gets its 201, the
    // key is looked up before the body is validated again.
    sqlx::query("UPDATE schemes SET sip_min_amount = 5000 WHERE scheme_code = 119552")
        .execute(&pool)
        .await
        .unwrap();
    let (status, replayed, late) = post("create-1", body.clone()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{late}");
    let (status, _, problem) = post("create-3", body.clone()).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a new key is validated: {problem}"
    );
    // A rejected request keeps no claim: the same key with a corrected body goes through.
    let mut corrected = body.clone();
    corrected["amount"] = "5000.00".into();
    let (status, replayed, created) = post("create-3", corrected.clone()).await;
    assert_eq!(
        (status, replayed),
        (StatusCode::CREATED, false),
        "{created}"
    );
    let sips: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sips s JOIN users u USING (user_id) WHERE u.auth_subject = 'auth0|retries-a-lot'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(sips, 3, "one per key");
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            "/v1/users/me/sips",
            Some(&token),
            Some(corrected),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "without a key, no dedup");

    // NAV alerts take a key the same way: one alert however often it is retried.
    let alert = |key: &'static str, threshold: &'static str| {
        let url = format!("{}/v1/users/me/alerts", api.base);
        let body = json!({ "scheme_code": 119552, "kind": "above", "threshold": threshold });
        post_with_key(api.http.clone(), url, token.clone(), key, body)
    };
    let (status, replayed, first) = alert("alert-1", "100").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    let (status, replayed, again) = alert("alert-1", "100").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again, first);
    assert_eq!(
        alert("alert-1", "200").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let alerts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM nav_alerts a JOIN users u USING (user_id) WHERE u.auth_subject = 'auth0|retries-a-lot'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(alerts, 1);

    // Concurrent creations with different keys each get their own alert. Each claim's key row
    // references the user (a key-share lock on the user's row); the quota's lock must not
    // conflict with it, or two requests deadlock and one is a 500 (Schemathesis found it).
    let keys: Vec<&'static str> = vec!["par-1", "par-2", "par-3", "par-4", "par-5", "par-6"];
    let thresholds = ["301", "302", "303", "304", "305", "306"];
    let racing: Vec<_> = keys
        .into_iter()
        .zip(thresholds)
        .map(|(key, threshold)| tokio::spawn(alert(key, threshold)))
        .collect();
    for task in racing {
        let (status, _, created) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let alerts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM nav_alerts a JOIN users u USING (user_id) WHERE u.auth_subject = 'auth0|retries-a-lot'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(alerts, 7);
}
