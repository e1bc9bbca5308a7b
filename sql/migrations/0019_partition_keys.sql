-- Per-date partitions keyed without the date (issue 19, publish at COPY speed).
--
-- A date's partition of `portfolio_lines` or `portfolio_snapshots` holds one `as_of`, so a key
-- starting with it has a constant first column: the index build's sort ties on it in every
-- comparison before it reaches `user_id` (measured at 10M users, one core: lines 9.5 s against
-- 6.7 s keyed (user_id, scheme_code); snapshots 9.0 s against 5.8 s keyed (user_id)), and each
-- entry carries bytes it never needs. From here on each date's partition is keyed on its own,
-- (user_id, scheme_code) and (user_id); the partition bound keeps the date's rows apart, and a
-- reader's `as_of = … AND user_id = …` prunes to the date and probes that key as before.
--
-- A partitioned table's primary key must include the partition column, so these two parents
-- lose theirs. Dropping it would drop every partition's index with it, and rebuilding those
-- would take minutes per month of history with the table locked. Instead each partition is
-- detached (its index stays, as its own), the parent's key dropped, and the partition attached
-- again: a date partition's CHECK (as_of = date) spares the attach a scan. Existing
-- partitions keep their (as_of, …) keys; new dates get the short ones. A TimescaleDB
-- hypertable of snapshots is not partitioned this way and keeps its key.
CREATE FUNCTION sipline_drop_partitioned_key(parent regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    key_name text := (SELECT conname FROM pg_constraint WHERE conrelid = parent AND contype = 'p');
    names text[];
    bounds text[];
    i int;
BEGIN
    IF key_name IS NULL OR (SELECT relkind FROM pg_class WHERE oid = parent) <> 'p' THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(c.oid::regclass::text), '{}'), coalesce(array_agg(pg_get_expr(c.relpartbound, c.oid)), '{}')
        INTO names, bounds
        FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid WHERE h.inhparent = parent;
    FOR i IN 1 .. cardinality(names) LOOP
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, names[i]);
    END LOOP;
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', parent, key_name);
    FOR i IN 1 .. cardinality(names) LOOP
        -- A month partitioned by date (migration 0017) keys its dates the same way.
        PERFORM sipline_drop_partitioned_key(names[i]::regclass);
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s %s', parent, names[i], bounds[i]);
    END LOOP;
END
$$;
SELECT sipline_drop_partitioned_key('portfolio_lines');
SELECT sipline_drop_partitioned_key('portfolio_snapshots');
DROP FUNCTION sipline_drop_partitioned_key(regclass);

-- `notifications_user_id_idx` (user_id, notification_id DESC) serves the notification list;
-- nothing reads by (user_id, created_at), and every outbox row paid for a second user index.
DROP INDEX notifications_user_idx;

-- The outbox's idempotency key is compared byte by byte: under the database's collation (even
-- C.UTF-8 in PostgreSQL 15) every comparison of the unique index went through strcoll, and the
-- nightly INSERT of ~500,000 SIP notifications at 10M users spent more time in that index than
-- in the table. The keys are ASCII (`sip:<sip_id>:<due date>:<kind>`, `statement:…`), which
-- no reader sorts for display. Rebuilds the index once.
ALTER TABLE notifications ALTER COLUMN event_key TYPE text COLLATE "C";
