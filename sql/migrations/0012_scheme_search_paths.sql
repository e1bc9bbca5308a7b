-- Finding a fund, faster (issue 16). One long `search_text` (name, house, ISINs, code) made
-- every "X Mutual Fund" query similar to every scheme ("mutual fund" is in all of them), so a
-- fund-house search rechecked all ~14,000 rows (~800 ms). Now codes, ISINs and fund houses are
-- exact, indexed lookups (ISINs by the indexes of 0001), and the trigram match runs over a short
-- name: the scheme's name and its house's brand ("HDFC", not "HDFC Mutual Fund").
DROP INDEX IF EXISTS schemes_search_idx;
ALTER TABLE schemes DROP COLUMN IF EXISTS search_text;
ALTER TABLE schemes ADD COLUMN search_name text GENERATED ALWAYS AS (
    lower(scheme_name || ' ' || regexp_replace(coalesce(fund_house, ''), '\s*mutual fund$', '', 'i'))
) STORED;
CREATE INDEX schemes_search_name_idx ON schemes USING gin (search_name gin_trgm_ops);
-- Whole words first: when every word typed is a word of the name or house ("nippon india
-- growth"), full-text search finds the ~1,900 matches and ranks them in ~3 ms, where word
-- similarity would score each (~20 µs a row). Misspelt or joined words ("axis blue chip" for
-- "Bluechip") find nothing here and go to the trigram match, whose candidates are then few.
ALTER TABLE schemes ADD COLUMN search_words tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', scheme_name || ' ' || coalesce(fund_house, ''))
) STORED;
CREATE INDEX schemes_search_words_idx ON schemes USING gin (search_words);
CREATE INDEX schemes_fund_house_idx ON schemes (lower(fund_house) text_pattern_ops);
-- Not for lookups but for its statistics: with them the planner knows "direct growth" is a
-- ninth of the master and walks the code order to the first page instead of sorting it all.
CREATE INDEX schemes_plan_option_idx ON schemes (lower(plan), lower(option), scheme_code);
-- The jobs' scheme upsert runs VACUUM (ANALYZE) after loading (see jobs/src/postgres.rs).
ANALYZE schemes;
