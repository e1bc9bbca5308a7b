//! Error reports to Sentry (issue 40 §4), received by a local stand-in for Sentry's ingest
//! endpoint that reads what arrives the way Sentry documents it: `POST /api/<project>/envelope/`
//! with an `X-Sentry-Auth` header naming the DSN's key, and an envelope body (a header line,
//! then items, each a header line with its type and length followed by its payload). A failed
//! job, a panic and an API 5xx answer each arrive as an event with the release, the
//! environment, the trace and the job's arguments, and no secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::api::{claims, hs256, Api};
use crate::support::Postgres;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const PROJECT: &str = "42";
/// A secret given on the command line: it must reach no report.
const PASSWORD: &str = "pw-for-sentry-test-7731";

/// One received envelope: its header and its items as (item header, payload).
#[derive(Clone, Debug)]
struct Envelope {
    items: Vec<(Value, Value)>,
    raw: String,
}

impl Envelope {
    /// Sentry's envelope format: newline-separated JSON; an item's payload is `length` bytes
    /// when its header says so, else runs to the end of the line.
    fn parse(body: &[u8]) -> Self {
        let raw = String::from_utf8_lossy(body).into_owned();
        let mut rest = body;
        let next_line = |rest: &mut &[u8]| -> Option<Vec<u8>> {
            if rest.is_empty() {
                return None;
            }
            let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let line = rest[..end].to_vec();
            *rest = rest.get(end + 1..).unwrap_or(&[]);
            Some(line)
        };
        let header = next_line(&mut rest).expect("an envelope header");
        let _: Value = serde_json::from_slice(&header).expect("the envelope header is JSON");
        let mut items = Vec::new();
        while let Some(line) = next_line(&mut rest) {
            if line.is_empty() {
                continue;
            }
            let item: Value = serde_json::from_slice(&line).expect("an item header is JSON");
            let payload = match item["length"].as_u64() {
                Some(length) => {
                    let length = length as usize;
                    let payload = rest[..length].to_vec();
                    rest = rest.get(length..).unwrap_or(&[]);
                    if rest.first() == Some(&b'\n') {
                        rest = &rest[1..];
                    }
                    payload
                }
                None => next_line(&mut rest).unwrap_or_default(),
            };
            let payload = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            items.push((item, payload));
        }
        Self { items, raw }
    }

    fn events(&self) -> impl Iterator<Item = &Value> {
        self.items
            .iter()
            .filter(|(header, _)| header["type"] == "event")
            .map(|(_, event)| event)
    }
}

/// The stand-in for Sentry: envelopes it accepted; requests without the DSN's key are 401s.
/// It also takes OTLP trace exports (`/v1/traces`), so a job's trace is recorded.
struct Sentry {
    dsn: String,
    otlp: String,
    envelopes: Arc<Mutex<Vec<Envelope>>>,
}

impl Sentry {
    async fn start() -> Self {
        let envelopes: Arc<Mutex<Vec<Envelope>>> = Arc::default();
        let received = envelopes.clone();
        let app = axum::Router::new()
            .route(
                "/api/{project}/envelope/",
                axum::routing::post(
                    move |axum::extract::Path(project): axum::extract::Path<String>,
                          headers: axum::http::HeaderMap,
                          body: axum::body::Bytes| {
                        let received = received.clone();
                        async move {
                            let auth = headers
                                .get("x-sentry-auth")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            if project != PROJECT
                                || !auth.starts_with("Sentry ")
                                || !auth.contains(&format!("sentry_key={KEY}"))
                            {
                                return axum::http::StatusCode::UNAUTHORIZED;
                            }
                            received.lock().unwrap().push(Envelope::parse(&body));
                            axum::http::StatusCode::OK
                        }
                    },
                ),
            )
            .route("/v1/traces", axum::routing::post(|| async { "{}" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            dsn: format!("http://{KEY}@{address}/{PROJECT}"),
            otlp: format!("http://{address}"),
            envelopes,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SENTRY_DSN", self.dsn.clone()),
            ("SENTRY_ENVIRONMENT", "reports-test".to_string()),
        ]
    }

    /// The events received so far that `wanted` picks, once there is one (10 s at most).
    async fn event(&self, wanted: impl Fn(&Value) -> bool) -> (Value, String) {
        for _ in 0..100 {
            let found = self.envelopes.lock().unwrap().iter().find_map(|envelope| {
                envelope
                    .events()
                    .find(|event| wanted(event))
                    .map(|event| (event.clone(), envelope.raw.clone()))
            });
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no such event among {:#?}",
            self.envelopes
                .lock()
                .unwrap()
                .iter()
                .map(|e| e.raw.clone())
                .collect::<Vec<_>>()
        );
    }
}

/// What every report carries: the release and the environment, and no secret.
fn assert_common(event: &Value, raw: &str) {
    assert_eq!(
        event["release"],
        format!("sipline@{}", env!("CARGO_PKG_VERSION")),
        "{event:#}"
    );
    assert_eq!(event["environment"], "reports-test", "{event:#}");
    assert!(!raw.contains(PASSWORD), "a secret in a report: {raw}");
}

/// The event's level: Sentry leaves out the default, `error`.
fn level(event: &Value) -> &str {
    event["level"].as_str().unwrap_or("error")
}

fn message(event: &Value) -> String {
    event["message"]
        .as_str()
        .or_else(|| event["logentry"]["message"].as_str())
        .or_else(|| event["message"]["formatted"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A failed job: `nav ingest` of a URL nobody answers, with a password in it, started as
/// Airflow starts it (its trace from `TRACEPARENT`). The report names the job and the exit
/// code, shows the URL's host but not its password, and carries the run's trace; a download
/// that may succeed later (exit 4) is a warning, anything else an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_reported_with_its_trace_and_arguments_redacted() {
    let sentry = Sentry::start().await;
    let warehouse = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let input = format!("http://amfi:{PASSWORD}@{closed}/spages/NAVAll.txt?token={PASSWORD}");
    let trace = "5bf92f3577b34da6a3ce929d0e0e4736";
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sipline"))
        .args([
            "nav",
            "ingest",
            "--source",
            "amfi",
            "--input",
            &input,
            "--warehouse",
            warehouse.path().to_str().unwrap(),
        ])
        .envs(sentry.env())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &sentry.otlp)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("TRACEPARENT", format!("00-{trace}-b7ad6b7169203331-01"))
        .output()
        .await
        .unwrap();
    let code = output.status.code().unwrap();
    assert_ne!(code, 0, "the job was meant to fail");
    let (event, raw) = sentry.event(|e| message(e).starts_with("job failed")).await;
    assert_common(&event, &raw);
    let expected = if code == 4 { "warning" } else { "error" };
    assert_eq!(level(&event), expected, "exit {code}: {event:#}");
    assert_eq!(event["tags"]["job"], "nav ingest", "{event:#}");
    assert_eq!(event["tags"]["exit_code"], code.to_string(), "{event:#}");
    assert!(message(&event).contains(&closed.to_string()), "{event:#}");
    assert_eq!(event["contexts"]["trace"]["trace_id"], trace, "{event:#}");
    let args: Vec<&str> = event["extra"]["args"]
        .as_array()
        .unwrap_or_else(|| panic!("no args: {event:#}"))
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..2], ["nav", "ingest"], "{event:#}");
    let input_at = args.iter().position(|a| *a == "--input").unwrap();
    assert!(
        args[input_at + 1].starts_with(&format!("http://{closed}/")),
        "{event:#}"
    );
}

/// A panic: `sipline report-test` sends a test message, then panics on purpose; both arrive,
/// the panic as an exception with its message and a stack trace. Without a DSN the command
/// refuses (exit 3) rather than pretend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_as_an_exception_and_report_test_checks_the_setup() {
    let refused = crate::support::sipline_async(&["report-test"]).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("SENTRY_DSN"), "{}", refused.stderr);

    let sentry = Sentry::start().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sipline"))
        // A secret on the command line, as a deployment may pass one: the panic report's
        // arguments must not show it.
        .args([
            "report-test",
            "--database-url",
            &format!("postgres://sipline:{PASSWORD}@127.0.0.1:1/sipline"),
        ])
        .envs(sentry.env())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(101), "a panic exits 101");
    let (hello, raw) = sentry
        .event(|e| message(e).contains("error reporting works"))
        .await;
    assert_common(&hello, &raw);
    assert_eq!(hello["tags"]["job"], "sipline", "{hello:#}");
    let (panic, raw) = sentry
        .event(|e| {
            e["exception"]["values"]
                .as_array()
                .is_some_and(|v| !v.is_empty())
        })
        .await;
    assert_common(&panic, &raw);
    assert_eq!(panic["level"], "fatal", "{panic:#}");
    let exception = &panic["exception"]["values"][0];
    assert!(
        exception["value"]
            .as_str()
            .unwrap_or_default()
            .contains("a deliberate panic"),
        "{panic:#}"
    );
    assert_eq!(exception["mechanism"]["type"], "panic", "{panic:#}");
    assert!(
        exception["stacktrace"]["frames"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "no stack trace: {panic:#}"
    );
}

/// An API answer of 500 (a table gone from under it): reported with the route (not the
/// path), the status, the request id the client got, the database's reason and the caller's
/// trace; a 4xx is not reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_5xx_answer_is_reported_with_the_route_the_cause_and_the_callers_trace() {
    let pg = Postgres::start().await;
    let sentry = Sentry::start().await;
    let env = sentry.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let api = Api::start_with_env(
        &pg.url,
        &[
            "--rate-per-user",
            "0",
            "--rate-per-address",
            "0",
            "--metrics-token",
            PASSWORD,
        ],
        &env,
    )
    .await;
    // A 404 first: not an error of ours.
    let missing = api
        .http
        .get(format!("{}/v1/no-such-route", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);

    sqlx::query("ALTER TABLE schemes RENAME TO schemes_moved")
        .execute(&pg.pool().await)
        .await
        .unwrap();
    let trace = "6bf92f3577b34da6a3ce929d0e0e4736";
    let answer = api
        .http
        .get(format!("{}/v1/schemes?q=franklin", api.base))
        .bearer_auth(hs256(&claims("auth0|reports")))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .header("x-request-id", "req-sentry-1")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    let body = answer.text().await.unwrap();
    assert!(!body.contains("schemes"), "the cause stays inside: {body}");

    let (event, raw) = sentry.event(|e| e["tags"]["status"] == "500").await;
    assert_common(&event, &raw);
    assert_eq!(level(&event), "error", "{event:#}");
    assert_eq!(event["tags"]["route"], "/v1/schemes", "{event:#}");
    assert_eq!(event["tags"]["job"], "sipline-api", "{event:#}");
    assert_eq!(event["tags"]["request_id"], "req-sentry-1", "{event:#}");
    assert!(
        message(&event).contains("relation \"schemes\" does not exist"),
        "{event:#}"
    );
    assert_eq!(event["contexts"]["trace"]["trace_id"], trace, "{event:#}");
    let reported: Vec<String> = sentry
        .envelopes
        .lock()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e.events()
                .map(|ev| ev["tags"]["status"].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !reported.iter().any(|s| s.contains("404")),
        "a 404 was reported: {reported:?}"
    );
}
