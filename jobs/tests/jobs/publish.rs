//! `db migrate`, `publish` and `sips export` against a real PostgreSQL: migrations from empty
//! and again, publishing a date twice, a reader querying while a date is published, a
//! publish that fails half-way, the outbox, `job_runs`, and mandates round-tripping.

use std::path::Path;

use sqlx::{PgPool, Row};

use crate::sip::csv;
use crate::support::{sipline, sipline_async, Postgres};

pub(crate) const FIRST: &str = "2025-03-03";
pub(crate) const SECOND: &str = "2025-03-04";

/// A small executed universe valued on two dates (blocking: call before the runtime work).
pub(crate) fn universe(warehouse: &Path) {
    let w = warehouse.to_str().unwrap();
    sipline(&[
        "generate",
        "--users",
        "300",
        "--months",
        "3",
        "--end-date",
        "2025-03-31",
        "--seed",
        "11",
        "--warehouse",
        w,
    ])
    .assert_ok();
    sipline(&[
        "sip",
        "backfill",
        "--from",
        "2025-01-01",
        "--to",
        SECOND,
        "--simulate-failures",
        "0.3",
        "--warehouse",
        w,
    ])
    .assert_ok();
    for date in [FIRST, SECOND] {
        sipline(&["portfolio", "value", "--date", date, "--warehouse", w]).assert_ok();
    }
}

/// `universe` published on FIRST with its users and mandates: a store the API serves. The
/// warehouse folder is returned for later publishes, and removed when the test drops it
/// (each is ~150 MB: kept, they filled /tmp run after run).
pub(crate) async fn published_universe(url: &str) -> PublishedUniverse {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_path_buf();
    {
        let warehouse = warehouse.clone();
        tokio::task::spawn_blocking(move || universe(&warehouse))
            .await
            .unwrap();
    }
    publish(url, &warehouse, FIRST, &["--mandates"])
        .await
        .assert_ok();
    PublishedUniverse {
        _dir: dir,
        warehouse,
    }
}

/// A published universe's warehouse folder, read as a path; removed on drop.
pub(crate) struct PublishedUniverse {
    _dir: tempfile::TempDir,
    warehouse: std::path::PathBuf,
}

impl std::ops::Deref for PublishedUniverse {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.warehouse
    }
}

pub(crate) async fn publish(
    url: &str,
    warehouse: &Path,
    date: &str,
    extra: &[&str],
) -> crate::support::Run {
    let mut args = vec![
        "publish",
        "--date",
        date,
        "--warehouse",
        warehouse.to_str().unwrap(),
        "--database-url",
        url,
    ];
    args.extend_from_slice(extra);
    sipline_async(&args).await
}

/// Everything a date's publish wrote, as text: compared before and after a re-run.
async fn published_state(pool: &PgPool, date: &str) -> String {
    let query = format!(
        "SELECT concat_ws(' | ',
           (SELECT string_agg(concat_ws(',', user_id, invested, current_value, gain, abs_return_pct, xirr, schemes, nav_date), ';' ORDER BY user_id)
              FROM portfolio_snapshots WHERE as_of = DATE '{date}'),
           (SELECT string_agg(concat_ws(',', user_id, scheme_code, units, invested, nav, nav_date, current_value, weight_pct), ';' ORDER BY user_id, scheme_code)
              FROM portfolio_lines WHERE as_of = DATE '{date}'),
           (SELECT string_agg(concat_ws(',', month_end, user_id, invested, value), ';' ORDER BY user_id, month_end)
              FROM portfolio_month_ends),
           (SELECT string_agg(concat_ws(',', sip_id, due_date, status, amount, stamp_duty, nav, units), ';' ORDER BY sip_id, due_date)
              FROM investments WHERE exec_date = DATE '{date}'),
           (SELECT string_agg(concat_ws(',', event_key, kind, payload::text), ';' ORDER BY event_key) FROM notifications),
           (SELECT string_agg(concat_ws(',', sip_id, status), ';' ORDER BY sip_id) FROM sips))"
    );
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(query))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// What a reader sees in one statement: the latest date and whether its tables agree.
const READER: &str = "SELECT p.as_of::text AS as_of, p.snapshots, p.lines,
       (SELECT count(*) FROM portfolio_latest) AS snapshots_seen,
       (SELECT count(*) FROM portfolio_lines_latest) AS lines_seen,
       (SELECT coalesce(sum(current_value), 0)::text FROM portfolio_latest) AS value_from_snapshots,
       (SELECT coalesce(sum(current_value), 0)::text FROM portfolio_lines_latest) AS value_from_lines
  FROM publications p ORDER BY p.as_of DESC LIMIT 1";

#[derive(Debug, PartialEq)]
struct Seen {
    as_of: String,
    value: String,
}

async fn read_consistent(pool: &PgPool) -> Seen {
    let row = sqlx::query(READER).fetch_one(pool).await.unwrap();
    let as_of: String = row.get("as_of");
    assert_eq!(
        row.get::<i64, _>("snapshots"),
        row.get::<i64, _>("snapshots_seen"),
        "snapshots of {as_of}"
    );
    assert_eq!(
        row.get::<i64, _>("lines"),
        row.get::<i64, _>("lines_seen"),
        "lines of {as_of}"
    );
    let value: String = row.get("value_from_snapshots");
    assert_eq!(
        value,
        row.get::<String, _>("value_from_lines"),
        "a user's value is the sum of their lines, on {as_of}"
    );
    Seen { as_of, value }
}

/// The SQL half of the serving contract matches the Rust half: the `graph_type` CHECK allows
/// exactly `serving::GraphType::ALL`, and the notifications trigger notifies the channel the
/// dispatcher listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_contract_matches_the_serving_crate() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    serving::MIGRATOR.run(&pool).await.unwrap();
    let check: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = 'visibility_graphs'::regclass AND contype = 'c'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // `CHECK ((graph_type = ANY (ARRAY['pie'::text, 'line'::text, 'bar'::text])))`
    let allowed: Vec<&str> = check.split('\'').skip(1).step_by(2).collect();
    let expected: Vec<&str> = serving::GraphType::ALL.iter().map(|g| g.as_str()).collect();
    assert_eq!(allowed, expected, "{check}");
    let trigger: String = sqlx::query_scalar(
        "SELECT string_agg(prosrc, ' ') FROM pg_proc WHERE prosrc LIKE '%pg_notify%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        trigger.contains(&format!("'{}'", serving::NOTIFICATIONS_CHANNEL)),
        "{trigger}"
    );
    // The instalment statuses the API filters on are the ones the table allows.
    let check: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conname = 'investments_status_check'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let allowed: Vec<&str> = check.split('\'').skip(1).step_by(2).collect();
    let expected: Vec<&str> = pipeline::sip::InstalmentStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(allowed, expected, "{check}");
    // The kinds and statuses of orders and plans the API validates, the job executes and the
    // OpenAPI document lists are the ones the tables allow.
    use pipeline::orders::plans::{PlanKind, PlanStatus};
    use pipeline::orders::{OrderKind, OrderStatus};
    for (constraint, expected) in [
        (
            "orders_kind_check",
            OrderKind::ALL.map(OrderKind::as_str).to_vec(),
        ),
        (
            "orders_status_check",
            OrderStatus::ALL.map(OrderStatus::as_str).to_vec(),
        ),
        (
            "plans_kind_check",
            PlanKind::ALL.map(PlanKind::as_str).to_vec(),
        ),
        (
            "plans_status_check",
            PlanStatus::ALL.map(PlanStatus::as_str).to_vec(),
        ),
        (
            "sips_status_check",
            pipeline::sip::SipStatus::ALL
                .map(pipeline::sip::SipStatus::as_str)
                .to_vec(),
        ),
    ] {
        let check: String = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1",
        )
        .bind(constraint)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{constraint}: {e}"));
        let allowed: Vec<&str> = check.split('\'').skip(1).step_by(2).collect();
        assert_eq!(allowed, expected, "{constraint}: {check}");
    }
    // "Open-ended" is one rule: SQL's `sipline_open_ended` agrees with `Scheme::is_open_ended`.
    for scheme_type in [
        None,
        Some("Open Ended"),
        Some("  open ended schemes"),
        Some("OPEN ENDED Scheme"),
        Some("Close Ended"),
        Some("Interval Fund"),
        Some(""),
        Some("Open"),
        Some("open-ended"),
    ] {
        let scheme = pipeline::nav::Scheme {
            scheme_code: 1,
            isin_growth: None,
            isin_reinvestment: None,
            scheme_name: "x".into(),
            fund_house: None,
            category: None,
            scheme_type: scheme_type.map(str::to_string),
            plan: None,
            option: None,
        };
        let sql: bool = sqlx::query_scalar("SELECT sipline_open_ended($1)")
            .bind(scheme_type)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(sql, scheme.is_open_ended(), "{scheme_type:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_from_empty_and_again() {
    let pg = Postgres::start().await;
    for _ in 0..2 {
        let run = sipline_async(&["db", "migrate", "--database-url", &pg.url]).await;
        run.assert_ok();
        assert!(run.stdout.contains("db migrate ok"), "{}", run.stdout);
    }
    let pool = pg.pool().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Every file in sql/migrations, each applied once however often `db migrate` runs.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/migrations"))
        .unwrap()
        .filter(|f| f.as_ref().unwrap().path().extension() == Some("sql".as_ref()))
        .count();
    assert_eq!(applied, files as i64);
    assert!(files >= 4);
    for table in [
        "users",
        "sips",
        "navs",
        "schemes",
        "investments",
        "portfolio_snapshots",
        "portfolio_latest",
        "portfolio_lines",
        "visibility_graphs",
        "portfolio_month_ends",
        "notifications",
        "nav_alerts",
        "job_runs",
        "publications",
        "portfolio_monthly",
    ] {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(exists, "{table} after migrate");
    }
    // Without the extension the plain path ran: native partitions, and the TimescaleDB
    // statements were parsed (PostgreSQL validates a plpgsql body when it is created).
    let kind: String = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE relname = 'portfolio_snapshots'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kind, "p");
    let timescale_sql: bool = sqlx::query_scalar(
        "SELECT count(*) = 1 FROM pg_proc WHERE proname = 'sipline_timescale_serving'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(timescale_sql);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_is_atomic_idempotent_and_feeds_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    {
        let warehouse = warehouse.clone();
        tokio::task::spawn_blocking(move || universe(&warehouse))
            .await
            .unwrap();
    }
    let pg = Postgres::start().await;
    let pool = pg.pool().await;

    // A date that was never valued is a missing upstream (exit 4), and publishes nothing.
    let missing = publish(&pg.url, &warehouse, "2025-03-05", &[]).await;
    assert_eq!(missing.code, 4, "{}", missing.stderr);

    let first = publish(&pg.url, &warehouse, FIRST, &["--mandates"]).await;
    first.assert_ok();
    assert!(
        first.stdout.contains("mandates loaded: new_users=300"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains(&format!("publish ok: date={FIRST} snapshots=300")),
        "{}",
        first.stdout
    );
    let seen = read_consistent(&pool).await;
    assert_eq!(seen.as_of, FIRST);
    // The serving store agrees with the warehouse to the paisa.
    let warehouse_value = csv(
        &warehouse,
        &format!(
            "SELECT sum(current_value) AS v FROM portfolio_snapshots WHERE as_of = DATE '{FIRST}'"
        ),
    );
    assert_eq!(warehouse_value, format!("v\n{}\n", seen.value));
    // Every SIP event of the date is one notification.
    let events = csv(
        &warehouse,
        &format!("SELECT count(*) AS n FROM sip_events WHERE exec_date = DATE '{FIRST}'"),
    );
    let notifications: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, format!("n\n{notifications}\n"));
    assert!(notifications > 0);

    // Publishing the same date again changes nothing.
    let before = published_state(&pool, FIRST).await;
    publish(&pg.url, &warehouse, FIRST, &[]).await.assert_ok();
    assert_eq!(published_state(&pool, FIRST).await, before);
    let ids: i64 = sqlx::query_scalar("SELECT max(notification_id) FROM notifications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(ids, notifications, "a re-run adds no notification");

    // A reader querying all the while sees the first date or the second, never a mix; the
    // publish ends with a NOTIFY that a listener receives after the commit.
    let mut listener = sqlx::postgres::PgListener::connect(&pg.url).await.unwrap();
    listener.listen("sipline_publish").await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let pool = pool.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            // Every read with when it started and ended, to show that reads overlapped the
            // publish rather than all falling before or after it.
            let mut reads = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let now = read_consistent(&pool).await;
                reads.push((started, std::time::Instant::now(), now));
            }
            reads
        })
    };
    let publish_started = std::time::Instant::now();
    let second = publish(&pg.url, &warehouse, SECOND, &[]).await;
    let publish_ended = std::time::Instant::now();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    second.assert_ok();
    let reads = reader.await.unwrap();
    let during = reads
        .iter()
        .filter(|(start, end, _)| *start >= publish_started && *end <= publish_ended)
        .count();
    assert!(
        during >= 3,
        "only {during} of {} reads ran while the publish did",
        reads.len()
    );
    let mut seen: Vec<&Seen> = Vec::new();
    for (_, _, now) in &reads {
        if seen.last() != Some(&now) {
            seen.push(now);
        }
    }
    let dates: Vec<&str> = seen.iter().map(|s| s.as_of.as_str()).collect();
    assert_eq!(dates.first(), Some(&FIRST), "{seen:?}");
    assert!(
        dates.iter().all(|d| *d == FIRST || *d == SECOND),
        "{seen:?}"
    );
    assert_eq!(read_consistent(&pool).await.as_of, SECOND);
    // The NAVs the publish upserts notify first (the API's NAV cache), then the date.
    let mut notices = Vec::new();
    while !notices.last().is_some_and(|n: &String| n.contains("as_of")) {
        let notice = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
            .await
            .expect("NOTIFY after publish")
            .unwrap();
        notices.push(notice.payload().to_string());
    }
    let (date, navs) = notices.split_last().unwrap();
    assert_eq!(*date, format!(r#"{{"as_of":"{SECOND}"}}"#));
    assert!(navs.iter().all(|n| n.contains("navs_to")), "{notices:?}");

    // A publish that fails half-way (one bucket of the lines is corrupt, found after the
    // snapshots were already copied) leaves the served date as it was.
    let served = published_state(&pool, SECOND).await;
    let third = "2025-03-05";
    {
        let warehouse = warehouse.clone();
        tokio::task::spawn_blocking(move || {
            let w = warehouse.to_str().unwrap();
            sipline(&["sip", "execute", "--date", third, "--warehouse", w]).assert_ok();
            sipline(&["portfolio", "value", "--date", third, "--warehouse", w]).assert_ok();
        })
        .await
        .unwrap();
    }
    let corrupt = warehouse.join(format!(
        "portfolio_lines/as_of={third}/bucket=63/part-00000.parquet"
    ));
    let good = std::fs::read(&corrupt).unwrap();
    std::fs::write(&corrupt, b"not parquet").unwrap();
    let failed = publish(&pg.url, &warehouse, third, &[]).await;
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    assert!(failed.stderr.contains("bucket=63"), "{}", failed.stderr);
    assert_eq!(read_consistent(&pool).await.as_of, SECOND);
    assert_eq!(published_state(&pool, SECOND).await, served);
    let third_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM portfolio_snapshots WHERE as_of = DATE '2025-03-05'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(third_rows, 0, "nothing of the failed date is visible");

    // Repaired, it publishes; only the two latest dates keep lines.
    std::fs::write(&corrupt, good).unwrap();
    let repaired = publish(&pg.url, &warehouse, third, &[]).await;
    repaired.assert_ok();
    assert!(
        repaired.stdout.contains("dropped_partitions=1"),
        "{}",
        repaired.stdout
    );
    assert_eq!(read_consistent(&pool).await.as_of, third);
    let kept: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'portfolio_lines'::regclass ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        kept,
        ["portfolio_lines_d20250304", "portfolio_lines_d20250305"]
    );
    // Snapshots are history: every published date is a partition of its month, none dropped.
    let snapshot_dates: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'portfolio_snapshots_y2025m03'::regclass ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        snapshot_dates,
        [
            "portfolio_snapshots_d20250303",
            "portfolio_snapshots_d20250304",
            "portfolio_snapshots_d20250305"
        ]
    );

    // Every run is in job_runs, with its outcome.
    let runs: Vec<(String, String)> = sqlx::query_as(
        "SELECT run_date::text, outcome FROM job_runs WHERE job = 'publish' ORDER BY run_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected = [
        ("2025-03-05", "missing_upstream"),
        (FIRST, "ok"),
        (FIRST, "ok"),
        (SECOND, "ok"),
        (third, "failed"),
        (third, "ok"),
    ]
    .map(|(d, o)| (d.to_string(), o.to_string()));
    assert_eq!(runs, expected);
    let rows_out: i64 = sqlx::query_scalar(
        "SELECT rows_out FROM job_runs WHERE job = 'publish' AND outcome = 'ok' ORDER BY run_id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(rows_out >= 300, "{rows_out}");

    // The publish of a month's last business day tells each user holding funds that their
    // statement is ready, once: with the rest of March as holidays, the third date closes it.
    let holidays = tempfile::NamedTempFile::new().unwrap();
    let rest_of_march: String = (6..=31).map(|d| format!("2025-03-{d:02}\n")).collect();
    std::fs::write(holidays.path(), rest_of_march).unwrap();
    let closing = ["--holidays", holidays.path().to_str().unwrap()];
    for _ in 0..2 {
        publish(&pg.url, &warehouse, third, &closing)
            .await
            .assert_ok();
    }
    let (statements, holders): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM notifications WHERE kind = 'statement_ready' \
                   AND event_key LIKE 'statement:%:2025-03' AND payload->>'as_of' = '2025-03-05'), \
                (SELECT count(*) FROM portfolio_snapshots WHERE as_of = DATE '2025-03-05' AND schemes > 0)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(holders > 0);
    assert_eq!(
        statements, holders,
        "one statement per holder, across two runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sips_export_round_trips_mandates_into_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    {
        let warehouse = warehouse.clone();
        tokio::task::spawn_blocking(move || universe(&warehouse))
            .await
            .unwrap();
    }
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    publish(&pg.url, &warehouse, FIRST, &["--mandates"])
        .await
        .assert_ok();

    // A client creates a SIP due on the 5th and cancels another, through the system of record.
    let user: i64 = sqlx::query_scalar("SELECT min(user_id) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    let scheme: i64 = sqlx::query_scalar(
        "SELECT scheme_code FROM navs WHERE nav_date = DATE '2025-03-03' ORDER BY scheme_code LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let new_sip: i64 = sqlx::query_scalar(
        "INSERT INTO sips (user_id, scheme_code, amount, sip_day, start_date) \
         VALUES ($1, $2, 2500.00, 5, DATE '2025-03-05') RETURNING sip_id",
    )
    .bind(user)
    .bind(scheme)
    .fetch_one(&pool)
    .await
    .unwrap();
    let max_generated: i64 = sqlx::query_scalar("SELECT max(sip_id) FROM sips WHERE sip_id <> $1")
        .bind(new_sip)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        new_sip > max_generated,
        "ids continue after the loaded ones"
    );
    // A person who signed up through the API (not in the generated universe) starts one too.
    let newcomer: i64 = sqlx::query_scalar(
        "INSERT INTO users (auth_subject) VALUES ('auth0|signed-up-later') RETURNING user_id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sips (user_id, scheme_code, amount, sip_day, start_date) \
         VALUES ($1, $2, 1000.00, 5, DATE '2025-03-05')",
    )
    .bind(newcomer)
    .bind(scheme)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE sips SET status = 'cancelled' WHERE sip_id = (SELECT min(sip_id) FROM sips)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM sips")
        .fetch_one(&pool)
        .await
        .unwrap();
    // These changes stand for ones made before 5 March's cut-off: their history rows say so.
    sqlx::query(
        "UPDATE sip_changes SET effective_from = DATE '2025-03-04', changed_at = TIMESTAMPTZ '2025-03-04 10:00+05:30' \
         WHERE effective_from > DATE '2025-03-04'",
    )
    .execute(&pool)
    .await
    .unwrap();

    let w = warehouse.to_str().unwrap().to_string();
    let url = pg.url.clone();
    let (exported, run, snapshot) = tokio::task::spawn_blocking(move || {
        let exported = sipline(&[
            "sips", "export", "--date", "2025-03-05", "--warehouse", &w, "--database-url", &url,
        ]);
        let run = sipline(&["sip", "execute", "--date", "2025-03-05", "--warehouse", &w]);
        let snapshot = csv(
            Path::new(&w),
            &format!(
                "SELECT count(*) AS n, sum(CASE WHEN sip_id = {new_sip} THEN amount END) AS new_amount \
                 FROM sips WHERE as_of = DATE '2025-03-05'"
            ),
        );
        (exported, run, snapshot)
    })
    .await
    .unwrap();
    exported.assert_ok();
    assert!(
        exported
            .stdout
            .contains(&format!("sips export ok: as_of=2025-03-05 sips={total}")),
        "{}",
        exported.stdout
    );
    assert_eq!(snapshot, format!("n,new_amount\n{total},2500.00\n"));
    run.assert_ok();
    let executed = csv(
        &warehouse,
        &format!(
            "SELECT status, amount FROM investments WHERE exec_date = DATE '2025-03-05' AND sip_id = {new_sip}"
        ),
    );
    assert_eq!(executed, "status,amount\nexecuted,2500.00\n");

    // The newcomer's instalment executes and, since the export brought the users along, is
    // valued: their portfolio holds what they paid.
    let w = warehouse.to_str().unwrap().to_string();
    let valued = tokio::task::spawn_blocking(move || {
        sipline(&[
            "portfolio",
            "value",
            "--date",
            "2025-03-05",
            "--warehouse",
            &w,
        ])
    })
    .await
    .unwrap();
    valued.assert_ok();
    let snapshot = csv(
        &warehouse,
        &format!(
            "SELECT invested, schemes FROM portfolio_snapshots WHERE as_of = DATE '2025-03-05' AND user_id = {newcomer}"
        ),
    );
    assert_eq!(snapshot, "invested,schemes\n1000.00,1\n");

    // The newcomer cancels today, long after 5 March. Re-exporting 5 March rebuilds that day's
    // snapshot from the history, so it is byte for byte what it was, and re-running the day
    // keeps the purchase the cancellation must not undo.
    let w = warehouse.to_str().unwrap().to_string();
    let before = crate::support::snapshot(&warehouse);
    sqlx::query("UPDATE sips SET status = 'cancelled' WHERE user_id = $1")
        .bind(newcomer)
        .execute(&pool)
        .await
        .unwrap();
    let url = pg.url.clone();
    let (exported, run) = tokio::task::spawn_blocking(move || {
        let exported = sipline(&[
            "sips",
            "export",
            "--date",
            "2025-03-05",
            "--warehouse",
            &w,
            "--database-url",
            &url,
        ]);
        let run = sipline(&["sip", "execute", "--date", "2025-03-05", "--warehouse", &w]);
        (exported, run)
    })
    .await
    .unwrap();
    exported.assert_ok();
    run.assert_ok();
    let after = crate::support::snapshot(&warehouse);
    for (path, bytes) in &before {
        let p = path.to_string_lossy();
        if p.starts_with("sips/") || p.starts_with("investments/") || p.starts_with("users/") {
            assert!(after.get(path) == Some(bytes), "{p} changed");
        }
    }
    let kept = csv(
        &warehouse,
        &format!(
            "SELECT i.status, i.amount, s.status AS sip_status FROM investments i \
             JOIN sips s ON s.sip_id = i.sip_id AND s.as_of = DATE '2025-03-05' \
             WHERE i.exec_date = DATE '2025-03-05' AND i.user_id = {newcomer}"
        ),
    );
    assert_eq!(kept, "status,amount,sip_status\nexecuted,1000.00,active\n");
    // Exported for a date whose cut-off has not passed (tomorrow), it is refused: changes can
    // still apply to it.
    // By the job's clock (`--now`), set rather than read: 2025-03-06 at noon in India.
    let tomorrow = "2025-03-07".to_string();
    let w = warehouse.to_str().unwrap().to_string();
    let url = pg.url.clone();
    let early = tokio::task::spawn_blocking(move || {
        sipline(&[
            "sips",
            "export",
            "--date",
            &tomorrow,
            "--now",
            "2025-03-06T12:00:00+05:30",
            "--warehouse",
            &w,
            "--database-url",
            &url,
        ])
    })
    .await
    .unwrap();
    assert_eq!(early.code, 4, "{}", early.stderr);
    assert!(early.stderr.contains("has not passed"), "{}", early.stderr);
}

/// Migration 0019 takes the date out of the per-date partitions' keys without rebuilding the
/// partitions a store already has: they stay attached, with their rows and their own unique
/// `(as_of, …)` keys, while the parents lose theirs. Lines and a date-partitioned month of
/// snapshots (0017) and a plain month (before 0017) are built as publishes made them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0019_keeps_existing_partitions_and_their_keys() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    serving::MIGRATOR.run_to(18, &pool).await.unwrap();
    for statement in [
        "CREATE TABLE portfolio_snapshots_y2025m02 PARTITION OF portfolio_snapshots \
         FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')",
        "SELECT sipline_ensure_snapshot_month('2025-03-03')",
        "CREATE TABLE portfolio_snapshots_d20250303 PARTITION OF portfolio_snapshots_y2025m03 \
         FOR VALUES IN ('2025-03-03')",
        "ALTER TABLE portfolio_snapshots_d20250303 ADD CONSTRAINT portfolio_snapshots_d20250303_as_of \
         CHECK (as_of = DATE '2025-03-03')",
        "CREATE TABLE portfolio_lines_d20250303 PARTITION OF portfolio_lines FOR VALUES IN ('2025-03-03')",
        "INSERT INTO portfolio_snapshots (as_of, user_id, invested, current_value, gain, schemes) \
         VALUES ('2025-02-28', 7, 100, 101, 1, 1), ('2025-03-03', 7, 200, 203, 3, 1)",
        "INSERT INTO portfolio_lines (as_of, user_id, scheme_code, units, invested, nav_date, nav, \
         current_value, weight_pct) VALUES ('2025-03-03', 7, 100033, 2, 200, '2025-03-03', 101.5, 203, 100)",
        "INSERT INTO notifications (event_key, user_id, kind, payload) VALUES ('sip:1:2025-03-03:executed', 7, 'sip_executed', '{}')",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    serving::MIGRATOR.run(&pool).await.unwrap();

    let attached: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent IN ('portfolio_snapshots'::regclass, 'portfolio_snapshots_y2025m03'::regclass, \
           'portfolio_lines'::regclass) ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        attached,
        [
            "portfolio_lines_d20250303",
            "portfolio_snapshots_d20250303",
            "portfolio_snapshots_y2025m02",
            "portfolio_snapshots_y2025m03"
        ]
    );
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE contype = 'p' AND conrelid::regclass::text LIKE 'portfolio_%' \
           AND conrelid::regclass::text NOT LIKE 'portfolio_month_ends%' \
           AND conrelid::regclass::text NOT LIKE 'portfolio_intraday%' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let keys: Vec<(&str, &str)> = keys.iter().map(|(t, k)| (t.as_str(), k.as_str())).collect();
    assert_eq!(
        keys,
        [
            (
                "portfolio_lines_d20250303",
                "PRIMARY KEY (as_of, user_id, scheme_code)"
            ),
            (
                "portfolio_snapshots_d20250303",
                "PRIMARY KEY (as_of, user_id)"
            ),
            (
                "portfolio_snapshots_y2025m02",
                "PRIMARY KEY (as_of, user_id)"
            ),
        ],
        "the parents (and the date-partitioned month) have no key; the partitions keep theirs"
    );
    // The rows are where they were, read through the parents, and the old keys still hold.
    let seen: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM portfolio_snapshots WHERE user_id = 7), \
                (SELECT count(*) FROM portfolio_lines WHERE as_of = DATE '2025-03-03' AND user_id = 7)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(seen, (2, 1));
    let twice = sqlx::query(
        "INSERT INTO portfolio_snapshots (as_of, user_id, invested, current_value, gain, schemes) \
         VALUES ('2025-03-03', 7, 1, 1, 0, 1)",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(twice.to_string().contains("duplicate key"), "{twice}");
    // The outbox: one user index, a bytewise idempotency key that still refuses a repeat.
    let outbox: (Option<String>, bool) = sqlx::query_as(
        "SELECT (SELECT collname::text FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation \
                 WHERE a.attrelid = 'notifications'::regclass AND a.attname = 'event_key'), \
                to_regclass('notifications_user_idx') IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(outbox, (Some("C".to_string()), true));
    let repeat = sqlx::query(
        "INSERT INTO notifications (event_key, user_id, kind, payload) \
         VALUES ('sip:1:2025-03-03:executed', 7, 'sip_executed', '{}') ON CONFLICT (event_key) DO NOTHING",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(repeat.rows_affected(), 0);
}

/// A person's whole record stays in the serving store (the default): an instalment from a
/// year before is still there after today's publish. `--keep-investment-months` asks for a
/// window, and then the months before it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_record_is_kept_unless_a_window_is_asked_for() {
    let pg = Postgres::start().await;
    let warehouse = published_universe(&pg.url).await;
    let pool = pg.pool().await;
    // Last year's month, as an earlier publish would have left it.
    sqlx::query(
        "CREATE TABLE investments_y2024m03 PARTITION OF investments \
           FOR VALUES FROM ('2024-03-01') TO ('2024-04-01')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO investments (exec_date, sip_id, due_date, user_id, scheme_code, status, \
           amount, stamp_duty, nav_date, nav, units) \
         SELECT '2024-03-05', sip_id, '2024-03-05', user_id, scheme_code, 'executed', 500, 0.03, \
           '2024-03-05', 10, 49.997 FROM sips LIMIT 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    let old = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM investments WHERE exec_date < '2025-01-01'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    publish(&pg.url, &warehouse, SECOND, &[]).await.assert_ok();
    assert_eq!(old(pool.clone()).await, 1, "kept by default");
    publish(
        &pg.url,
        &warehouse,
        SECOND,
        &["--keep-investment-months", "3"],
    )
    .await
    .assert_ok();
    assert_eq!(
        old(pool.clone()).await,
        0,
        "a three-month window drops March 2024"
    );
    let months: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT date_trunc('month', exec_date)) FROM investments",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(months, 1, "March 2025 kept");
}
