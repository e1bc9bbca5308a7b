//! `generate`, `sip execute` and `sip backfill` on a small generated universe: determinism,
//! shards, reconciliation, holdings checkpoints, re-runs and cancellations, checked through
//! the files and through SQL written independently of the batch code.

use std::path::Path;

use crate::support::{sipline, snapshot};

pub(crate) const END: &str = "2025-03-31";
pub(crate) const FROM: &str = "2025-01-01";

pub(crate) fn generate(warehouse: &Path, users: &str, shard: &str) {
    sipline(&[
        "generate",
        "--users",
        users,
        "--months",
        "3",
        "--end-date",
        END,
        "--seed",
        "7",
        "--shard",
        shard,
        "--warehouse",
        warehouse.to_str().unwrap(),
    ])
    .assert_ok();
}

pub(crate) fn backfill(warehouse: &Path, shard: &str, rate: &str) -> String {
    sipline(&[
        "sip",
        "backfill",
        "--from",
        FROM,
        "--to",
        END,
        "--shard",
        shard,
        "--simulate-failures",
        rate,
        "--warehouse",
        warehouse.to_str().unwrap(),
    ])
    .assert_ok()
    .stdout
    .clone()
}

pub(crate) fn csv(warehouse: &Path, query: &str) -> String {
    sipline(&[
        "sql",
        "--format",
        "csv",
        "--warehouse",
        warehouse.to_str().unwrap(),
        query,
    ])
    .assert_ok()
    .stdout
    .clone()
}

/// Every instalment due in the backfilled quarter, derived from the `sips` snapshot alone (in
/// SQL written apart from the batch), is in `investments` exactly once as executed or failed,
/// or still pending as of the last run; nothing else is there; each executed one used the
/// scheme's first NAV dated on or after its due date, and a pending one had none by its run.
fn assert_every_due_instalment_once(warehouse: &Path) {
    let expected = "WITH months AS (SELECT 1 AS m UNION ALL SELECT 2 UNION ALL SELECT 3), \
         cancelled AS (SELECT sip_id, min(exec_date) AS on_date FROM sip_events \
                       WHERE kind = 'cancelled' GROUP BY sip_id), \
         due AS (SELECT s.sip_id, s.start_date, s.end_date, s.status, s.paused_until, \
                        make_date(2025, months.m, s.sip_day) AS due_date \
                 FROM sips s CROSS JOIN months) \
         SELECT due.sip_id, due.due_date FROM due LEFT JOIN cancelled c ON c.sip_id = due.sip_id \
         WHERE due.due_date >= due.start_date \
           AND (due.end_date IS NULL OR due.due_date <= due.end_date) \
           AND due.status <> 'cancelled' \
           AND NOT (due.status = 'paused' AND (due.paused_until IS NULL OR due.due_date <= due.paused_until)) \
           AND (c.on_date IS NULL OR due.due_date <= c.on_date)";
    let outcomes = "SELECT sip_id, due_date, \
           sum(CASE WHEN status IN ('executed', 'failed') THEN 1 ELSE 0 END) AS final_rows, \
           max(CASE WHEN status = 'pending' THEN exec_date END) AS last_pending \
         FROM investments GROUP BY sip_id, due_date";
    let counts = csv(
        warehouse,
        &format!(
            "WITH expected AS ({expected}), outcomes AS ({outcomes}) SELECT \
               (SELECT count(*) FROM expected) AS due, \
               (SELECT count(*) FROM expected e LEFT JOIN outcomes o \
                  ON o.sip_id = e.sip_id AND o.due_date = e.due_date WHERE o.sip_id IS NULL) AS missing, \
               (SELECT count(*) FROM outcomes o LEFT JOIN expected e \
                  ON o.sip_id = e.sip_id AND o.due_date = e.due_date WHERE e.sip_id IS NULL) AS unexpected, \
               (SELECT count(*) FROM outcomes WHERE final_rows > 1) AS twice, \
               (SELECT count(*) FROM outcomes WHERE final_rows = 0 \
                  AND last_pending <> (SELECT max(exec_date) FROM investments)) AS dropped"
        ),
    );
    let fields = first_row_numbers(&counts);
    assert!(fields[0] > 1000, "{counts}");
    assert_eq!(fields[1..], [0, 0, 0, 0], "{counts}");

    // SEBI's applicable NAV: the NAV dated the first market day on or after the due date (a
    // day some scheme published a NAV). An executed instalment used exactly that scheme's NAV
    // of that day; a pending one had none by its run; one that failed without a bounced debit
    // had none within the no_nav limit. (The generator leaves a few NAVs out each day.)
    let applicable = "WITH market AS (SELECT DISTINCT nav_date FROM navs), \
         applicable AS (SELECT d.due_date, min(m.nav_date) AS nav_date \
                        FROM (SELECT DISTINCT due_date FROM investments) d \
                        JOIN market m ON m.nav_date >= d.due_date GROUP BY d.due_date)";
    let mispriced = csv(
        warehouse,
        &format!(
            "{applicable} SELECT count(*) AS n FROM investments i \
             JOIN applicable a ON a.due_date = i.due_date \
             LEFT JOIN navs n ON n.scheme_code = i.scheme_code AND n.nav_date = a.nav_date \
             WHERE i.status = 'executed' AND (i.nav_date <> a.nav_date OR n.nav IS NULL OR i.nav <> n.nav)"
        ),
    );
    assert_eq!(mispriced, "n\n0\n");
    let pending_with_its_nav = csv(
        warehouse,
        &format!(
            "{applicable} SELECT count(*) AS n FROM investments i \
             JOIN applicable a ON a.due_date = i.due_date \
             JOIN navs n ON n.scheme_code = i.scheme_code AND n.nav_date = a.nav_date \
             WHERE a.nav_date <= i.exec_date AND (i.status = 'pending' \
                OR (i.status = 'failed' AND NOT EXISTS (SELECT 1 FROM debit_failures f \
                    WHERE f.sip_id = i.sip_id AND f.due_date = i.due_date)))"
        ),
    );
    assert_eq!(pending_with_its_nav, "n\n0\n");
}

/// Three consecutive failed instalments of a SIP (by due date; pending ones neither break nor
/// extend a streak) cancel it on the run of the third failure, and nothing else cancels one.
fn assert_cancelled_exactly_after_three_failures_in_a_row(warehouse: &Path) -> i64 {
    let triples = "WITH o AS (SELECT sip_id, due_date, exec_date, status, \
           lag(status, 1) OVER (PARTITION BY sip_id ORDER BY due_date) AS p1, \
           lag(status, 2) OVER (PARTITION BY sip_id ORDER BY due_date) AS p2 \
         FROM investments WHERE status IN ('executed', 'failed')) \
         SELECT sip_id, min(exec_date) AS on_date FROM o \
         WHERE status = 'failed' AND p1 = 'failed' AND p2 = 'failed' GROUP BY sip_id";
    let events = "SELECT sip_id, exec_date AS on_date FROM sip_events WHERE kind = 'cancelled'";
    let counts = csv(
        warehouse,
        &format!(
            "SELECT (SELECT count(*) FROM ({triples})) AS triples, \
                    (SELECT count(*) FROM ({events})) AS cancellations, \
                    (SELECT count(*) FROM (({triples}) EXCEPT ({events}))) AS not_cancelled, \
                    (SELECT count(*) FROM (({events}) EXCEPT ({triples}))) AS cancelled_otherwise"
        ),
    );
    let fields = first_row_numbers(&counts);
    assert_eq!(fields[0], fields[1], "{counts}");
    assert_eq!(fields[2..], [0, 0], "{counts}");
    fields[1]
}

/// The first data row of `sipline sql --format csv` output, as numbers.
fn first_row_numbers(csv: &str) -> Vec<i64> {
    csv.lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no row in {csv}"))
        .split(',')
        .map(|f| f.parse().unwrap_or_else(|e| panic!("{f}: {e} in {csv}")))
        .collect()
}

/// A universe of 3,000 users with its first quarter of 2025 executed at a 5% bounce rate.
fn executed_universe(dir: &Path) {
    generate(dir, "3000", "0/1");
    let out = backfill(dir, "0/1", "0.05");
    assert!(
        out.contains("sip backfill ok: from=2025-01-01 to=2025-03-31 days="),
        "{out}"
    );
}

#[test]
fn generate_is_deterministic_and_shaped_as_documented() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(a.path(), "2000", "0/1");
    generate(b.path(), "2000", "0/1");
    assert_eq!(snapshot(a.path()), snapshot(b.path()));
    assert!(a.path().join("users/bucket=63/part-00000.parquet").exists());
    assert!(a
        .path()
        .join("sips/as_of=2024-12-31/bucket=0/_SUCCESS")
        .exists());

    let summary = csv(
        a.path(),
        "SELECT count(DISTINCT user_id) AS users, count(*) >= 2800 AS enough_sips, \
         min(amount) >= 100 AND max(amount) <= 100000 AS amounts_in_range, \
         min(sip_day) >= 1 AND max(sip_day) <= 28 AS days_in_range, \
         count(DISTINCT status) AS statuses FROM sips",
    );
    assert_eq!(
        summary,
        "users,enough_sips,amounts_in_range,days_in_range,statuses\n2000,true,true,true,3\n"
    );
    let schemes = csv(
        a.path(),
        "SELECT (SELECT count(*) FROM schemes) AS schemes, count(DISTINCT scheme_code) AS publishing, \
         count(DISTINCT nav_date) AS nav_days FROM navs",
    );
    let fields = first_row_numbers(&schemes);
    assert_eq!(fields[0], 14_000);
    assert_eq!(fields[1], 8_500);
    // Q1 2025 less weekends and NSE holidays, plus 2024-12-31.
    assert!((58..=63).contains(&fields[2]), "{schemes}");
    let weekend = csv(
        a.path(),
        "SELECT count(*) AS n FROM navs WHERE date_part('dow', nav_date) IN (0, 6)",
    );
    assert_eq!(weekend, "n\n0\n");
}

/// A backfill carries each bucket's state and the NAVs it read from one day to the next in
/// memory; one `sip execute` per day reads them back from the warehouse. Both write the same
/// bytes, across a month end (the holdings checkpoint) and with failures carried.
#[test]
fn a_backfill_writes_the_bytes_of_one_run_per_day() {
    let (backfilled, daily) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (from, to) = ("2025-01-15", "2025-02-20");
    for dir in [&backfilled, &daily] {
        generate(dir.path(), "300", "0/1");
    }
    let warehouse = |dir: &tempfile::TempDir| dir.path().to_str().unwrap().to_string();
    sipline(&[
        "sip",
        "backfill",
        "--from",
        from,
        "--to",
        to,
        "--simulate-failures",
        "0.6",
        "--warehouse",
        &warehouse(&backfilled),
    ])
    .assert_ok();
    let mut day = chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").unwrap();
    let last = chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").unwrap();
    while day <= last {
        sipline(&[
            "sip",
            "execute",
            "--date",
            &day.to_string(),
            "--simulate-failures",
            "0.6",
            "--warehouse",
            &warehouse(&daily),
        ])
        .assert_ok();
        day = day.succ_opt().unwrap();
    }
    let (a, b) = (snapshot(backfilled.path()), snapshot(daily.path()));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (path, bytes) in &a {
        assert!(&b[path] == bytes, "{} differs", path.display());
    }
    assert!(a.keys().any(|p| p.starts_with("holdings")));
    // Failure streaks were carried from day to day, not only fresh instalments.
    let carried = csv(
        backfilled.path(),
        "SELECT count(*) > 0 AS carried FROM sip_state WHERE failure_streak > 1",
    );
    assert_eq!(carried, "carried\ntrue\n");
}

/// Slow (about 100 s in CI): four quarter backfills (one whole, three shards), each paying
/// every business day's fixed cost of 64 bucket partitions per table.
#[test]
fn shards_write_what_one_run_writes() {
    let (one, sharded) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(one.path(), "1500", "0/1");
    backfill(one.path(), "0/1", "0.05");
    for shard in ["0/3", "1/3", "2/3"] {
        generate(sharded.path(), "1500", shard);
    }
    for shard in ["2/3", "0/3", "1/3"] {
        backfill(sharded.path(), shard, "0.05");
    }
    let (a, b) = (snapshot(one.path()), snapshot(sharded.path()));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (path, bytes) in &a {
        assert!(&b[path] == bytes, "{} differs", path.display());
    }
    assert!(a.keys().any(|p| p.starts_with("investments")));
}

/// Slow (about 90 s in CI): a quarter's backfill of 3,000 users, then SQL oracles over every
/// instalment and holding; the backfill's per-day partitions are most of it.
#[test]
fn execution_reconciles_and_holdings_roll_forward() {
    let dir = tempfile::tempdir().unwrap();
    executed_universe(dir.path());

    // Every executed instalment: duty is 0.005% rounded to the paisa, and the residue
    // amount - duty - units × NAV is at least 0 and less than one 0.001-unit step × NAV.
    let broken = csv(
        dir.path(),
        "SELECT count(*) AS n FROM investments WHERE status = 'executed' AND ( \
           stamp_duty <> round(amount * 0.005 / 100.005, 2) \
           OR amount - stamp_duty - units * nav < 0 \
           OR amount - stamp_duty - units * nav >= 0.001 * nav \
           OR nav_date < due_date OR nav_date > exec_date)",
    );
    assert_eq!(broken, "n\n0\n");
    let per_run = csv(
        dir.path(),
        "SELECT count(*) AS runs, sum(CASE WHEN residue >= 0 AND residue < executed * 0.001 * max_nav THEN 1 ELSE 0 END) AS balanced \
         FROM (SELECT exec_date, count(*) AS executed, max(nav) AS max_nav, \
                      sum(amount) - sum(stamp_duty) - sum(units * nav) AS residue \
               FROM investments WHERE status = 'executed' GROUP BY exec_date)",
    );
    let counts: Vec<&str> = per_run.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(counts[0], counts[1], "{per_run}");
    assert!(counts[0].parse::<u32>().unwrap() > 50);

    // Each instalment executes once.
    let twice = csv(
        dir.path(),
        "SELECT count(*) AS n FROM (SELECT sip_id, due_date FROM investments WHERE status = 'executed' \
         GROUP BY sip_id, due_date HAVING count(*) > 1)",
    );
    assert_eq!(twice, "n\n0\n");
    assert_every_due_instalment_once(dir.path());

    // Month-end checkpoints: March = January + the investments executed after January's.
    let checkpoints = csv(
        dir.path(),
        "SELECT DISTINCT as_of FROM holdings ORDER BY as_of",
    );
    assert_eq!(checkpoints, "as_of\n2025-01-31\n2025-02-28\n2025-03-28\n");
    let rolled = "SELECT user_id, scheme_code, sum(units) AS units, sum(invested) AS invested FROM ( \
           SELECT user_id, scheme_code, units, invested FROM holdings WHERE as_of = DATE '2025-01-31' \
           UNION ALL SELECT user_id, scheme_code, units, amount AS invested FROM investments \
           WHERE status = 'executed' AND exec_date > DATE '2025-01-31' AND exec_date <= DATE '2025-03-28') \
         GROUP BY user_id, scheme_code";
    let checkpoint = "SELECT user_id, scheme_code, units, invested FROM holdings WHERE as_of = DATE '2025-03-28'";
    for query in [
        format!("SELECT count(*) AS n FROM (({rolled}) EXCEPT ({checkpoint}))"),
        format!("SELECT count(*) AS n FROM (({checkpoint}) EXCEPT ({rolled}))"),
    ] {
        assert_eq!(csv(dir.path(), &query), "n\n0\n", "{query}");
    }
    // EXCEPT compares sets: the counts and the uniqueness of the checkpoint's keys make the
    // comparison one of rows, so a duplicated holding cannot hide behind its twin.
    let sizes = csv(
        dir.path(),
        &format!(
            "SELECT (SELECT count(*) FROM ({rolled})) AS rolled, (SELECT count(*) FROM ({checkpoint})) AS checkpoint, \
               (SELECT count(*) FROM (SELECT DISTINCT user_id, scheme_code FROM ({checkpoint}))) AS keys"
        ),
    );
    let sizes: Vec<&str> = sizes.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((sizes[0], sizes[1]), (sizes[2], sizes[2]), "{sizes:?}");
    let total = csv(
        dir.path(),
        "SELECT count(*) > 1000 AS many FROM holdings WHERE as_of = DATE '2025-03-28'",
    );
    assert_eq!(total, "many\ntrue\n");
}

/// Slow (about 110 s in CI before issue 39's commits, less since): a quarter's backfill (62
/// business days) plus single-day re-runs. A day's fixed cost, not the 3,000 users, sets the
/// time: each day writes 64 bucket partitions of four tables.
#[test]
fn failures_cancel_after_three_and_reruns_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "3000", "0/1");
    // A very high bounce rate so three in a row happen within a quarter.
    backfill(dir.path(), "0/1", "0.6");
    let cancelled = csv(
        dir.path(),
        "SELECT count(*) AS n FROM sip_events WHERE kind = 'cancelled'",
    );
    let n = first_row_numbers(&cancelled)[0];
    assert!(n > 10, "{cancelled}");
    assert_eq!(
        assert_cancelled_exactly_after_three_failures_in_a_row(dir.path()),
        n
    );
    assert_every_due_instalment_once(dir.path());
    // Every cancellation follows three failed instalments of that SIP, and nothing is
    // attempted for it afterwards.
    let too_few_failures = csv(
        dir.path(),
        "SELECT count(*) AS n FROM ( \
           SELECT c.sip_id, count(f.sip_id) AS failures FROM sip_events c \
           LEFT JOIN investments f ON f.sip_id = c.sip_id AND f.status = 'failed' AND f.exec_date <= c.exec_date \
           WHERE c.kind = 'cancelled' GROUP BY c.sip_id) WHERE failures < 3",
    );
    assert_eq!(too_few_failures, "n\n0\n");
    let attempted_after = csv(
        dir.path(),
        "SELECT count(*) AS n FROM sip_events c JOIN investments l \
           ON l.sip_id = c.sip_id AND l.status <> 'pending' AND l.exec_date > c.exec_date \
         WHERE c.kind = 'cancelled'",
    );
    assert_eq!(attempted_after, "n\n0\n");

    // Re-running the last business day writes the same bytes, and a holiday (2025-03-31)
    // executes nothing; a day in the middle is refused (exit 6, nothing written): later days
    // settled what it would settle again.
    let before = snapshot(dir.path());
    let execute = |date: &str, extra: &[&str]| {
        let mut args = vec![
            "sip",
            "execute",
            "--date",
            date,
            "--simulate-failures",
            "0.6",
            "--warehouse",
            dir.path().to_str().unwrap(),
        ];
        args.extend(extra);
        sipline(&args)
    };
    for date in ["2025-03-28", END] {
        execute(date, &[]).assert_ok();
    }
    let refused = execute("2025-02-14", &[]);
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    assert!(
        before == snapshot(dir.path()),
        "a re-run changed the warehouse"
    );
    // With --rewind the later days' execution is retired; running them again in order
    // rebuilds the same bytes.
    execute("2025-03-13", &["--rewind"]).assert_ok();
    assert!(!dir
        .path()
        .join("investments/exec_date=2025-03-17/bucket=0/_SUCCESS")
        .exists());
    sipline(&[
        "sip",
        "backfill",
        "--from",
        "2025-03-14",
        "--to",
        END,
        "--simulate-failures",
        "0.6",
        "--warehouse",
        dir.path().to_str().unwrap(),
    ])
    .assert_ok();
    assert!(
        before == snapshot(dir.path()),
        "rewinding and re-running in order did not rebuild the same warehouse"
    );
}

#[test]
fn execute_without_a_universe_is_a_missing_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let run = sipline(&[
        "sip",
        "execute",
        "--date",
        "2025-01-02",
        "--warehouse",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("no `sips` snapshot"), "{}", run.stderr);
    let bad = sipline(&["sip", "execute", "--date", "2025-01-02", "--shard", "3/2"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}
