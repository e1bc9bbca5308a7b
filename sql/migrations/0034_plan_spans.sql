-- Every span in which an SWP or STP was live (issue 36). `plans` keeps the latest span only
-- (`active_since`, `inactive_since`), which is enough while every night runs: the run of D
-- reads whether a plan was live at D's cut-off. A night that never ran is caught up later,
-- and a pause and resume made in between (one whose pause spans a later cut-off starts a new
-- span) would take away the instalment whose cut-off fell before the pause. `orders execute`
-- reads these spans instead; the trigger keeps them whatever writes `plans` (the API, the
-- job that stops dry plans), so neither needs to know.
CREATE TABLE plan_spans (
    plan_id        bigint      NOT NULL REFERENCES plans (plan_id) ON DELETE CASCADE,
    active_since   timestamptz NOT NULL,
    inactive_since timestamptz,
    PRIMARY KEY (plan_id, active_since)
);

-- A new span when `active_since` moves (created, resumed after a cut-off); the same span's end
-- when only `inactive_since` does (paused, stopped, cancelled, or a resume that undid a pause
-- no cut-off fell in, which reopens it). Statement-level, over the transition table, as for
-- `sip_changes`; a statement changes a plan once, so the upsert sees each plan once.
CREATE FUNCTION sipline_record_plan_spans() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO plan_spans (plan_id, active_since, inactive_since)
    SELECT n.plan_id, n.active_since, n.inactive_since
      FROM new_rows n
     ORDER BY n.plan_id
    ON CONFLICT (plan_id, active_since) DO UPDATE SET inactive_since = EXCLUDED.inactive_since;
    RETURN NULL;
END;
$$;

CREATE TRIGGER plans_record_span_inserts AFTER INSERT ON plans
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sipline_record_plan_spans();
CREATE TRIGGER plans_record_span_updates AFTER UPDATE ON plans
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sipline_record_plan_spans();

INSERT INTO plan_spans (plan_id, active_since, inactive_since)
SELECT plan_id, active_since, inactive_since FROM plans ORDER BY plan_id;
