//! Downloads a NAV file over HTTP(S) into a temporary file, with timeouts and a bounded number
//! of retries with exponential backoff. Only failures that a retry can cure are retried
//! (connection errors, timeouts, 5xx, 429); a 404 means "not published yet" and is reported as
//! a missing upstream so the scheduler retries later, not this process now.

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use tracing::Instrument;

/// The largest download accepted: AMFI's daily file is a few megabytes, a year's history
/// report tens of megabytes.
pub const MAX_DOWNLOAD_BYTES: u64 = 512 * 1024 * 1024;

/// Redirects followed at most (within the same host).
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: not published (HTTP {status})")]
    NotPublished { url: String, status: StatusCode },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: StatusCode },
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url}: writing the download: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{url}: larger than {limit} bytes, refused (no NAV file or report is that large)")]
    TooLarge { url: String, limit: u64 },
    #[error("{path}: no such file")]
    NoSuchFile { path: String },
    #[error("{path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{url}: gave up after {attempts} attempts; last error: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        last: Box<FetchError>,
    },
}

impl FetchError {
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            FetchError::Http { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body()
            }
            _ => false,
        }
    }

    /// A body over [`MAX_DOWNLOAD_BYTES`], on the last attempt or the only one.
    /// Whether the input itself is wrong (too large, or a local file that cannot be read):
    /// retrying will not help.
    pub fn is_bad_input(&self) -> bool {
        match self {
            FetchError::TooLarge { .. } | FetchError::Unreadable { .. } => true,
            FetchError::GaveUp { last, .. } => last.is_bad_input(),
            _ => false,
        }
    }

    /// Whether the file is simply not there yet (the scheduler should retry later).
    pub fn is_not_published(&self) -> bool {
        match self {
            FetchError::NotPublished { .. } | FetchError::NoSuchFile { .. } => true,
            FetchError::GaveUp { last, .. } => last.is_not_published(),
            _ => false,
        }
    }
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
        }
    }
}

/// Fetches `url` into a new temporary file and returns it, rewound.
pub async fn download(
    url: &str,
    policy: RetryPolicy,
) -> Result<tempfile::NamedTempFile, FetchError> {
    let client = reqwest::Client::builder()
        // Redirects only within the host asked for, and few: a publisher moving a file keeps
        // its host; a redirect elsewhere could carry a signed query to someone else.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            // Same scheme, host and port: no downgrade to http, no other service on the host.
            let same_host = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if !same_host {
                attempt.error("a redirect to another host, refused")
            } else {
                attempt.follow()
            }
        }))
        .connect_timeout(policy.connect_timeout)
        .timeout(policy.timeout)
        .user_agent(concat!("sipline/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| FetchError::Http {
            url: url.to_string(),
            source,
        })?;
    let mut backoff = policy.first_backoff;
    let mut attempt = 1;
    loop {
        match download_once(&client, url).await {
            Ok(file) => return Ok(file),
            Err(e) if e.is_transient() && attempt < policy.attempts => {
                tracing::warn!(
                    url = crate::plumbing::redact::urls(url),
                    attempt,
                    error = crate::plumbing::redact::urls(&e.to_string()),
                    backoff_ms = backoff.as_millis() as u64,
                    "download failed; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
                attempt += 1;
            }
            Err(e) if attempt > 1 => {
                return Err(FetchError::GaveUp {
                    url: url.to_string(),
                    attempts: attempt,
                    last: Box::new(e),
                });
            }
            Err(e) => return Err(e),
        }
    }
}

async fn download_once(
    client: &reqwest::Client,
    url: &str,
) -> Result<tempfile::NamedTempFile, FetchError> {
    let http = |source| FetchError::Http {
        url: url.to_string(),
        source,
    };
    let io = |source| FetchError::Io {
        url: url.to_string(),
        source,
    };
    let (span, trace_headers) = crate::plumbing::telemetry::http_client_span("GET", url);
    let mut request = client.get(url);
    for (name, value) in &trace_headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request
        .send()
        .instrument(span.clone())
        .await
        .map_err(http)?;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status == StatusCode::NOT_FOUND {
        return Err(FetchError::NotPublished {
            url: url.to_string(),
            status,
        });
    }
    if !status.is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status,
        });
    }
    // Stream to disk: a history report can be tens of megabytes; a body past the cap (a
    // misconfigured URL, a hostile server) is refused rather than allowed to fill the disk.
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit: MAX_DOWNLOAD_BYTES,
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOWNLOAD_BYTES)
    {
        return Err(too_large());
    }
    let mut file = tempfile::NamedTempFile::new().map_err(io)?;
    let mut body = response.bytes_stream();
    let mut received: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(http)?;
        received = received.saturating_add(chunk.len() as u64);
        if received > MAX_DOWNLOAD_BYTES {
            return Err(too_large());
        }
        file.write_all(&chunk).map_err(io)?;
    }
    file.flush().map_err(io)?;
    Ok(file)
}

/// A small text input (a report, not a NAV file): a local path, or an `http(s)://` URL
/// downloaded with `policy`. A path that cannot be read is bad input.
pub async fn read_text(location: &str, policy: RetryPolicy) -> anyhow::Result<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        let download = download(location, policy).await?;
        std::fs::read_to_string(download.path())
            .map_err(|e| anyhow::anyhow!("{location}: reading the download: {e}"))
    } else {
        std::fs::read_to_string(location).map_err(|e| {
            let path = location.to_string();
            if e.kind() == std::io::ErrorKind::NotFound {
                FetchError::NoSuchFile { path }.into()
            } else {
                FetchError::Unreadable { path, source: e }.into()
            }
        })
    }
}

/// Whether `read_text` failed because the input is not there (yet): an HTTP 404/410 or a
/// missing local file.
pub fn is_missing(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<FetchError>()
            .is_some_and(FetchError::is_not_published)
    })
}
