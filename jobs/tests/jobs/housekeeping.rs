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
         INSERT INTO nav_alerts (user_id, scheme_code, kind, threshold) VALUES (1, 119552, 'above', 350); \
         INSERT INTO nav_alert_firings (alert_id, nav_date) \
           SELECT alert_id, d FROM nav_alerts, (VALUES (current_date - 100), (current_date - 10)) v(d); \
         INSERT INTO job_runs (job, started_at, finished_at, duration_ms, outcome, host) VALUES \
           ('nav ingest', now() - INTERVAL '500 days', now() - INTERVAL '500 days', 1, 'ok', 'h'), \
           ('nav ingest', now() - INTERVAL '1 day', now() - INTERVAL '1 day', 1, 'ok', 'h');",
    )
    .execute(&pool)
    .await
    .unwrap();

    // The retentions count back from the program's clock: as of a day before all of it,
    // nothing is old yet.
    let earlier = sipline_async(&[
        "housekeeping",
        "--warehouse",
        wh,
        "--database-url",
        &pg.url,
        "--now",
        "2020-01-01T00:00:00Z",
    ])
    .await;
    earlier.assert_ok();
    assert!(
        earlier.stdout.contains(
            "idempotency_keys=0 notifications_archived=0 days_archived=0 days_waiting=0 job_runs=0 alert_firings=0"
        ),
        "{}",
        earlier.stdout
    );

    let args = ["housekeeping", "--warehouse", wh, "--database-url", &pg.url];
    let run = sipline_async(&args).await;
    run.assert_ok();
    assert!(
        run.stdout.contains(
            "idempotency_keys=1 notifications_archived=2 days_archived=1 days_waiting=1 job_runs=1 alert_firings=1"
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

/// Daily snapshots older than `--snapshot-days` before the latest publication are thinned to
/// each month's last published date, and month-ends older than `--snapshot-history-days` go
/// too, each date's partition with its `publications` row; months left empty are dropped. A
/// running publish (its lock held) defers all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_snapshots_are_thinned_to_month_ends_and_their_publications_retired() {
    use chrono::{Datelike, NaiveDate, Weekday};
    let pg = Postgres::start().await;
    sipline_async(&["db", "migrate", "--database-url", &pg.url])
        .await
        .assert_ok();
    let pool = pg.pool().await;
    // Every weekday of 2025 published, one partition per date as publish attaches them.
    let weekdays: Vec<NaiveDate> = NaiveDate::from_ymd_opt(2025, 1, 1)
        .unwrap()
        .iter_days()
        .take_while(|d| d.year() == 2025)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .collect();
    for date in &weekdays {
        let partition = format!("portfolio_snapshots_d{}", date.format("%Y%m%d"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SELECT sipline_ensure_snapshot_month('{date}'); \
             CREATE TABLE {partition} PARTITION OF portfolio_snapshots_y{month} FOR VALUES IN ('{date}'); \
             INSERT INTO portfolio_snapshots (user_id, invested, current_value, gain, abs_return_pct, xirr, schemes, nav_date, as_of) \
               VALUES (1, 100, 110, 10, 10, 0.1, 1, '{date}', '{date}'); \
             INSERT INTO publications (as_of, snapshots, lines, investments, events) VALUES ('{date}', 1, 0, 0, 0);",
            month = date.format("%Ym%m"),
        )))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{date}: {e}"));
    }
    let month_end = |d: &NaiveDate| {
        weekdays
            .iter()
            .filter(|w| w.year() == d.year() && w.month() == d.month())
            .max()
            == Some(d)
    };
    let latest = *weekdays.last().unwrap();
    let kept_dates = |pool: sqlx::PgPool| async move {
        let published: Vec<NaiveDate> =
            sqlx::query_scalar("SELECT as_of FROM publications ORDER BY as_of")
                .fetch_all(&pool)
                .await
                .unwrap();
        let snapshots: Vec<NaiveDate> =
            sqlx::query_scalar("SELECT DISTINCT as_of FROM portfolio_snapshots ORDER BY as_of")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            published, snapshots,
            "a publication without its snapshots, or the reverse"
        );
        published
    };
    let run = |extra: &'static [&'static str]| {
        let url = pg.url.clone();
        let wh = tempfile::tempdir().unwrap();
        async move {
            let mut args = vec![
                "housekeeping".to_string(),
                "--warehouse".into(),
                wh.path().to_str().unwrap().into(),
                "--database-url".into(),
                url,
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            sipline_async(&args).await
        }
    };

    // A publish holding its lock: nothing is dropped under it.
    let mut publisher = pg.pool().await.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('sipline_publish'))")
        .execute(&mut *publisher)
        .await
        .unwrap();
    let deferred = run(&[]).await;
    deferred.assert_ok();
    assert!(
        deferred
            .stdout
            .contains("snapshot_dates=0 snapshots=deferred"),
        "{}",
        deferred.stdout
    );
    assert_eq!(kept_dates(pool.clone()).await, weekdays);
    drop(publisher);

    // Defaults: 92 days daily, month-ends for 1,100 days.
    let first = run(&[]).await;
    first.assert_ok();
    let daily_from = latest - chrono::Days::new(92);
    let expected: Vec<NaiveDate> = weekdays
        .iter()
        .copied()
        .filter(|d| *d >= daily_from || month_end(d))
        .collect();
    assert_eq!(kept_dates(pool.clone()).await, expected);
    assert!(
        first.stdout.contains(&format!(
            "snapshot_dates={}",
            weekdays.len() - expected.len()
        )),
        "{}",
        first.stdout
    );
    // Again: nothing more.
    let again = run(&[]).await;
    assert!(
        again.stdout.contains("snapshot_dates=0"),
        "{}",
        again.stdout
    );

    // Month-ends for 200 days: the first months lose every date, and their partitions go.
    let shorter = run(&["--snapshot-history-days", "200"]).await;
    shorter.assert_ok();
    let history_from = latest - chrono::Days::new(200);
    let expected: Vec<NaiveDate> = expected
        .into_iter()
        .filter(|d| *d >= history_from)
        .collect();
    assert_eq!(kept_dates(pool.clone()).await, expected);
    let months: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'portfolio_snapshots'::regclass ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let first_month = expected[0].format("portfolio_snapshots_y%Ym%m").to_string();
    assert_eq!(months.first(), Some(&first_month), "{months:?}");
    assert_eq!(
        months.len(),
        12 - expected[0].month0() as usize,
        "{months:?}"
    );
}
