//! Crash-safe, tried by force (issue 35 §4): each warehouse job is killed with SIGKILL at
//! moments spread over its run, many times, then run to completion; the warehouse then holds
//! exactly the bytes an uninterrupted run wrote (nothing doubled, nothing lost, no partition
//! half-written). `SIPLINE_CRASH_KILLS` sets the kills per job (CI: 6; by hand, more).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::sip::generate;
use crate::support::{sipline, snapshot};

/// How long the job takes uninterrupted, and its output.
fn timed_run(args: &[&str]) -> Duration {
    let started = Instant::now();
    sipline(args).assert_ok();
    started.elapsed()
}

/// Starts the job and kills it with SIGKILL after `after`; whether it was still running.
fn kill_after(args: &[&str], after: Duration) -> bool {
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
    // Each job with the state it starts from: execution on the generated universe, then
    // valuation on the executed one.
    let jobs: [(&str, Vec<&str>); 2] = [
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
        let differing: Vec<_> = clean_files
            .keys()
            .chain(crashed_files.keys())
            .filter(|p| clean_files.get(*p) != crashed_files.get(*p))
            .collect();
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
