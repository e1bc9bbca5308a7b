-- The scheme master and daily NAVs, upserted by `sipline nav ingest --database-url …`.
-- `navs` is a TimescaleDB hypertable where the extension is installed and preloaded, and a
-- plain PostgreSQL table range-partitioned by month otherwise; the API reads both the same way.

CREATE TABLE schemes (
    scheme_code       bigint PRIMARY KEY,
    isin_growth       text,
    isin_reinvestment text,
    scheme_name       text NOT NULL,
    fund_house        text,
    category          text,
    scheme_type       text,
    plan              text,
    option            text,
    unit_decimals     integer NOT NULL DEFAULT 3 CHECK (unit_decimals BETWEEN 0 AND 4),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schemes_isin_growth_idx ON schemes (isin_growth) WHERE isin_growth IS NOT NULL;
CREATE INDEX schemes_isin_reinvestment_idx ON schemes (isin_reinvestment) WHERE isin_reinvestment IS NOT NULL;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        CREATE TABLE navs (
            scheme_code bigint        NOT NULL,
            nav_date    date          NOT NULL,
            nav         numeric(18,4) NOT NULL CHECK (nav > 0),
            source      text          NOT NULL CHECK (source IN ('amfi', 'bse')),
            ingested_at timestamptz   NOT NULL DEFAULT now(),
            PRIMARY KEY (scheme_code, nav_date)
        );
        PERFORM create_hypertable('navs', by_range('nav_date', INTERVAL '1 month'));
        ALTER TABLE navs SET (
            timescaledb.compress,
            timescaledb.compress_segmentby = 'scheme_code',
            timescaledb.compress_orderby = 'nav_date DESC'
        );
        PERFORM add_compression_policy('navs', INTERVAL '3 months');
    ELSE
        CREATE TABLE navs (
            scheme_code bigint        NOT NULL,
            nav_date    date          NOT NULL,
            nav         numeric(18,4) NOT NULL CHECK (nav > 0),
            source      text          NOT NULL CHECK (source IN ('amfi', 'bse')),
            ingested_at timestamptz   NOT NULL DEFAULT now(),
            PRIMARY KEY (scheme_code, nav_date)
        ) PARTITION BY RANGE (nav_date);
    END IF;
END
$$;

-- Creates the monthly partitions of a range-partitioned table that cover [first_day, last_day].
-- A no-op for a hypertable (TimescaleDB makes its own chunks). Writers call it before COPY, so
-- no row ever lands in a missing partition.
CREATE FUNCTION sipline_ensure_month_partitions(parent regclass, first_day date, last_day date)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', first_day)::date;
    partition_name text;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = parent) <> 'p' THEN
        RETURN;
    END IF;
    -- Two writers creating the same month at once would race on CREATE TABLE.
    PERFORM pg_advisory_xact_lock(hashtext('sipline_ensure_month_partitions:' || parent::text));
    WHILE month <= last_day LOOP
        partition_name := format('%s_y%sm%s', parent::text, to_char(month, 'YYYY'), to_char(month, 'MM'));
        IF to_regclass(partition_name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           partition_name, parent, month, (month + INTERVAL '1 month')::date);
        END IF;
        month := (month + INTERVAL '1 month')::date;
    END LOOP;
END
$$;
