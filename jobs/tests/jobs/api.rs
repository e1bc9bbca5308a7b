//! `sipline serve` as a real process over a real PostgreSQL holding a published universe: every
//! route, its validation, every way a token is refused, cross-user access, the cache and its
//! invalidation by a new publish, and the operational endpoints.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::publish::{publish, published_universe, FIRST, SECOND};
use crate::support::Postgres;

const SECRET: &str = "api-test-secret-of-at-least-32-bytes";

pub(crate) fn key_fixture(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../api/tests/fixtures")
        .join(name)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The issuer the test API requires (`--issuer`): with a JWKS, `serve` refuses to start
/// without one.
pub(crate) const ISSUER: &str = "https://auth.sipline.test/";

pub(crate) fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "aud": "authenticated", "iss": ISSUER, "exp": now() + 600, "iat": now() })
}

pub(crate) fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: &Value, pem: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let key = EncodingKey::from_rsa_pem(&std::fs::read(key_fixture(pem)).unwrap()).unwrap();
    encode(&header, claims, &key).unwrap()
}

pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    process: tokio::process::Child,
}

impl Api {
    /// The API with its rate limits off (tests send bursts; the limits have their own test).
    pub(crate) async fn start(database_url: &str) -> Self {
        Self::start_with(
            database_url,
            &["--rate-per-user", "0", "--rate-per-address", "0"],
        )
        .await
    }

    /// The API with its clock started at `now` (RFC 3339), ticking from there: the date rules
    /// (today, the cut-off) at a chosen instant, whatever the wall clock says.
    pub(crate) async fn start_at(database_url: &str, now: &str) -> Self {
        Self::start_with(
            database_url,
            &[
                "--now",
                now,
                "--rate-per-user",
                "0",
                "--rate-per-address",
                "0",
            ],
        )
        .await
    }

    pub(crate) async fn start_with(database_url: &str, extra: &[&str]) -> Self {
        Self::start_with_env(database_url, extra, &[]).await
    }

    pub(crate) async fn start_with_env(
        database_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_sipline"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database_url,
                "--jwt-secret",
                SECRET,
                "--jwks",
                key_fixture("jwks.json").to_str().unwrap(),
                "--audience",
                "authenticated",
                "--issuer",
                ISSUER,
                "--migrate",
            ])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let api = Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            process,
        };
        for _ in 0..100 {
            let health = api.http.get(format!("{}/healthz", api.base)).send().await;
            if health.is_ok_and(|r| r.status() == StatusCode::OK) {
                return api;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("sipline serve did not come up");
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, content_type, json)
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (status, _, body) = self.send(reqwest::Method::GET, path, token, None).await;
        (status, body)
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self
            .send(reqwest::Method::POST, path, Some(token), Some(body))
            .await;
        (status, body)
    }
}

fn is_problem(status: StatusCode, content_type: &str, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_published_data_to_its_owner_only_and_follows_publishes() {
    let pg = Postgres::start().await;
    let warehouse = published_universe(&pg.url).await;
    let pool = pg.pool().await;
    // Two users with portfolios; A also has notifications.
    let rows = sqlx::query(
        "SELECT u.user_id, u.auth_subject, p.invested::text AS invested FROM users u JOIN portfolio_latest p USING (user_id) \
         WHERE p.schemes > 0 ORDER BY (SELECT count(*) FROM notifications n WHERE n.user_id = u.user_id) DESC, u.user_id LIMIT 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let (a, a_sub, a_invested): (i64, String, String) =
        (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    let (b, b_sub): (i64, String) = (rows[1].get(0), rows[1].get(1));
    let a_token = hs256(&claims(&a_sub));
    let b_token = rs256(&claims(&b_sub), "rsa.pem");
    let mut service_claims = claims("backend");
    service_claims["role"] = "service_role".into();
    let service = hs256(&service_claims);

    let api = Api::start_at(&pg.url, "2027-03-10T12:00:00+05:30").await;
    assert_eq!(api.get("/readyz", None).await.0, StatusCode::OK);

    // The portfolio: the owner (HS256) and the service role read it; another user gets 404.
    let portfolio = format!("/v1/users/{a}/portfolio");
    let (status, body) = api.get(&portfolio, Some(&a_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["as_of"], FIRST);
    assert_eq!(body["invested"], a_invested);
    let lines: i64 =
        sqlx::query_scalar("SELECT count(*) FROM portfolio_lines_latest WHERE user_id = $1")
            .bind(a)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(body["lines"].as_array().unwrap().len() as i64, lines);
    assert_eq!(api.get(&portfolio, Some(&service)).await.0, StatusCode::OK);
    let (status, content_type, body) = api
        .send(reqwest::Method::GET, &portfolio, Some(&b_token), None)
        .await;
    is_problem(status, &content_type, &body, StatusCode::NOT_FOUND);
    let (status, body) = api
        .get(&format!("/v1/users/{b}/portfolio"), Some(&b_token))
        .await;
    assert_eq!(status, StatusCode::OK, "RS256 via JWKS: {body}");

    // Instalments: each one once, at its latest state, newest due first, paged; filters.
    let instalments: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT DISTINCT sip_id, due_date FROM investments WHERE user_id = $1) AS i",
    )
    .bind(a)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(instalments > 0);
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(b) => format!("/v1/users/{a}/investments?limit=2&before={b}"),
            None => format!("/v1/users/{a}/investments?limit=2"),
        };
        let (status, page) = api.get(&path, Some(&a_token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages.extend(page["investments"].as_array().unwrap().clone());
        match page["next_before"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages.len() as i64, instalments);
    let keys: Vec<(String, i64)> = pages
        .iter()
        .map(|i| {
            (
                i["due_date"].as_str().unwrap().to_string(),
                i["sip_id"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(keys, sorted, "newest due first, no repeats");
    let executed = &pages
        .iter()
        .find(|i| i["status"] == "executed")
        .expect("an executed instalment");
    assert!(
        executed["units"].is_string() && executed["nav"].is_string(),
        "{executed}"
    );
    let (_, only_executed) = api
        .get(
            &format!("/v1/users/{a}/investments?status=executed&limit=200"),
            Some(&a_token),
        )
        .await;
    assert!(only_executed["investments"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "executed"));
    for bad in [
        "status=done",
        "limit=201",
        "before=yesterday",
        "from=2025-03-05&to=2025-03-01",
    ] {
        let (status, _) = api
            .get(&format!("/v1/users/{a}/investments?{bad}"), Some(&a_token))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        api.get(&format!("/v1/users/{a}/investments"), Some(&b_token))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The portfolio's history: the published date's point is the portfolio itself.
    let (status, history) = api
        .get(
            &format!("/v1/users/{a}/portfolio/history?from=2024-01-01&to={FIRST}"),
            Some(&a_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let last = history["points"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (last["as_of"].as_str(), last["invested"].as_str()),
        (Some(FIRST), Some(a_invested.as_str()))
    );
    assert_eq!(
        api.get(
            &format!("/v1/users/{a}/portfolio/history?from=2020-01-01&to={FIRST}"),
            Some(&a_token)
        )
        .await
        .0,
        StatusCode::BAD_REQUEST,
        "too long a range"
    );

    // Every refused token is a 401 problem.
    let mut expired = claims(&a_sub);
    expired["exp"] = (now() - 3600).into();
    let mut early = claims(&a_sub);
    early["nbf"] = (now() + 3600).into();
    let mut audience = claims(&a_sub);
    audience["aud"] = "elsewhere".into();
    let none = {
        let part = |v: &Value| {
            use std::fmt::Write;
            v.to_string().bytes().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
        };
        // Not even base64: a token that claims alg none must fail whatever else it holds.
        format!(
            "{}.{}.",
            part(&json!({"alg": "none"})),
            part(&claims(&a_sub))
        )
    };
    let unsigned_none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        "eyJzdWIiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5fQ"
    );
    for (name, token) in [
        ("missing", None),
        ("garbage", Some("not-a-jwt".to_string())),
        ("expired", Some(hs256(&expired))),
        ("not yet valid", Some(hs256(&early))),
        ("wrong audience", Some(hs256(&audience))),
        ("alg none", Some(none)),
        ("alg none, encoded", Some(unsigned_none)),
        ("wrong key", Some(rs256(&claims(&a_sub), "rsa_other.pem"))),
    ] {
        let (status, content_type, body) = api
            .send(reqwest::Method::GET, &portfolio, token.as_deref(), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        is_problem(status, &content_type, &body, StatusCode::UNAUTHORIZED);
    }

    // Charts, as published.
    for graph in ["pie", "line", "bar"] {
        let (status, body) = api
            .get(&format!("/v1/users/{a}/charts/{graph}"), Some(&a_token))
            .await;
        assert_eq!(status, StatusCode::OK, "{graph}: {body}");
        assert_eq!(body["as_of"], FIRST, "{graph}: {body}");
    }
    assert_eq!(
        api.get(&format!("/v1/users/{a}/charts/radar"), Some(&a_token))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get(&format!("/v1/users/{a}/charts/pie"), Some(&b_token))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // NAVs.
    let (scheme, nav): (i64, String) = sqlx::query_as(
        "SELECT scheme_code, nav::text FROM navs WHERE nav_date = $1::date AND scheme_code IN \
         (SELECT scheme_code FROM schemes WHERE scheme_type = 'Open Ended') ORDER BY scheme_code LIMIT 1",
    )
    .bind(FIRST)
    .fetch_one(&pool)
    .await
    .unwrap();
    // PostgreSQL's text has the column's eight decimals; the API shows four, or more where
    // the NAV has them (trailing zeros past the fourth dropped here by hand).
    let nav = {
        let (int, frac) = nav.split_once('.').unwrap();
        let frac = frac.trim_end_matches('0');
        format!("{int}.{frac:0<4}")
    };
    let (status, body) = api
        .get(&format!("/v1/schemes/{scheme}/nav"), Some(&a_token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["nav"].as_str().unwrap(),
            body["nav_date"].as_str().unwrap()
        ),
        (nav.as_str(), FIRST)
    );
    // A NAV ingested later replaces the cached one (the ingest notifies the API on commit).
    let later =
        chrono::NaiveDate::parse_from_str(FIRST, "%Y-%m-%d").unwrap() + chrono::Days::new(400);
    let row = pipeline::nav::NavRow {
        scheme_code: scheme,
        nav: "123.4567".parse().unwrap(),
        source: pipeline::nav::NavSource::Amfi,
    };
    jobs::plumbing::postgres::upsert_navs(&pool, &[(later, row)])
        .await
        .unwrap();
    let mut followed = false;
    for _ in 0..50 {
        let (_, body) = api
            .get(&format!("/v1/schemes/{scheme}/nav"), Some(&a_token))
            .await;
        if body["nav"] == "123.4567" && body["nav_date"] == later.to_string() {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        followed,
        "the cached NAV outlived the ingest of a newer one"
    );
    sqlx::query("DELETE FROM navs WHERE scheme_code = $1 AND nav_date = $2")
        .bind(scheme)
        .bind(later)
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = api
        .get(
            &format!("/v1/schemes/{scheme}/navs?limit=1"),
            Some(&a_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["navs"].as_array().unwrap().len(), 1);
    assert_eq!(
        api.get("/v1/schemes/1/nav", Some(&a_token)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/v1/schemes/abc/nav", Some(&a_token)).await.0,
        StatusCode::BAD_REQUEST
    );

    // SIPs: create (validated), list, pause, resume, cancel.
    let sips = format!("/v1/users/{a}/sips");
    // Two days after the API's clock (`--now`).
    let start = "2027-03-12";
    let valid = json!({ "scheme_code": scheme, "amount": "1500.00", "sip_day": 5,
                        "start_date": start, "step_up_pct": "10" });
    let (status, created) = api.post(&sips, &a_token, valid.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["amount"], "1500.00");
    assert_eq!(created["status"], "active");
    let sip_id = created["sip_id"].as_i64().unwrap();
    let closed: i64 = sqlx::query_scalar(
        "SELECT scheme_code FROM schemes WHERE scheme_type = 'Close Ended' LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (status, content_type, body) = api
        .send(
            reqwest::Method::POST,
            &sips,
            Some(&a_token),
            Some(json!({ "scheme_code": 1, "amount": "50", "sip_day": 31,
                         "start_date": "2020-01-01", "end_date": "2019-01-01", "step_up_pct": -1 })),
        )
        .await;
    is_problem(
        status,
        &content_type,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in [
        "amount",
        "sip_day",
        "start_date",
        "end_date",
        "step_up_pct",
        "scheme_code",
    ] {
        assert!(fields.contains(&field), "{field} not refused: {body}");
    }
    let mut closed_sip = valid.clone();
    closed_sip["scheme_code"] = closed.into();
    assert_eq!(
        api.post(&sips, &a_token, closed_sip).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let mut fractional = valid.clone();
    fractional["amount"] = "150.005".into();
    assert_eq!(
        api.post(&sips, &a_token, fractional).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Beyond the platform's ceiling, and beyond numeric(18,2): a 422 naming the field, not a 500.
    for amount in ["10000000.01", "99999999999999999999", "1e30"] {
        let mut huge = valid.clone();
        huge["amount"] = amount.into();
        let (status, body) = api.post(&sips, &a_token, huge).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{amount}: {body}");
        assert!(body.to_string().contains("amount"), "{amount}: {body}");
    }
    assert_eq!(
        api.post(&sips, &service, valid.clone()).await.0,
        StatusCode::FORBIDDEN,
        "a service token does not write"
    );
    assert_eq!(
        api.post(&format!("/v1/users/{b}/sips"), &a_token, valid.clone())
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, listed) = api.get(&sips, Some(&a_token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed["sips"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["sip_id"] == sip_id));
    let until = "2027-04-19";
    let (status, paused) = api
        .post(
            &format!("{sips}/{sip_id}/pause"),
            &a_token,
            json!({ "until": until }),
        )
        .await;
    assert_eq!(
        (status, paused["status"].as_str()),
        (StatusCode::OK, Some("paused"))
    );
    let (status, resumed) = api
        .post(&format!("{sips}/{sip_id}/resume"), &a_token, json!({}))
        .await;
    assert_eq!(
        (status, resumed["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
    let (status, _) = api
        .post(&format!("{sips}/{sip_id}/cancel"), &a_token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.post(&format!("{sips}/{sip_id}/resume"), &a_token, json!({}))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.post(
            &format!("/v1/users/{b}/sips/{sip_id}/cancel"),
            &b_token,
            json!({})
        )
        .await
        .0,
        StatusCode::NOT_FOUND,
        "another user's SIP id"
    );

    // Notifications: list, mark read; not another user's.
    let (status, listed) = api
        .get(
            &format!("/v1/users/{a}/notifications?limit=5"),
            Some(&a_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let first = &listed["notifications"][0];
    let notification_id = first["notification_id"]
        .as_i64()
        .expect("A has notifications");
    let (status, read) = api
        .post(
            &format!("/v1/users/{a}/notifications/{notification_id}/read"),
            &a_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(read["read_at"].is_string());
    assert_eq!(
        api.post(
            &format!("/v1/users/{b}/notifications/{notification_id}/read"),
            &b_token,
            json!({})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // Sign-in: a new token subject is provisioned on its first call, exactly once however many
    // first calls race, with the email and phone its token carries; `me` names the caller.
    let mut newcomer_claims = claims("auth0|newcomer-1");
    newcomer_claims["email"] = "newcomer@example.com".into();
    newcomer_claims["phone_number"] = "+919800000001".into();
    let newcomer = hs256(&newcomer_claims);
    let max_before: i64 = sqlx::query_scalar("SELECT max(user_id) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    let firsts =
        futures::future::join_all((0..8).map(|_| api.get("/v1/me", Some(&newcomer)))).await;
    let ids: std::collections::BTreeSet<i64> = firsts
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["user_id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one user for one subject: {ids:?}");
    let newcomer_id = *ids.first().unwrap();
    assert!(
        newcomer_id > max_before,
        "a new id after the generated users'"
    );
    let (_, me) = api.get("/v1/me", Some(&newcomer)).await;
    assert_eq!(me["auth_subject"], "auth0|newcomer-1");
    assert_eq!(me["email"], "newcomer@example.com");
    assert_eq!(me["phone"], "+919800000001");
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE auth_subject = 'auth0|newcomer-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rows, 1);
    // Nothing published for them yet: an empty portfolio (zeros, no lines, no date) and empty
    // charts, not an error; what is pending says nothing falls due yet.
    let (status, body) = api.get("/v1/users/me/portfolio", Some(&newcomer)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], newcomer_id);
    assert_eq!(body["as_of"], Value::Null);
    assert_eq!(
        (&body["invested"], &body["current_value"], &body["schemes"]),
        (&json!("0.00"), &json!("0.00"), &json!(0))
    );
    assert_eq!(body["lines"], json!([]));
    assert_eq!(
        body["pending"],
        json!({ "next_instalment": null, "sips": 0, "orders_received": 0 })
    );
    for (graph, series) in [
        ("pie", "by_scheme"),
        ("line", "period"),
        ("bar", "invested"),
    ] {
        let (status, chart) = api
            .get(&format!("/v1/users/me/charts/{graph}"), Some(&newcomer))
            .await;
        assert_eq!(status, StatusCode::OK, "{graph}: {chart}");
        assert_eq!(chart["as_of"], Value::Null, "{graph}");
        assert!(
            chart[series] == json!([]) || chart[series]["label"] == json!([]),
            "{graph}: {chart}"
        );
    }
    // Their first SIP shows as pending, with the instalment its own schedule says comes next.
    let (status, first_sip) = api
        .post("/v1/users/me/sips", &newcomer, valid.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first_sip}");
    let (_, body) = api.get("/v1/users/me/portfolio", Some(&newcomer)).await;
    let (_, detail) = api
        .get(
            &format!("/v1/users/me/sips/{}", first_sip["sip_id"]),
            Some(&newcomer),
        )
        .await;
    assert_eq!(body["pending"]["sips"], 1, "{body}");
    let next = &body["pending"]["next_instalment"];
    assert_eq!(next["sip_id"], first_sip["sip_id"], "{body}");
    assert_eq!(
        next["due_date"], detail["next_instalment"]["due_date"],
        "{detail}"
    );
    assert_eq!(next["nav_date"], detail["next_instalment"]["nav_date"]);
    assert_eq!(next["amount"], "1500.00");
    // `me` is the caller's own id on every user route.
    assert_eq!(
        api.get("/v1/users/me/portfolio", Some(&a_token)).await,
        api.get(&portfolio, Some(&a_token)).await
    );
    let (status, listed) = api.get("/v1/users/me/sips", Some(&newcomer)).await;
    assert_eq!(
        (status, listed["sips"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    // A service token is not a person: it is not provisioned and has no `me`.
    assert_eq!(
        api.get("/v1/me", Some(&service)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/v1/users/me/portfolio", Some(&service)).await.0,
        StatusCode::NOT_FOUND
    );
    let service_users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE auth_subject = 'backend'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(service_users, 0);

    // NAV alerts: create, list, delete.
    let alerts = format!("/v1/users/{a}/alerts");
    let (status, alert) = api
        .post(
            &alerts,
            &a_token,
            json!({ "scheme_code": scheme, "kind": "below", "threshold": "10.5" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let (status, bad) = api
        .post(
            &alerts,
            &a_token,
            json!({ "scheme_code": scheme, "kind": "sideways", "threshold": "0" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["errors"].as_array().unwrap().len(), 2, "{bad}");
    let (_, listed) = api.get(&alerts, Some(&a_token)).await;
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1);
    // A quota per user: the 100th active alert is accepted, the 101st refused.
    sqlx::query(
        "INSERT INTO nav_alerts (user_id, scheme_code, kind, threshold) \
         SELECT $1, $2, 'above', 1000 + i FROM generate_series(1, 98) i",
    )
    .bind(a)
    .bind(scheme)
    .execute(&pool)
    .await
    .unwrap();
    let over = json!({ "scheme_code": scheme, "kind": "above", "threshold": "5000" });
    assert_eq!(
        api.post(&alerts, &a_token, over.clone()).await.0,
        StatusCode::CREATED
    );
    let (status, refused) = api.post(&alerts, &a_token, over).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    // Lists come a bounded page at a time: 100 alerts as 60 + 40, ids ascending, no overlap.
    let (status, first) = api.get(&format!("{alerts}?limit=60"), Some(&a_token)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["alerts"].as_array().unwrap().len(), 60);
    let after = first["next_after"].as_i64().unwrap();
    assert_eq!(first["alerts"][59]["alert_id"].as_i64(), Some(after));
    let (_, second) = api
        .get(&format!("{alerts}?limit=60&after={after}"), Some(&a_token))
        .await;
    assert_eq!(second["alerts"].as_array().unwrap().len(), 40);
    assert!(second["next_after"].is_null(), "{second}");
    assert!(second["alerts"][0]["alert_id"].as_i64().unwrap() > after);
    assert_eq!(
        api.get(&format!("{alerts}?limit=0"), Some(&a_token))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get(&format!("{sips}?limit=201"), Some(&a_token))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    sqlx::query("DELETE FROM nav_alerts WHERE user_id = $1 AND threshold >= 1000")
        .bind(a)
        .execute(&pool)
        .await
        .unwrap();
    // And of SIPs: with 50 open, the next is refused; the mandates are removed again.
    let (last_sip, open): (i64, i64) = sqlx::query_as(
        "SELECT max(sip_id), count(*) FILTER (WHERE status IN ('active', 'paused')) FROM sips WHERE user_id = $1",
    )
    .bind(a)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sips (user_id, scheme_code, amount, sip_day, start_date) \
         SELECT $1, $2, 500, 5, current_date FROM generate_series(1, $3)",
    )
    .bind(a)
    .bind(scheme)
    .bind(50 - open)
    .execute(&pool)
    .await
    .unwrap();
    let (status, refused) = api.post(&sips, &a_token, valid.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    sqlx::query("DELETE FROM sips WHERE user_id = $1 AND sip_id > $2")
        .bind(a)
        .bind(last_sip)
        .execute(&pool)
        .await
        .unwrap();
    let delete = format!("{alerts}/{}", alert["alert_id"]);
    let (status, _, _) = api
        .send(reqwest::Method::DELETE, &delete, Some(&b_token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = api
        .send(reqwest::Method::DELETE, &delete, Some(&a_token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Bodies: too large, not JSON. The server answers an oversized body before reading it and
    // closes the connection, so the client may see the close before the answer: each attempt
    // on a fresh connection, until the 413 is read.
    let oversized = json!({ "pad": "x".repeat(64 * 1024) }).to_string();
    let mut refused = None;
    for _ in 0..5 {
        let once = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let sent = once
            .post(format!("{}{alerts}", api.base))
            .bearer_auth(&a_token)
            .header("content-type", "application/json")
            .body(oversized.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            refused = Some((response.status(), content_type));
            break;
        }
    }
    assert_eq!(
        refused,
        Some((
            StatusCode::PAYLOAD_TOO_LARGE,
            "application/problem+json".to_string()
        ))
    );
    let response = api
        .http
        .post(format!("{}{alerts}", api.base))
        .bearer_auth(&a_token)
        .header("content-type", "application/json")
        .header("x-request-id", "req-42")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["x-request-id"], "req-42");

    // The cache: a second read is a hit; a publish of a new date empties it.
    api.get(&portfolio, Some(&a_token)).await;
    let (_, metrics) = api.get("/metrics", None).await;
    let metrics = metrics.as_str().unwrap().to_string();
    let hits = metrics
        .lines()
        .find(|l| {
            l.starts_with("sipline_api_cache_requests_total{cache=\"portfolio\",result=\"hit\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(hits >= 2, "{metrics}");
    for expected in [
        "sipline_api_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/users/{user_id}/portfolio\",status=\"200\",le=\"0.005\"}",
        "sipline_api_db_query_duration_seconds_count",
        "sipline_api_db_pool_connections{state=\"idle\"}",
    ] {
        assert!(metrics.contains(expected), "{expected} not in\n{metrics}");
    }
    publish(&pg.url, &warehouse, SECOND, &[]).await.assert_ok();
    let mut followed = false;
    for _ in 0..50 {
        let (_, body) = api.get(&portfolio, Some(&a_token)).await;
        if body["as_of"] == SECOND {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(followed, "the cached portfolio outlived the publish");

    // The OpenAPI document names exactly the routes the server has, with their methods: the
    // list is compared as a whole, and every documented operation is sent to the router, which
    // must know it (an unknown path is 404, a known path with another method 405).
    let (status, openapi) = api.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut documented: Vec<(String, String)> = openapi["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    documented.sort();
    let expected: Vec<(String, String)> = [
        ("DELETE", "/v1/users/{user_id}/alerts/{alert_id}"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/readyz"),
        ("GET", "/v1/me"),
        ("GET", "/v1/schemes"),
        ("GET", "/v1/schemes/{scheme_code}"),
        ("GET", "/v1/schemes/{scheme_code}/nav"),
        ("GET", "/v1/schemes/{scheme_code}/navs"),
        ("GET", "/v1/unsubscribe"),
        ("GET", "/v1/users/{user_id}/alerts"),
        ("GET", "/v1/users/{user_id}/capital-gains"),
        ("GET", "/v1/users/{user_id}/charts/{graph_type}"),
        ("GET", "/v1/users/{user_id}/investments"),
        ("GET", "/v1/users/{user_id}/notification-preferences"),
        ("GET", "/v1/users/{user_id}/notifications"),
        ("GET", "/v1/users/{user_id}/orders"),
        ("GET", "/v1/users/{user_id}/orders/{order_id}"),
        ("GET", "/v1/users/{user_id}/plans"),
        ("GET", "/v1/users/{user_id}/plans/{plan_id}"),
        ("GET", "/v1/users/{user_id}/portfolio"),
        ("GET", "/v1/users/{user_id}/portfolio/history"),
        ("GET", "/v1/users/{user_id}/sips"),
        ("GET", "/v1/users/{user_id}/sips/{sip_id}"),
        ("GET", "/v1/users/{user_id}/statement"),
        ("PATCH", "/v1/users/{user_id}/sips/{sip_id}"),
        ("POST", "/v1/providers/exotel/sms-status"),
        ("POST", "/v1/unsubscribe"),
        ("POST", "/v1/users/{user_id}/alerts"),
        (
            "POST",
            "/v1/users/{user_id}/notifications/{notification_id}/read",
        ),
        ("POST", "/v1/users/{user_id}/orders"),
        ("POST", "/v1/users/{user_id}/orders/{order_id}/cancel"),
        ("POST", "/v1/users/{user_id}/plans"),
        ("POST", "/v1/users/{user_id}/plans/{plan_id}/{action}"),
        ("POST", "/v1/users/{user_id}/sips"),
        ("POST", "/v1/users/{user_id}/sips/{sip_id}/{action}"),
        ("PUT", "/v1/users/{user_id}/notification-preferences"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(documented, expected);
    for (method, path) in &documented {
        // Unconfigured here (no secrets): they answer 404 by design; `notify.rs` runs them.
        if path.starts_with("/v1/unsubscribe") || path.starts_with("/v1/providers/") {
            continue;
        }
        let concrete = path
            .replace("{user_id}", &a.to_string())
            .replace("{scheme_code}", "119551")
            .replace("{graph_type}", "pie")
            .replace("{action}", "pause")
            .replace("{sip_id}", "1")
            .replace("{notification_id}", "1")
            .replace("{order_id}", "1")
            .replace("{alert_id}", "1");
        let (status, _, body) = api
            .send(method.parse().unwrap(), &concrete, None, None)
            .await;
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}: {status} {body}"
        );
    }
    let (status, content_type, body) = api
        .send(reqwest::Method::GET, "/v2/nothing", None, None)
        .await;
    is_problem(status, &content_type, &body, StatusCode::NOT_FOUND);

    // SIGTERM with a request in flight: the request is held on a lock of `sips`, the signal
    // arrives, the server keeps running until the request is answered, then exits 0.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE sips IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let in_flight = tokio::spawn(
        api.http
            .get(format!("{}{sips}", api.base))
            .bearer_auth(&a_token)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !in_flight.is_finished(),
        "the request should wait on the lock"
    );
    let mut process = api.process;
    let pid = process.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        process.try_wait().unwrap().is_none(),
        "the server stopped with a request in flight"
    );
    lock.commit().await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the in-flight request is answered")
        .unwrap()
        .expect("a response, not a dropped connection");
    assert_eq!(answered.status(), StatusCode::OK);
    let listed: Value = serde_json::from_str(&answered.text().await.unwrap()).unwrap();
    assert!(listed.is_array() || listed.is_object(), "{listed}");
    let status = tokio::time::timeout(Duration::from_secs(10), process.wait())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
