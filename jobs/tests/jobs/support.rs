//! What the job tests share: running the real `sipline` binary, a throwaway PostgreSQL
//! cluster, a local HTTP server for fixtures, and reading warehouse files back.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipeline/tests/fixtures")
        .join(name)
}

/// The result of one `sipline` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "sipline failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sipline"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("SIPLINE_WAREHOUSE")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    command
}

/// Runs `sipline` to completion (blocking: call from a test thread, not an async task).
pub fn sipline(args: &[&str]) -> Run {
    Run::from(command(args).output().expect("run sipline"))
}

/// Runs `sipline` without blocking the async runtime (for tests that also serve HTTP).
/// `sipline_async` with environment variables set (secrets a flag must not carry).
pub async fn sipline_async_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = command(args);
    command.envs(env.iter().copied());
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .expect("run sipline");
    Run::from(output)
}

pub async fn sipline_async(args: &[&str]) -> Run {
    let output = tokio::process::Command::from(command(args))
        .output()
        .await
        .expect("run sipline");
    Run::from(output)
}

/// Every file under a folder with its bytes: a warehouse's whole state, to compare before and after.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name() == Some(std::ffi::OsStr::new("_runs")) {
                // Run manifests record when and how long: not data, never byte-identical.
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(
                    path.strip_prefix(root)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|_| path.clone()),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    files
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL server for one test. With `SIPLINE_TEST_DATABASE_URL` set (as `.ci/run` does)
/// it is a fresh database on that server; otherwise a cluster of its own, made with `initdb`
/// in a temporary folder and stopped when dropped.
pub struct Postgres {
    pub url: String,
    cluster: Option<Cluster>,
}

/// A cluster of a test's own: its data folder, how it is started, its log.
struct Cluster {
    data: PathBuf,
    options: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A temporary folder the `postgres` user owns when we are root (the server runs as it).
fn postgres_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    dir
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (initdb refuses root).
fn pg_tool(tool: &str, args: &[&str]) -> Output {
    let binary = format!("{PG_BIN}/{tool}");
    let output = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--", &binary])
            .args(args)
            .output()
    } else {
        Command::new(&binary).args(args).output()
    }
    .unwrap_or_else(|e| {
        panic!("{binary}: {e} (PostgreSQL 15 server binaries are needed for this test)")
    });
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl Postgres {
    pub async fn start() -> Self {
        if let Ok(server) = std::env::var("SIPLINE_TEST_DATABASE_URL") {
            // A counter, not a free port number: ports are reused, and two tests that drew the
            // same one collided on CREATE DATABASE.
            static NEXT_DATABASE: std::sync::atomic::AtomicUsize =
                std::sync::atomic::AtomicUsize::new(0);
            let name = format!(
                "sipline_test_{}_{}",
                std::process::id(),
                NEXT_DATABASE.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            );
            let admin = sqlx::PgPool::connect(&server)
                .await
                .expect("connect to SIPLINE_TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .unwrap();
            let mut url = url::Url::parse(&server).unwrap();
            url.set_path(&name);
            return Self {
                url: url.to_string(),
                cluster: None,
            };
        }
        Self::own_cluster()
    }

    /// A cluster of this test's own, whatever `SIPLINE_TEST_DATABASE_URL` says: for a test
    /// that stops the server under a job.
    pub fn own_cluster() -> Self {
        let dir = postgres_dir("sipline-pg-");
        pg_tool(
            "initdb",
            &[
                "-D",
                dir.path().join("data").to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        Self::started(dir, "")
    }

    /// Starts the cluster in `dir/data` on a free port (`extra` server settings after ours)
    /// and owns it: stopped when dropped.
    fn started(dir: tempfile::TempDir, extra: &str) -> Self {
        let data = dir.path().join("data");
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{extra}",
            dir.path().display()
        );
        let log = dir.path().join("server.log");
        // -l keeps the server from holding our stdout/stderr pipes open.
        pg_tool(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            cluster: Some(Cluster {
                data,
                options,
                log,
                _dir: dir,
            }),
        }
    }

    /// Stops the server at once (`-m immediate`: as a crash or a pulled plug would, no
    /// checkpoint); only for a cluster of the test's own.
    pub fn stop_immediately(&self) {
        let cluster = self.cluster.as_ref().expect("a cluster of the test's own");
        pg_tool(
            "pg_ctl",
            &[
                "-D",
                cluster.data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// A hot standby of this cluster (one of the test's own), made as an operator makes one:
    /// `pg_basebackup -R -X stream` from it (the base backup, and the settings that make the
    /// copy stream the primary's WAL), then started on a port of its own. Stopped when dropped.
    pub fn standby(&self) -> Self {
        assert!(
            self.cluster.is_some(),
            "a standby of a cluster of the test's own"
        );
        let primary = url::Url::parse(&self.url).unwrap();
        let primary_port = primary.port().unwrap().to_string();
        let dir = postgres_dir("sipline-pg-standby-");
        pg_tool(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-D",
                dir.path().join("data").to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                // A checkpoint now rather than a spread one (which waits minutes).
                "--checkpoint=fast",
            ],
        );
        Self::started(dir, " -c hot_standby=on")
    }

    /// Starts it again after [`Self::stop_immediately`] (crash recovery runs).
    pub fn start_again(&self) {
        let cluster = self.cluster.as_ref().expect("a cluster of the test's own");
        pg_tool(
            "pg_ctl",
            &[
                "-D",
                cluster.data.to_str().unwrap(),
                "-l",
                cluster.log.to_str().unwrap(),
                "-o",
                &cluster.options,
                "-w",
                "start",
            ],
        );
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url).await.unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(cluster) = &self.cluster {
            let binary = format!("{PG_BIN}/pg_ctl");
            let data = cluster.data.to_str().unwrap();
            let args = ["-D", data, "-m", "immediate", "-w", "stop"];
            let _ = if is_root() {
                Command::new("runuser")
                    .args(["-u", "postgres", "--", &binary])
                    .args(args)
                    .output()
            } else {
                Command::new(&binary).args(args).output()
            };
        }
    }
}

/// A local HTTP server for fixture files: `/files/NAME` serves a fixture, `/flaky/N/NAME`
/// answers 503 N times before serving it, anything else is 404. Counts requests.
pub struct FixtureServer {
    pub base: String,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FixtureServer {
    pub async fn start() -> Self {
        use axum::extract::{Path as UrlPath, State};
        use axum::http::StatusCode;
        use axum::routing::get;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        #[derive(Clone)]
        struct ServerState {
            requests: Arc<AtomicUsize>,
            failures: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
        }

        fn serve(name: &str) -> (StatusCode, Vec<u8>) {
            match std::fs::read(fixture(name)) {
                Ok(bytes) => (StatusCode::OK, bytes),
                Err(_) => (StatusCode::NOT_FOUND, Vec::new()),
            }
        }

        let state = ServerState {
            requests: Arc::new(AtomicUsize::new(0)),
            failures: Default::default(),
        };
        let app = axum::Router::new()
            .route(
                "/files/{name}",
                get(
                    |State(s): State<ServerState>, UrlPath(name): UrlPath<String>| async move {
                        s.requests.fetch_add(1, Ordering::SeqCst);
                        serve(&name)
                    },
                ),
            )
            .route(
                "/flaky/{times}/{name}",
                get(
                    |State(s): State<ServerState>,
                     UrlPath((times, name)): UrlPath<(usize, String)>| async move {
                        s.requests.fetch_add(1, Ordering::SeqCst);
                        let failed = {
                            let mut failures = s.failures.lock().unwrap();
                            let count = failures.entry(name.clone()).or_default();
                            *count += 1;
                            *count <= times
                        };
                        if failed {
                            (StatusCode::SERVICE_UNAVAILABLE, b"try again".to_vec())
                        } else {
                            serve(&name)
                        }
                    },
                ),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            requests: state.requests,
        }
    }
}

/// `nav ingest` of a fixture into a fresh warehouse and the database at `database_url`: the
/// scheme master the API's SIP and search routes read. The warehouse lives as long as the
/// returned folder.
pub async fn ingest_fixture_into_postgres(database_url: &str, name: &str) -> tempfile::TempDir {
    let warehouse = tempfile::tempdir().unwrap();
    sipline_async(&[
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        fixture(name).to_str().unwrap(),
        "--warehouse",
        warehouse.path().to_str().unwrap(),
        "--database-url",
        database_url,
    ])
    .await
    .assert_ok();
    warehouse
}
