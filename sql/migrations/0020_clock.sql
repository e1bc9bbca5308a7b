-- One clock (issue 41): the date rules in SQL read "now" from the writer's transaction setting
-- `sipline.now` (set from the program's clock, `serving::Clock`) and fall back to `now()`.
-- A test that starts the API at a chosen instant (`--now`) then gets the same effective
-- dates from the trigger as the API computes, whatever the wall clock says.
CREATE FUNCTION sipline_now() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('sipline.now', true), '')::timestamptz, now())
$$;

CREATE OR REPLACE FUNCTION sipline_record_sip_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sip_changes (sip_id, changed_at, effective_from, change, user_id, scheme_code,
                             amount, sip_day, start_date, end_date, step_up_pct, status, paused_until)
    SELECT n.sip_id, sipline_now(),
           coalesce(nullif(current_setting('sipline.effective_from', true), '')::date,
                    -- Never before an earlier change of the same SIP (the cut-off may have
                    -- been moved meanwhile): a SIP's history applies in the order it was made.
                    greatest(sipline_batch_date(sipline_now()),
                             (SELECT max(c.effective_from) FROM sip_changes c WHERE c.sip_id = n.sip_id))),
           coalesce(nullif(current_setting('sipline.change', true), ''), lower(TG_OP)),
           n.user_id, n.scheme_code, n.amount, n.sip_day, n.start_date, n.end_date,
           n.step_up_pct, n.status, n.paused_until
      FROM new_rows n
     ORDER BY n.sip_id;
    RETURN NULL;
END;
$$;
