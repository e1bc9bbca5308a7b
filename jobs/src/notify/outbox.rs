//! The outbox's SQL: fan-out of notifications to per-channel deliveries, claims under a
//! lease, reclaiming expired leases, deferring quiet hours, recording outcomes only under our
//! claim, and rolling deliveries up to their notification.

// One delivery per channel the user chose (the platform webhook without preferences), less the
// person's own channels for a kind they unsubscribed from (`muted_kinds`). A notification with
// nothing to deliver (no channel chosen, or every one muted) is read in the app only: it is done
// here instead of waiting for deliveries that will never exist.
pub(super) const FAN_OUT: &str = "WITH picked AS ( \
       SELECT notification_id, user_id, kind FROM notifications WHERE status = 'pending' \
       ORDER BY notification_id LIMIT $1 FOR UPDATE SKIP LOCKED), \
     targets AS MATERIALIZED ( \
       SELECT p.notification_id, c AS channel FROM picked p \
       LEFT JOIN notification_preferences np ON np.user_id = p.user_id \
       CROSS JOIN LATERAL unnest(coalesce(np.channels, ARRAY['webhook'])) AS c \
       WHERE c = 'webhook' OR NOT p.kind = ANY(coalesce(np.muted_kinds, '{}'))), \
     planned AS ( \
       INSERT INTO notification_deliveries (notification_id, channel) \
       SELECT notification_id, channel FROM targets \
       ON CONFLICT (notification_id, channel) DO NOTHING) \
     UPDATE notifications n \
       SET status = CASE WHEN t.notification_id IS NULL THEN 'delivered' ELSE 'delivering' END, \
           delivered_at = CASE WHEN t.notification_id IS NULL THEN now() END \
     FROM picked LEFT JOIN (SELECT DISTINCT notification_id FROM targets) t USING (notification_id) \
     WHERE n.notification_id = picked.notification_id";

// A claim whose lease ran out belongs to a dispatcher that died (or hung): due again now. The
// attempt it made counts, so a delivery that kills every dispatcher taking it (a payload that
// crashes a provider's client, say) dies after the configured attempts ($1) instead of being
// retried for ever. Returns the notifications of the deliveries it declared dead.
pub(super) const RECLAIM: &str = "UPDATE notification_deliveries \
       SET status = CASE WHEN attempts >= $1 THEN 'dead' ELSE 'pending' END, next_attempt_at = now(), \
       claim_token = NULL, claimed_until = NULL, \
       last_error = CASE WHEN attempts >= $1 \
                         THEN 'lease expired on every attempt: the dispatcher stopped while sending' \
                         ELSE coalesce(last_error, 'lease expired') END \
     WHERE status = 'delivering' AND claimed_until < now() \
     RETURNING notification_id, status";

// Whether people chose channel $1 (the platform webhook: anyone without preferences), and
// whether deliveries wait on it.
pub(super) const CHANNEL_IN_USE: &str = "SELECT \
       EXISTS (SELECT 1 FROM notification_preferences WHERE $1 = ANY(channels)) \
         OR ($1 = 'webhook' AND EXISTS (SELECT 1 FROM users u WHERE NOT EXISTS \
           (SELECT 1 FROM notification_preferences p WHERE p.user_id = u.user_id))), \
       EXISTS (SELECT 1 FROM notification_deliveries WHERE channel = $1 \
                 AND status IN ('pending', 'delivering'))";

// SMS, push and email wait for the end of the user's quiet hours.
pub(super) const DEFER_QUIET: &str = "UPDATE notification_deliveries d \
       SET next_attempt_at = sipline_quiet_until(p.quiet_start, p.quiet_end, p.time_zone, now()) \
     FROM notifications n JOIN notification_preferences p ON p.user_id = n.user_id \
     WHERE d.notification_id = n.notification_id AND d.status = 'pending' AND d.next_attempt_at <= now() \
       AND d.channel <> 'webhook' AND p.quiet_start IS NOT NULL \
       AND sipline_quiet_until(p.quiet_start, p.quiet_end, p.time_zone, now()) IS NOT NULL";

// Only the channels this dispatcher can deliver ($4): another channel's deliveries wait.
pub(super) const CLAIM: &str = "WITH due AS ( \
       SELECT delivery_id FROM notification_deliveries \
       WHERE status = 'pending' AND next_attempt_at <= now() AND channel = ANY($4) \
       ORDER BY next_attempt_at, delivery_id LIMIT $1 FOR UPDATE SKIP LOCKED) \
     UPDATE notification_deliveries d SET status = 'delivering', attempts = d.attempts + 1, \
       claim_token = $2, claimed_until = now() + make_interval(secs => $3) \
     FROM due, notifications n LEFT JOIN notification_preferences p ON p.user_id = n.user_id \
       LEFT JOIN schemes sc ON sc.scheme_code = (n.payload->>'scheme_code')::bigint \
       LEFT JOIN schemes tsc ON tsc.scheme_code = (n.payload->>'target_scheme_code')::bigint \
     WHERE d.delivery_id = due.delivery_id AND n.notification_id = d.notification_id \
     RETURNING d.delivery_id, d.channel, d.attempts, n.notification_id, n.event_key, n.user_id, \
       n.kind, n.payload::text AS payload, n.created_at, p.email, p.phone, p.push_token, p.push_platform, \
       sc.scheme_name, sc.unit_decimals, tsc.scheme_name AS target_scheme_name, \
       to_char(n.created_at AT TIME ZONE coalesce(p.time_zone, 'Asia/Kolkata'), 'FMDD Mon YYYY, HH24:MI') \
         || ' (' || coalesce(p.time_zone, 'Asia/Kolkata') || ')' AS local_time";

// Just before a send: the claim is still ours and unexpired, and now covers the send ($3 s).
pub(super) const RENEW_CLAIM: &str = "UPDATE notification_deliveries \
       SET claimed_until = greatest(claimed_until, now() + make_interval(secs => $3)) \
     WHERE delivery_id = $1 AND claim_token = $2 AND status = 'delivering' AND claimed_until > now() \
     RETURNING 1";

// Outcomes count only under our claim: a lease that ran out may have been taken over.
pub(super) const RECORD: &str = "UPDATE notification_deliveries d SET \
       status = CASE WHEN r.ok THEN 'delivered' WHEN r.permanent OR d.attempts >= $2 THEN 'dead' ELSE 'pending' END, \
       delivered_at = CASE WHEN r.ok THEN now() END, \
       next_attempt_at = CASE WHEN r.ok THEN d.next_attempt_at ELSE now() + r.delay_ms * INTERVAL '1 millisecond' END, \
       last_error = r.error, claim_token = NULL, claimed_until = NULL, \
       provider_ref = coalesce(r.provider_ref, d.provider_ref), provider = r.provider \
     FROM unnest($3::bigint[], $4::bool[], $5::bool[], $6::bigint[], $7::text[], $8::text[], \
                 $9::text[]) \
       AS r(id, ok, permanent, delay_ms, error, provider_ref, provider) \
     WHERE d.delivery_id = r.id AND d.claim_token = $1 \
     RETURNING d.status";

// A notification is delivered when every channel is, dead when none is left to try and one
// died (migration 0028: the API applies the same after a delivery report).
pub(super) const ROLL_UP: &str = "SELECT sipline_roll_up_notifications($1)";

/// One claimed delivery.
#[derive(Debug)]
pub(super) struct Claimed {
    pub(super) delivery_id: i64,
    pub(super) notification_id: i64,
    pub(super) channel: String,
    pub(super) attempts: i32,
    pub(super) event_key: String,
    pub(super) user_id: i64,
    pub(super) kind: String,
    pub(super) payload: String,
    pub(super) created_at: chrono::DateTime<chrono::Utc>,
    pub(super) email: Option<String>,
    pub(super) phone: Option<String>,
    pub(super) push_token: Option<String>,
    /// `fcm` or `apns`.
    pub(super) push_platform: Option<String>,
    pub(super) scheme_name: Option<String>,
    pub(super) unit_decimals: Option<i32>,
    pub(super) target_scheme_name: Option<String>,
    /// `created_at` in the person's time zone, as the message prints it.
    pub(super) local_time: Option<String>,
}

impl Claimed {
    pub(super) fn idempotency_key(&self) -> String {
        format!("{}/{}", self.event_key, self.channel)
    }

    /// The notification as the templates see it.
    pub(super) fn notification(
        &self,
        unsubscribe_url: Option<String>,
    ) -> Result<messages::Notification, serde_json::Error> {
        Ok(messages::Notification {
            kind: self.kind.clone(),
            payload: serde_json::from_str(&self.payload)?,
            scheme_name: self.scheme_name.clone(),
            target_scheme_name: self.target_scheme_name.clone(),
            unit_decimals: self.unit_decimals.and_then(|d| u32::try_from(d).ok()),
            local_time: self.local_time.clone(),
            unsubscribe_url,
            statement_url: None,
            generic: false,
        })
    }

    /// The JSON every webhook-like channel receives: the event, and for SMS and push the
    /// words a person reads (`message`).
    pub(super) fn body(
        &self,
        message: Option<serde_json::Value>,
    ) -> Result<String, serde_json::Error> {
        let payload: serde_json::Value = serde_json::from_str(&self.payload)?;
        let mut body = serde_json::json!({
            "id": self.idempotency_key(),
            "event_key": self.event_key,
            "kind": self.kind,
            "user_id": self.user_id,
            "channel": self.channel,
            "created_at": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "payload": payload,
        });
        match self.channel.as_str() {
            "sms" => body["to"] = self.phone.clone().into(),
            "push" => body["to"] = self.push_token.clone().into(),
            _ => {}
        }
        if let Some(message) = message {
            body["message"] = message;
        }
        serde_json::to_string(&body)
    }
}
