-- Notification dispatch: where each notification goes (per user and channel), the deliveries
-- the dispatchers claim and retry, the NAV alert evaluation that runs in the same transaction
-- as the NAVs it reads, and a NOTIFY that wakes the workers when the outbox grows.

-- A user's channels and quiet hours. No row: the platform webhook only, no quiet hours.
CREATE TABLE notification_preferences (
    user_id     bigint  PRIMARY KEY REFERENCES users (user_id),
    channels    text[]  NOT NULL DEFAULT '{webhook}'
                CHECK (channels <@ ARRAY['webhook', 'email', 'sms', 'push']::text[]),
    email       text,
    phone       text,
    push_token  text,
    -- SMS, push and email wait out the quiet hours (in the user's time zone); webhooks, which
    -- reach the platform's own backend, do not.
    quiet_start time,
    quiet_end   time,
    time_zone   text    NOT NULL DEFAULT 'Asia/Kolkata',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- One row per notification and channel: the unit a dispatcher claims, delivers and retries.
-- `delivering` rows carry a lease: a dispatcher that dies mid-delivery loses its claim when
-- `claimed_until` passes and another one retries (receivers deduplicate on the idempotency key,
-- `<event_key>/<channel>`).
CREATE TABLE notification_deliveries (
    delivery_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id bigint      NOT NULL REFERENCES notifications (notification_id) ON DELETE CASCADE,
    channel         text        NOT NULL CHECK (channel IN ('webhook', 'email', 'sms', 'push')),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivering', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claim_token     bigint,
    claimed_until   timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (notification_id, channel)
);
CREATE INDEX notification_deliveries_due_idx
    ON notification_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_deliveries_lease_idx
    ON notification_deliveries (claimed_until) WHERE status = 'delivering';

-- Workers LISTEN here; one NOTIFY per statement that adds notifications, not per row.
CREATE FUNCTION sipline_wake_dispatchers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sipline_notifications', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER notifications_wake_dispatchers
    AFTER INSERT ON notifications FOR EACH STATEMENT EXECUTE FUNCTION sipline_wake_dispatchers();

-- NAV alerts over the NAVs dated first_date..last_date, run in the transaction that upserts
-- them. `above` and `below` fire when the NAV crosses the level (not on every day it stays
-- beyond it); `daily_move_pct` when the move from the scheme's previous NAV is at least the
-- threshold. One notification per alert and NAV date: re-running changes nothing.
CREATE FUNCTION sipline_nav_alerts(first_date date, last_date date) RETURNS bigint
LANGUAGE sql AS $$
    WITH moves AS (
        SELECT n.scheme_code, n.nav_date, n.nav,
               (SELECT p.nav FROM navs p
                 WHERE p.scheme_code = n.scheme_code AND p.nav_date < n.nav_date
                 ORDER BY p.nav_date DESC LIMIT 1) AS previous
          FROM navs n
         WHERE n.nav_date BETWEEN first_date AND last_date
           AND n.scheme_code IN (SELECT scheme_code FROM nav_alerts WHERE active)
    ), hits AS (
        SELECT a.alert_id, a.user_id, a.kind, a.threshold, m.scheme_code, m.nav_date, m.nav, m.previous
          FROM nav_alerts a JOIN moves m USING (scheme_code)
         WHERE a.active AND (
               (a.kind = 'above' AND m.nav > a.threshold AND (m.previous IS NULL OR m.previous <= a.threshold))
            OR (a.kind = 'below' AND m.nav < a.threshold AND (m.previous IS NULL OR m.previous >= a.threshold))
            OR (a.kind = 'daily_move_pct' AND m.previous > 0
                AND abs(m.nav - m.previous) * 100 / m.previous >= a.threshold))
    ), inserted AS (
        INSERT INTO notifications (event_key, user_id, kind, payload)
        SELECT 'nav_alert:' || alert_id || ':' || nav_date, user_id, 'nav_alert',
               jsonb_strip_nulls(jsonb_build_object(
                   'alert_id', alert_id, 'scheme_code', scheme_code, 'nav_date', nav_date,
                   'nav', nav::text, 'previous_nav', previous::text, 'condition', kind,
                   'threshold', threshold::text))
          FROM hits ORDER BY alert_id, nav_date
        ON CONFLICT (event_key) DO NOTHING
        RETURNING payload
    ), touched AS (
        UPDATE nav_alerts a SET last_triggered_on = greatest(a.last_triggered_on, h.nav_date)
          FROM (SELECT alert_id, max(nav_date) AS nav_date FROM hits GROUP BY alert_id) h
         WHERE a.alert_id = h.alert_id
        RETURNING 1
    )
    SELECT count(*) FROM inserted;
$$;

-- When the quiet hours that hold at `at` end, or NULL outside them. A window may wrap midnight
-- (22:00–07:00).
CREATE FUNCTION sipline_quiet_until(quiet_start time, quiet_end time, time_zone text, at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN quiet_start IS NULL OR quiet_start = quiet_end THEN NULL
        WHEN (quiet_start < quiet_end AND local::time >= quiet_start AND local::time < quiet_end)
          OR (quiet_start > quiet_end AND (local::time >= quiet_start OR local::time < quiet_end))
        THEN ((CASE WHEN local::time < quiet_end THEN local::date ELSE local::date + 1 END) + quiet_end)
             AT TIME ZONE time_zone
    END
    FROM (SELECT at AT TIME ZONE time_zone AS local) l;
$$;
