//! Queue health: depth by state and channel, the oldest due delivery, attempts and latency,
//! as `notify stats` prints them in the Prometheus text format.

use sqlx::{PgPool, Row};

use super::Dispatcher;

/// Queue depth by state and channel, the oldest due delivery, attempts and delivery latency:
/// the outbox's health, the same whatever number of dispatchers runs.
const STATS: &str = "SELECT 'notifications' AS what, status, '' AS channel, count(*)::bigint AS n FROM notifications GROUP BY status \
     UNION ALL SELECT 'deliveries', status, channel, count(*) FROM notification_deliveries GROUP BY status, channel \
     UNION ALL SELECT 'attempts', status, channel, coalesce(sum(attempts), 0)::bigint FROM notification_deliveries GROUP BY status, channel \
     UNION ALL SELECT 'oldest_due_seconds', 'pending', '', coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)::bigint \
       FROM notification_deliveries WHERE status = 'pending' AND next_attempt_at <= now() \
     UNION ALL SELECT 'latency_p50_ms', 'delivered', channel, (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - n.created_at)) * 1000)::bigint \
       FROM notification_deliveries d JOIN notifications n USING (notification_id) \
       WHERE d.status = 'delivered' AND d.delivered_at > now() - INTERVAL '1 hour' GROUP BY channel \
     UNION ALL SELECT 'latency_p99_ms', 'delivered', channel, (percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - n.created_at)) * 1000)::bigint \
       FROM notification_deliveries d JOIN notifications n USING (notification_id) \
       WHERE d.status = 'delivered' AND d.delivered_at > now() - INTERVAL '1 hour' GROUP BY channel \
     UNION ALL SELECT 'by_provider', status, provider, count(*) FROM notification_deliveries \
       WHERE provider IS NOT NULL GROUP BY status, provider \
     UNION ALL SELECT 'reports', report_status, provider, count(*) FROM notification_deliveries \
       WHERE report_status IS NOT NULL AND reported_at > now() - INTERVAL '1 day' \
       GROUP BY report_status, provider \
     ORDER BY 1, 2, 3";

/// Every gauge `notify stats` prints, with its help text: each is described even when it has
/// no sample yet (no delivery in the last hour), so dashboards and alert rules can name them.
const GAUGES: [(&str, &str, &str); 8] = [
    (
        "attempts",
        "sipline_notification_attempts",
        "Delivery attempts made, by delivery state and channel",
    ),
    (
        "by_provider",
        "sipline_notification_deliveries_by_provider",
        "Deliveries by state and the provider their last attempt went to",
    ),
    (
        "deliveries",
        "sipline_notification_deliveries",
        "Deliveries by state and channel (queue depth)",
    ),
    (
        "latency_p50_ms",
        "sipline_notification_latency_p50_ms",
        "Median time from event to delivery over the last hour",
    ),
    (
        "latency_p99_ms",
        "sipline_notification_latency_p99_ms",
        "99th percentile time from event to delivery over the last hour",
    ),
    (
        "notifications",
        "sipline_notifications",
        "Notifications by state",
    ),
    (
        "reports",
        "sipline_notification_provider_reports",
        "Providers' delivery reports (sent, failed, failed_dnd, ...) received over the last day, by report and provider",
    ),
    (
        "oldest_due_seconds",
        "sipline_notification_oldest_due_seconds",
        "Age of the oldest due delivery (backpressure)",
    ),
];

impl Dispatcher {
    /// The outbox's gauges, as Prometheus text.
    pub async fn stats(pool: &PgPool) -> anyhow::Result<String> {
        let rows = sqlx::query(STATS).fetch_all(pool).await?;
        let mut out = String::new();
        for (what, name, help) in GAUGES {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for row in rows
                .iter()
                .filter(|row| row.get::<String, _>("what") == what)
            {
                let status: String = row.get("status");
                let channel: String = row.get("channel");
                let n: i64 = row.get("n");
                // The third column is the channel, or for the provider gauges the provider.
                let (first, second) = match what {
                    "by_provider" => ("state", "provider"),
                    "reports" => ("report", "provider"),
                    _ => ("state", "channel"),
                };
                let mut labels = vec![format!("{first}=\"{status}\"")];
                if !channel.is_empty() {
                    labels.push(format!("{second}=\"{channel}\""));
                }
                out.push_str(&format!("{name}{{{}}} {n}\n", labels.join(",")));
            }
        }
        Ok(out)
    }
}
