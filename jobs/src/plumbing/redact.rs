//! URLs as they may be shown: the host and a file name, without credentials, other path
//! segments or query string. Webhook and SMS URLs often
//! carry a provider's key (`https://user:key@host/…`, `…?token=…`), and `--input` URLs a
//! signed query; logs, `last_error`, `job_runs.error` and run manifests are read by more people
//! than the secrets are meant for.

/// A command line as it may be shown (run manifests, error reports): the value of every flag
/// that carries a secret — the database URL, and any flag named for a secret, key, token,
/// password or DSN — replaced by `<redacted>`, and URLs elsewhere stripped as by `urls`.
pub fn args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let secret_flag = |flag: &str| {
        flag == "--database-url"
            || ["secret", "key", "token", "password", "dsn"]
                .iter()
                .any(|word| flag.contains(word))
    };
    let mut out = Vec::new();
    let mut secret_next = false;
    for arg in args {
        if secret_next {
            out.push("<redacted>".to_string());
            secret_next = false;
        } else if let Some((flag, _)) = arg.split_once('=').filter(|(f, _)| f.starts_with("--")) {
            if secret_flag(flag) {
                out.push(format!("{flag}=<redacted>"));
            } else {
                out.push(urls(&arg));
            }
        } else if arg.starts_with("--") && secret_flag(&arg) {
            secret_next = true;
            out.push(arg);
        } else {
            out.push(urls(&arg));
        }
    }
    out
}

/// `text` with every `scheme://…` URL in it stripped of its user info, query and fragment
/// (`https://host/path?<redacted>`).
pub fn urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters just before `://`.
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        out.push_str(&rest[..at + 3]);
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ','))
            .unwrap_or(after.len());
        let url = &after[..end];
        if scheme_start == at {
            // `://` without a scheme: not a URL, keep it.
            out.push_str(url);
        } else {
            // `URL:8:` (a line number, an error's colon) is not part of the URL.
            let (url, suffix) = split_trailing_position(url);
            out.push_str(&strip(url));
            out.push_str(suffix);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `user:pass@host/path/file.txt?q#f` → `host/…/file.txt?<redacted>`: the host, and of the
/// path only a last segment that looks like a file name (`NAVAll.txt`, `debits_2025-03-04.csv`),
/// which is what an operator needs to tell one input from another. Every other segment goes:
/// webhook and bot URLs carry their token in the path (`/services/T0/B0/XXXX`,
/// `/bot123:ABC/sendMessage`).
fn strip(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, path) = url.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (path, hidden) = match path.find(['?', '#']) {
        Some(i) => (&path[..i], true),
        None => (path, false),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = host.to_string();
    match segments.split_last() {
        None => out.push_str(path),
        Some((last, before)) => {
            if !before.is_empty() {
                out.push_str("/…");
            }
            if looks_like_a_file_name(last) {
                out.push('/');
                out.push_str(last);
            } else {
                out.push_str("/<redacted>");
            }
        }
    }
    if hidden {
        out.push_str("?<redacted>");
    }
    out
}

/// `url:8:` → (`url`, `:8:`): trailing `:` and `:digits` after the path are a position or
/// punctuation, not the URL. A URL with only a host keeps its port (`host:5432`).
fn split_trailing_position(url: &str) -> (&str, &str) {
    let Some(path_start) = url.find('/') else {
        return (url, "");
    };
    let mut end = url.len();
    loop {
        let head = &url[..end];
        if end > path_start + 1 && head.ends_with(':') {
            end -= 1;
            continue;
        }
        let digits = head.len() - head.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 && end - digits > path_start && head[..end - digits].ends_with(':') {
            end -= digits + 1;
            continue;
        }
        break;
    }
    (&url[..end], &url[end..])
}

/// A short name with an extension of letters and digits, no `:`/`@`/`%` (which tokens carry).
fn looks_like_a_file_name(segment: &str) -> bool {
    let Some((stem, extension)) = segment.rsplit_once('.') else {
        return false;
    };
    segment.len() <= 64
        && !stem.is_empty()
        && (1..=5).contains(&extension.len())
        && extension.bytes().all(|b| b.is_ascii_alphanumeric())
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_keeps_its_shape_and_loses_its_secrets() {
        let shown = args(
            [
                "notify",
                "dispatch",
                "--database-url",
                "postgres://u:pw-1@db/x",
                "--webhook-secret=whsec-2",
                "--exotel-api-key",
                "exo-3",
                "--metrics-token",
                "tok-4",
                "--webhook-url",
                "https://hooks.example/services/T0/tok-5",
                "--input=https://bucket.example/NAVAll.txt?X-Amz-Signature=sig-6",
                "--date",
                "2026-12-07",
            ]
            .map(String::from),
        );
        let joined = shown.join(" ");
        for secret in ["pw-1", "whsec-2", "exo-3", "tok-4", "tok-5", "sig-6"] {
            assert!(!joined.contains(secret), "{secret} in {joined}");
        }
        assert_eq!(shown[2..4], ["--database-url", "<redacted>"]);
        assert_eq!(shown[4], "--webhook-secret=<redacted>");
        assert!(shown[10].starts_with("https://hooks.example"), "{joined}");
        assert_eq!(shown[12..], ["--date", "2026-12-07"]);
    }

    #[test]
    fn strips_credentials_and_queries_from_every_url_in_a_text() {
        assert_eq!(
            urls("webhook https://user:s3cret@hooks.example.com/x?token=abc failed: 500"),
            "webhook https://hooks.example.com/<redacted>?<redacted> failed: 500"
        );
        assert_eq!(
            urls("error sending request for url (http://127.0.0.1:9/sms?key=k&to=1)"),
            "error sending request for url (http://127.0.0.1:9/<redacted>?<redacted>)"
        );
        // Tokens in the path (Slack, Telegram): only the host is left.
        assert_eq!(
            urls("POST https://hooks.slack.com/services/T0AAA/B0BBB/XyZsecret123 failed"),
            "POST https://hooks.slack.com/…/<redacted> failed"
        );
        assert_eq!(
            urls("https://api.telegram.org/bot123456:AAHsecret/sendMessage"),
            "https://api.telegram.org/…/<redacted>"
        );
        // A file's name stays: it tells one input from another.
        assert_eq!(
            urls("file=https://bucket.s3.amazonaws.com/navs/2025/NAVAll.txt?X-Amz-Signature=ab"),
            "file=https://bucket.s3.amazonaws.com/…/NAVAll.txt?<redacted>"
        );
        assert_eq!(
            urls("http://127.0.0.1:8000/debits_2025-03-04.csv"),
            "http://127.0.0.1:8000/debits_2025-03-04.csv"
        );
        // A position after the URL stays, and does not hide the file's name.
        assert_eq!(
            urls("http://127.0.0.1:8000/files/amfi_truncated.txt:8: bad NAV"),
            "http://127.0.0.1:8000/…/amfi_truncated.txt:8: bad NAV"
        );
        assert_eq!(
            urls("https://h.example.com/a/NAVAll.txt?sig=x: not published"),
            "https://h.example.com/…/NAVAll.txt?<redacted>: not published"
        );
        assert_eq!(
            urls("--database-url=postgres://u:p@db:5432/x"),
            "--database-url=postgres://db:5432/<redacted>"
        );
        assert_eq!(
            urls("https://amfiindia.com/NAVAll.txt"),
            "https://amfiindia.com/NAVAll.txt"
        );
        assert_eq!(urls("no url here"), "no url here");
        assert_eq!(urls("odd ://thing"), "odd ://thing");
    }
}
