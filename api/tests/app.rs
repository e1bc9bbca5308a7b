//! The router in-process, through real HTTP, without a database: what the API answers before
//! any query runs (liveness, readiness when the database is down, authentication, unknown
//! routes) and that the OpenAPI document and the router name the same routes. Everything that
//! reads data is tested against a real PostgreSQL through the `sipline serve` binary in
//! `jobs/tests/jobs/api.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The API on a free local port, over a pool that can never connect.
async fn spawn_app() -> SocketAddr {
    let config = api::ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: "postgres://nobody@127.0.0.1:1/none".into(),
        read_database_url: None,
        max_replica_lag: Duration::from_secs(5),
        auth: api::auth::AuthConfig {
            hs256_secret: Some("a-test-secret-of-at-least-32-bytes!!".into()),
            jwks: None,
            audience: None,
            issuer: None,
            service_role: "service_role".into(),
        },
        migrate: false,
        request_timeout: Duration::from_secs(5),
        max_connections: 1,
        cache_bytes: 1 << 20,
        limits: api::limits::RateLimits::default(),
        calendar: pipeline::calendar::BusinessCalendar::nse(),
        // Five days after the embedded holiday list ends (2026-12-31), by a set clock.
        metrics_token: None,
        unsubscribe_secret: None,
        unsubscribe_previous_secret: None,
        provider_callback_secret: None,
        provider_callback_previous_secret: None,
        clock: serving::Clock::starting_at(
            chrono::DateTime::parse_from_rfc3339("2027-01-05T10:00:00+05:30")
                .unwrap()
                .into(),
        ),
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(&config.database_url)
        .unwrap();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(api::AppState::new(pool, &config));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn send(addr: SocketAddr, method: Method, path: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn liveness_answers_and_readiness_says_the_database_is_down() {
    let addr = spawn_app().await;
    assert_eq!(
        send(addr, Method::GET, "/healthz").await,
        (StatusCode::OK, "ok".to_string())
    );
    let (status, body) = send(addr, Method::GET, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("database unreachable"), "{body}");
}

/// Every documented operation is a route that asks for a token (401), every other path is a
/// 404 problem: the OpenAPI paths and the router's are the same set.
#[tokio::test]
async fn the_openapi_paths_are_the_routers() {
    let addr = spawn_app().await;
    let (status, body) = send(addr, Method::GET, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let document: Value = serde_json::from_str(&body).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let open = ["/healthz", "/readyz", "/metrics"];
    let mut protected = 0;
    for (path, operations) in paths {
        let concrete = path
            .replace("{graph_type}", "pie")
            .replace("{action}", "pause")
            .replace(['{', '}'], "")
            .replace("user_id", "1")
            .replace("scheme_code", "119551")
            .replace("sip_id", "2")
            .replace("notification_id", "3")
            .replace("alert_id", "4");
        for (method, operation) in operations.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let (status, body) = send(addr, method.clone(), &concrete).await;
            if open.contains(&path.as_str()) {
                assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            } else if operation["security"] == serde_json::json!([]) {
                // A signed link is its own credential (unsubscribe, a provider's callback):
                // no token asked; unconfigured here, it says so.
                assert!(
                    body.contains("not enabled here"),
                    "{method} {path}: {status} {body}"
                );
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
                protected += 1;
            }
        }
    }
    assert!(protected >= 12, "{protected}");
    let (status, body) = send(addr, Method::GET, "/v1/users/1/wallet").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("no such route"), "{body}");
    // A documented path with an undocumented method is not served either.
    let (status, _) = send(addr, Method::PUT, "/v1/users/1/portfolio").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_chart_types_documented_are_the_serving_contracts() {
    let addr = spawn_app().await;
    let (_, body) = send(addr, Method::GET, "/openapi.json").await;
    let document: Value = serde_json::from_str(&body).unwrap();
    let parameters = document["paths"]["/v1/users/{user_id}/charts/{graph_type}"]["get"]
        ["parameters"]
        .as_array()
        .unwrap();
    let graph_type = parameters
        .iter()
        .find(|p| p["name"] == "graph_type")
        .unwrap();
    let documented: Vec<&str> = graph_type["schema"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let served: Vec<&str> = serving::GraphType::ALL.iter().map(|g| g.as_str()).collect();
    assert_eq!(documented, served);
}

/// Any token is a valid HTTP method; the metrics must not grow a series per token.
#[tokio::test]
async fn unknown_methods_share_one_metrics_label() {
    let addr = spawn_app().await;
    for i in 0..5 {
        let method = Method::from_bytes(format!("PROBE{i}").as_bytes()).unwrap();
        send(addr, method, "/healthz").await;
    }
    let (_, metrics) = send(addr, Method::GET, "/metrics").await;
    assert!(!metrics.contains("PROBE"), "{metrics}");
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    // The holiday list's remaining days, for an alert before it ends.
    let left: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sipline_holiday_calendar_days_left "))
        .expect("the calendar gauge")
        .parse()
        .unwrap();
    // The list ended on 2026-12-31; the app's clock reads 2027-01-05.
    assert_eq!(left, -5);
}

/// With the database away, a route that needs it answers 503 with `Retry-After`, not 500: a
/// client or load balancer retries instead of reporting a bug.
#[tokio::test]
async fn a_database_outage_is_a_retryable_503() {
    let addr = spawn_app().await;
    let claims = serde_json::json!({ "sub": "someone", "exp": 4_102_444_800_u64 });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"a-test-secret-of-at-least-32-bytes!!"),
    )
    .unwrap();
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/v1/users/1/portfolio"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = response.text().await.unwrap();
    assert!(body.contains("retry shortly"), "{body}");
}
