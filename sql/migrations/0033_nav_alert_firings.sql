-- NAV alert firings (issue 37 §5, after review): which (alert, NAV date) pairs have told a
-- person, so an ingest of the same date in several passes (a late scheme, a correction) tells
-- each alert once: a later pass groups only the alerts that had not fired yet, and a digest's
-- key names its first alert (`nav_alert_digest:<user>:<date>:<first alert>`). Migration 0031
-- keyed the digest by person and date alone, so a later pass's alerts were never told, and
-- an alert told alone in a first pass was told again in a later pass's digest.
CREATE TABLE nav_alert_firings (
    alert_id bigint NOT NULL REFERENCES nav_alerts (alert_id) ON DELETE CASCADE,
    nav_date date   NOT NULL,
    PRIMARY KEY (alert_id, nav_date)
);
INSERT INTO nav_alert_firings (alert_id, nav_date)
SELECT a.alert_id, split_part(n.event_key, ':', 3)::date
  FROM notifications n JOIN nav_alerts a ON a.alert_id = split_part(n.event_key, ':', 2)::bigint
 WHERE n.event_key LIKE 'nav\_alert:%'
UNION
SELECT a.alert_id, (n.payload ->> 'nav_date')::date
  FROM notifications n
  CROSS JOIN LATERAL jsonb_array_elements(n.payload -> 'alerts') e
  JOIN nav_alerts a ON a.alert_id = (e ->> 'alert_id')::bigint
 WHERE n.event_key LIKE 'nav\_alert\_digest:%'
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION sipline_nav_alerts(first_date date, last_date date) RETURNS bigint
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
         WHERE a.active
           -- An alert watches NAVs from the day (in India) it was created: a history ingest
           -- must not fire it for every old date, one notification each.
           AND m.nav_date >= (a.created_at AT TIME ZONE 'Asia/Kolkata')::date
           AND (
               (a.kind = 'above' AND m.nav > a.threshold AND (m.previous IS NULL OR m.previous <= a.threshold))
            OR (a.kind = 'below' AND m.nav < a.threshold AND (m.previous IS NULL OR m.previous >= a.threshold))
            OR (a.kind = 'daily_move_pct' AND m.previous > 0
                AND abs(m.nav - m.previous) * 100 / m.previous >= a.threshold))
    ), fresh AS (
        INSERT INTO nav_alert_firings (alert_id, nav_date)
        SELECT alert_id, nav_date FROM hits
        ON CONFLICT DO NOTHING
        RETURNING alert_id, nav_date
    ), per_person AS (
        SELECT h.user_id, h.nav_date, count(*) AS fired, min(h.alert_id) AS first_alert,
               jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                   'alert_id', h.alert_id, 'scheme_code', h.scheme_code, 'nav_date', h.nav_date,
                   'nav', sipline_nav_text(h.nav), 'previous_nav', sipline_nav_text(h.previous),
                   'condition', h.kind, 'threshold', h.threshold::text,
                   'scheme_name', s.scheme_name)) ORDER BY h.alert_id) AS alerts
          FROM hits h JOIN fresh f ON f.alert_id = h.alert_id AND f.nav_date = h.nav_date
          LEFT JOIN schemes s ON s.scheme_code = h.scheme_code
         GROUP BY h.user_id, h.nav_date
    ), inserted AS (
        INSERT INTO notifications (event_key, user_id, kind, payload)
        SELECT CASE WHEN fired = 1 THEN 'nav_alert:' || first_alert || ':' || nav_date
                    ELSE 'nav_alert_digest:' || user_id || ':' || nav_date || ':' || first_alert END,
               user_id, 'nav_alert',
               CASE WHEN fired = 1 THEN (alerts -> 0) - 'scheme_name'
                    ELSE jsonb_build_object('nav_date', nav_date, 'alerts', alerts) END
          FROM per_person ORDER BY user_id, nav_date
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
