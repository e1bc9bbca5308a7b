//! URLs as they may be shown: without credentials or query string. Webhook and SMS URLs often
//! carry a provider's key (`https://user:key@host/…`, `…?token=…`), and `--input` URLs a
//! signed query; logs, `last_error`, `job_runs.error` and run manifests are read by more people
//! than the secrets are meant for.

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
            out.push_str(&strip(url));
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `user:pass@host/path?q#f` → `host/path?<redacted>`.
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
    let mut out = format!("{host}{path}");
    if hidden {
        out.push_str("?<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_credentials_and_queries_from_every_url_in_a_text() {
        assert_eq!(
            urls("webhook https://user:s3cret@hooks.example.com/x?token=abc failed: 500"),
            "webhook https://hooks.example.com/x?<redacted> failed: 500"
        );
        assert_eq!(
            urls("error sending request for url (http://127.0.0.1:9/sms?key=k&to=1)"),
            "error sending request for url (http://127.0.0.1:9/sms?<redacted>)"
        );
        assert_eq!(
            urls("--database-url=postgres://u:p@db:5432/x"),
            "--database-url=postgres://db:5432/x"
        );
        assert_eq!(
            urls("https://amfiindia.com/NAVAll.txt"),
            "https://amfiindia.com/NAVAll.txt"
        );
        assert_eq!(urls("no url here"), "no url here");
        assert_eq!(urls("odd ://thing"), "odd ://thing");
    }
}
