//! `sipline housekeeping` (issue 35 §3): expired idempotency keys, settled notifications past
//! their retention (archived to the warehouse first, readable with SQL, then deleted with their
//! deliveries), and old job runs go; what is recent, or still being delivered, stays. A re-run
//! writes the same bytes and deletes nothing more.

use crate::sip::csv;
use crate::support::{sipline_async, snapshot, Postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housekeeping_archives_then_deletes_what_the_store_no_longer_needs() {
    let pg = Postgres::start().await;
    sipline_async(&["db", "migrate", "--database-url", &pg.url])
        .await
        .assert_ok();
    let pool = pg.pool().await;
    let warehouse = tempfile::tempdir().unwrap();
    let wh = warehouse.path().to_str().unwrap();
    sqlx::raw_sql(
        "INSERT INTO users (user_id, auth_subject) VALUES (1, 'sub-1'), (2, 'sub-2'); \
         -- 100 days ago: two settled (one with a delivery), 95 days ago: one still pending;
         -- 10 days ago: one delivered (within the retention).
         INSERT INTO notifications (event_key, user_id, kind, payload, status, created_at, delivered_at) VALUES \
           ('old:1', 1, 'sip_executed', '{\"sip_id\": 1}', 'delivered', \
              date_trunc('day', now()) - INTERVAL '100 days' + INTERVAL '1 hour', date_trunc('day', now()) - INTERVAL '100 days' + INTERVAL '2 hours'), \
           ('old:2', 2, 'sip_failed', '{\"sip_id\": 2}', 'dead', \
              date_trunc('day', now()) - INTERVAL '100 days' + INTERVAL '3 hours', NULL), \
           ('stuck:1', 1, 'sip_executed', '{\"sip_id\": 3}', 'delivering', \
              date_trunc('day', now()) - INTERVAL '95 days', NULL), \
           ('recent:1', 1, 'sip_executed', '{\"sip_id\": 4}', 'delivered', now() - INTERVAL '10 days', now() - INTERVAL '10 days'); \
         INSERT INTO notification_deliveries (notification_id, channel, status, attempts, delivered_at) \
           SELECT notification_id, 'webhook', 'delivered', 1, delivered_at FROM notifications WHERE event_key = 'old:1'; \
         INSERT INTO idempotency_keys (user_id, idem_key, route, request_hash, created_at) VALUES \
           (1, 'old-key', 'create_sip', '\\x00', now() - INTERVAL '30 hours'), \
           (1, 'new-key', 'create_sip', '\\x00', now() - INTERVAL '1 hour'); \
         INSERT INTO job_runs (job, started_at, finished_at, duration_ms, outcome, host) VALUES \
           ('nav ingest', now() - INTERVAL '500 days', now() - INTERVAL '500 days', 1, 'ok', 'h'), \
           ('nav ingest', now() - INTERVAL '1 day', now() - INTERVAL '1 day', 1, 'ok', 'h');",
    )
    .execute(&pool)
    .await
    .unwrap();

    let args = ["housekeeping", "--warehouse", wh, "--database-url", &pg.url];
    let run = sipline_async(&args).await;
    run.assert_ok();
    assert!(
        run.stdout.contains(
            "idempotency_keys=1 notifications_archived=2 days_archived=1 days_waiting=1 job_runs=1"
        ),
        "{}",
        run.stdout
    );
    let left: Vec<String> =
        sqlx::query_scalar("SELECT event_key FROM notifications ORDER BY event_key")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, vec!["recent:1", "stuck:1"]);
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        deliveries, 0,
        "the archived notification's delivery went with it"
    );
    let keys: Vec<String> = sqlx::query_scalar("SELECT idem_key FROM idempotency_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(keys, vec!["new-key"]);
    let runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_runs WHERE finished_at < now() - INTERVAL '400 days'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(runs, 0);

    // The archive, as the data team reads it.
    let archived = csv(
        warehouse.path(),
        "SELECT event_key, user_id, status, delivered_at IS NULL AS undelivered, deliveries \
         FROM notifications_archive ORDER BY event_key",
    );
    let lines: Vec<&str> = archived.lines().collect();
    assert_eq!(lines.len(), 3, "{archived}");
    assert!(
        lines[1].starts_with("old:1,1,delivered,false,"),
        "{archived}"
    );
    assert!(lines[1].contains("webhook"), "{archived}");
    assert!(lines[2].starts_with("old:2,2,dead,true,[]"), "{archived}");

    // Again: nothing more to do, the archive's bytes unchanged.
    let before: Vec<_> = snapshot(warehouse.path()).into_iter().collect();
    let again = sipline_async(&args).await;
    again.assert_ok();
    assert!(
        again
            .stdout
            .contains("idempotency_keys=0 notifications_archived=0 days_archived=0 days_waiting=1"),
        "{}",
        again.stdout
    );
    let after: Vec<_> = snapshot(warehouse.path()).into_iter().collect();
    assert_eq!(before, after);
}
