//! OpenTelemetry traces over OTLP/HTTP, received by a small collector in the test: one API
//! request continues the caller's `traceparent` with its database call as a child span, and one
//! job run (`nav ingest` from a real local HTTP server into PostgreSQL, as Airflow starts it) is
//! one trace whose root carries the Airflow run and whose HTTP and database calls are children.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use reqwest::StatusCode;
use serde_json::Value;

use crate::api::{claims, hs256, Api};
use crate::support::{fixture, FixtureServer, Postgres};

/// An OTLP/HTTP JSON receiver: every span it was sent, flattened with its service name.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
        let received = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    let export: Value = serde_json::from_slice(&body).expect("OTLP JSON");
                    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                        let service = attribute(&resource["resource"], "service.name");
                        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                            for span in scope["spans"].as_array().into_iter().flatten() {
                                let mut span = span.clone();
                                span["service"] = Value::String(service.clone());
                                received.lock().unwrap().push(span);
                            }
                        }
                    }
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { endpoint, spans }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
            // Export each batch within 100 ms, so the test does not wait 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ]
    }

    /// The spans of one trace, once `done` holds of them (10 s at most).
    async fn trace(&self, trace_id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..100 {
            let spans: Vec<Value> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|span| span["traceId"] == trace_id)
                .cloned()
                .collect();
            if done(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "trace {trace_id} incomplete: {:#}",
            Value::Array(self.spans.lock().unwrap().clone())
        );
    }
}

fn attribute(holder: &Value, key: &str) -> String {
    holder["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .map(|a| {
            let value = &a["value"];
            value["stringValue"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value["intValue"].to_string().trim_matches('"').to_string())
        })
        .unwrap_or_default()
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

// OTLP span kinds.
const SERVER: i64 = 2;
const CLIENT: i64 = 3;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_request_continues_the_callers_trace_with_its_query_as_a_child() {
    let pg = Postgres::start().await;
    let _warehouse =
        crate::support::ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    let collector = Collector::start().await;
    let env = collector.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let api = Api::start_with_env(
        &pg.url,
        &["--rate-per-user", "0", "--rate-per-address", "0"],
        &env,
    )
    .await;
    let token = hs256(&claims("auth0|traced"));
    let response = api
        .http
        .get(format!("{}/v1/schemes?q=fund", api.base))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let spans = collector
        .trace(TRACE, |spans| {
            !named(spans, "GET /v1/schemes").is_empty()
                && !named(spans, "postgresql query").is_empty()
        })
        .await;
    let request = named(&spans, "GET /v1/schemes")[0];
    assert_eq!(request["parentSpanId"], CALLER_SPAN, "{request:#}");
    assert_eq!(request["kind"], SERVER);
    assert_eq!(request["service"], "sipline-api");
    assert_eq!(attribute(request, "http.route"), "/v1/schemes");
    assert_eq!(attribute(request, "http.response.status_code"), "200");
    for query in named(&spans, "postgresql query") {
        assert_eq!(query["parentSpanId"], request["spanId"], "{query:#}");
        assert_eq!(query["kind"], CLIENT);
        assert_eq!(attribute(query, "db.system.name"), "postgresql");
    }
    // A request without a traceparent starts its own trace.
    let (status, _) = api.get("/v1/schemes?q=fund", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_run_is_one_trace_with_its_http_and_database_calls_as_children() {
    let pg = Postgres::start().await;
    let server = FixtureServer::start().await;
    let collector = Collector::start().await;
    let warehouse = tempfile::tempdir().unwrap();
    assert!(fixture("amfi_navall_6col.txt").exists());
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sipline"))
        .args([
            "nav",
            "ingest",
            "--source",
            "amfi",
            "--input",
            &format!("{}/files/amfi_navall_6col.txt", server.base),
            "--warehouse",
            warehouse.path().to_str().unwrap(),
            "--database-url",
            &pg.url,
        ])
        .envs(collector.env())
        // As SiplineOperator starts it.
        .env("AIRFLOW_CTX_DAG_ID", "sipline_daily")
        .env("AIRFLOW_CTX_TASK_ID", "nav_ingest_amfi")
        .env(
            "AIRFLOW_CTX_DAG_RUN_ID",
            "scheduled__2025-03-04T17:30:00+00:00",
        )
        .env("AIRFLOW_CTX_TRY_NUMBER", "1")
        .env("TRACEPARENT", format!("00-{trace}-{parent}-01"))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The process exports its last spans before it exits: no waiting for a batch.
    let spans = collector.trace(trace, |spans| !spans.is_empty()).await;
    let root = named(&spans, "nav ingest");
    assert_eq!(root.len(), 1, "{spans:#?}");
    let root = root[0];
    assert_eq!(root["parentSpanId"], parent);
    assert_eq!(root["service"], "sipline");
    assert_eq!(
        attribute(root, "airflow.run_id"),
        "scheduled__2025-03-04T17:30:00+00:00"
    );
    assert_eq!(attribute(root, "airflow.task_id"), "nav_ingest_amfi");
    assert_eq!(attribute(root, "sipline.job"), "nav ingest");
    let download = named(&spans, "GET");
    assert_eq!(download.len(), 1, "{spans:#?}");
    assert_eq!(download[0]["parentSpanId"], root["spanId"]);
    assert_eq!(download[0]["kind"], CLIENT);
    assert_eq!(attribute(download[0], "http.response.status_code"), "200");
    for operation in ["migrate", "upsert navs", "upsert schemes"] {
        let db = named(&spans, operation);
        assert_eq!(db.len(), 1, "{operation}: {spans:#?}");
        assert_eq!(db[0]["parentSpanId"], root["spanId"], "{operation}");
        assert_eq!(attribute(db[0], "db.system.name"), "postgresql");
    }
}
