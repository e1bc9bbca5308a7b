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
CREATE INDEX schemes_fund_house_idx ON schemes (lower(fund_house) text_pattern_ops);
ANALYZE schemes;
