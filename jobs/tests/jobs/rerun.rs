//! Money never doubled, lost or mispriced (issue 17), through the real binary on a small
//! hand-made warehouse: AMFI files written per day and ingested with `nav ingest`, a mandate
//! snapshot, and `sip execute` run, re-run and rewound as a scheduler would.
//!
//! Four schemes, one SIP each, all due Monday 2 June 2025:
//! - 900001 publishes on time;
//! - 900002 is a fund of funds: its NAV for a day arrives in the next day's file;
//! - 900003's NAV for 2 June never comes in a daily file (the 3rd's does): only AMFI's history
//!   report for the 2nd fills the gap;
//! - 900004 stops publishing (merged): its instalment fails `no_nav` after the limit.

use std::path::Path;

use chrono::NaiveDate;
use pipeline::money::Paise;
use pipeline::sip::{Mandate, SipStatus};
use warehouse::{bucket_of, Part, Warehouse, BUCKETS};

use crate::sip::csv;
use crate::support::{sipline, snapshot};

const USER: i64 = 42;

fn d(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// Ten more schemes without SIPs that publish on time, so the day's publisher share is
/// realistic: funds of funds are a small part of those publishing.
const ON_TIME: std::ops::Range<i64> = 900_010..900_020;

/// A daily NAVAll.txt (6-column layout) holding `(scheme, nav, date)` rows, plus the on-time
/// schemes' NAVs dated `on_time` when given.
fn amfi_file(dir: &Path, name: &str, rows: &[(i64, &str, &str)], on_time: Option<&str>) -> String {
    let extra: Vec<(i64, &str, &str)> = on_time
        .map(|date| ON_TIME.map(|code| (code, "10.0000", date)).collect())
        .unwrap_or_default();
    let mut text = String::from(
        "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\n\n\
         Open Ended Schemes(Equity Scheme - Large Cap Fund)\n\nTest Mutual Fund\n\n",
    );
    for (code, nav, date) in rows.iter().chain(&extra) {
        let date = d(date).format("%d-%b-%Y");
        text.push_str(&format!(
            "{code};INF000A{code};-;Test Fund {code} - Direct Plan - Growth;{nav};{date}\n"
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn ingest(warehouse: &Path, file: &str, date: Option<&str>) -> crate::support::Run {
    let mut args = vec![
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        file,
        "--warehouse",
        warehouse.to_str().unwrap(),
    ];
    if let Some(date) = date {
        args.extend(["--date", date]);
    }
    sipline(&args)
}

fn execute(warehouse: &Path, date: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "sip",
        "execute",
        "--date",
        date,
        "--no-nav-after",
        "2",
        "--warehouse",
        warehouse.to_str().unwrap(),
    ];
    args.extend(extra);
    sipline(&args)
}

/// The mandate snapshot as of `as_of`, every bucket written (empty ones too).
fn write_mandates(warehouse: &Path, as_of: &str) {
    let mandates: Vec<Mandate> = (1..=4)
        .map(|i| Mandate {
            sip_id: i,
            user_id: USER,
            scheme_code: 900_000 + i,
            amount: Paise(50_000),
            sip_day: 2,
            start_date: d("2025-06-01"),
            end_date: None,
            step_up_bps: 0,
            status: SipStatus::Active,
            paused_until: None,
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Warehouse::open(warehouse.to_str().unwrap()).unwrap();
        for bucket in 0..BUCKETS {
            let rows: Vec<Mandate> = mandates
                .iter()
                .filter(|m| bucket_of(m.user_id) == bucket)
                .cloned()
                .collect();
            store
                .write_rows(Part::dated_bucket(d(as_of), bucket), &rows)
                .await
                .unwrap();
        }
    });
}

/// Each instalment's settled rows (executed or failed) across every published run.
fn settled(warehouse: &Path) -> String {
    csv(
        warehouse,
        "SELECT sip_id, due_date, count(*) AS runs, min(exec_date) AS exec_date, min(status) AS status, \
                min(nav_date) AS nav_date, min(nav) AS nav, min(units) AS units \
         FROM investments WHERE status <> 'pending' GROUP BY sip_id, due_date ORDER BY sip_id",
    )
}

fn without_manifests(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    snapshot(dir)
}

#[test]
fn late_navs_reruns_and_rewinds_settle_each_instalment_once_at_its_own_nav() {
    let tmp = tempfile::tempdir().unwrap();
    let (files, wh) = (tmp.path().join("files"), tmp.path().join("wh"));
    std::fs::create_dir_all(&files).unwrap();
    write_mandates(&wh, "2025-05-30");

    // Monday: only 900001 has Monday's NAV.
    let monday = amfi_file(
        &files,
        "mon.txt",
        &[
            (900001, "100.0000", "2025-06-02"),
            (900002, "50.0000", "2025-05-30"),
            (900003, "20.0000", "2025-05-30"),
            (900004, "10.0000", "2025-05-30"),
        ],
        Some("2025-06-02"),
    );
    ingest(&wh, &monday, None).assert_ok();
    execute(&wh, "2025-06-02", &[]).assert_ok();

    // Tuesday: the fund of funds' Monday NAV arrives; 900003 has Tuesday's, not Monday's.
    let tuesday = amfi_file(
        &files,
        "tue.txt",
        &[
            (900001, "101.0000", "2025-06-03"),
            (900002, "51.0000", "2025-06-02"),
            (900003, "21.0000", "2025-06-03"),
            (900004, "10.0000", "2025-05-30"),
        ],
        Some("2025-06-03"),
    );
    ingest(&wh, &tuesday, None).assert_ok();
    execute(&wh, "2025-06-03", &[]).assert_ok();
    assert_eq!(
        settled(&wh),
        "sip_id,due_date,runs,exec_date,status,nav_date,nav,units\n\
         1,2025-06-02,1,2025-06-02,executed,2025-06-02,100.00000000,4.9990\n\
         2,2025-06-02,1,2025-06-03,executed,2025-06-02,51.00000000,9.8030\n",
        "900003 must wait for its own NAV, not take Tuesday's"
    );

    // An Airflow clear of Monday: refused with exit 6, nothing written.
    let before = without_manifests(&wh);
    let refused = execute(&wh, "2025-06-02", &[]);
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--rewind") && refused.stderr.contains("2025-06-03"),
        "{}",
        refused.stderr
    );
    assert!(before == without_manifests(&wh), "a refused run wrote");

    // With --rewind: Tuesday's execution is retired, Monday now settles the fund of funds'
    // instalment (its NAV is there), and Tuesday re-run in order settles nothing twice.
    // (Three tables of Tuesday, in each of the 64 buckets.)
    let rewound = execute(&wh, "2025-06-02", &["--rewind"]);
    rewound.assert_ok();
    assert!(
        rewound.stdout.contains("retired_partitions=192"),
        "{}",
        rewound.stdout
    );
    assert!(!wh
        .join("investments/exec_date=2025-06-03")
        .read_dir()
        .map(|mut d| d.any(|e| e.unwrap().path().join("_SUCCESS").exists()))
        .unwrap_or(false));
    execute(&wh, "2025-06-03", &[]).assert_ok();
    assert_eq!(
        settled(&wh),
        "sip_id,due_date,runs,exec_date,status,nav_date,nav,units\n\
         1,2025-06-02,1,2025-06-02,executed,2025-06-02,100.00000000,4.9990\n\
         2,2025-06-02,1,2025-06-02,executed,2025-06-02,51.00000000,9.8030\n"
    );
    // Re-running the latest date reproduces it byte for byte.
    let before = without_manifests(&wh);
    execute(&wh, "2025-06-03", &[]).assert_ok();
    assert!(
        before == without_manifests(&wh),
        "re-running the last date changed it"
    );

    // Wednesday: still no Monday NAV for 900003; 900004 has waited 2 business days.
    let wednesday = amfi_file(
        &files,
        "wed.txt",
        &[
            (900001, "102.0000", "2025-06-04"),
            (900002, "52.0000", "2025-06-03"),
            (900003, "22.0000", "2025-06-04"),
            (900004, "10.0000", "2025-05-30"),
        ],
        Some("2025-06-04"),
    );
    ingest(&wh, &wednesday, None).assert_ok();
    execute(&wh, "2025-06-04", &[]).assert_ok();
    let pending = csv(
        &wh,
        "SELECT sip_id FROM investments WHERE exec_date = DATE '2025-06-04' AND status = 'pending' ORDER BY sip_id",
    );
    assert_eq!(pending, "sip_id\n3\n4\n");

    // AMFI's history report for 2 June fills 900003's gap.
    let history = tmp.path().join("files/history.txt");
    std::fs::write(
        &history,
        "Scheme Code;Scheme Name;ISIN Div Payout/ISIN Growth;ISIN Div Reinvestment;Net Asset Value;Repurchase Price;Sale Price;Date\n\n\
         Open Ended Schemes ( Growth )\n\nTest Mutual Fund\n\n\
         900003;Test Fund 900003 - Direct Plan - Growth;INF000A900003;;20.5000;;;02-Jun-2025\n",
    )
    .unwrap();
    ingest(&wh, history.to_str().unwrap(), None).assert_ok();

    // Thursday, first a file only partly out: most of Wednesday's open-ended publishers have
    // no NAV dated Thursday yet, so it is "not yet" (exit 4), and nothing is written.
    let partial = amfi_file(
        &files,
        "thu-partial.txt",
        &[
            (900001, "103.0000", "2025-06-05"),
            (900002, "53.0000", "2025-06-04"),
        ],
        None,
    );
    let before = without_manifests(&wh);
    let early = ingest(&wh, &partial, Some("2025-06-05"));
    assert_eq!(early.code, 4, "{}", early.stderr);
    assert!(
        early
            .stderr
            .contains("only 1 open-ended schemes have a NAV dated 2025-06-05"),
        "{}",
        early.stderr
    );
    assert!(before == without_manifests(&wh), "a refused ingest wrote");
    let thursday = amfi_file(
        &files,
        "thu.txt",
        &[
            (900001, "103.0000", "2025-06-05"),
            (900002, "53.0000", "2025-06-04"),
            (900003, "23.0000", "2025-06-05"),
        ],
        Some("2025-06-05"),
    );
    let complete = ingest(&wh, &thursday, Some("2025-06-05"));
    complete.assert_ok();
    assert!(
        complete
            .stdout
            .contains("open_ended_publishers=12 previous=13 (2025-06-04)"),
        "{}",
        complete.stdout
    );
    execute(&wh, "2025-06-05", &[]).assert_ok();
    assert_eq!(
        settled(&wh),
        "sip_id,due_date,runs,exec_date,status,nav_date,nav,units\n\
         1,2025-06-02,1,2025-06-02,executed,2025-06-02,100.00000000,4.9990\n\
         2,2025-06-02,1,2025-06-02,executed,2025-06-02,51.00000000,9.8030\n\
         3,2025-06-02,1,2025-06-05,executed,2025-06-02,20.50000000,24.3890\n\
         4,2025-06-02,1,2025-06-05,failed,,,\n"
    );
    let no_nav = csv(
        &wh,
        "SELECT event_id, amount FROM sip_events WHERE kind = 'no_nav'",
    );
    assert_eq!(no_nav, "event_id,amount\nsip:4:2025-06-02:no_nav,500.00\n");
    // No instalment settled twice, and the money reconciles on every executed row:
    // amount = duty + units × NAV + residue, 0 ≤ residue < 0.001 units × NAV.
    let broken = csv(
        &wh,
        "SELECT count(*) AS n FROM investments WHERE status = 'executed' AND ( \
           stamp_duty <> round(amount * 0.005 / 100.005, 2) \
           OR amount - stamp_duty - units * nav < 0 OR amount - stamp_duty - units * nav >= 0.001 * nav)",
    );
    assert_eq!(broken, "n\n0\n");
}
