-- Housekeeping finds the days of notifications past their retention and reads each day by
-- `created_at`; without an index both are a scan of the whole outbox every night (about 60M
-- rows at 10M users, measured by benches/serving_year.sh's plans). A b-tree, not BRIN: the
-- nightly delete frees pages that later rows reuse, so time and position stop agreeing.
CREATE INDEX notifications_created_at_idx ON notifications (created_at);
