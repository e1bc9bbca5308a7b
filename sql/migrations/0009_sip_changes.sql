-- Effective dates for SIP changes (issue 17). Every change to a mandate — created, amount or
-- schedule changed, paused, resumed, cancelled — is kept as the state it leaves, with when it
-- was made and the first batch date it applies to. `sips export --date D` rebuilds the
-- snapshot as of D from this history, so re-exporting a past date gives the same snapshot
-- whatever changed since, and the API tells the user the date a change first affects.

-- The batch date a change made at `at` first applies to: the day itself (in India) when made
-- before the daily cut-off, the next day after it. The cut-off is `sipline.sip_cutoff`
-- (`ALTER DATABASE … SET sipline.sip_cutoff = '14:30'`), 15:00 IST unless set, so the API
-- and the export always agree on it.
CREATE FUNCTION sipline_sip_cutoff() RETURNS time
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('sipline.sip_cutoff', true), ''), '15:00')::time
$$;

CREATE FUNCTION sipline_batch_date(at timestamptz) RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT (at AT TIME ZONE 'Asia/Kolkata')::date
         + CASE WHEN (at AT TIME ZONE 'Asia/Kolkata')::time >= sipline_sip_cutoff() THEN 1 ELSE 0 END
$$;

CREATE TABLE sip_changes (
    change_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sip_id         bigint        NOT NULL REFERENCES sips (sip_id) ON DELETE CASCADE,
    changed_at     timestamptz   NOT NULL DEFAULT now(),
    -- The first batch date this state applies to; '-infinity' for states from before the
    -- history was kept and for snapshots loaded from the warehouse, which held all along.
    effective_from date          NOT NULL,
    change         text          NOT NULL,
    user_id        bigint        NOT NULL,
    scheme_code    bigint        NOT NULL,
    amount         numeric(18,2) NOT NULL,
    sip_day        smallint      NOT NULL,
    start_date     date          NOT NULL,
    end_date       date,
    step_up_pct    numeric(5,2)  NOT NULL,
    status         text          NOT NULL,
    paused_until   date
);
-- The export's "latest state per SIP as of D", and a SIP's own history.
CREATE INDEX sip_changes_sip_idx ON sip_changes (sip_id, change_id);

-- Statement-level, over the transition table: one INSERT … SELECT however many rows a
-- statement changed (publish loads millions at once). What the change was, and an explicit
-- effective date, come from `sipline.change` / `sipline.effective_from` when the writer sets
-- them (SET LOCAL); otherwise the cut-off rule decides.
CREATE FUNCTION sipline_record_sip_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sip_changes (sip_id, changed_at, effective_from, change, user_id, scheme_code,
                             amount, sip_day, start_date, end_date, step_up_pct, status, paused_until)
    SELECT n.sip_id, now(),
           coalesce(nullif(current_setting('sipline.effective_from', true), '')::date,
                    -- Never before an earlier change of the same SIP (the cut-off may have
                    -- been moved meanwhile): a SIP's history applies in the order it was made.
                    greatest(sipline_batch_date(now()),
                             (SELECT max(c.effective_from) FROM sip_changes c WHERE c.sip_id = n.sip_id))),
           coalesce(nullif(current_setting('sipline.change', true), ''), lower(TG_OP)),
           n.user_id, n.scheme_code, n.amount, n.sip_day, n.start_date, n.end_date,
           n.step_up_pct, n.status, n.paused_until
      FROM new_rows n
     ORDER BY n.sip_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER sips_record_inserts AFTER INSERT ON sips
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sipline_record_sip_changes();
CREATE TRIGGER sips_record_updates AFTER UPDATE ON sips
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sipline_record_sip_changes();

INSERT INTO sip_changes (sip_id, changed_at, effective_from, change, user_id, scheme_code,
                         amount, sip_day, start_date, end_date, step_up_pct, status, paused_until)
SELECT sip_id, updated_at, '-infinity', 'existing', user_id, scheme_code, amount, sip_day,
       start_date, end_date, step_up_pct, status, paused_until
  FROM sips
 ORDER BY sip_id;
