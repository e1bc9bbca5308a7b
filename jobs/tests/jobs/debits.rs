//! `debits ingest` and the returns it feeds to `sip execute`, through the real binary on a
//! small generated universe: bad reports refused whole with `file:line: field`, a good one
//! stored for its run date and re-run to the same bytes, an allotted instalment reversed
//! (units and invested out, the user told) exactly once, and a report that changes after its
//! date was executed refused.

use std::path::Path;

use crate::sip::{csv, generate};
use crate::support::{sipline, snapshot, Run};

const LAST_RUN: &str = "2025-03-26";
const RUN: &str = "2025-03-27";
const NEXT: &str = "2025-03-28";

pub(crate) fn ingest(warehouse: &Path, report: &Path, date: &str) -> Run {
    sipline(&[
        "debits",
        "ingest",
        "--input",
        report.to_str().unwrap(),
        "--date",
        date,
        "--warehouse",
        warehouse.to_str().unwrap(),
    ])
}

fn execute(warehouse: &Path, date: &str) -> Run {
    sipline(&[
        "sip",
        "execute",
        "--date",
        date,
        "--warehouse",
        warehouse.to_str().unwrap(),
    ])
}

pub(crate) fn write(dir: &Path, name: &str, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut text = String::from("sip_id,due_date,amount,status,reason_code\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Rows of a query's CSV output, header dropped.
pub(crate) fn rows(warehouse: &Path, query: &str) -> Vec<Vec<String>> {
    csv(warehouse, query)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn a_returned_debit_reverses_its_allotment_once_and_bad_reports_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    generate(&wh, "400", "0/1");
    sipline(&[
        "sip",
        "backfill",
        "--from",
        "2025-01-01",
        "--to",
        LAST_RUN,
        "--warehouse",
        wh.to_str().unwrap(),
    ])
    .assert_ok();
    // Two instalments allotted by earlier runs: one comes back, one was paid.
    let allotted = rows(
        &wh,
        "SELECT sip_id, due_date, amount, user_id, units, scheme_code FROM investments \
         WHERE status = 'executed' AND exec_date >= DATE '2025-03-20' ORDER BY sip_id LIMIT 2",
    );
    assert_eq!(allotted.len(), 2, "{allotted:?}");
    let (back, paid) = (&allotted[0], &allotted[1]);
    let line = |row: &Vec<String>, amount: &str, status: &str, reason: &str| {
        format!("{},{},{amount},{status},{reason}", row[0], row[1])
    };
    let good = vec![
        line(back, &back[2], "returned", "04"),
        line(paid, &paid[2], "paid", ""),
    ];

    // Bad reports: refused whole, exit 3, naming file, line and field; nothing written.
    let partitions = wh.join("debit_failures");
    for (name, lines, expected) in [
        (
            "garbled.csv",
            vec![
                good[0].clone(),
                "12,2025-03-10,five,returned,04".to_string(),
            ],
            "garbled.csv:3: amount:",
        ),
        (
            "unknown.csv",
            vec![format!("999999999,{},100.00,returned,04", back[1])],
            "unknown.csv:2: sip_id: SIP 999999999 is not in the `sips` snapshot",
        ),
        (
            "amount.csv",
            vec![line(back, "1.00", "returned", "04")],
            "amount.csv:2: amount: 1.00 is not the instalment's amount",
        ),
        (
            "duplicate.csv",
            vec![good[0].clone(), line(back, &back[2], "paid", "")],
            "duplicate.csv:3: sip_id:",
        ),
        (
            "future.csv",
            vec![format!("{},{NEXT},{},returned,04", back[0], back[2])],
            "future.csv:2: due_date: 2025-03-28 is after the run date 2025-03-27",
        ),
        (
            "not_due.csv",
            vec![format!("{},2025-03-02,{},returned,04", back[0], back[2])],
            "not_due.csv:2: due_date: no instalment of SIP",
        ),
    ] {
        let report = write(dir.path(), name, &lines);
        let run = ingest(&wh, &report, RUN);
        assert_eq!(run.code, 3, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert!(!partitions.exists(), "{name} wrote something");
    }
    // A report that is not there: exit 4 (not yet), or nothing to apply with --missing-ok.
    let missing = dir.path().join("no-report-{date}.csv");
    let run = ingest(&wh, &missing, RUN);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let run = sipline(&[
        "debits",
        "ingest",
        "--input",
        missing.to_str().unwrap(),
        "--date",
        RUN,
        "--missing-ok",
        "--warehouse",
        wh.to_str().unwrap(),
    ]);
    run.assert_ok();
    assert!(
        run.stdout.contains("no-report-2025-03-27.csv"),
        "{}",
        run.stdout
    );

    // The good report: stored for the run, and a re-run writes the same bytes.
    let report = write(dir.path(), "debits.csv", &good);
    let first = ingest(&wh, &report, RUN);
    first.assert_ok();
    assert!(
        first.stdout.contains("lines=2 paid=1 returned=1 written"),
        "{}",
        first.stdout
    );
    let stored = snapshot(&partitions);
    let again = ingest(&wh, &report, RUN);
    assert!(
        again.assert_ok().stdout.contains("unchanged"),
        "{}",
        again.stdout
    );
    assert_eq!(snapshot(&partitions), stored);

    // The run reverses the returned allotment: same amount and units, status reversed.
    let executed = execute(&wh, RUN);
    assert!(
        executed.assert_ok().stdout.contains("reversed=1"),
        "{}",
        executed.stdout
    );
    let reversed = rows(
        &wh,
        &format!(
            "SELECT sip_id, due_date, amount, user_id, units, scheme_code FROM investments \
             WHERE status = 'reversed' AND exec_date = DATE '{RUN}'"
        ),
    );
    assert_eq!(reversed, vec![back.clone()]);
    let events = rows(
        &wh,
        &format!(
            "SELECT event_id FROM sip_events WHERE exec_date = DATE '{RUN}' AND kind = 'reversed'"
        ),
    );
    assert_eq!(
        events,
        vec![vec![format!("sip:{}:{}:reversed", back[0], back[1])]]
    );

    // The valuation nets it out: the user's invested is what stayed allotted.
    sipline(&[
        "portfolio",
        "value",
        "--date",
        RUN,
        "--warehouse",
        wh.to_str().unwrap(),
    ])
    .assert_ok();
    let user = &back[3];
    let invested = rows(
        &wh,
        &format!(
            "SELECT (SELECT invested FROM portfolio_snapshots WHERE as_of = DATE '{RUN}' AND user_id = {user}), \
                    (SELECT sum(CASE status WHEN 'executed' THEN amount ELSE -amount END) FROM investments \
                     WHERE user_id = {user} AND status IN ('executed', 'reversed'))"
        ),
    );
    assert_eq!(invested[0][0], invested[0][1], "{invested:?}");

    // Once executed, the run's report cannot change: the next date takes it (exit 6).
    let late = write(
        dir.path(),
        "late.csv",
        &[line(paid, &paid[2], "returned", "01")],
    );
    let refused = ingest(&wh, &late, RUN);
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("next run date"),
        "{}",
        refused.stderr
    );
    // The same report again, for the next date, reverses nothing twice; the late one reverses
    // the other instalment.
    let both = write(
        dir.path(),
        "both.csv",
        &[good[0].clone(), line(paid, &paid[2], "returned", "01")],
    );
    ingest(&wh, &both, NEXT).assert_ok();
    let next = execute(&wh, NEXT);
    assert!(
        next.assert_ok().stdout.contains("reversed=1"),
        "{}",
        next.stdout
    );
    let reversals = rows(
        &wh,
        "SELECT sip_id, count(*) FROM investments WHERE status = 'reversed' GROUP BY sip_id ORDER BY sip_id",
    );
    assert_eq!(
        reversals,
        vec![
            vec![back[0].clone(), "1".to_string()],
            vec![paid[0].clone(), "1".to_string()]
        ]
    );
}
