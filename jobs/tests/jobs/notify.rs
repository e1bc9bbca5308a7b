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

    // A second pass has nothing to do: nothing is delivered twice.
    dispatch(&pg, &url, &["--smtp-relay", &relay, "--smtp-tls", "none"])
        .await
        .assert_ok();
    assert_eq!(webhook.requests.lock().unwrap().len(), 2);

    let stats = sipline_async(&["notify", "stats", "--database-url", &pg.url]).await;
    stats.assert_ok();
    for line in [
        "sipline_notification_deliveries{state=\"delivered\",channel=\"webhook\"} 2",
        "sipline_notification_deliveries{state=\"delivered\",channel=\"email\"} 1",
        "sipline_notification_deliveries{state=\"pending\",channel=\"sms\"} 1",
        "# TYPE sipline_notification_latency_p99_ms gauge",
    ] {
        assert!(
            stats.stdout.contains(line),
            "{line} not in\n{}",
            stats.stdout
        );
    }
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
