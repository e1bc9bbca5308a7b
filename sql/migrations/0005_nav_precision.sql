-- NAVs at the precision AMFI publishes. Most NAVs have four decimals, but AMFI publishes some
-- (fixed-maturity and interval plans among them) with up to eight: `14.25207048`. numeric(18,4)
-- set those aside; numeric(18,8) stores every one exactly and keeps ten integer digits, far
-- above any NAV. Existing values convert exactly (zeros are appended).
--
-- On TimescaleDB, a `navs` hypertable with compressed chunks must have them decompressed
-- before this migration can change the column type (the plain-PostgreSQL path needs nothing).

DROP VIEW portfolio_lines_latest;
ALTER TABLE portfolio_lines ALTER COLUMN nav TYPE numeric(18,8);
CREATE VIEW portfolio_lines_latest AS
    SELECT l.* FROM portfolio_lines l WHERE l.as_of = (SELECT max(as_of) FROM publications);
ALTER TABLE investments ALTER COLUMN nav TYPE numeric(18,8);
ALTER TABLE navs ALTER COLUMN nav TYPE numeric(18,8);

-- A NAV as text the way it was published and the batch shows it: four decimals, or as many
-- more (up to eight) as the value has. `105.0576`, `10.0000`, `14.25207048`; the same form
-- as `Nav`'s Display in Rust, so the API, notifications and the warehouse agree.
CREATE FUNCTION sipline_nav_text(nav numeric) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN scale(trim_scale(nav)) <= 4 THEN round(nav, 4)::text
                ELSE trim_scale(nav)::text END
$$;

-- NAV alert payloads name NAVs in that form too.
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
