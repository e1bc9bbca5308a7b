//! `notify dispatch` and `notify worker` against a real PostgreSQL, a real HTTP webhook
//! receiver and a real SMTP sink, both started here: delivery and signatures, preferences and
//! quiet hours, retries then dead letters, two dispatchers on one queue, a worker killed
//! mid-batch, LISTEN wake-ups, and NAV alerts firing once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use sqlx::{PgPool, Row};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{fixture, sipline_async, Postgres};

const SECRET: &str = "test-secret-of-32-bytes-or-more!";

/// A webhook receiver: records every request; fails the first `fail_first` ones with
/// `fail_status`, and holds each request `delay_ms` while `slow` is set.
#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<(String, HeaderMap, String)>>,
    fail_first: AtomicUsize,
    fail_status: Mutex<Option<StatusCode>>,
    seen: AtomicUsize,
    slow: AtomicBool,
}

impl Receiver {
    fn keys(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, headers, _)| headers["idempotency-key"].to_str().unwrap().to_string())
            .collect()
    }
}

async fn receiver() -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver::default());
    let handler = {
        let state = state.clone();
        move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let n = state.seen.fetch_add(1, Ordering::SeqCst);
                if state.slow.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                let failing = *state.fail_status.lock().unwrap();
                if let Some(status) = failing {
                    if n < state.fail_first.load(Ordering::SeqCst) {
                        return status;
                    }
                }
                state
                    .requests
                    .lock()
                    .unwrap()
                    .push((uri.path().to_string(), headers, body));
                StatusCode::NO_CONTENT
            }
        }
    };
    let app = axum::Router::new().fallback(axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

/// An SMTP sink that accepts every message and keeps its DATA.
async fn smtp_sink() -> (Arc<Mutex<Vec<String>>>, String) {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let sink = messages.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                reader.get_mut().write_all(b"220 sink\r\n").await.unwrap();
                let mut data: Option<String> = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(message) = data.as_mut() {
                        if line == ".\r\n" {
                            sink.lock().unwrap().push(data.take().unwrap());
                            reader.get_mut().write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            message.push_str(&line);
                        }
                        continue;
                    }
                    let reply: &[u8] =
                        match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 go on\r\n"
                            }
                            "QUIT" => b"221 bye\r\n",
                            _ => b"250 ok\r\n",
                        };
                    reader.get_mut().write_all(reply).await.unwrap();
                }
            });
        }
    });
    (messages, address)
}

/// The receiver side of the signature: HMAC-SHA256 over "<t>.<body>", computed here.
fn verify(headers: &HeaderMap, body: &str) -> bool {
    let header = headers["x-sipline-signature"].to_str().unwrap();
    let (t, v1) = header.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let expected: Vec<u8> = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap())
        .collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    ring::hmac::verify(&key, format!("{t}.{body}").as_bytes(), &expected).is_ok()
}

async fn setup(pg: &Postgres, users: i64) -> PgPool {
    sipline_async(&["db", "migrate", "--database-url", &pg.url])
        .await
        .assert_ok();
    let pool = pg.pool().await;
    sqlx::query(
        "INSERT INTO users (user_id, auth_subject) SELECT u, 'sub-' || u FROM generate_series(1, $1) u",
    )
    .bind(users)
    .execute(&pool)
    .await
    .unwrap();
    pool
}

async fn add_notifications(pool: &PgPool, from: i64, to: i64, users: i64) {
    sqlx::query(
        "INSERT INTO notifications (event_key, user_id, kind, payload) \
         SELECT 'test:' || i, 1 + i % $3, 'sip_executed', jsonb_build_object('sip_id', i, 'amount', '500.00') \
         FROM generate_series($1, $2) i",
    )
    .bind(from)
    .bind(to)
    .bind(users)
    .execute(pool)
    .await
    .unwrap();
}

async fn dispatch(pg: &Postgres, webhook: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "notify",
        "dispatch",
        "--database-url",
        &pg.url,
        "--webhook-url",
        webhook,
        "--webhook-secret",
        SECRET,
    ];
    args.extend_from_slice(extra);
    sipline_async(&args).await
}

async fn statuses(pool: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query("SELECT status, count(*) AS n FROM notification_deliveries GROUP BY status")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get("status"), row.get("n")))
        .collect()
}

/// Issue 35 §6: a channel left out of the configuration while people chose it refuses the
/// start (exit 3, naming the channel and its settings) instead of killing every delivery on
/// it after one attempt; `--hold` starts anyway and the deliveries wait, unattempted, for a
/// dispatcher that has the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_people_chose_but_nobody_configured_fails_closed() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 2).await;
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, channels, phone) VALUES (2, '{webhook,sms}', '+919800000002')",
    )
    .execute(&pool)
    .await
    .unwrap();
    add_notifications(&pool, 1, 2, 2).await;
    let (webhook, url) = receiver().await;

    let refused = dispatch(&pg, &url, &[]).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("channel sms: people chose it")
            && refused.stderr.contains("--sms-webhook-url")
            && refused.stderr.contains("--hold sms"),
        "{}",
        refused.stderr
    );
    assert!(
        webhook.requests.lock().unwrap().is_empty(),
        "nothing sent on a refused start"
    );

    // Held: the webhooks go, the SMS waits untried (not dead after one attempt).
    let held = dispatch(&pg, &url, &["--hold", "sms"]).await;
    held.assert_ok();
    assert!(held.stdout.contains("delivered=2"), "{}", held.stdout);
    assert!(held.stderr.contains("held (--hold)"), "{}", held.stderr);
    let sms: (String, i32) = sqlx::query_as(
        "SELECT status, attempts FROM notification_deliveries WHERE channel = 'sms'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(sms, ("pending".to_string(), 0));
    // The webhook alone is configured nowhere: people without preferences get it.
    let no_webhook = sipline_async(&[
        "notify",
        "dispatch",
        "--database-url",
        &pg.url,
        "--webhook-secret",
        SECRET,
        "--sms-webhook-url",
        &format!("{url}/sms"),
    ])
    .await;
    assert_eq!(no_webhook.code, 3, "{}", no_webhook.stderr);
    assert!(
        no_webhook
            .stderr
            .contains("channel webhook: people chose it"),
        "{}",
        no_webhook.stderr
    );

    // Configured: the waiting SMS goes on its first attempt.
    let configured = dispatch(&pg, &url, &["--sms-webhook-url", &format!("{url}/sms")]).await;
    configured.assert_ok();
    let sms: (String, i32) = sqlx::query_as(
        "SELECT status, attempts FROM notification_deliveries WHERE channel = 'sms'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(sms, ("delivered".to_string(), 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_delivers_signed_webhooks_and_email_and_waits_out_quiet_hours() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 3).await;
    // User 1: defaults (webhook). User 2: webhook and email. User 3: SMS, in quiet hours now.
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, channels, email, phone, quiet_start, quiet_end, time_zone) VALUES \
         (2, '{webhook,email}', 'two@example.com', NULL, NULL, NULL, 'Asia/Kolkata'), \
         (3, '{sms}', NULL, '+911234567890', \
          ((now() AT TIME ZONE 'UTC') - INTERVAL '1 hour')::time, ((now() AT TIME ZONE 'UTC') + INTERVAL '1 hour')::time, 'UTC')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Event i goes to user 1 + i % 3: test:1 is user 2's.
    add_notifications(&pool, 1, 3, 3).await;
    let (webhook, url) = receiver().await;
    let (mail, relay) = smtp_sink().await;
    let run = dispatch(
        &pg,
        &url,
        &[
            "--smtp-relay",
            &relay,
            "--smtp-tls",
            "none",
            "--sms-webhook-url",
            &format!("{url}/sms"),
        ],
    )
    .await;
    run.assert_ok();
    assert!(run.stdout.contains("delivered=3"), "{}", run.stdout);

    let requests = webhook.requests.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        2,
        "webhooks for users 1 and 2, no SMS in quiet hours"
    );
    for (path, headers, body) in &requests {
        assert_eq!(path, "/");
        assert!(verify(headers, body), "bad signature on {body}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            headers["idempotency-key"].to_str().unwrap(),
            json["id"].as_str().unwrap()
        );
        assert_eq!(json["kind"], "sip_executed");
        assert_eq!(json["payload"]["amount"], "500.00");
    }
    // A tampered body does not verify.
    assert!(!verify(
        &requests[0].1,
        &requests[0].2.replace("500.00", "900.00")
    ));

    let mail = mail.lock().unwrap().clone();
    assert_eq!(mail.len(), 1);
    // Written for a person (the `messages` templates), not the event's JSON; the parsed
    // message is checked against a TLS + AUTH server in jobs/tests/smtp/e2e.sh.
    for header in [
        "To: two@example.com",
        "Message-ID: <test.1.email@sipline>",
        "Subject: ",
        "Content-Type: multipart/alternative",
        "Content-Type: text/html; charset=utf-8",
    ] {
        assert!(mail[0].contains(header), "{header} not in {}", mail[0]);
    }
    assert!(!mail[0].contains("\"payload\""), "{}", mail[0]);

    let sms: (String, i32, bool) = sqlx::query_as(
        "SELECT status, attempts, next_attempt_at BETWEEN now() + INTERVAL '50 minutes' AND now() + INTERVAL '61 minutes' \
         FROM notification_deliveries WHERE channel = 'sms'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        sms,
        ("pending".to_string(), 0, true),
        "deferred to the end of quiet hours"
    );
    let by_user: Vec<(i64, String)> =
        sqlx::query_as("SELECT user_id, status FROM notifications ORDER BY user_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        by_user,
        vec![
            (1, "delivered".to_string()),
            (2, "delivered".to_string()),
            (3, "delivering".to_string())
        ]
    );

    // A second pass has nothing to do: nothing is delivered twice (and a dispatcher without
    // SMS, user 3's channel, starts only with the channel held).
    dispatch(
        &pg,
        &url,
        &[
            "--smtp-relay",
            &relay,
            "--smtp-tls",
            "none",
            "--hold",
            "sms",
        ],
    )
    .await
    .assert_ok();
    assert_eq!(webhook.requests.lock().unwrap().len(), 2);

    let stats = sipline_async(&["notify", "stats", "--database-url", &pg.url]).await;
    stats.assert_ok();
    for line in [
        "sipline_notification_deliveries{state=\"delivered\",channel=\"webhook\"} 2",
        "sipline_notification_deliveries{state=\"delivered\",channel=\"email\"} 1",
        "sipline_notification_deliveries{state=\"pending\",channel=\"sms\"} 1",
        "sipline_notification_deliveries_by_provider{state=\"delivered\",provider=\"webhook\"} 2",
        "sipline_notification_deliveries_by_provider{state=\"delivered\",provider=\"smtp\"} 1",
        "# TYPE sipline_notification_provider_reports gauge",
        "# TYPE sipline_notification_latency_p99_ms gauge",
    ] {
        assert!(
            stats.stdout.contains(line),
            "{line} not in\n{}",
            stats.stdout
        );
    }
}

/// The unsubscribe link of a received message (its `List-Unsubscribe` header).
fn unsubscribe_link(message: &str) -> String {
    let start = message.find("List-Unsubscribe: <").expect(message) + "List-Unsubscribe: <".len();
    let end = start + message[start..].find('>').unwrap();
    message[start..end].to_string()
}

/// A person reads an e-mail, follows its unsubscribe link (the page asks, changes nothing),
/// confirms with the one-click POST a mail client sends (RFC 8058), and gets no more e-mail of
/// that kind, while other kinds and the platform webhook still go out; a bent, expired or
/// unsigned link changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_unsubscribes_from_one_kind_by_the_link_in_the_email() {
    const UNSUBSCRIBE_SECRET: &str = "unsubscribe-secret-for-tests-0123";
    let pg = Postgres::start().await;
    let pool = setup(&pg, 2).await;
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, channels, email) \
         VALUES (2, '{webhook,email}', 'two@example.com')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let api = crate::api::Api::start_with(
        &pg.url,
        &[
            "--rate-per-user",
            "0",
            "--rate-per-address",
            "0",
            "--unsubscribe-secret",
            UNSUBSCRIBE_SECRET,
        ],
    )
    .await;
    let (webhook, url) = receiver().await;
    let (mail, relay) = smtp_sink().await;
    let base = format!("{}/v1/unsubscribe", api.base);
    let dispatch_mail = || {
        let (pg, url, relay, base) = (&pg, url.clone(), relay.clone(), base.clone());
        async move {
            dispatch(
                pg,
                &url,
                &[
                    "--smtp-relay",
                    &relay,
                    "--smtp-tls",
                    "none",
                    "--unsubscribe-url",
                    &base,
                    "--unsubscribe-secret",
                    UNSUBSCRIBE_SECRET,
                ],
            )
            .await
        }
    };
    // Event 1 goes to user 2 (1 + 1 % 2): an e-mail with its link.
    add_notifications(&pool, 1, 1, 2).await;
    dispatch_mail().await.assert_ok();
    let received = mail.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert!(
        received[0].contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{}",
        received[0]
    );
    let link = unsubscribe_link(&received[0]);
    assert!(
        link.starts_with(&format!("{base}?token=2.sip_executed.")),
        "{link}"
    );

    let http = reqwest::Client::new();
    // Following the link shows what it stops and changes nothing (mail scanners follow links).
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("SIP instalments invested"), "{html}");
    assert!(html.contains("<form method=\"post\""), "{html}");
    let muted: Vec<String> =
        sqlx::query_scalar("SELECT muted_kinds FROM notification_preferences WHERE user_id = 2")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(muted.is_empty());
    // Links bent to another person or kind, expired, or missing: refused, nothing changed.
    let token = link.split("token=").nth(1).unwrap().to_string();
    let expired = {
        // Signed with the right key, but its expiry passed a second ago.
        let expires = chrono::Utc::now().timestamp() - 1;
        let payload = format!("2.sip_executed.{expires}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, UNSUBSCRIBE_SECRET.as_bytes());
        let tag = ring::hmac::sign(&key, payload.as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("{payload}.{hex}")
    };
    for (bad, why, status) in [
        (
            token.replacen("2.", "1.", 1),
            "signature",
            StatusCode::FORBIDDEN,
        ),
        (
            token.replacen("sip_executed", "nav_alert", 1),
            "signature",
            StatusCode::FORBIDDEN,
        ),
        (expired, "expired", StatusCode::FORBIDDEN),
        ("".to_string(), "unsubscribe link", StatusCode::BAD_REQUEST),
    ] {
        let answer = http
            .post(format!("{base}?token={bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{bad}");
        assert!(answer.text().await.unwrap().contains(why), "{bad}");
    }
    let (status, _) = api.get("/v1/unsubscribe", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The one-click POST, as a mail client sends it; a second one changes nothing more.
    for _ in 0..2 {
        let done = http
            .post(&link)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        assert!(done.text().await.unwrap().contains("no longer"));
    }
    let token = crate::api::hs256(&crate::api::claims("sub-2"));
    let (status, prefs) = api
        .get("/v1/users/me/notification-preferences", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{prefs}");
    assert_eq!(prefs["muted_kinds"], serde_json::json!(["sip_executed"]));
    assert_eq!(prefs["channels"], serde_json::json!(["webhook", "email"]));
    // An app that does not know the field saves preferences: the unsubscribe stays.
    let (status, _, saved) = api
        .send(
            reqwest::Method::PUT,
            "/v1/users/me/notification-preferences",
            Some(&token),
            Some(serde_json::json!({"channels": ["webhook", "email"], "email": "two@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["muted_kinds"], serde_json::json!(["sip_executed"]));

    // The next sip_executed reaches the webhook but no inbox; a statement still e-mails.
    add_notifications(&pool, 3, 3, 2).await;
    sqlx::query(
        "INSERT INTO notifications (event_key, user_id, kind, payload) VALUES \
         ('statement:2:2026-11', 2, 'statement_ready', \
          '{\"month\": \"2026-11\", \"as_of\": \"2026-11-30\", \"invested\": \"1000.00\", \"current_value\": \"1100.00\"}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    dispatch_mail().await.assert_ok();
    let received = mail.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "one more e-mail: the statement");
    assert!(unsubscribe_link(&received[1]).contains("token=2.statement_ready."));
    let webhooks: Vec<String> = webhook
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, body)| body.clone())
        .collect();
    assert!(
        webhooks.iter().any(|b| b.contains("test:3")),
        "the platform still hears it"
    );
    let channels: Vec<String> = sqlx::query_scalar(
        "SELECT d.channel FROM notification_deliveries d JOIN notifications n USING (notification_id) \
         WHERE n.event_key = 'test:3' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(channels, vec!["webhook".to_string()]);
    // The person sees each notification's delivery state, per channel.
    let (status, listed) = api.get("/v1/users/me/notifications", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let by_key = |kind: &str| {
        listed["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == kind)
            .cloned()
            .unwrap()
    };
    let statement = by_key("statement_ready");
    assert_eq!(statement["status"], "delivered", "{statement}");
    let deliveries = statement["deliveries"].as_array().unwrap();
    assert_eq!(
        deliveries
            .iter()
            .map(|d| (
                d["channel"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
                d["attempts"].as_i64().unwrap()
            ))
            .collect::<Vec<_>>(),
        vec![("email", "delivered", 1), ("webhook", "delivered", 1)]
    );
    assert!(deliveries[0]["delivered_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
}

/// A local stand-in for Exotel's Send SMS API that checks requests as Exotel documents them
/// (HTTP Basic with the API key and token, a form body with From, To, Body and the DLT fields)
/// and answers as it does: a JSON `SMSMessage` with a Sid, 401 without the credentials, and
/// 429 with Retry-After while `throttle` is set.
#[derive(Default)]
struct Exotel {
    sent: Mutex<Vec<BTreeMap<String, String>>>,
    throttle: AtomicBool,
}

async fn exotel() -> (Arc<Exotel>, String) {
    use axum::extract::{Path, State};
    use axum::response::IntoResponse;
    async fn send(
        State(state): State<Arc<Exotel>>,
        Path(sid): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> axum::response::Response {
        let expected = format!(
            "Basic {}",
            base64_standard(b"exotel-key:exotel-token-not-for-logs")
        );
        let authorised =
            headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
        if sid != "sipline1" || !authorised {
            return (StatusCode::UNAUTHORIZED, "{}").into_response();
        }
        let form_typed = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if !form_typed {
            return (StatusCode::BAD_REQUEST, "{}").into_response();
        }
        if state.throttle.load(Ordering::SeqCst) {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "120")],
                "{}",
            )
                .into_response();
        }
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        for field in ["From", "To", "Body", "DltEntityId", "DltTemplateId"] {
            if form.get(field).is_none_or(|v| v.is_empty()) {
                return (StatusCode::BAD_REQUEST, format!("{field} missing")).into_response();
            }
        }
        let mut sent = state.sent.lock().unwrap();
        sent.push(form);
        let answer = serde_json::json!({"SMSMessage": {"Sid": format!("sms-{}", sent.len()), "Status": "queued"}});
        (StatusCode::OK, axum::Json(answer)).into_response()
    }
    let state = Arc::new(Exotel::default());
    let app = axum::Router::new()
        .route(
            "/v1/Accounts/{sid}/Sms/send.json",
            axum::routing::post(send),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

/// RFC 4648 base64 with padding: the receiver's own, sharing nothing with reqwest's.
fn base64_standard(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A sip_executed notification's values row for `user`.
fn executed_row(key: &str, user: i64) -> String {
    format!(
        "('{key}', {user}, 'sip_executed', '{{\"sip_id\": 1, \"scheme_code\": 122639, \"due_date\": \"2026-12-05\", \
          \"amount\": \"5000.00\", \"nav_date\": \"2026-12-07\", \"nav\": \"84.2512\", \"units\": \"59.3430\"}}')"
    )
}

/// SMS through Exotel with the DLT fields; its delivery reports, on the signed callback URL,
/// change the delivery's state (an operator's DND failure makes it dead); a kind without a
/// registered template is never sent; a 429 waits out Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_go_through_exotel_with_dlt_fields_and_delivery_reports_change_their_state() {
    const CALLBACK_SECRET: &str = "provider-callback-secret-0123456";
    const TOKEN: &str = "exotel-token-not-for-logs";
    assert_eq!(base64_standard(b"Man"), "TWFu");
    assert_eq!(base64_standard(b"Ma"), "TWE=");
    let pg = Postgres::start().await;
    let pool = setup(&pg, 2).await;
    sqlx::query(
        "INSERT INTO schemes (scheme_code, scheme_name, unit_decimals) \
         VALUES (122639, 'Parag Parikh Flexi Cap Fund - Direct Plan - Growth', 3)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, channels, phone) VALUES \
           (1, '{sms}', '+919812345678'), (2, '{sms}', '+919800000002')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO notifications (event_key, user_id, kind, payload) VALUES {}, \
           ('nav_alert:1:2026-12-07', 2, 'nav_alert', '{{\"scheme_code\": 122639, \"nav_date\": \"2026-12-07\", \
             \"nav\": \"84.2512\", \"condition\": \"below\", \"threshold\": \"85\"}}')",
        executed_row("sip:1:2026-12-05:executed", 1)
    )))
    .execute(&pool)
    .await
    .unwrap();
    let api = crate::api::Api::start_with(
        &pg.url,
        &[
            "--rate-per-user",
            "0",
            "--rate-per-address",
            "0",
            "--provider-callback-secret",
            CALLBACK_SECRET,
        ],
    )
    .await;
    let (provider, provider_url) = exotel().await;
    let (_webhook, url) = receiver().await;
    let callback_base = format!("{}/v1/providers/exotel/sms-status", api.base);
    let args = [
        "notify",
        "dispatch",
        "--database-url",
        &pg.url,
        "--webhook-url",
        &url,
        "--webhook-secret",
        SECRET,
        "--exotel-url",
        &provider_url,
        "--exotel-sid",
        "sipline1",
        "--exotel-api-key",
        "exotel-key",
        "--sms-sender",
        "SIPLNE",
        "--dlt-entity-id",
        "1101234567890123456",
        "--dlt-templates",
        "sip_executed=1107161234567890123,order_executed=1107169876543210987",
        "--sms-status-callback-url",
        &callback_base,
        "--provider-callback-secret",
        CALLBACK_SECRET,
        "--retry-base-ms",
        "1",
    ];
    let env = [("SIPLINE_EXOTEL_API_TOKEN", TOKEN)];
    let run = crate::support::sipline_async_env(&args, &env).await;
    run.assert_ok();
    assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN));
    let sent = provider.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "the nav_alert has no DLT template: not sent");
    let sms = &sent[0];
    assert_eq!(sms["From"], "SIPLNE");
    assert_eq!(sms["To"], "+919812345678");
    assert_eq!(sms["DltEntityId"], "1101234567890123456");
    assert_eq!(sms["DltTemplateId"], "1107161234567890123");
    assert_eq!(sms["EncodingType"], "plain");
    assert_eq!(sms["CustomField"], "sip:1:2026-12-05:executed/sms");
    assert!(
        sms["Body"].contains("Rs 5,000.00") && sms["Body"].contains("59.343 units"),
        "{}",
        sms["Body"]
    );
    assert!(sms["Body"].chars().count() <= 306, "two segments at most");
    let callback = sms["StatusCallback"].clone();
    assert!(
        callback.starts_with(&format!("{callback_base}?delivery=")),
        "{callback}"
    );
    let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT n.kind, d.status, d.provider_ref, d.last_error FROM notification_deliveries d \
         JOIN notifications n USING (notification_id) ORDER BY n.user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_deref()),
        ("delivered", Some("sms-1"))
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str()),
        ("nav_alert", "dead")
    );
    assert!(rows[1]
        .3
        .as_deref()
        .unwrap()
        .contains("no DLT template ID registered for nav_alert"));

    // Exotel's report, as it POSTs it: a form to the StatusCallback URL.
    let http = reqwest::Client::new();
    let report = |url: String, sid: &'static str, status: &'static str| {
        let http = http.clone();
        async move {
            http.post(url)
                .form(&[
                    ("SmsSid", sid),
                    ("To", "+919812345678"),
                    ("Status", status),
                    ("DetailedStatus", "DELIVERED_TO_HANDSET"),
                    ("SmsUnits", "1"),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let (head, sig) = callback.split_once("sig=").unwrap();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    let tampered = format!("{head}sig={flipped}{}", &sig[1..]);
    assert_eq!(
        report(tampered, "sms-1", "failed").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        report(callback.clone(), "sms-9", "sent").await,
        StatusCode::NOT_FOUND,
        "another message"
    );
    assert_eq!(
        report(callback.clone(), "sms-1", "sent").await,
        StatusCode::NO_CONTENT
    );
    let (report_status, status): (Option<String>, String) = sqlx::query_as(
        "SELECT report_status, status FROM notification_deliveries WHERE provider_ref = 'sms-1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (report_status.as_deref(), status.as_str()),
        (Some("sent"), "delivered")
    );

    // The next SMS is blocked by the DND registry: the operator's report makes it dead.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO notifications (event_key, user_id, kind, payload) VALUES {}",
        executed_row("sip:1:2027-01-05:executed", 1)
    )))
    .execute(&pool)
    .await
    .unwrap();
    crate::support::sipline_async_env(&args, &env)
        .await
        .assert_ok();
    let callback = provider.sent.lock().unwrap()[1]["StatusCallback"].clone();
    assert_eq!(
        report(callback, "sms-2", "failed_dnd").await,
        StatusCode::NO_CONTENT
    );
    let (status, error, notification): (String, Option<String>, String) = sqlx::query_as(
        "SELECT d.status, d.last_error, n.status FROM notification_deliveries d \
         JOIN notifications n USING (notification_id) WHERE d.provider_ref = 'sms-2'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), notification.as_str()), ("dead", "dead"));
    assert!(error.unwrap().contains("operator reported failed_dnd"));

    // Throttled: the 429's Retry-After (120 s) is the floor under the next attempt.
    provider.throttle.store(true, Ordering::SeqCst);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO notifications (event_key, user_id, kind, payload) VALUES {}",
        executed_row("sip:1:2027-02-05:executed", 1)
    )))
    .execute(&pool)
    .await
    .unwrap();
    crate::support::sipline_async_env(&args, &env)
        .await
        .assert_ok();
    let (status, waits): (String, bool) = sqlx::query_as(
        "SELECT d.status, d.next_attempt_at > now() + INTERVAL '110 seconds' \
         FROM notification_deliveries d JOIN notifications n USING (notification_id) \
         WHERE n.event_key = 'sip:1:2027-02-05:executed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), waits), ("pending", true));

    // The operator's view by provider: what Exotel took, what its reports said (dead: the
    // NAV alert without a DLT template, and the SMS the DND registry blocked).
    let stats = sipline_async(&["notify", "stats", "--database-url", &pg.url]).await;
    stats.assert_ok();
    for line in [
        "sipline_notification_deliveries_by_provider{state=\"delivered\",provider=\"exotel\"} 1",
        "sipline_notification_deliveries_by_provider{state=\"dead\",provider=\"exotel\"} 2",
        "sipline_notification_deliveries_by_provider{state=\"pending\",provider=\"exotel\"} 1",
        "sipline_notification_provider_reports{report=\"sent\",provider=\"exotel\"} 1",
        "sipline_notification_provider_reports{report=\"failed_dnd\",provider=\"exotel\"} 1",
    ] {
        assert!(
            stats.stdout.contains(line),
            "{line} not in\n{}",
            stats.stdout
        );
    }
}

/// A day's NAV alerts in one message (the digest) go out under their own DLT template: DLT
/// matches a message against the text registered under its template ID, and the digest's text
/// is not a single alert's. A digest without one registered is dead, saying which is missing;
/// a single alert still goes out under the kind's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nav_alert_digest_goes_out_under_its_own_dlt_template() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 1).await;
    sqlx::query(
        "INSERT INTO schemes (scheme_code, scheme_name, unit_decimals) \
         VALUES (122639, 'Parag Parikh Flexi Cap Fund - Direct Plan - Growth', 3)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, channels, phone) \
         VALUES (1, '{sms}', '+919812345678')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let digest = |date: &str| {
        format!(
            "('nav_alert_digest:1:{date}:5', 1, 'nav_alert', '{{\"nav_date\": \"{date}\", \"alerts\": [\
               {{\"alert_id\": 5, \"scheme_code\": 122639, \"nav\": \"84.2512\", \"condition\": \"below\", \"threshold\": \"85\"}}, \
               {{\"alert_id\": 6, \"scheme_code\": 118989, \"nav\": \"41.1000\", \"condition\": \"above\", \"threshold\": \"40\"}}]}}')"
        )
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO notifications (event_key, user_id, kind, payload) VALUES {}, \
           ('nav_alert:7:2026-12-07', 1, 'nav_alert', '{{\"scheme_code\": 122639, \"nav_date\": \"2026-12-07\", \
             \"nav\": \"84.2512\", \"condition\": \"below\", \"threshold\": \"85\"}}')",
        digest("2026-12-07")
    )))
    .execute(&pool)
    .await
    .unwrap();
    let (provider, provider_url) = exotel().await;
    let dispatch = |templates: &'static str| {
        let url = pg.url.clone();
        let provider_url = provider_url.clone();
        async move {
            crate::support::sipline_async_env(
                &[
                    "notify",
                    "dispatch",
                    "--database-url",
                    &url,
                    "--exotel-url",
                    &provider_url,
                    "--exotel-sid",
                    "sipline1",
                    "--exotel-api-key",
                    "exotel-key",
                    "--sms-sender",
                    "SIPLNE",
                    "--dlt-entity-id",
                    "1101234567890123456",
                    "--dlt-templates",
                    templates,
                    "--webhook-secret",
                    SECRET,
                    "--retry-base-ms",
                    "1",
                ],
                &[("SIPLINE_EXOTEL_API_TOKEN", "exotel-token-not-for-logs")],
            )
            .await
            .assert_ok();
        }
    };
    dispatch("nav_alert=1107160000000000001,nav_alert_digest=1107160000000000002").await;
    let sent = provider.sent.lock().unwrap().clone();
    let by_key = |key: &str| {
        sent.iter()
            .find(|s| s["CustomField"] == format!("{key}/sms"))
            .unwrap_or_else(|| panic!("{key} not sent: {sent:?}"))
            .clone()
    };
    let digest_sms = by_key("nav_alert_digest:1:2026-12-07:5");
    assert_eq!(digest_sms["DltTemplateId"], "1107160000000000002");
    assert!(
        digest_sms["Body"].contains("2 of your alerts"),
        "{digest_sms:?}"
    );
    assert_eq!(
        by_key("nav_alert:7:2026-12-07")["DltTemplateId"],
        "1107160000000000001"
    );

    // The next day's digest, with only the single alert's template registered: not sent.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO notifications (event_key, user_id, kind, payload) VALUES {}",
        digest("2026-12-08")
    )))
    .execute(&pool)
    .await
    .unwrap();
    dispatch("nav_alert=1107160000000000001").await;
    assert_eq!(provider.sent.lock().unwrap().len(), 2, "nothing more sent");
    let (status, error): (String, Option<String>) = sqlx::query_as(
        "SELECT d.status, d.last_error FROM notification_deliveries d \
         JOIN notifications n USING (notification_id) \
         WHERE n.event_key = 'nav_alert_digest:1:2026-12-08:5'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "dead");
    assert!(
        error
            .as_deref()
            .unwrap()
            .contains("no DLT template ID registered for nav_alert_digest"),
        "{error:?}"
    );
}

/// The public half of a test key, from `api/tests/fixtures/jwks.json`.
fn fixture_jwk(kid: &str) -> serde_json::Value {
    let jwks: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::api::key_fixture("jwks.json")).unwrap(),
    )
    .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .cloned()
        .unwrap()
}

/// What the local Google and Apple servers saw and decided.
#[derive(Default)]
struct PushProviders {
    token_requests: AtomicUsize,
    fcm_sent: Mutex<Vec<serde_json::Value>>,
    apns_sent: Mutex<Vec<(String, serde_json::Value)>>,
    refused: Mutex<Vec<String>>,
}

/// Google's token endpoint and FCM's `messages:send`, checking what they check: the JWT
/// assertion's RS256 signature with the service account's public key, its `iss`, `aud`,
/// `scope` and `kid`; the bearer token they issued; the message's shape. `unregistered-token`
/// answers UNREGISTERED, as FCM does for an app that was removed.
async fn google(providers: Arc<PushProviders>) -> String {
    use axum::extract::State;
    use axum::response::IntoResponse;
    async fn token(State(p): State<Arc<PushProviders>>, body: String) -> axum::response::Response {
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let jwk = fixture_jwk("rsa-1");
        let key = jsonwebtoken::DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        // `aud` is checked below against the token endpoint itself.
        validation.validate_aud = false;
        let checked = jsonwebtoken::decode::<serde_json::Value>(
            form.get("assertion")
                .map(String::as_str)
                .unwrap_or_default(),
            &key,
            &validation,
        );
        let ok = form.get("grant_type").map(String::as_str)
            == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            && checked.as_ref().is_ok_and(|t| {
                t.header.kid.as_deref() == Some("rsa-1")
                    && t.claims["iss"] == "sipline@sipline-test.iam.gserviceaccount.com"
                    && t.claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
                    && t.claims["aud"]
                        .as_str()
                        .is_some_and(|a| a.ends_with("/token"))
            });
        if !ok {
            p.refused
                .lock()
                .unwrap()
                .push(format!("token: {checked:?}"));
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "invalid_grant"})),
            )
                .into_response();
        }
        p.token_requests.fetch_add(1, Ordering::SeqCst);
        axum::Json(serde_json::json!({"access_token": "ya29.local-token", "expires_in": 3599, "token_type": "Bearer"})).into_response()
    }
    async fn send(
        State(p): State<Arc<PushProviders>>,
        axum::extract::Path(project): axum::extract::Path<String>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::response::Response {
        let authorised = headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some("Bearer ya29.local-token");
        let message = &body["message"];
        let shaped = message["token"].is_string()
            && message["notification"]["title"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
            && message["notification"]["body"]
                .as_str()
                .is_some_and(|t| !t.is_empty());
        if project != "sipline-test" || !authorised || !shaped {
            p.refused
                .lock()
                .unwrap()
                .push(format!("send {project}: {body}"));
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(
                    serde_json::json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
                ),
            )
                .into_response();
        }
        if message["token"] == "unregistered-token" {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [
                    {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})),
            )
                .into_response();
        }
        p.fcm_sent.lock().unwrap().push(body);
        axum::Json(serde_json::json!({"name": "projects/sipline-test/messages/0:1"}))
            .into_response()
    }
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .route(
            "/v1/projects/{project}/messages:send",
            axum::routing::post(send),
        )
        .with_state(providers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// APNs over HTTP/2, checking what Apple checks: HTTP/2, the provider token's ES256 signature
/// with the key's public half, its `kid` and `iss`; `apns-topic`, `apns-push-type`,
/// `apns-priority`; an `aps.alert`. A token ending in `dead` is 410 Unregistered.
async fn apple(providers: Arc<PushProviders>) -> String {
    use axum::extract::State;
    use axum::response::IntoResponse;
    async fn push(
        State(p): State<Arc<PushProviders>>,
        axum::extract::Path(token): axum::extract::Path<String>,
        version: axum::http::Version,
        headers: HeaderMap,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::response::Response {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let jwk = fixture_jwk("ec-1");
        let key = jsonwebtoken::DecodingKey::from_ec_components(
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let bearer = header("authorization");
        let checked = jsonwebtoken::decode::<serde_json::Value>(
            bearer.strip_prefix("bearer ").unwrap_or_default(),
            &key,
            &validation,
        );
        let ok = version == axum::http::Version::HTTP_2
            && checked.as_ref().is_ok_and(|t| {
                t.header.kid.as_deref() == Some("ec-1")
                    && t.claims["iss"] == "TEAM123456"
                    && t.claims["iat"].is_i64()
            })
            && header("apns-topic") == "in.sipline.app"
            && header("apns-push-type") == "alert"
            && header("apns-priority") == "10"
            && body["aps"]["alert"]["title"]
                .as_str()
                .is_some_and(|t| !t.is_empty());
        if !ok {
            p.refused
                .lock()
                .unwrap()
                .push(format!("apns {version:?} {checked:?} {body}"));
            return (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"reason": "InvalidProviderToken"})),
            )
                .into_response();
        }
        if token.ends_with("dead") {
            return (StatusCode::GONE, axum::Json(serde_json::json!({"reason": "Unregistered", "timestamp": 1_700_000_000_000i64}))).into_response();
        }
        p.apns_sent.lock().unwrap().push((token, body));
        (
            StatusCode::OK,
            [("apns-id", "EC1BF194-B3B2-424A-89A9-5A918A6E6B5B")],
        )
            .into_response()
    }
    let app = axum::Router::new()
        .route("/3/device/{token}", axum::routing::post(push))
        .with_state(providers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Push through FCM HTTP v1 (an OAuth token from the service account, cached) and APNs over
/// HTTP/2 (an ES256 provider token), both accepted by local servers that verify the
/// signatures; a token either provider says is gone leaves the person's preferences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_goes_through_fcm_and_apns_and_dead_tokens_are_removed() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 4).await;
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, channels, push_token, push_platform) VALUES \
           (1, '{push}', 'fcm-device-1', 'fcm'), (2, '{push}', 'a1b2c3d4e5f6', 'apns'), \
           (3, '{push}', 'unregistered-token', 'fcm'), (4, '{push,webhook}', 'a1b2c3dead', 'apns')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Users 1..4 one each, and user 1 a second (the access token is fetched once).
    sqlx::query(
        "INSERT INTO notifications (event_key, user_id, kind, payload) \
         SELECT 'push:' || i, 1 + (i - 1) % 4, 'statement_ready', jsonb_build_object('month', '2026-11', \
           'as_of', '2026-11-30', 'invested', '1000.00', 'current_value', '1100.00') \
         FROM generate_series(1, 5) i",
    )
    .execute(&pool)
    .await
    .unwrap();
    let providers = Arc::new(PushProviders::default());
    let google_url = google(providers.clone()).await;
    let apple_url = apple(providers.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let account = dir.path().join("service-account.json");
    std::fs::write(
        &account,
        serde_json::json!({
            "type": "service_account",
            "project_id": "sipline-test",
            "private_key_id": "rsa-1",
            "private_key": std::fs::read_to_string(crate::api::key_fixture("rsa.pem")).unwrap(),
            "client_email": "sipline@sipline-test.iam.gserviceaccount.com",
            "token_uri": format!("{google_url}/token"),
        })
        .to_string(),
    )
    .unwrap();
    let (_webhook, url) = receiver().await;
    let run = dispatch(
        &pg,
        &url,
        &[
            "--fcm-service-account",
            account.to_str().unwrap(),
            "--fcm-url",
            &google_url,
            "--apns-key-file",
            crate::api::key_fixture("ec.pem").to_str().unwrap(),
            "--apns-key-id",
            "ec-1",
            "--apns-team-id",
            "TEAM123456",
            "--apns-topic",
            "in.sipline.app",
            "--apns-url",
            &apple_url,
        ],
    )
    .await;
    run.assert_ok();
    assert!(
        providers.refused.lock().unwrap().is_empty(),
        "{:?}",
        providers.refused.lock().unwrap()
    );
    assert!(!run.stderr.contains("PRIVATE KEY"));
    assert_eq!(providers.token_requests.load(Ordering::SeqCst), 1, "cached");
    let fcm = providers.fcm_sent.lock().unwrap().clone();
    assert_eq!(fcm.len(), 2, "user 1's two");
    assert_eq!(fcm[0]["message"]["token"], "fcm-device-1");
    assert_eq!(
        fcm[0]["message"]["notification"]["title"],
        "Your November 2026 statement"
    );
    assert_eq!(fcm[0]["message"]["data"]["kind"], "statement_ready");
    let apns = providers.apns_sent.lock().unwrap().clone();
    assert_eq!(apns.len(), 1);
    assert_eq!(apns[0].0, "a1b2c3d4e5f6");
    assert_eq!(
        apns[0].1["aps"]["alert"]["body"],
        "Invested ₹1,000.00, now worth ₹1,100.00."
    );
    let prefs: Vec<(i64, Option<String>, Vec<String>)> = sqlx::query_as(
        "SELECT user_id, push_token, channels FROM notification_preferences ORDER BY user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(prefs[0].1.as_deref(), Some("fcm-device-1"));
    assert_eq!(prefs[1].1.as_deref(), Some("a1b2c3d4e5f6"));
    assert_eq!(
        (prefs[2].1.as_deref(), prefs[2].2.clone()),
        (None, Vec::<String>::new()),
        "UNREGISTERED: removed"
    );
    assert_eq!(
        (prefs[3].1.as_deref(), prefs[3].2.clone()),
        (None, vec!["webhook".to_string()]),
        "410: removed"
    );
    let dead: Vec<(i64, String)> = sqlx::query_as(
        "SELECT n.user_id, d.last_error FROM notification_deliveries d JOIN notifications n USING (notification_id) \
         WHERE d.status = 'dead' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead[0].1.contains("UNREGISTERED") && dead[1].1.contains("Unregistered"),
        "{dead:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_backoff_then_land_in_dead_letters() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 1).await;
    let (webhook, url) = receiver().await;
    let fast = ["--retry-base-ms", "50", "--max-attempts", "3"];

    // Fails twice, then answers: delivered on the third attempt.
    *webhook.fail_status.lock().unwrap() = Some(StatusCode::SERVICE_UNAVAILABLE);
    webhook.fail_first.store(2, Ordering::SeqCst);
    add_notifications(&pool, 1, 1, 1).await;
    for _ in 0..20 {
        dispatch(&pg, &url, &fast).await.assert_ok();
        if statuses(&pool).await.get("delivered") == Some(&1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (attempts, error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM notification_deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 3);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(webhook.keys(), vec!["test:1/webhook".to_string()]);

    // Always failing: dead after the limit, with the last error kept.
    webhook.fail_first.store(usize::MAX, Ordering::SeqCst);
    add_notifications(&pool, 2, 2, 1).await;
    for _ in 0..20 {
        dispatch(&pg, &url, &fast).await.assert_ok();
        if statuses(&pool).await.get("dead") == Some(&1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (attempts, error, status): (i32, String, String) = sqlx::query_as(
        "SELECT d.attempts, d.last_error, n.status FROM notification_deliveries d JOIN notifications n USING (notification_id) \
         WHERE n.event_key = 'test:2'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((attempts, status.as_str()), (3, "dead"));
    assert!(error.contains("HTTP 503"), "{error}");

    // A request the receiver refuses as such (4xx) is not retried.
    *webhook.fail_status.lock().unwrap() = Some(StatusCode::UNPROCESSABLE_ENTITY);
    add_notifications(&pool, 3, 3, 1).await;
    dispatch(&pg, &url, &fast).await.assert_ok();
    let attempts: i32 = sqlx::query_scalar(
        "SELECT d.attempts FROM notification_deliveries d JOIN notifications n USING (notification_id) \
         WHERE n.event_key = 'test:3' AND d.status = 'dead'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_queue_deliver_each_notification_once() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 50).await;
    add_notifications(&pool, 1, 400, 50).await;
    let (webhook, url) = receiver().await;
    let small = ["--batch", "25", "--concurrency", "8"];
    let (a, b) = tokio::join!(dispatch(&pg, &url, &small), dispatch(&pg, &url, &small));
    a.assert_ok();
    b.assert_ok();
    let keys = webhook.keys();
    let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(keys.len(), 400, "every notification delivered exactly once");
    assert_eq!(distinct.len(), 400);
    assert_eq!(
        statuses(&pool).await,
        BTreeMap::from([("delivered".to_string(), 400)])
    );
}

/// A slow receiver, and a configured lease far shorter than the batch takes to send: a second
/// dispatcher starting meanwhile must not send what the first still holds. (Before the claim
/// covered its batch and was checked per send, every delivery past the first second was sent
/// twice.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_outlives_its_configured_lease_is_not_sent_twice() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 6).await;
    add_notifications(&pool, 1, 6, 6).await;
    let (webhook, url) = receiver().await;
    webhook.slow.store(true, Ordering::SeqCst);
    let tight = [
        "--lease-secs",
        "1",
        "--batch",
        "6",
        "--concurrency",
        "1",
        "--timeout-secs",
        "5",
    ];
    let first = dispatch(&pg, &url, &tight);
    let second = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        dispatch(&pg, &url, &tight).await
    };
    let (a, b) = tokio::join!(first, second);
    a.assert_ok();
    b.assert_ok();
    let keys = webhook.keys();
    let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), 6, "{keys:?}");
    assert_eq!(keys.len(), 6, "a delivery was sent twice: {keys:?}");
    assert_eq!(
        statuses(&pool).await,
        BTreeMap::from([("delivered".to_string(), 6)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_is_finished_by_another_and_workers_wake_on_notify() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 10).await;
    add_notifications(&pool, 1, 40, 10).await;
    let (webhook, url) = receiver().await;
    webhook.slow.store(true, Ordering::SeqCst);
    let binary = env!("CARGO_BIN_EXE_sipline");
    let worker = |poll: &str| {
        tokio::process::Command::new(binary)
            .args([
                "notify",
                "worker",
                "--database-url",
                &pg.url,
                "--webhook-url",
                &url,
                "--webhook-secret",
                SECRET,
                "--lease-secs",
                "2",
                // A claim holds at least the sends' timeout plus a margin (6 s here): how long
                // a dead worker's batch waits for another.
                "--timeout-secs",
                "1",
                "--batch",
                "40",
                "--concurrency",
                "40",
                "--poll-secs",
                poll,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    // The first worker claims the batch and is killed while the receiver holds its requests.
    let mut first = worker("60");
    for _ in 0..100 {
        if webhook.seen.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        webhook.seen.load(Ordering::SeqCst) > 0,
        "the worker never delivered"
    );
    first.kill().await.unwrap();
    assert_eq!(statuses(&pool).await.get("delivering"), Some(&40));

    // A new worker waits out the lease and delivers everything; polling finds the expired claims.
    webhook.slow.store(false, Ordering::SeqCst);
    let mut second = worker("1");
    let mut delivered = 0;
    for _ in 0..200 {
        delivered = statuses(&pool).await.get("delivered").copied().unwrap_or(0);
        if delivered == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, 40);
    // The receiver got every key; any repeat carries the same key, for it to drop.
    let distinct: std::collections::BTreeSet<_> = webhook.keys().into_iter().collect();
    assert_eq!(distinct.len(), 40);
    second.kill().await.unwrap();

    // A worker polling only every minute still delivers at once: the outbox insert wakes it.
    let mut listening = worker("60");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    add_notifications(&pool, 41, 41, 10).await;
    let mut woke = false;
    for _ in 0..50 {
        if webhook.keys().contains(&"test:41/webhook".to_string()) {
            woke = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    listening.kill().await.unwrap();
    assert!(woke, "the worker was not woken by NOTIFY");
}

/// Preferences that used to stall the outbox: a user with no channels (their notifications
/// stayed `delivering` for ever) and a time zone PostgreSQL does not know (every quiet-hours
/// pass failed, for everyone). Neither may hold up another user's delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_cannot_poison_the_outbox() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 3).await;
    let bad_zone = sqlx::query(
        "INSERT INTO notification_preferences (user_id, channels, quiet_start, quiet_end, time_zone) \
         VALUES (3, '{sms}', '00:00', '23:59', 'Mars/Olympus_Mons')",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(
        bad_zone.to_string().contains("time_zone_known"),
        "{bad_zone}"
    );
    sqlx::query("INSERT INTO notification_preferences (user_id, channels) VALUES (2, '{}')")
        .execute(&pool)
        .await
        .unwrap();
    add_notifications(&pool, 1, 6, 3).await;
    let (receiver, url) = receiver().await;
    dispatch(&pg, &url, &[]).await.assert_ok();
    let by_user: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT n.user_id, n.status, count(d.delivery_id) FROM notifications n \
         LEFT JOIN notification_deliveries d USING (notification_id) \
         GROUP BY n.user_id, n.status ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        by_user,
        vec![
            (1, "delivered".to_string(), 2),
            (2, "delivered".to_string(), 0),
            (3, "delivered".to_string(), 2),
        ]
    );
    assert_eq!(receiver.keys().len(), 4, "webhooks for users 1 and 3 only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nav_alerts_fire_once_per_alert_and_date_in_the_ingest_transaction() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 2).await;
    // 119552 publishes 359.8211 on 2024-12-27 in the fixture.
    sqlx::query(
        "INSERT INTO nav_alerts (user_id, scheme_code, kind, threshold, created_at) VALUES \
         (1, 119552, 'above', 350, '2024-12-01'), (2, 119552, 'below', 300, '2024-12-01'), \
         (2, 119552, 'above', 400, '2024-12-01')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let warehouse = tempfile::tempdir().unwrap();
    let input = fixture("amfi_navall_6col.txt");
    for _ in 0..2 {
        sipline_async(&[
            "nav",
            "ingest",
            "--source",
            "amfi",
            "--input",
            input.to_str().unwrap(),
            "--warehouse",
            warehouse.path().to_str().unwrap(),
            "--database-url",
            &pg.url,
        ])
        .await
        .assert_ok();
    }
    let fired: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT event_key, user_id, payload->>'nav' FROM notifications WHERE kind = 'nav_alert'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        fired,
        vec![(
            "nav_alert:1:2024-12-27".to_string(),
            1,
            "359.8211".to_string()
        )],
        "only the crossed level fires, once across two ingests"
    );
    let last: Option<chrono::NaiveDate> =
        sqlx::query_scalar("SELECT last_triggered_on FROM nav_alerts WHERE alert_id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(last, chrono::NaiveDate::from_ymd_opt(2024, 12, 27));
}

/// Several of a person's alerts firing for one NAV date make one digest (issue 37 §5): one
/// `nav_alert` notification listing them with their schemes' names, keyed by person and
/// date; a person with one alert firing keeps the single notification. A second ingest adds
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_alerts_of_one_person_on_one_date_make_one_digest() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 2).await;
    // On 2024-12-27 the fixture has 119552 at 359.8211 and 120465 at 62.58.
    sqlx::query(
        "INSERT INTO nav_alerts (user_id, scheme_code, kind, threshold, created_at) VALUES \
         (1, 119552, 'above', 350, '2024-12-01'), (1, 120465, 'above', 60, '2024-12-01'), \
         (2, 120465, 'above', 62, '2024-12-01'), (2, 119552, 'above', 400, '2024-12-01')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let warehouse = tempfile::tempdir().unwrap();
    let input = fixture("amfi_navall_6col.txt");
    for _ in 0..2 {
        sipline_async(&[
            "nav",
            "ingest",
            "--source",
            "amfi",
            "--input",
            input.to_str().unwrap(),
            "--warehouse",
            warehouse.path().to_str().unwrap(),
            "--database-url",
            &pg.url,
        ])
        .await
        .assert_ok();
    }
    let fired: Vec<(String, i64, serde_json::Value)> = sqlx::query_as(
        "SELECT event_key, user_id, payload FROM notifications WHERE kind = 'nav_alert' \
         ORDER BY user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(fired.len(), 2, "{fired:?}");
    let (key, user, digest) = &fired[0];
    assert_eq!(
        (key.as_str(), *user),
        ("nav_alert_digest:1:2024-12-27:1", 1)
    );
    assert_eq!(digest["nav_date"], "2024-12-27");
    let alerts = digest["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{digest}");
    assert_eq!(alerts[0]["scheme_code"], 119552);
    assert_eq!(alerts[0]["nav"], "359.8211");
    assert_eq!(
        alerts[0]["scheme_name"],
        "Aditya Birla Sun Life Banking & PSU Debt Fund - Direct Plan - Growth"
    );
    assert_eq!(alerts[1]["scheme_code"], 120465);
    assert_eq!(alerts[1]["condition"], "above");
    let (key, user, single) = &fired[1];
    assert_eq!((key.as_str(), *user), ("nav_alert:3:2024-12-27", 2));
    assert_eq!(single["nav"], "62.5800");
    assert!(single.get("alerts").is_none() && single.get("scheme_name").is_none());

    // The same date ingested again with one more of person 1's alerts (120001 at 27.1433):
    // only that one is told, on its own; those already told are not told again.
    sqlx::query(
        "INSERT INTO nav_alerts (user_id, scheme_code, kind, threshold, created_at) VALUES \
         (1, 120001, 'above', 27, '2024-12-01')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sipline_async(&[
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        input.to_str().unwrap(),
        "--warehouse",
        warehouse.path().to_str().unwrap(),
        "--database-url",
        &pg.url,
    ])
    .await
    .assert_ok();
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT event_key FROM notifications WHERE kind = 'nav_alert' ORDER BY event_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        keys,
        [
            "nav_alert:3:2024-12-27",
            "nav_alert:5:2024-12-27",
            "nav_alert_digest:1:2024-12-27:1"
        ]
    );
}

/// `daily_move_pct` fires on a move from the scheme's previous NAV of at least the threshold,
/// and not below it: 100032 moves 21.4150 → 21.4201 (+0.0238%) → 21.4260 (+0.0275%). An alert
/// created after those dates does not fire for them, however low its threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_move_alerts_fire_on_a_move_of_at_least_the_threshold() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 2).await;
    sqlx::query(
        "INSERT INTO nav_alerts (user_id, scheme_code, kind, threshold, created_at) VALUES \
         (1, 100032, 'daily_move_pct', 0.025, '2024-12-01'), (2, 100032, 'daily_move_pct', 0.03, '2024-12-01'), \
         (2, 100032, 'daily_move_pct', 0.001, '2025-01-03 09:00+05:30')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let warehouse = tempfile::tempdir().unwrap();
    let input = fixture("amfi_history_two_months.txt");
    sipline_async(&[
        "nav",
        "ingest",
        "--source",
        "amfi-history",
        "--input",
        input.to_str().unwrap(),
        "--warehouse",
        warehouse.path().to_str().unwrap(),
        "--database-url",
        &pg.url,
    ])
    .await
    .assert_ok();
    let fired: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT event_key, payload->>'nav', payload->>'previous_nav' FROM notifications \
         WHERE kind = 'nav_alert' ORDER BY event_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        fired,
        vec![(
            "nav_alert:1:2025-01-02".to_string(),
            "21.4260".to_string(),
            "21.4201".to_string()
        )]
    );
}

/// Quiet hours that wrap midnight (22:00–07:00), in the user's time zone: deferred to 07:00
/// the next morning from late evening, to 07:00 the same day after midnight, not at all outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_wrap_midnight_in_the_users_time_zone() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 1).await;
    for (at, expected) in [
        ("2025-01-01 21:59+05:30", None),
        ("2025-01-01 22:00+05:30", Some("2025-01-02 07:00")),
        ("2025-01-01 23:30+05:30", Some("2025-01-02 07:00")),
        // The same instant written in UTC.
        ("2025-01-01 18:00+00", Some("2025-01-02 07:00")),
        ("2025-01-02 00:00+05:30", Some("2025-01-02 07:00")),
        ("2025-01-02 06:59+05:30", Some("2025-01-02 07:00")),
        ("2025-01-02 07:00+05:30", None),
        ("2025-01-02 12:00+05:30", None),
    ] {
        let until: Option<String> = sqlx::query_scalar(
            "SELECT to_char(sipline_quiet_until('22:00', '07:00', 'Asia/Kolkata', $1::timestamptz) \
             AT TIME ZONE 'Asia/Kolkata', 'YYYY-MM-DD HH24:MI')",
        )
        .bind(at)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(until.as_deref(), expected, "at {at}");
    }
}

/// A delivery that stops every dispatcher taking it (the process dies mid-send, its lease runs
/// out) is reclaimed with the attempt counted, and dies after the configured attempts instead
/// of being retried for ever (issue 35 §6); its notification is rolled up as dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_keeps_killing_its_dispatcher_dies_after_its_attempts() {
    let pg = Postgres::start().await;
    let pool = setup(&pg, 1).await;
    add_notifications(&pool, 1, 2, 1).await;
    let (_webhook, url) = receiver().await;
    // Both deliveries as a dispatcher that died left them: claimed, lease expired; test:1 on
    // its third attempt (of three), test:2 on its first.
    sqlx::query(
        "WITH fanned AS (UPDATE notifications SET status = 'delivering' RETURNING notification_id, event_key) \
         INSERT INTO notification_deliveries (notification_id, channel, status, attempts, claim_token, claimed_until) \
         SELECT notification_id, 'webhook', 'delivering', CASE WHEN event_key = 'test:1' THEN 3 ELSE 1 END, \
                1, now() - INTERVAL '1 minute' FROM fanned",
    )
    .execute(&pool)
    .await
    .unwrap();
    let run = dispatch(&pg, &url, &["--max-attempts", "3"]).await;
    run.assert_ok();
    let states: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.event_key, d.status, n.status FROM notification_deliveries d \
         JOIN notifications n USING (notification_id) ORDER BY n.event_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        states,
        vec![
            ("test:1".into(), "dead".into(), "dead".into()),
            ("test:2".into(), "delivered".into(), "delivered".into()),
        ],
        "{}",
        run.stderr
    );
}

/// HMAC-SHA256 hex by `ring`, for links and signatures this test makes itself.
fn hmac_hex(key: &str, message: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    ring::hmac::sign(&key, message.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An operator rotates the three signing keys, keeping each old key as the previous one for a
/// while: an unsubscribe link in an e-mail sent before the rotation still unsubscribes, a
/// delivery report on an SMS sent before it still lands, and every webhook carries a signature
/// by each key, so a receiver verifies with whichever it holds. A key that was never one of
/// them is refused everywhere, and a previous key with no current one is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_without_breaking_what_was_sent_before() {
    const OLD_LINKS: &str = "unsubscribe-key-before-the-rotation";
    const NEW_LINKS: &str = "unsubscribe-key-after-the-rotation!";
    const OLD_CALLBACKS: &str = "callback-key-before-the-rotation";
    const NEW_CALLBACKS: &str = "callback-key-after-the-rotation!";
    const OLD_WEBHOOKS: &str = "webhook-key-before-the-rotation!";
    let pg = Postgres::start().await;
    let pool = setup(&pg, 2).await;
    // Refused at start, before any connection (the database named does not exist), with
    // the flag named and no key shown: a previous key without a current one, and a short key.
    for (keys, says) in [
        (
            [
                "--unsubscribe-previous-secret",
                OLD_LINKS,
                "--listen",
                "127.0.0.1:0",
            ],
            "needs --unsubscribe-secret",
        ),
        (
            [
                "--provider-callback-previous-secret",
                OLD_CALLBACKS,
                "--listen",
                "127.0.0.1:0",
            ],
            "needs --provider-callback-secret",
        ),
        (
            [
                "--provider-callback-secret",
                NEW_CALLBACKS,
                "--provider-callback-previous-secret",
                "short",
            ],
            "--provider-callback-previous-secret: at least 16 bytes",
        ),
        (
            [
                "--provider-callback-secret",
                "short",
                "--listen",
                "127.0.0.1:0",
            ],
            "--provider-callback-secret: at least 16 bytes",
        ),
    ] {
        let mut args = vec![
            "serve",
            "--database-url",
            "postgres://nobody@127.0.0.1:9/none",
            "--jwt-secret",
            "jwt-secret-of-at-least-32-bytes-K7w",
            "--audience",
            "authenticated",
        ];
        args.extend(keys);
        let refused = tokio::time::timeout(Duration::from_secs(60), sipline_async(&args))
            .await
            .expect("serve should refuse at start, not run");
        assert_eq!(refused.code, 3, "{keys:?}: {}", refused.stderr);
        assert!(refused.stderr.contains(says), "{}", refused.stderr);
        for key in [OLD_LINKS, OLD_CALLBACKS, NEW_CALLBACKS] {
            assert!(!refused.stderr.contains(key), "{}", refused.stderr);
        }
    }

    let api = crate::api::Api::start_with(
        &pg.url,
        &[
            "--rate-per-user",
            "0",
            "--rate-per-address",
            "0",
            "--unsubscribe-secret",
            NEW_LINKS,
            "--unsubscribe-previous-secret",
            OLD_LINKS,
            "--provider-callback-secret",
            NEW_CALLBACKS,
            "--provider-callback-previous-secret",
            OLD_CALLBACKS,
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let expires = chrono::Utc::now().timestamp() + 86_400;
    let link = |key: &str, user: i64| {
        let payload = format!("{user}.nav_alert.{expires}");
        format!(
            "{}/v1/unsubscribe?token={payload}.{}",
            api.base,
            hmac_hex(key, &payload)
        )
    };
    // A link nobody signed with a key we hold: refused, nothing changed.
    let forged = http
        .post(link("a-key-that-was-never-ours-0123", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // Links signed before (old key) and after (new key) the rotation both unsubscribe.
    for (key, user) in [(OLD_LINKS, 1), (NEW_LINKS, 2)] {
        let page = http.get(link(key, user)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{key}");
        let confirmed = http.post(link(key, user)).send().await.unwrap();
        assert_eq!(confirmed.status(), StatusCode::OK, "{key}");
    }
    let muted: Vec<(i64, Vec<String>)> = sqlx::query_as(
        "SELECT user_id, muted_kinds FROM notification_preferences ORDER BY user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        muted,
        [
            (1, vec!["nav_alert".to_string()]),
            (2, vec!["nav_alert".to_string()])
        ]
    );

    // A delivery report signed with either callback key passes the signature (and finds no
    // such SMS here: 404); one signed with another key is refused (403).
    let report = |key: &str| {
        let sig = hmac_hex(key, "sms-status:77");
        http.post(format!(
            "{}/v1/providers/exotel/sms-status?delivery=77&sig={sig}",
            api.base
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("SmsSid=abc123&Status=sent")
        .send()
    };
    for (key, status, says) in [
        (NEW_CALLBACKS, StatusCode::NOT_FOUND, "no such SMS"),
        (OLD_CALLBACKS, StatusCode::NOT_FOUND, "no such SMS"),
        (
            "a-key-that-was-never-ours-0123",
            StatusCode::FORBIDDEN,
            "signature does not match",
        ),
    ] {
        let answer = report(key).await.unwrap();
        assert_eq!(answer.status(), status, "{key}");
        let text = answer.text().await.unwrap();
        assert!(text.contains(says), "{key}: {text}");
    }

    // Webhooks during the rotation: one `v1=` per key, the current key's first.
    let (webhook, url) = receiver().await;
    add_notifications(&pool, 1, 1, 2).await;
    dispatch(&pg, &url, &["--webhook-previous-secret", OLD_WEBHOOKS])
        .await
        .assert_ok();
    let requests = webhook.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (_, headers, body) = &requests[0];
    let header = headers["x-sipline-signature"].to_str().unwrap();
    let timestamp = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    let signed = format!("{timestamp}.{body}");
    assert_eq!(
        header,
        format!(
            "t={timestamp},v1={},v1={}",
            hmac_hex(SECRET, &signed),
            hmac_hex(OLD_WEBHOOKS, &signed)
        )
    );
}
