//! Logs and traces. Logs go to stderr (text or JSON). Traces go over OTLP/HTTP only when an
//! endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! the OpenTelemetry SDK's own variables; `OTEL_EXPORTER_OTLP_PROTOCOL` `http/json` or, the
//! default, `http/protobuf`; `OTEL_SERVICE_NAME`). Without one no exporter exists and a span
//! costs what a `tracing` span costs.
//!
//! A job is one trace: its root span (`job`) carries the job, date and shard and, when
//! Airflow runs it, the DAG, task, run id and try (`AIRFLOW_CTX_*`, which `SiplineOperator`
//! passes), and continues a `TRACEPARENT` from the environment when one is given. Its
//! database calls (`#[tracing::instrument(name = "db", …)]`) and HTTP requests
//! (`http_client_span`) are child spans. The API continues each request's `traceparent`
//! header (see the `api` crate's `observe`).

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How log lines are written: text for a terminal, JSON for a log shipper.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The tracer provider while traces are exported: shut it down before exiting, or the last
/// batch of spans is lost.
#[must_use]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

fn configured(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.trim().is_empty())
}

/// Whether an OTLP endpoint is configured.
pub fn enabled() -> bool {
    configured("OTEL_EXPORTER_OTLP_ENDPOINT") || configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

fn tracer_provider(service: &str) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Ok("http/json") => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()?;
    let mut resource = Resource::builder();
    // OTEL_SERVICE_NAME, when set, names the service; the resource builder reads it.
    if !configured("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(service.to_string());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Sets up logging to stderr and, when an endpoint is configured, trace export. `service`
/// names the service when `OTEL_SERVICE_NAME` does not (`sipline-api` for `serve`).
pub fn init(format: LogFormat, service: &str) -> Result<Telemetry, TelemetryError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // PostgreSQL's notices ("relation … already exists, skipping") are not news.
        .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    };
    let provider = if enabled() {
        Some(tracer_provider(service)?)
    } else {
        None
    };
    let traces = provider.as_ref().map(|provider| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing_opentelemetry::layer().with_tracer(provider.tracer("sipline"))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .init();
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "could not export the last spans");
            }
        }
    }
}

/// The trace context a parent process passed in the environment: `TRACEPARENT` and
/// `TRACESTATE`, the names the OpenTelemetry specification gives for child processes.
fn environment_context() -> opentelemetry::Context {
    let carrier: HashMap<String, String> =
        [("traceparent", "TRACEPARENT"), ("tracestate", "TRACESTATE")]
            .into_iter()
            .filter_map(|(key, variable)| Some((key.to_string(), std::env::var(variable).ok()?)))
            .collect();
    TraceContextPropagator::new().extract(&carrier)
}

/// The root span of a job run, continuing `TRACEPARENT` when the environment holds one.
pub fn job_span(job: &str, date: Option<chrono::NaiveDate>, shard: Option<&str>) -> tracing::Span {
    let airflow = |name: &str| std::env::var(name).unwrap_or_default();
    let span = tracing::info_span!(
        "job",
        otel.name = job,
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        sipline.job = job,
        sipline.date = date.map(|d| d.to_string()).unwrap_or_default(),
        sipline.shard = shard.unwrap_or_default(),
        airflow.dag_id = airflow("AIRFLOW_CTX_DAG_ID"),
        airflow.task_id = airflow("AIRFLOW_CTX_TASK_ID"),
        airflow.run_id = airflow("AIRFLOW_CTX_DAG_RUN_ID"),
        airflow.try_number = airflow("AIRFLOW_CTX_TRY_NUMBER"),
    );
    if enabled() && std::env::var_os("TRACEPARENT").is_some() {
        // Only fails when the span is disabled (filtered out): nothing to continue then.
        let _ = span.set_parent(environment_context());
    }
    span
}

/// The W3C trace id of `span` (32 hex digits) when its trace is recorded (spans exported),
/// else the caller's from `TRACEPARENT` (as Airflow's operator passes it): a report then
/// names the trace the scheduler's run belongs to either way.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let context = span.context();
    let trace_id = context.span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        return Some(trace_id.to_string());
    }
    std::env::var("TRACEPARENT")
        .ok()
        .and_then(|t| t.split('-').nth(1).map(str::to_string))
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The span of one outgoing HTTP request (a NAV file, a report, a webhook), with the
/// `traceparent` header that continues the trace at the receiver.
pub fn http_client_span(method: &str, url: &str) -> (tracing::Span, HashMap<String, String>) {
    let span = tracing::info_span!(
        "http.client",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        url.full = crate::plumbing::redact::urls(url),
        http.response.status_code = tracing::field::Empty,
    );
    let mut headers = HashMap::new();
    if enabled() {
        let context = span.context();
        TraceContextPropagator::new().inject_context(&context, &mut headers);
    }
    (span, headers)
}
