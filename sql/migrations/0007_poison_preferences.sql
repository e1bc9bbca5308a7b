-- Preferences that could stall the outbox (issue 18). A time zone PostgreSQL does not know
-- made every quiet-hours pass fail, so no notification of anyone went out: it is now refused
-- at write time, and any stored one falls back to India's. (The dispatcher's fan-out treats a
-- user with no channels as in-app only.)
CREATE FUNCTION sipline_is_time_zone(name text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM now() AT TIME ZONE name;
    RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN false;
END;
$$;

UPDATE notification_preferences SET time_zone = 'Asia/Kolkata', updated_at = now()
 WHERE NOT sipline_is_time_zone(time_zone);

ALTER TABLE notification_preferences
    ADD CONSTRAINT notification_preferences_time_zone_known CHECK (sipline_is_time_zone(time_zone));
