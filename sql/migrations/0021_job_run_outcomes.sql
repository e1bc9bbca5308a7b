-- Every outcome a job records (`jobs::exit::outcome`): `later_dates_ran` (exit 6) was never
-- allowed here, so such a run went unrecorded, and `no_nav_dated_yet` (exit 7, issue 35: a
-- night that ended waiting for a NAV dated the day, a market holiday the list does not have)
-- is new. The metrics count the latter as not failed.
ALTER TABLE job_runs DROP CONSTRAINT job_runs_outcome_check;
ALTER TABLE job_runs ADD CONSTRAINT job_runs_outcome_check
    CHECK (outcome IN ('ok', 'bad_input', 'missing_upstream', 'later_dates_ran', 'no_nav_dated_yet', 'failed'));
