-- NAV alerts fire only for NAV dates on or after the alert's creation (issue 18): before
-- this, ingesting a NAV history fired an alert once for every past date that met it.
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
    ), inserted AS (
        INSERT INTO notifications (event_key, user_id, kind, payload)
        SELECT 'nav_alert:' || alert_id || ':' || nav_date, user_id, 'nav_alert',
               jsonb_strip_nulls(jsonb_build_object(
                   'alert_id', alert_id, 'scheme_code', scheme_code, 'nav_date', nav_date,
                   'nav', sipline_nav_text(nav), 'previous_nav', sipline_nav_text(previous), 'condition', kind,
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
