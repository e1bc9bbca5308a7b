//! No secret in any output (issue 35 §5): with known secrets configured — a database password,
//! a JWT secret, a webhook key in a URL's path and query, a signed query on a NAV file's URL —
//! every command's stdout and stderr, `--help` and `--check-args`, the run manifests and
//! `job_runs` hold none of them. The secrets are written here, not derived from the redaction
//! code, so a new log site that prints one fails this test.

use std::path::Path;

use crate::support::{fixture, sipline_async, Postgres, Run};

const DB_PASSWORD: &str = "pgPass-Zq9vX2";
const JWT_SECRET: &str = "jwt-secret-of-at-least-32-bytes-K7w";
const WEBHOOK_PATH_TOKEN: &str = "HookPathTok3nQ8";
const WEBHOOK_QUERY_KEY: &str = "hookQueryKey5R";
const WEBHOOK_SECRET: &str = "webhook-hmac-secret-J4";
const NAV_SIGNATURE: &str = "navSig-Xp7Y";
const STANDBY_PASSWORD: &str = "standbyPass-M3t";
const SENTRY_KEY: &str = "5e17a9c0ffee4b1d8f00dd5e17a9c0de";
const UNSUBSCRIBE_SECRET: &str = "unsubscribeKey-Wq2-0123456789";
const UNSUBSCRIBE_PREVIOUS_SECRET: &str = "unsubscribeOld-Hn5-0123456789";
const CALLBACK_PREVIOUS_SECRET: &str = "callbackOld-Tz8-0123456789";
const WEBHOOK_PREVIOUS_SECRET: &str = "webhookOld-Pk4-0123456789";
const SECRETS: [&str; 12] = [
    WEBHOOK_PREVIOUS_SECRET,
    UNSUBSCRIBE_SECRET,
    UNSUBSCRIBE_PREVIOUS_SECRET,
    CALLBACK_PREVIOUS_SECRET,
    STANDBY_PASSWORD,
    SENTRY_KEY,
    DB_PASSWORD,
    JWT_SECRET,
    WEBHOOK_PATH_TOKEN,
    WEBHOOK_QUERY_KEY,
    WEBHOOK_SECRET,
    NAV_SIGNATURE,
];

#[track_caller]
fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret}:\n{text}"
        );
    }
}

fn outputs(run: &Run) -> String {
    format!("{}\n{}", run.stdout, run.stderr)
}

/// Every file under `root` as text, run manifests (`_runs`) included.
fn files_text(root: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                text.push('\n');
            }
        }
    }
    text
}

/// Serves the AMFI fixture at every path: the NAV file's URL carries a token in its path and
/// a signature in its query, as a signed object-store URL would.
async fn nav_server() -> String {
    let body = std::fs::read(fixture("amfi_navall_6col.txt")).unwrap();
    let app = axum::Router::new().fallback(axum::routing::get(move || {
        let body = body.clone();
        async move { body }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_shows_a_configured_secret() {
    let pg = Postgres::start().await;
    // The test cluster trusts local connections: any password connects, and is a secret to keep.
    let url = pg.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{DB_PASSWORD}@"),
        1,
    );
    assert_ne!(url, pg.url, "{}", pg.url);
    let warehouse = tempfile::tempdir().unwrap();
    let wh = warehouse.path().to_str().unwrap();
    let webhook = format!("http://127.0.0.1:9/hooks/{WEBHOOK_PATH_TOKEN}?key={WEBHOOK_QUERY_KEY}");

    // --help, with every secret in the environment clap reads.
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["notify", "dispatch", "--help"],
        &["nav", "ingest", "--help"],
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sipline"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env("SIPLINE_JWT_SECRET", JWT_SECRET)
            .env("SIPLINE_WEBHOOK_URL", &webhook)
            .env("SIPLINE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env(
                "SIPLINE_READ_DATABASE_URL",
                format!("postgres://reader:{STANDBY_PASSWORD}@127.0.0.1:9/sipline"),
            )
            .env("SENTRY_DSN", format!("http://{SENTRY_KEY}@127.0.0.1:9/42"))
            .env("SIPLINE_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
            .env(
                "SIPLINE_UNSUBSCRIBE_PREVIOUS_SECRET",
                UNSUBSCRIBE_PREVIOUS_SECRET,
            )
            .env(
                "SIPLINE_PROVIDER_CALLBACK_PREVIOUS_SECRET",
                CALLBACK_PREVIOUS_SECRET,
            )
            .env("SIPLINE_WEBHOOK_PREVIOUS_SECRET", WEBHOOK_PREVIOUS_SECRET)
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        assert_no_secret(
            &format!("{args:?}"),
            &format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        );
    }

    // --check-args on commands that carry secrets.
    let read_url = format!("postgres://reader:{STANDBY_PASSWORD}@127.0.0.1:9/sipline");
    for args in [
        vec![
            "--check-args",
            "serve",
            "--jwt-secret",
            JWT_SECRET,
            "--database-url",
            &url,
            "--read-database-url",
            &read_url,
            "--unsubscribe-secret",
            UNSUBSCRIBE_SECRET,
            "--unsubscribe-previous-secret",
            UNSUBSCRIBE_PREVIOUS_SECRET,
            "--provider-callback-secret",
            WEBHOOK_SECRET,
            "--provider-callback-previous-secret",
            CALLBACK_PREVIOUS_SECRET,
        ],
        vec![
            "--check-args",
            "notify",
            "dispatch",
            "--webhook-url",
            &webhook,
            "--webhook-secret",
            WEBHOOK_SECRET,
            "--webhook-previous-secret",
            WEBHOOK_PREVIOUS_SECRET,
            "--database-url",
            &url,
        ],
    ] {
        let run = sipline_async(&args).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_no_secret("--check-args", &outputs(&run));
    }

    // A NAV file from a signed URL, recorded in job_runs and a manifest: success line and logs.
    let base = nav_server().await;
    let input = format!("{base}/{NAV_SIGNATURE}/NAVAll.txt?signature={NAV_SIGNATURE}");
    let run = sipline_async(&[
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        &input,
        "--warehouse",
        wh,
        "--database-url",
        &url,
    ])
    .await;
    run.assert_ok();
    assert!(run.stdout.contains("NAVAll.txt"), "{}", run.stdout);
    assert_no_secret("nav ingest", &outputs(&run));
    // And a failing one (a date the file does not hold): the error says which file, not how
    // it was signed.
    let run = sipline_async(&[
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        &input,
        "--date",
        "2031-01-01",
        "--warehouse",
        wh,
        "--database-url",
        &url,
    ])
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_no_secret("a failed nav ingest", &outputs(&run));

    // Deliveries to a webhook that refuses the connection: warnings and last_error.
    let pool = pg.pool().await;
    sqlx::query(
        "INSERT INTO users (user_id, auth_subject) VALUES (1, 'sub-1') ON CONFLICT DO NOTHING",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO notifications (event_key, user_id, kind, payload) \
         VALUES ('secret:1', 1, 'sip_executed', jsonb_build_object('sip_id', 1, 'amount', '500.00'))",
    )
    .execute(&pool)
    .await
    .unwrap();
    let run = sipline_async(&[
        "notify",
        "dispatch",
        "--database-url",
        &url,
        "--webhook-url",
        &webhook,
        "--webhook-secret",
        WEBHOOK_SECRET,
        "--webhook-previous-secret",
        WEBHOOK_PREVIOUS_SECRET,
    ])
    .await;
    run.assert_ok();
    assert!(run.stderr.contains("delivery failed"), "{}", run.stderr);
    assert_no_secret("notify dispatch", &outputs(&run));
    let last_errors: Vec<Option<String>> =
        sqlx::query_scalar("SELECT last_error FROM notification_deliveries")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!last_errors.is_empty());
    assert_no_secret("last_error", &format!("{last_errors:?}"));

    // What the runs left behind: manifests in the warehouse, rows in job_runs.
    let written = files_text(warehouse.path());
    assert!(
        written.contains("nav ingest") || written.contains("nav_ingest"),
        "no manifest found"
    );
    assert_no_secret("run manifests", &written);
    let job_runs: Vec<String> = sqlx::query_scalar("SELECT row_to_json(j)::text FROM job_runs j")
        .fetch_all(&pool)
        .await
        .unwrap();
    // The successful ingest, the one that found no NAV dated the day, the dispatch.
    assert!(job_runs.len() >= 3, "{job_runs:?}");
    assert!(
        job_runs.iter().any(|r| r.contains("no_nav_dated_yet")),
        "{job_runs:?}"
    );
    assert_no_secret("job_runs", &job_runs.join("\n"));
}
