//! Crash-safe, tried by force (issue 35 §4): each warehouse job (`debits ingest`, `sip
//! execute`, `portfolio value`; the serving jobs below: `nav ingest`, `publish` daily and
//! hourly, `orders execute`, `notify dispatch`, `housekeeping`) is killed with SIGKILL at
//! moments spread over its run, many times, then run to completion; the warehouse then holds
//! exactly the bytes an uninterrupted run wrote (nothing doubled, nothing lost, no partition
//! half-written). `SIPLINE_CRASH_KILLS` sets the kills per job (CI: 6; by hand, more).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::sip::generate;
use crate::support::{fixture, sipline, sipline_async, snapshot, Postgres};

/// How long the job takes uninterrupted, and its output.
fn timed_run(args: &[&str]) -> Duration {
    let started = Instant::now();
    sipline(args).assert_ok();
    started.elapsed()
}

/// Starts the job and kills it with SIGKILL after `after`; whether it was still running.
fn kill_after<S: AsRef<std::ffi::OsStr>>(args: &[S], after: Duration) -> bool {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sipline"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    // SIGKILL: no destructor, no flush, as a power cut or the OOM killer would stop it.
    let _ = child.kill();
    let _ = child.wait();
    running
}

fn kills() -> u32 {
    std::env::var("SIPLINE_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(6)
}

/// Paths whose bytes differ between two folders' snapshots, or that only one holds.
fn differing_files<'a>(
    a: &'a std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    b: &'a std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
) -> Vec<&'a std::path::PathBuf> {
    a.keys()
        .chain(b.keys())
        .filter(|p| a.get(*p) != b.get(*p))
        .collect()
}

/// Copies a warehouse folder's data (the state before the job).
fn copy(from: &Path, to: &Path) {
    for (relative, bytes) in snapshot(from) {
        let target = to.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

#[test]
fn jobs_killed_at_random_moments_then_rerun_write_what_one_run_writes() {
    let base = tempfile::tempdir().unwrap();
    generate(base.path(), "400", "0/1");
    let date = "2025-01-31";
    // The bank's report for the run: nothing returned, so every bucket's `debit_failures`
    // partition of the date is written, empty (a write over all buckets to kill).
    let report = base.path().with_extension("debits.csv");
    std::fs::write(&report, "sip_id,due_date,amount,status,reason_code\n").unwrap();
    let report = report.to_str().unwrap().to_string();
    // Each job with the state it starts from: the debit report, execution on the generated
    // universe, then valuation on the executed one.
    let jobs: [(&str, Vec<&str>); 3] = [
        (
            "debits ingest",
            vec!["debits", "ingest", "--input", &report, "--date", date],
        ),
        ("sip execute", vec!["sip", "execute", "--date", date]),
        (
            "portfolio value",
            vec!["portfolio", "value", "--date", date],
        ),
    ];
    let mut killed_mid_run = 0;
    for (name, args) in jobs {
        let clean = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        copy(base.path(), clean.path());
        copy(base.path(), crashed.path());
        let with = |dir: &Path| {
            let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            all.extend(["--warehouse".to_string(), dir.to_str().unwrap().to_string()]);
            all
        };
        let clean_args = with(clean.path());
        let clean_args: Vec<&str> = clean_args.iter().map(String::as_str).collect();
        let took = timed_run(&clean_args);
        let crash_args = with(crashed.path());
        let crash_args: Vec<&str> = crash_args.iter().map(String::as_str).collect();
        let n = kills();
        let landed_before = killed_mid_run;
        for i in 0..n {
            // Spread over the whole run, from its start to just past its end.
            let after = took.mul_f64(f64::from(i) / f64::from(n.max(1)) * 1.1);
            if kill_after(&crash_args, after) {
                killed_mid_run += 1;
            }
        }
        sipline(&crash_args).assert_ok();
        // Relative paths, manifests (`_runs`) left out: they record when and how long.
        let (clean_files, crashed_files) = (snapshot(clean.path()), snapshot(crashed.path()));
        let differing = differing_files(&clean_files, &crashed_files);
        assert!(
            differing.is_empty(),
            "{name}: after {n} kills and a re-run, these files differ from an uninterrupted run: {differing:?}"
        );
        eprintln!(
            "{name}: {n} kills ({} while running, uninterrupted run {took:?}), files differing: 0",
            killed_mid_run - landed_before
        );
        // The state it leaves is the next job's input.
        copy(clean.path(), base.path());
    }
    assert!(killed_mid_run > 0, "no kill landed while a job was running");
}

/// Everything the serving store holds, as text: every table (partitions through their parents)
/// but the run log and idempotency keys, rows sorted, columns that record when (`*_at`) or a
/// sequence's draw (a rolled-back insert still draws) left out, and the `ignored` ones.
async fn serving_contents(pool: &sqlx::PgPool, ignored: &[&str]) -> Vec<(String, String)> {
    let ignored: Vec<String> = ["notification_id", "delivery_id"]
        .iter()
        .chain(ignored)
        .map(|c| format!("'{c}'"))
        .collect();
    let ignored = ignored.join(", ");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND c.relname NOT IN ('job_runs', 'idempotency_keys', '_sqlx_migrations') \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut contents = Vec::new();
    for table in tables {
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') FROM ( \
               SELECT (SELECT jsonb_object_agg(k, v) FROM jsonb_each(to_jsonb(t)) e(k, v) \
                       WHERE k NOT LIKE '%\\_at' AND k NOT IN ({ignored})) AS r \
               FROM {table} t) rows"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        contents.push((table, rows));
    }
    contents
}

/// Waits until no delivery is held under a claim that has not expired (at most a minute).
async fn leases_expired(pool: &sqlx::PgPool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM notification_deliveries \
               WHERE status = 'delivering' AND claimed_until >= now())",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if !held {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a killed dispatcher's claim outlived its lease by a minute"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One side of the comparison: a warehouse folder, a database, and a webhook receiver.
struct Side {
    warehouse: tempfile::TempDir,
    pg: Postgres,
    webhook: Webhook,
}

impl Side {
    async fn new(from: &Path) -> Self {
        let side = Self {
            warehouse: tempfile::tempdir().unwrap(),
            pg: Postgres::start().await,
            webhook: Webhook::start().await,
        };
        copy(from, side.warehouse.path());
        sipline_async(&["db", "migrate", "--database-url", &side.pg.url])
            .await
            .assert_ok();
        side
    }

    fn args(&self, job: &ServingJob) -> Vec<String> {
        let mut args = job.args.clone();
        args.extend(["--database-url".into(), self.pg.url.clone()]);
        if job.delivers {
            args.extend([
                "--webhook-url".into(),
                self.webhook.url.clone(),
                "--webhook-secret".into(),
                "crash-test-secret-of-32-bytes-or-more".into(),
            ]);
        } else {
            args.extend([
                "--warehouse".into(),
                self.warehouse.path().to_str().unwrap().into(),
            ]);
        }
        args
    }
}

/// A webhook receiver that answers 204 to everything and counts each idempotency key.
struct Webhook {
    url: String,
    keys: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u32>>>,
}

impl Webhook {
    async fn start() -> Self {
        let keys = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let seen = keys.clone();
        let app = axum::Router::new().fallback(axum::routing::post(
            move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|k| k.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    *seen.lock().unwrap().entry(key).or_insert(0) += 1;
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, keys }
    }

    fn keys(&self) -> std::collections::BTreeMap<String, u32> {
        self.keys.lock().unwrap().clone()
    }
}

/// One serving job of the night, as the crash test runs it.
struct ServingJob {
    name: &'static str,
    args: Vec<String>,
    /// SQL run on both sides first (what people did during the day).
    before: Option<&'static str>,
    /// SQL run then on the crashed side only (what an earlier crash left that must not show).
    crashed_before: Option<&'static str>,
    /// A dispatcher: given the side's webhook instead of the warehouse.
    delivers: bool,
    /// Columns that differ by design after a kill (a killed attempt counts: at least once),
    /// from this job on.
    ignored: &'static [&'static str],
    /// A dispatcher's claims: the final re-run waits until every claim a killed run left
    /// has expired by PostgreSQL's clock, as a scheduled pass a minute later would find them.
    settle: bool,
}

impl ServingJob {
    fn new(name: &'static str, args: &[&str]) -> Self {
        Self {
            name,
            args: args.iter().map(|a| a.to_string()).collect(),
            before: None,
            crashed_before: None,
            delivers: false,
            ignored: &[],
            settle: false,
        }
    }
}

/// Draws from the orders' id sequence that no row kept, as a placement killed before its
/// commit leaves (a sequence's draw survives a rollback): the re-run must place the same ids.
const DRAWN_ORDER_IDS: &str = "SELECT nextval(pg_get_serial_sequence('orders', 'order_id')) \
     FROM generate_series(1, 5)";

/// What people did on SECOND before its cut-off: for each user, a lumpsum into the scheme of
/// their first SIP, a redemption of ₹1,000-odd, or a redemption of everything held there (by
/// user id modulo 3); an SWP due on the 4th for every tenth user and an STP to another scheme
/// of the same fund house for every tenth but one. Some redemptions fail (less held than
/// asked): outcomes too.
const DAYS_ORDERS: &str = "WITH first_sip AS ( \
       SELECT DISTINCT ON (user_id) user_id, scheme_code FROM sips ORDER BY user_id, sip_id), \
     orders_placed AS ( \
       INSERT INTO orders (user_id, kind, scheme_code, amount, redeem_all, received_at, \
         nav_date, executes_on, cancel_before) \
       SELECT user_id, CASE user_id % 3 WHEN 0 THEN 'purchase' ELSE 'redemption' END, \
         scheme_code, CASE WHEN user_id % 3 = 2 THEN NULL ELSE 1000 + user_id END, \
         user_id % 3 = 2, TIMESTAMPTZ '2025-03-04 04:00:00+00', DATE '2025-03-04', \
         DATE '2025-03-04', TIMESTAMPTZ '2025-03-04 09:30:00+00' \
       FROM first_sip RETURNING 1), \
     plans_started AS ( \
       INSERT INTO plans (user_id, kind, scheme_code, target_scheme_code, amount, plan_day, \
         start_date, created_at, active_since) \
       SELECT f.user_id, CASE WHEN f.user_id % 10 = 1 THEN 'swp' ELSE 'stp' END, f.scheme_code, \
         CASE WHEN f.user_id % 10 = 2 THEN t.scheme_code END, 500, 4, DATE '2025-03-01', \
         TIMESTAMPTZ '2025-02-01 00:00:00+00', TIMESTAMPTZ '2025-02-01 00:00:00+00' \
       FROM first_sip f JOIN schemes s ON s.scheme_code = f.scheme_code \
         LEFT JOIN LATERAL (SELECT min(t.scheme_code) AS scheme_code FROM schemes t \
           WHERE t.fund_house = s.fund_house AND t.scheme_code <> s.scheme_code) t ON true \
       WHERE f.user_id % 10 = 1 OR (f.user_id % 10 = 2 AND t.scheme_code IS NOT NULL) \
       RETURNING 1) \
     SELECT (SELECT count(*) FROM orders_placed), (SELECT count(*) FROM plans_started)";

/// Old settled notifications for housekeeping to archive: fixed ids and times, so both sides
/// archive the same bytes.
const OLD_NOTIFICATIONS: &str = "INSERT INTO notifications \
       (notification_id, event_key, user_id, kind, payload, status, created_at, delivered_at) \
     OVERRIDING SYSTEM VALUE SELECT 1000000 + i, 'old:' || i, u.user_id, 'sip_executed', jsonb_build_object('sip_id', i), \
            'delivered', TIMESTAMPTZ '2025-06-01 04:00:00+00' + i * INTERVAL '37 minutes', \
            TIMESTAMPTZ '2025-06-01 04:00:01+00' + i * INTERVAL '37 minutes' \
     FROM generate_series(1, 3000) i \
     JOIN LATERAL (SELECT user_id FROM users ORDER BY user_id LIMIT 1) u ON true";

/// The jobs that write the serving store (issue 35 §4), killed with SIGKILL at moments spread
/// over their run and re-run, in the order a night runs them: `nav ingest` (the real AMFI file,
/// 865 dates), `publish` of a first date with its mandates, `publish --hourly` of the next
/// date's 10:00 valuation over it, `publish` of that next date, `orders execute` of the
/// date's lumpsums, redemptions, SWPs and STPs, `notify dispatch` of everything those told
/// people (to a webhook), and `housekeeping` archiving 3,000 old notifications over 79 days.
/// After each, the warehouse's files and every table of the serving store equal an
/// uninterrupted run's; the dispatcher's deliveries may have been attempted more than once
/// (at least once, by design), and every message the uninterrupted run delivered was
/// delivered.
///
/// Slow (about 140 s in CI, the longest test): seven jobs, each run once whole and then killed
/// at six moments (`SIPLINE_CRASH_KILLS`) and re-run, the whole serving store compared after
/// every re-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_jobs_killed_at_random_moments_then_rerun_leave_what_one_run_leaves() {
    let base = tempfile::tempdir().unwrap();
    {
        let base = base.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            crate::publish::universe(&base);
            let w = base.to_str().unwrap();
            sipline(&[
                "portfolio",
                "value",
                "--hourly",
                "--date",
                crate::publish::SECOND,
                "--hour",
                "10",
                "--warehouse",
                w,
            ])
            .assert_ok();
        })
        .await
        .unwrap();
    }
    let clean = Side::new(base.path()).await;
    let crashed = Side::new(base.path()).await;
    let navs = fixture("NAVAll_real_2025-05-16.txt");
    let navs = navs.to_str().unwrap();
    let jobs = [
        ServingJob::new(
            "nav ingest",
            &["nav", "ingest", "--source", "amfi", "--input", navs],
        ),
        ServingJob::new(
            "publish --mandates",
            &["publish", "--date", crate::publish::FIRST, "--mandates"],
        ),
        ServingJob::new(
            "publish --hourly",
            &["publish", "--date", crate::publish::SECOND, "--hourly"],
        ),
        ServingJob::new("publish", &["publish", "--date", crate::publish::SECOND]),
        ServingJob {
            before: Some(DAYS_ORDERS),
            crashed_before: Some(DRAWN_ORDER_IDS),
            ..ServingJob::new(
                "orders execute",
                &[
                    "--now",
                    "2025-03-04T20:00:00+05:30",
                    "orders",
                    "execute",
                    "--date",
                    crate::publish::SECOND,
                ],
            )
        },
        ServingJob {
            delivers: true,
            ignored: &["attempts"],
            // The claim a killed dispatcher held: 1 s lease, raised to one round of 5 s
            // sends plus the 5 s margin, counted from when PostgreSQL ran the claim (a
            // starved server can run it after the kill: a fixed 11 s sleep once fell short).
            settle: true,
            ..ServingJob::new(
                "notify dispatch",
                &[
                    "notify",
                    "dispatch",
                    "--lease-secs",
                    "1",
                    // Long enough that a loaded machine times out no send of the
                    // uninterrupted run; attempts enough that reclaims after many kills
                    // never make a delivery dead.
                    "--timeout-secs",
                    "5",
                    "--max-attempts",
                    "100",
                    // A send that fails anyway (a loaded machine) is due again at once, so
                    // each run drains everything rather than leave a retry for later.
                    "--retry-base-ms",
                    "1",
                    "--retry-max-ms",
                    "1",
                    "--batch",
                    "8",
                    "--concurrency",
                    "8",
                ],
            )
        },
        ServingJob {
            before: Some(OLD_NOTIFICATIONS),
            ..ServingJob::new("housekeeping", &["housekeeping"])
        },
    ];
    let mut killed_mid_run = 0;
    let mut ignored: Vec<&str> = Vec::new();
    for job in &jobs {
        let name = job.name;
        ignored.extend(job.ignored);
        for (side, crashed_only) in [(&clean, None), (&crashed, job.crashed_before)] {
            for statement in job.before.into_iter().chain(crashed_only) {
                let pool = side.pg.pool().await;
                sqlx::query(statement)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: setting up: {e}"));
            }
        }
        let started = Instant::now();
        let clean_run = sipline_async(
            &clean
                .args(job)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await;
        clean_run.assert_ok();
        let took = started.elapsed();
        let n = kills();
        let landed_before = killed_mid_run;
        let crash_args = crashed.args(job);
        for i in 0..n {
            let after = took.mul_f64(f64::from(i) / f64::from(n.max(1)) * 1.1);
            let args = crash_args.clone();
            if tokio::task::spawn_blocking(move || kill_after(&args, after))
                .await
                .unwrap()
            {
                killed_mid_run += 1;
            }
        }
        if job.settle {
            leases_expired(&crashed.pg.pool().await).await;
        }
        let rerun = sipline_async(&crash_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        rerun.assert_ok();
        let (clean_files, crashed_files) = (
            snapshot(clean.warehouse.path()),
            snapshot(crashed.warehouse.path()),
        );
        let differing = differing_files(&clean_files, &crashed_files);
        assert!(
            differing.is_empty(),
            "{name}: after {n} kills and a re-run, these warehouse files differ: {differing:?}"
        );
        let (clean_rows, crashed_rows) = (
            serving_contents(&clean.pg.pool().await, &ignored).await,
            serving_contents(&crashed.pg.pool().await, &ignored).await,
        );
        let differing: Vec<String> = clean_rows
            .iter()
            .zip(&crashed_rows)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| {
                let first = a.1.lines().zip(b.1.lines()).find(|(x, y)| x != y);
                format!("{} (first difference: {first:?})", a.0)
            })
            .collect();
        assert_eq!(
            clean_rows.iter().map(|t| &t.0).collect::<Vec<_>>(),
            crashed_rows.iter().map(|t| &t.0).collect::<Vec<_>>(),
            "{name}: tables left behind"
        );
        assert!(
            differing.is_empty(),
            "{name}: after {n} kills and a re-run, these tables differ: {differing:?}"
        );
        let mut delivered = String::new();
        if job.delivers {
            let (sent, received) = (clean.webhook.keys(), crashed.webhook.keys());
            assert!(!sent.is_empty(), "{name}: nothing to deliver");
            assert!(
                sent.values().all(|n| *n == 1),
                "{name}: the uninterrupted run sent a message twice"
            );
            let lost: Vec<&String> = sent.keys().filter(|k| !received.contains_key(*k)).collect();
            assert!(
                lost.is_empty(),
                "{name}: never delivered after the kills: {lost:?}"
            );
            let extra: Vec<&String> = received.keys().filter(|k| !sent.contains_key(*k)).collect();
            assert!(
                extra.is_empty(),
                "{name}: delivered only after the kills: {extra:?}"
            );
            let again: u32 = received.values().map(|n| n - 1).sum();
            delivered = format!(
                ", {} messages delivered, {again} sent again (same idempotency key)",
                sent.len()
            );
        }
        eprintln!(
            "{name}: {n} kills ({} while running, uninterrupted run {took:?}), files and tables differing: 0{delivered}; {}",
            killed_mid_run - landed_before,
            clean_run.stdout.lines().last().unwrap_or("").trim()
        );
    }
    assert!(killed_mid_run > 0, "no kill landed while a job was running");
}

/// What a reader of the serving store sees: the latest published date, the row count its
/// publication recorded, and the snapshot rows the `*_latest` view serves for it.
pub(crate) async fn served(pool: &sqlx::PgPool) -> (chrono::NaiveDate, i64, i64) {
    sqlx::query_as(
        "SELECT p.as_of, p.snapshots, (SELECT count(*) FROM portfolio_latest) \
         FROM publications p ORDER BY p.as_of DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// PostgreSQL stopped (`-m immediate`, as a crash would) in the middle of a publish: the job
/// fails with exit 1, and once the server is back readers see the previous date whole; the
/// re-run then leaves what an uninterrupted publish leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_in_the_middle_of_a_publish_leaves_the_previous_date_served() {
    use crate::publish::{FIRST, SECOND};
    let base = tempfile::tempdir().unwrap();
    {
        let base = base.path().to_path_buf();
        tokio::task::spawn_blocking(move || crate::publish::universe(&base))
            .await
            .unwrap();
    }
    let wh = base.path().to_str().unwrap();
    let pg = Postgres::own_cluster();
    let publish = |date: &'static str, extra: &'static [&'static str]| {
        let mut args = vec![
            "publish".to_string(),
            "--date".into(),
            date.into(),
            "--warehouse".into(),
            wh.to_string(),
            "--database-url".into(),
            pg.url.clone(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let first = publish(FIRST, &["--mandates"]);
    let started = Instant::now();
    sipline_async(&first.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .assert_ok();
    let took = started.elapsed();
    let before = served(&pg.pool().await).await;
    assert_eq!(before.0.to_string(), FIRST);
    assert_eq!(before.1, before.2);

    // Stop the server at moments spread over the next publish until one lands mid-run.
    let second = publish(SECOND, &[]);
    let mut stopped_mid_run = 0;
    for fraction in [0.2, 0.4, 0.6, 0.8] {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sipline"))
            .args(&second)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(took.mul_f64(fraction)).await;
        let running = child.try_wait().unwrap().is_none();
        pg.stop_immediately();
        let output = child.wait_with_output().await.unwrap();
        pg.start_again();
        let seen = served(&pg.pool().await).await;
        if !running || output.status.success() {
            // Finished before the stop: the date is published whole; start again from it.
            assert_eq!(seen.1, seen.2);
            continue;
        }
        stopped_mid_run += 1;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("error: publishing {SECOND} to PostgreSQL: ")),
            "{stderr}"
        );
        assert_eq!(
            seen, before,
            "a reader after the stop sees the previous date whole"
        );
    }
    assert!(
        stopped_mid_run > 0,
        "no stop landed while publish was running"
    );

    // The re-run publishes the date, as an uninterrupted publish on another store does.
    sipline_async(&second.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .assert_ok();
    let clean = Postgres::start().await;
    for (date, extra) in [(FIRST, &["--mandates"][..]), (SECOND, &[][..])] {
        let mut args = vec![
            "publish",
            "--date",
            date,
            "--warehouse",
            wh,
            "--database-url",
            &clean.url,
        ];
        args.extend_from_slice(extra);
        sipline_async(&args).await.assert_ok();
    }
    assert_eq!(
        serving_contents(&pg.pool().await, &[]).await,
        serving_contents(&clean.pool().await, &[]).await
    );
}

/// Unmounts a tmpfs when the test ends, however it ends.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A full disk (a small tmpfs) under `sip execute`: a clear error naming what could not be
/// written, a non-zero exit, every file that was there before unchanged; with room again the
/// re-run writes exactly what a run that never ran out of space writes. Needs root (mount).
#[test]
fn a_full_disk_fails_the_job_clearly_and_leaves_the_previous_partitions() {
    if !crate::support::is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let date = "2025-01-31";
    let base = tempfile::tempdir().unwrap();
    generate(base.path(), "400", "0/1");
    // What tmpfs charges: whole 4 KiB pages per file, and a page per file for its entry.
    let used: u64 = snapshot(base.path())
        .values()
        .map(|bytes| (bytes.len() as u64).div_ceil(4096) * 4096 + 4096)
        .sum();
    let clean = tempfile::tempdir().unwrap();
    copy(base.path(), clean.path());
    let clean_wh = clean.path().to_str().unwrap();
    sipline(&["sip", "execute", "--date", date, "--warehouse", clean_wh]).assert_ok();

    let mount = tempfile::tempdir().unwrap();
    // Room for what is there, a little more for directories, and not for the day's output
    // (about 4 MB at 400 users).
    let size_kb = used / 1024 + 1024;
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size_kb}k"), "tmpfs"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(status.success(), "mount -t tmpfs failed");
    let _mounted = Mounted(mount.path().to_path_buf());
    copy(base.path(), mount.path());
    let before = snapshot(mount.path());
    let full_wh = mount.path().to_str().unwrap();
    let run = sipline(&["sip", "execute", "--date", date, "--warehouse", full_wh]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        // The object written when the disk filled, named (object paths have no leading /).
        run.stderr.contains("No space left on device")
            && run.stderr.contains(&format!(
                "error: writing {}/",
                full_wh.trim_start_matches('/')
            )),
        "{}",
        run.stderr
    );
    let after = snapshot(mount.path());
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{path:?} changed");
    }

    // Room again: the re-run leaves what a run with room all along left.
    let status = std::process::Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(status.success(), "remount failed");
    sipline(&["sip", "execute", "--date", date, "--warehouse", full_wh]).assert_ok();
    let (clean_files, rerun_files) = (snapshot(clean.path()), snapshot(mount.path()));
    let differing = differing_files(&clean_files, &rerun_files);
    assert!(
        differing.is_empty(),
        "after a full disk and a re-run, these files differ from a clean run: {differing:?}"
    );
}
