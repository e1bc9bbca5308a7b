//! What schedulers and operators rely on beyond the data: run manifests next to the output,
//! `calendar check` for skipping holidays, and `--check-args` for validating task commands.

use crate::support::{sipline, snapshot};

fn manifest(warehouse: &std::path::Path, job: &str, date: &str, shard: &str) -> serde_json::Value {
    let path = warehouse
        .join("_runs")
        .join(job)
        .join(format!("date={date}"))
        .join(format!("shard={shard}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_job_run_leaves_a_manifest_next_to_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().to_str().unwrap();

    // A failed run is recorded too, and writes nothing else.
    let run = sipline(&["sip", "execute", "--date", "2025-03-03", "--warehouse", w]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(snapshot(dir.path()).is_empty(), "a failed run wrote data");
    let failed = manifest(dir.path(), "sip_execute", "2025-03-03", "0-of-1");
    assert_eq!(failed["outcome"], "missing_upstream", "{failed}");
    assert_eq!(failed["exit_code"], 4);
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("no `sips` snapshot"),
        "{failed}"
    );

    sipline(&[
        "generate",
        "--users",
        "200",
        "--months",
        "2",
        "--end-date",
        "2025-03-31",
        "--seed",
        "5",
        "--warehouse",
        w,
    ])
    .assert_ok();
    for shard in ["0/2", "1/2"] {
        sipline(&[
            "sip",
            "execute",
            "--date",
            "2025-03-03",
            "--shard",
            shard,
            "--warehouse",
            w,
        ])
        .assert_ok();
    }
    // Each shard has its own manifest.
    let mut executed = 0;
    for shard in ["0-of-2", "1-of-2"] {
        let ok = manifest(dir.path(), "sip_execute", "2025-03-03", shard);
        assert_eq!(ok["outcome"], "ok", "{ok}");
        assert_eq!(ok["exit_code"], 0);
        assert_eq!(ok["shard"], shard.replace("-of-", "/"));
        assert!(ok["duration_ms"].as_u64().is_some(), "{ok}");
        assert_eq!(ok["args"][0], "sip");
        executed += ok["rows_out"].as_u64().unwrap();
    }
    let rows: u64 = crate::sip::csv(
        dir.path(),
        "SELECT count(*) AS n FROM investments WHERE exec_date = DATE '2025-03-03'",
    )
    .lines()
    .nth(1)
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(executed, rows, "the manifests count the rows written");
    let generated = manifest(dir.path(), "generate", "2025-03-31", "0-of-1");
    assert_eq!(generated["outcome"], "ok");
    assert_eq!(generated["warnings"], serde_json::json!([]), "{generated}");
}

/// A holiday list that ends within 60 days of a run is reported — log line and manifest —
/// without failing the run; the embedded list says where it ends.
#[test]
fn a_holiday_calendar_about_to_end_is_reported() {
    let run = sipline(&["calendar", "check", "--date", "2026-11-25"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("holiday calendar ends on 2026-12-31"),
        "{}",
        run.stderr
    );
    let quiet = sipline(&["calendar", "check", "--date", "2026-06-01"]);
    assert!(
        !quiet.stderr.contains("holiday calendar"),
        "{}",
        quiet.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let holidays = dir.path().join("holidays.txt");
    std::fs::write(&holidays, "# through: 2025-04-15\n2025-03-14\n").unwrap();
    let w = dir.path().join("wh");
    let w = w.to_str().unwrap();
    sipline(&[
        "generate",
        "--users",
        "20",
        "--months",
        "1",
        "--end-date",
        "2025-03-31",
        "--holidays",
        holidays.to_str().unwrap(),
        "--warehouse",
        w,
    ])
    .assert_ok();
    let generated = manifest(&dir.path().join("wh"), "generate", "2025-03-31", "0-of-1");
    let warnings = generated["warnings"].to_string();
    assert!(
        warnings.contains("ends on 2025-04-15, 15 days after 2025-03-31"),
        "{generated}"
    );
}

#[test]
fn calendar_check_tells_business_days_from_weekends_and_holidays() {
    for (date, code, says) in [
        ("2025-03-13", 0, "is a business day"),
        ("2025-03-14", 5, "is not a business day"), // Holi
        ("2025-03-15", 5, "is not a business day"), // a Saturday
    ] {
        let run = sipline(&["calendar", "check", "--date", date]);
        assert_eq!(run.code, code, "{date}: {}", run.stderr);
        assert!(run.stdout.contains(says), "{date}: {}", run.stdout);
    }
    let holidays = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(holidays.path(), "2025-03-13\n").unwrap();
    let run = sipline(&[
        "calendar",
        "check",
        "--date",
        "2025-03-13",
        "--holidays",
        holidays.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 5, "{}", run.stderr);
}

#[test]
fn check_args_validates_a_command_without_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("never-created");
    let w = w.to_str().unwrap();
    let ok = sipline(&[
        "--check-args",
        "portfolio",
        "value",
        "--date",
        "2025-03-03",
        "--shard",
        "1/4",
        "--warehouse",
        w,
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        !std::path::Path::new(w).exists(),
        "--check-args ran the job"
    );
    for bad in [
        &["--check-args", "portfolio", "value", "--date", "2025-02-30"][..],
        &[
            "--check-args",
            "portfolio",
            "value",
            "--date",
            "2025-03-03",
            "--shard",
            "4/4",
        ],
        &["--check-args", "publish"],
        &[
            "--check-args",
            "sip",
            "execute",
            "--date",
            "2025-03-03",
            "--bogus",
        ],
    ] {
        let run = sipline(bad);
        assert_eq!(run.code, 2, "{bad:?}: {}", run.stderr);
    }
}
