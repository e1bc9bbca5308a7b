-- Intraday valuations in the serving store (issue 19): `publish --hourly --date D` brings the
-- latest `portfolio value --hourly` run to the API, writing only the users whose numbers differ
-- from what the API shows them now (the latest daily snapshot, or an earlier hour of D). An
-- hour in which a few percent of users changed (a late or corrected NAV) writes a few percent of
-- the rows.
--
-- History: one point per user and hour for the intraday date — a user without a row in an hour
-- kept the numbers of their previous point — and daily points after: the daily publish of D
-- (the valuation with XIRR, which supersedes every intraday figure up to D) drops the intraday
-- partitions of D and earlier in its switch transaction.

CREATE TABLE portfolio_intraday (
    as_of          date          NOT NULL,
    hour           smallint      NOT NULL CHECK (hour BETWEEN 0 AND 23),
    user_id        bigint        NOT NULL,
    invested       numeric(18,2) NOT NULL,
    current_value  numeric(18,2) NOT NULL,
    gain           numeric(18,2) NOT NULL,
    abs_return_pct numeric(18,4),
    schemes        integer       NOT NULL,
    nav_date       date,
    -- The route reads a user's newest point: the last entry of (user_id, as_of).
    PRIMARY KEY (user_id, as_of, hour)
) PARTITION BY LIST (as_of);

-- One row per published hour: what the API shows as the time of the newest valuation.
CREATE TABLE intraday_publications (
    as_of        date        NOT NULL,
    hour         smallint    NOT NULL CHECK (hour BETWEEN 0 AND 23),
    published_at timestamptz NOT NULL DEFAULT now(),
    -- Users valued in the hour, and those among them whose numbers changed (rows written).
    users        bigint      NOT NULL,
    changed      bigint      NOT NULL,
    PRIMARY KEY (as_of, hour)
);

-- The date's partition, created if missing. Creating a partition locks the parent against
-- readers for a moment: `publish --hourly` calls this in its own short transaction.
CREATE FUNCTION sipline_ensure_intraday_day(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    day_partition text := format('portfolio_intraday_d%s', to_char(day, 'YYYYMMDD'));
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('sipline_ensure_intraday_day'));
    IF to_regclass(day_partition) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF portfolio_intraday FOR VALUES IN (%L)',
                       day_partition, day);
    END IF;
    RETURN day_partition;
END
$$;

-- The daily publish of `day`: every intraday figure up to it is superseded. Called inside the
-- publish transaction, after it has locked the served tables.
CREATE FUNCTION sipline_retire_intraday(day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    dropped integer := 0;
    part record;
BEGIN
    DELETE FROM intraday_publications WHERE as_of <= day;
    FOR part IN
        SELECT c.relname::text AS name
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'portfolio_intraday'::regclass
          AND to_date(substring(c.relname FROM 'portfolio_intraday_d(\d{8})$'), 'YYYYMMDD') <= day
    LOOP
        EXECUTE format('DROP TABLE %I', part.name);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;
