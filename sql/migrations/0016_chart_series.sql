-- Charts composed from narrow series instead of a JSONB document per user, graph type and day
-- (issue 19). At 10 million users the documents were 28 million rows and 12 GB rewritten every
-- night, most of them repeating yesterday's month-end points. Now:
--   * pie:  the user's `portfolio_lines` of the latest date, grouped by scheme, category and
--           fund house when read;
--   * line: `portfolio_month_ends` (invested and value at each month end, written once, the
--           first publish after the month ends) plus today's `portfolio_snapshots` row;
--   * bar:  invested per month is the difference of consecutive month-end `invested` values
--           (and today's invested less the last month end's, for the running month).
-- See DESIGN.md "Charts".

CREATE TABLE portfolio_month_ends (
    month_end date          NOT NULL,
    user_id   bigint        NOT NULL,
    -- Everything the user paid in up to the month end (stamp duty included), and the value
    -- of the units held then at that day's NAVs.
    invested  numeric(18,2) NOT NULL,
    value     numeric(18,2) NOT NULL,
    PRIMARY KEY (user_id, month_end)
) PARTITION BY LIST (month_end);

-- The last month end whose rows are complete in `portfolio_month_ends`: a publish loads the
-- month ends after it and before its date, and moves it on (in the same transaction).
ALTER TABLE publications ADD COLUMN month_ends bigint NOT NULL DEFAULT 0,
                         ADD COLUMN month_ends_through date;

-- What the seed's `visibility_graphs` becomes: the user's chart choices (which grouping a pie
-- opens on, the line chart's range, hidden schemes), not the chart data. One row per user and
-- graph type, written by clients; empty until a client saves a choice.
DROP VIEW visibility_graphs_latest;
DO $$
DECLARE
    latest date := (SELECT max(as_of) FROM publications);
    ends   text;
BEGIN
    -- A store published before this migration keeps serving full line charts: its latest
    -- line documents hold the month ends already (every point but the last, today's).
    IF latest IS NOT NULL THEN
        CREATE TEMP TABLE migrated_month_ends ON COMMIT DROP AS
            SELECT (p.period #>> '{}')::date AS month_end, g.user_id,
                   (g.config -> 'invested' ->> (p.i - 1)::int)::numeric(18,2) AS invested,
                   (g.config -> 'value' ->> (p.i - 1)::int)::numeric(18,2) AS value
            FROM visibility_graphs g
            CROSS JOIN LATERAL jsonb_array_elements(g.config -> 'period') WITH ORDINALITY AS p(period, i)
            WHERE g.as_of = latest AND g.graph_type = 'line'
              AND p.i < jsonb_array_length(g.config -> 'period');
        SELECT string_agg(quote_literal(month_end), ', ' ORDER BY month_end)
            INTO ends FROM (SELECT DISTINCT month_end FROM migrated_month_ends) d;
        IF ends IS NOT NULL THEN
            EXECUTE format('CREATE TABLE portfolio_month_ends_migrated PARTITION OF portfolio_month_ends '
                           'FOR VALUES IN (%s)', ends);
            INSERT INTO portfolio_month_ends SELECT * FROM migrated_month_ends;
        END IF;
        UPDATE publications SET month_ends_through = (date_trunc('month', latest) - INTERVAL '1 day')::date
            WHERE as_of = latest;
    END IF;
END
$$;
DROP TABLE visibility_graphs;
ALTER TABLE publications DROP COLUMN graphs;

CREATE TABLE visibility_graphs (
    user_id    bigint      NOT NULL REFERENCES users (user_id),
    graph_type text        NOT NULL CHECK (graph_type IN ('pie', 'line', 'bar')),
    config     jsonb       NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, graph_type)
);
