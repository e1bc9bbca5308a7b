//! Safe under abuse and faults (issue 18), through the real `sipline serve` process and a real
//! PostgreSQL: a SIP creation whose request timed out is retried once; rate limits answer 429
//! with Retry-After per caller and per address; a publish holding its lock makes readers wait
//! two seconds and answer 503, not 500 or a queue; changes other than creation replay their
//! Idempotency-Key; a configuration that would accept foreign tokens does not start.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::{claims, hs256, Api};
use crate::support::{ingest_fixture_into_postgres, sipline_async, Postgres};

/// The API's clock in these tests (`--now`), and a start date three days after it.
const NOW: &str = "2027-03-10T12:00:00+05:30";
const START: &str = "2027-03-13";

async fn send_with_key(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    token: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, bool, Value) {
    let mut request = api
        .http
        .request(method, format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("idempotency-key", key);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        replayed,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The request timeout drops the handler while the SIP's transaction commits (a deferred
/// trigger makes the commit slow): the client sees 503 and retries with its key; there is one
/// SIP, whichever way the first commit went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_creation_retried_after_a_forced_timeout_creates_one_sip() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    let api = Api::start_with(
        &pg.url,
        &[
            "--now",
            NOW,
            "--request-timeout-ms",
            "400",
            "--rate-per-user",
            "0",
            "--rate-per-address",
            "0",
        ],
    )
    .await;
    let token = hs256(&claims("auth0|impatient"));
    assert_eq!(api.get("/v1/me", Some(&token)).await.0, StatusCode::OK);
    // Slow commits of new SIPs: the trigger runs at COMMIT, past the request's timeout.
    sqlx::raw_sql(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON sips \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Also slow before the commit, so the timeout lands inside the transaction.
    sqlx::raw_sql(
        "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$; \
         CREATE TRIGGER slow_insert BEFORE INSERT ON sips FOR EACH ROW EXECUTE FUNCTION slow_insert();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let start = START;
    let body =
        json!({ "scheme_code": 119552, "amount": "1000.00", "sip_day": 10, "start_date": start });
    let (status, _, first) = send_with_key(
        &api,
        reqwest::Method::POST,
        "/v1/users/me/sips",
        &token,
        "k-timeout",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{first}");
    // The first attempt's transaction has finished one way or the other by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sqlx::raw_sql("DROP TRIGGER slow_commit ON sips; DROP TRIGGER slow_insert ON sips;")
        .execute(&pool)
        .await
        .unwrap();
    let (status, _, retried) = send_with_key(
        &api,
        reqwest::Method::POST,
        "/v1/users/me/sips",
        &token,
        "k-timeout",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    let (status, replayed, again) = send_with_key(
        &api,
        reqwest::Method::POST,
        "/v1/users/me/sips",
        &token,
        "k-timeout",
        Some(body),
    )
    .await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again["sip_id"], retried["sip_id"]);
    let sips: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sips s JOIN users u USING (user_id) WHERE u.auth_subject = 'auth0|impatient'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        sips, 1,
        "one SIP for one key, after a timeout and two retries"
    );
}

/// A change other than a creation (amend, pause, preferences, mark read, delete) replays its
/// key: the retry answers the first response and changes nothing again; the key on another
/// request is a 422; a refused request releases its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_replay_their_idempotency_key() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    let api = Api::start_at(&pg.url, NOW).await;
    let token = hs256(&claims("auth0|changes-twice"));
    let start = START;
    let (status, created) = api
        .post(
            "/v1/users/me/sips",
            &token,
            json!({ "scheme_code": 119552, "amount": "1000.00", "sip_day": 10, "start_date": start }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let sip = format!("/v1/users/me/sips/{}", created["sip_id"]);
    let patch = |key: &'static str, amount: &'static str| {
        send_with_key(
            &api,
            reqwest::Method::PATCH,
            &sip,
            &token,
            key,
            Some(json!({ "amount": amount })),
        )
    };
    let (status, replayed, first) = patch("amend-1", "1500.00").await;
    assert_eq!((status, replayed), (StatusCode::OK, false), "{first}");
    let (status, replayed, again) = patch("amend-1", "1500.00").await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
    assert_eq!(again, first);
    assert_eq!(
        patch("amend-1", "1700.00").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // One change recorded for two requests with the key.
    let amends: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sip_changes WHERE sip_id = $1 AND change = 'amend'",
    )
    .bind(created["sip_id"].as_i64().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(amends, 1);
    // A refused change (an amount below ₹100) keeps no claim: corrected, the key goes through.
    assert_eq!(
        patch("amend-2", "5").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(patch("amend-2", "1600.00").await.0, StatusCode::OK);
    // Pause, retried with its key: the stored 200, and one pause recorded.
    let pause = format!("{sip}/pause");
    for replay in [false, true] {
        let (status, replayed, body) =
            send_with_key(&api, reqwest::Method::POST, &pause, &token, "pause-1", None).await;
        assert_eq!((status, replayed), (StatusCode::OK, replay), "{body}");
    }
    let pauses = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM sip_changes WHERE sip_id = $1 AND change = 'pause'",
        )
        .bind(created["sip_id"].as_i64().unwrap())
        .fetch_one(&pool)
    };
    assert_eq!(pauses().await.unwrap(), 1);
    // Without a key, a repeat is a new request as it always was.
    let (status, _) = api.post(&pause, &token, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pauses().await.unwrap(), 2);
    // The same alert rule twice is a 409 (the database's unique index), however it is written;
    // deleted, it may be made again.
    let alerts = "/v1/users/me/alerts";
    let rule =
        |threshold: &str| json!({ "scheme_code": 119552, "kind": "above", "threshold": threshold });
    let (status, alert) = api.post(alerts, &token, rule("45.5")).await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let (status, problem) = api.post(alerts, &token, rule("45.50")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        api.post(alerts, &token, rule("46")).await.0,
        StatusCode::CREATED
    );
    let (status, _, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{alerts}/{}", alert["alert_id"]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.post(alerts, &token, rule("45.5")).await.0,
        StatusCode::CREATED
    );
    // A malformed key is a 400 before anything runs.
    let (status, _, _) = send_with_key(
        &api,
        reqwest::Method::POST,
        &pause,
        &token,
        "has space",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Per caller: a burst past the caller's budget is a 429 with Retry-After, while another caller
/// from the same address goes on; per address: past the address's budget every caller there is
/// refused. Health checks are never limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_per_caller_and_per_address() {
    let pg = Postgres::start().await;
    let api = Api::start_with(
        &pg.url,
        &[
            "--rate-per-user",
            "1",
            "--burst-per-user",
            "5",
            "--rate-per-address",
            "1",
            "--burst-per-address",
            "12",
        ],
    )
    .await;
    let a = hs256(&claims("auth0|eager"));
    let b = hs256(&claims("auth0|patient"));
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response = api
            .http
            .get(format!("{}/v1/me", api.base))
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&retry), "Retry-After {retry}");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
    }
    assert_eq!(
        statuses,
        [
            vec![StatusCode::OK; 5],
            vec![StatusCode::TOO_MANY_REQUESTS; 2]
        ]
        .concat(),
        "caller a: a burst of 5, then 429"
    );
    // Another caller from the same address still has their own budget...
    for _ in 0..4 {
        assert_eq!(api.get("/v1/me", Some(&b)).await.0, StatusCode::OK);
    }
    // ...until the address's is spent (12: 7 of a's, 4 of b's, one more), for everyone.
    assert_eq!(api.get("/v1/me", Some(&b)).await.0, StatusCode::OK);
    let (status, body) = api.get("/v1/me", Some(&b)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, _) = api.get("/v1/me", None).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even without a token"
    );
    assert_eq!(api.get("/healthz", None).await.0, StatusCode::OK);
    // The budget refills: a second later the address may send again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.get("/v1/me", Some(&b)).await.0, StatusCode::OK);
}

/// A publish switching dates holds ACCESS EXCLUSIVE locks: a reader waits at most the lock
/// timeout (2 s) and answers 503 with Retry-After, not a 500 and not a queue as long as the
/// lock; when the lock is gone, reads answer again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_holding_its_lock_turns_readers_into_503s_not_500s() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    let api = Api::start(&pg.url).await;
    let token = hs256(&claims("auth0|reads-during-publish"));
    assert_eq!(api.get("/v1/me", Some(&token)).await.0, StatusCode::OK);
    let mut publish = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE portfolio_snapshots, portfolio_lines IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *publish)
        .await
        .unwrap();
    let started = Instant::now();
    let response = api
        .http
        .get(format!("{}/v1/users/me/portfolio", api.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(
        waited < Duration::from_secs(5),
        "waited {waited:?}: the reader queued behind the lock"
    );
    publish.rollback().await.unwrap();
    // The rolled-back publish left nothing: the empty portfolio, not a half-published one.
    let (status, body) = api.get("/v1/users/me/portfolio", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["as_of"],
        serde_json::Value::Null,
        "nothing published: {body}"
    );
}

/// `serve` refuses to start with a configuration that would accept tokens it should not:
/// exit 3, the reason on stderr, before any connection.
#[tokio::test]
async fn serve_fails_closed_on_a_configuration_that_accepts_foreign_tokens() {
    let jwks = crate::api::key_fixture("jwks.json");
    let jwks = jwks.to_str().unwrap();
    for (args, reason) in [
        (vec!["--jwks", jwks], "--audience and --issuer"),
        (
            vec!["--jwks", jwks, "--audience", "authenticated"],
            "--audience and --issuer",
        ),
        (
            vec![
                "--jwks",
                "http://tenant.example.com/.well-known/jwks.json",
                "--audience",
                "a",
                "--issuer",
                "https://tenant.example.com/",
            ],
            "https://",
        ),
        (vec!["--jwt-secret", "too-short"], "at least 32 bytes"),
        (
            vec!["--jwt-secret", "a-shared-secret-of-at-least-32-bytes"],
            "--jwt-secret needs --audience",
        ),
        (vec![], "--jwt-secret or --jwks"),
    ] {
        let mut command = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ];
        command.extend(&args);
        let run = sipline_async(&command).await;
        assert_eq!(run.code, 3, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(reason), "{args:?}: {}", run.stderr);
    }
    // The dispatcher likewise: a guessable webhook key, a sender that could carry headers.
    for (args, reason) in [
        (vec!["--webhook-secret", "short"], "at least 16 bytes"),
        (
            vec![
                "--webhook-secret",
                "a-webhook-secret-long-enough",
                "--mail-from",
                "a@b.c\r\nBcc: all@x.y",
            ],
            "--mail-from",
        ),
    ] {
        // No database: the configuration is refused before any connection.
        let mut command = vec!["notify", "dispatch"];
        command.extend(&args);
        let run = sipline_async(&command).await;
        assert_eq!(run.code, 3, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(reason), "{args:?}: {}", run.stderr);
    }
}

/// A pool that cannot lock itself (issue 35): no handler holds a connection while it waits
/// for another. One person sends 40 SIP creations and 12 alert creations at once against a
/// pool of 4 connections: every one is answered (created, or refused by a quota), none with a
/// 503 for want of a connection, and another person's read during the burst is answered too.
/// Before the fix a creation held its transaction and asked the pool for a second connection
/// for the scheme's rules: 14 of 40 answered 503 after 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_persons_burst_of_writes_cannot_starve_the_pool() {
    let pg = Postgres::start().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    let api = Api::start_with(
        &pg.url,
        &[
            "--now",
            NOW,
            "--max-connections",
            "4",
            "--rate-per-user",
            "0",
            "--rate-per-address",
            "0",
        ],
    )
    .await;
    let token = hs256(&claims("auth0|bursty"));
    let other = hs256(&claims("auth0|patient"));
    assert_eq!(api.get("/v1/me", Some(&token)).await.0, StatusCode::OK);
    assert_eq!(api.get("/v1/me", Some(&other)).await.0, StatusCode::OK);
    let send = |path: &'static str, body: serde_json::Value| {
        let request = api
            .http
            .post(format!("{}{path}", api.base))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_string());
        tokio::spawn(async move { request.send().await.unwrap().status() })
    };
    let mut burst = Vec::new();
    for i in 0..40 {
        let body = json!({ "scheme_code": 119552, "amount": format!("{}.00", 1000 + i),
                           "sip_day": 10, "start_date": START });
        burst.push(send("/v1/users/me/sips", body));
    }
    for i in 0..12 {
        let body =
            json!({ "scheme_code": 119552, "kind": "above", "threshold": format!("{}", 500 + i) });
        burst.push(send("/v1/users/me/alerts", body));
    }
    let (status, _) = api.get("/v1/users/me/sips", Some(&other)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another person's read during the burst"
    );
    let mut statuses = std::collections::BTreeMap::new();
    for request in burst {
        *statuses.entry(request.await.unwrap().as_u16()).or_insert(0) += 1;
    }
    assert!(
        statuses.keys().all(|s| [201, 409].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(statuses.get(&201).copied().unwrap_or(0), 52, "{statuses:?}");
}

/// The operator routes (issue 35 §7): `/metrics` takes a token when one is configured, and
/// every route that does work — metrics, readiness, the OpenAPI document, GraphQL's SDL — is
/// behind the per-address limiter; liveness never is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_routes_are_limited_and_metrics_take_a_token() {
    let pg = Postgres::start().await;
    let api = Api::start_with(
        &pg.url,
        &[
            "--metrics-token",
            "scrape-token-0123456789",
            "--rate-per-user",
            "0",
            "--rate-per-address",
            "1",
            "--burst-per-address",
            "4",
        ],
    )
    .await;
    let scrape = |token: Option<&'static str>| {
        let mut request = api.http.get(format!("{}/metrics", api.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap() }
    };
    assert_eq!(scrape(None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        scrape(Some("scrape-token-wrong")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = scrape(Some("scrape-token-0123456789")).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok
        .text()
        .await
        .unwrap()
        .contains("sipline_api_request_duration_seconds"));
    // The address's budget (a burst of 4) is spent: the next work is refused, liveness is not.
    let mut refused = 0;
    for path in ["/readyz", "/openapi.json", "/graphql", "/metrics"] {
        if api.get(path, None).await.0 == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused >= 3, "{refused} of 4 refused");
    assert_eq!(api.get("/healthz", None).await.0, StatusCode::OK);
}

/// A mandate whose end date has passed is done: it leaves the person's quota of open SIPs (50)
/// and of open SWPs and STPs (20), so years of finished SIPs never block a new one. Before,
/// the quota counted every SIP and plan whose status still said active, ended or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_mandates_leave_the_quota() {
    let pg = Postgres::start().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    let token = hs256(&claims("auth0|finisher"));
    let sip = |start: &str, amount: u32, end: Option<&str>| {
        let mut body = json!({ "scheme_code": 119552, "amount": format!("{amount}.00"),
                               "sip_day": 10, "start_date": start });
        if let Some(end) = end {
            body["end_date"] = json!(end);
        }
        body
    };
    // Wednesday 10 March 2027: fifty SIPs ending on 20 May, then one too many.
    let api = Api::start_at(&pg.url, NOW).await;
    let (status, me) = api.get("/v1/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let user_id = me["user_id"].as_i64().unwrap();
    for i in 0..50 {
        let (status, body) = api
            .post(
                "/v1/users/me/sips",
                &token,
                sip(START, 1000 + i, Some("2027-05-20")),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "SIP {i}: {body}");
    }
    let (status, body) = api
        .post("/v1/users/me/sips", &token, sip(START, 999, None))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the 51st open SIP: {body}");
    drop(api);

    // Tuesday 1 June: the fifty have ended; a new SIP is taken.
    let api = Api::start_at(&pg.url, "2027-06-01T10:00:00+05:30").await;
    let (status, body) = api
        .post("/v1/users/me/sips", &token, sip("2027-06-05", 999, None))
        .await;
    assert_eq!(status, StatusCode::CREATED, "after the fifty ended: {body}");
    // And the person reads them as completed, the new one as active.
    let statuses = |list: &Value, key: &str| -> Vec<String> {
        list[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["status"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, sips) = api.get("/v1/users/me/sips", Some(&token)).await;
    let mut expected = vec!["completed".to_string(); 50];
    expected.push("active".into());
    assert_eq!(statuses(&sips, "sips"), expected, "{sips}");
    let first = sips["sips"][0]["sip_id"].as_i64().unwrap();
    let (_, one) = api
        .get(&format!("/v1/users/me/sips/{first}"), Some(&token))
        .await;
    assert_eq!(one["status"], "completed", "{one}");
    assert_eq!(one["next_instalment"], Value::Null, "{one}");
    // Thursday 20 May, their last day: still active, until that day's NAV is in.
    let api_on_the_day = Api::start_at(&pg.url, "2027-05-20T22:00:00+05:30").await;
    let (_, one) = api_on_the_day
        .get(&format!("/v1/users/me/sips/{first}"), Some(&token))
        .await;
    assert_eq!(one["status"], "active", "{one}");
    drop(api_on_the_day);

    // Plans: twenty ended on 20 May, still marked active, and one stopped for want of units.
    // Resuming the stopped one passes the quota; with twenty still running it would not.
    let pool = pg.pool().await;
    let insert_plan = |status: &'static str, end: Option<&'static str>| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO plans (user_id, kind, scheme_code, amount, plan_day, start_date, \
                   end_date, status, stopped_reason, created_at, active_since, inactive_since) \
                 VALUES ($1, 'swp', 119552, 500, 10, DATE '2027-03-13', $2::date, $3, \
                   CASE WHEN $3 = 'stopped' THEN 'insufficient_units' END, \
                   TIMESTAMPTZ '2027-03-10 12:00+05:30', TIMESTAMPTZ '2027-03-10 12:00+05:30', \
                   CASE WHEN $3 = 'stopped' THEN TIMESTAMPTZ '2027-04-10 12:00+05:30' END) \
                 RETURNING plan_id",
            )
            .bind(user_id)
            .bind(end)
            .bind(status)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    for _ in 0..20 {
        insert_plan("active", Some("2027-05-20")).await;
    }
    let stopped = insert_plan("stopped", None).await;
    let (status, body) = api
        .post(
            &format!("/v1/users/me/plans/{stopped}/resume"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "resumed past twenty ended plans: {body}"
    );
    let (_, plans) = api.get("/v1/users/me/plans", Some(&token)).await;
    let mut expected = vec!["completed".to_string(); 20];
    expected.push("active".into());
    assert_eq!(statuses(&plans, "plans"), expected, "{plans}");
    sqlx::query("UPDATE plans SET end_date = NULL WHERE plan_id <> $1")
        .bind(stopped)
        .execute(&pool)
        .await
        .unwrap();
    let another = insert_plan("stopped", None).await;
    let (status, body) = api
        .post(
            &format!("/v1/users/me/plans/{another}/resume"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "twenty-one running plans: {body}"
    );
}
