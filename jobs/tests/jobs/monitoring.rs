//! What `deploy/monitoring/` ships against what the code exports: every metric the Grafana
//! dashboard and the Prometheus alert rules name is one a live `/metrics` or `notify stats`
//! exports, every SQL panel runs on the real schema, and the job gauges say what `job_runs`
//! holds (a published date ok, a failed job not ok).

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

use crate::api::{claims, hs256, Api};
use crate::publish::{publish, published_universe};
use crate::support::{sipline_async, Postgres};

fn monitoring(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/monitoring")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `sipline_…` name in a text (a PromQL expression, a rules file).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("sipline_") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The series names a Prometheus text exposition declares or holds: sample names, and for
/// every `# TYPE` line the names that type implies (a histogram's `_bucket`, `_sum`, `_count`).
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The `expr:` values of a Prometheus rules file, one-line or block (`expr: >`) alike: the
/// annotations may mention names (a DAG's) that are no metric.
fn expressions(rules: &str) -> String {
    let mut out = String::new();
    let mut block: Option<usize> = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(expr_indent) = block {
            if line.trim().is_empty() || indent > expr_indent {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block = None;
        }
        if let Some(value) = line.trim_start().strip_prefix("expr:") {
            let value = value.trim();
            if matches!(value, ">" | "|" | ">-" | "|-") {
                block = Some(indent);
            } else {
                out.push_str(value);
                out.push('\n');
            }
        }
    }
    out
}

fn targets(panel: &Value, out: &mut Vec<Value>) {
    for target in panel["targets"].as_array().into_iter().flatten() {
        out.push(target.clone());
    }
    for inner in panel["panels"].as_array().into_iter().flatten() {
        targets(inner, out);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alert_rules_name_only_what_the_code_exports() {
    let pg = Postgres::start().await;
    let warehouse = published_universe(&pg.url).await;
    // A job that fails: a date that was never valued cannot be published.
    let failed = publish(&pg.url, &warehouse, "2025-03-28", &[]).await;
    assert_ne!(failed.code, 0, "{}", failed.stderr);

    let api = Api::start(&pg.url).await;
    let pool = pg.pool().await;
    let subject: String =
        sqlx::query_scalar("SELECT auth_subject FROM users ORDER BY user_id LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let (status, body) = api.get("/v1/me", Some(&hs256(&claims(&subject)))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, metrics) = api.get("/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().unwrap().to_string();
    let stats = sipline_async(&["notify", "stats", "--database-url", &pg.url]).await;
    stats.assert_ok();

    // The job gauges say what job_runs holds.
    for expected in [
        "sipline_job_last_run_ok{job=\"publish\"} 0",
        "sipline_publication_business_days_behind ",
        "sipline_job_last_success_timestamp_seconds{job=\"publish\"} 1",
        "sipline_holiday_calendar_days_left ",
        "sipline_api_request_duration_seconds_count{method=\"GET\",route=\"/v1/me\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(expected), "{expected} not in\n{metrics}");
    }
    let mut names = exported(&metrics);
    names.extend(exported(&stats.stdout));
    for gauge in [
        "sipline_notification_oldest_due_seconds",
        "sipline_notification_latency_p99_ms",
    ] {
        assert!(
            names.contains(gauge),
            "{gauge} not described by notify stats"
        );
    }

    // The dashboard: every metric exported, every SQL panel valid on the real schema.
    let dashboard: Value = serde_json::from_str(&monitoring("grafana-dashboard.json")).unwrap();
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        targets(panel, &mut all);
    }
    let (mut exprs, mut sqls) = (0, 0);
    for target in &all {
        if let Some(expr) = target["expr"].as_str() {
            exprs += 1;
            let named = metric_names(expr);
            assert!(!named.is_empty(), "{expr} names no sipline metric");
            for name in named {
                assert!(
                    names.contains(&name),
                    "dashboard query {expr}: {name} is not exported"
                );
            }
        }
        if let Some(sql) = target["rawSql"].as_str() {
            sqls += 1;
            let sql = sql.replace(
                "$__timeFilter(finished_at)",
                "finished_at > now() - INTERVAL '1 day'",
            );
            assert!(
                !sql.contains('$'),
                "an unsubstituted Grafana macro in {sql}"
            );
            // The dashboard's own SQL, from the repository: audited with it.
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("dashboard SQL {sql}: {e}"));
            assert!(!rows.is_empty(), "dashboard SQL {sql} found no run");
        }
    }
    assert!(
        exprs >= 15 && sqls == 2,
        "{exprs} PromQL and {sqls} SQL targets"
    );

    // The alert rules: every metric their expressions name is exported.
    let named = metric_names(&expressions(&monitoring("alerts.yml")));
    assert!(named.len() >= 8, "{named:?}");
    for name in named {
        assert!(
            names.contains(&name),
            "alert rules name {name}, which nothing exports"
        );
    }
}
