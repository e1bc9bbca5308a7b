//! Crash-safe, tried by force (issue 35 §4): each warehouse job (`debits ingest`, `sip
//! execute`, `portfolio value`; the serving jobs below) is killed with SIGKILL at
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
/// sequence's draw (a rolled-back insert still draws) left out.
async fn serving_contents(pool: &sqlx::PgPool) -> Vec<(String, String)> {
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
                       WHERE k NOT LIKE '%\\_at' AND k NOT IN ('notification_id', 'delivery_id')) AS r \
               FROM {table} t) rows"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        contents.push((table, rows));
    }
    contents
}

/// One side of the comparison: a warehouse folder and a database.
struct Side {
    warehouse: tempfile::TempDir,
    pg: Postgres,
}

impl Side {
    async fn new(from: &Path) -> Self {
        let side = Self {
            warehouse: tempfile::tempdir().unwrap(),
            pg: Postgres::start().await,
        };
        copy(from, side.warehouse.path());
        sipline_async(&["db", "migrate", "--database-url", &side.pg.url])
            .await
            .assert_ok();
        side
    }

    fn args(&self, job: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = job.iter().map(|a| a.to_string()).collect();
        args.extend([
            "--warehouse".into(),
            self.warehouse.path().to_str().unwrap().into(),
            "--database-url".into(),
            self.pg.url.clone(),
        ]);
        args
    }
}

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
/// 865 dates), `publish` of a first date with its mandates and of the next, and
/// `housekeeping` archiving 3,000 old notifications over 79 days. After each, the warehouse's
/// files and every table of the serving store equal an uninterrupted run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_jobs_killed_at_random_moments_then_rerun_leave_what_one_run_leaves() {
    let base = tempfile::tempdir().unwrap();
    {
        let base = base.path().to_path_buf();
        tokio::task::spawn_blocking(move || crate::publish::universe(&base))
            .await
            .unwrap();
    }
    let clean = Side::new(base.path()).await;
    let crashed = Side::new(base.path()).await;
    let navs = fixture("NAVAll_real_2025-05-16.txt");
    let navs = navs.to_str().unwrap();
    let jobs: [(&str, Vec<&str>, Option<&str>); 4] = [
        (
            "nav ingest",
            vec!["nav", "ingest", "--source", "amfi", "--input", navs],
            None,
        ),
        (
            "publish --mandates",
            vec!["publish", "--date", crate::publish::FIRST, "--mandates"],
            None,
        ),
        (
            "publish",
            vec!["publish", "--date", crate::publish::SECOND],
            None,
        ),
        (
            "housekeeping",
            vec!["housekeeping"],
            Some(OLD_NOTIFICATIONS),
        ),
    ];
    let mut killed_mid_run = 0;
    for (name, job, before) in jobs {
        for side in [&clean, &crashed] {
            if let Some(statement) = before {
                let pool = side.pg.pool().await;
                sqlx::query(statement)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: setting up: {e}"));
            }
        }
        let started = Instant::now();
        sipline_async(
            &clean
                .args(&job)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await
        .assert_ok();
        let took = started.elapsed();
        let n = kills();
        let landed_before = killed_mid_run;
        let crash_args = crashed.args(&job);
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
        sipline_async(&crash_args.iter().map(String::as_str).collect::<Vec<_>>())
            .await
            .assert_ok();
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
            serving_contents(&clean.pg.pool().await).await,
            serving_contents(&crashed.pg.pool().await).await,
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
        eprintln!(
            "{name}: {n} kills ({} while running, uninterrupted run {took:?}), files and tables differing: 0",
            killed_mid_run - landed_before
        );
    }
    assert!(killed_mid_run > 0, "no kill landed while a job was running");
}

/// What a reader of the serving store sees: the latest published date, the row count its
/// publication recorded, and the snapshot rows the `*_latest` view serves for it.
async fn served(pool: &sqlx::PgPool) -> (chrono::NaiveDate, i64, i64) {
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
        serving_contents(&pg.pool().await).await,
        serving_contents(&clean.pool().await).await
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
