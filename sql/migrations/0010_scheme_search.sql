-- Finding a fund (issue 16): typo-tolerant search over scheme name, fund house, ISINs and code.
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13, so the
-- database owner can create it. "axis blue chip" finds "Axis Bluechip Fund": word similarity
-- of the query's trigrams against the best-matching stretch of the text.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE schemes ADD COLUMN search_text text GENERATED ALWAYS AS (
    lower(scheme_name || ' ' || coalesce(fund_house, '') || ' ' || coalesce(isin_growth, '')
          || ' ' || coalesce(isin_reinvestment, '') || ' ' || scheme_code::text)
) STORED;
CREATE INDEX schemes_search_idx ON schemes USING gin (search_text gin_trgm_ops);
