-- Search as people type (issue 37): every word typed is the start of a word of the scheme
-- ("franklin pri" is Franklin India Prima Fund, "motilal mid" a Motilal Oswal midcap fund),
-- where before it had to be a whole word or fell to trigram similarity, which ranked Franklin
-- India Bluechip first. `sipline_prefix_query` turns the text into a prefix tsquery
-- ('franklin:* & pri:*'); GIN serves prefix matches on the same index.
--
-- The words searched gain the short forms people use that AMFI's names may lack: an ELSS
-- scheme (by its category) answers to "elss", "tax" and "saver" ("HDFC Long Term Advantage
-- Plan" is one), and Aditya Birla Sun Life's schemes to "absl". "pru" (ICICI Prudential) and
-- "ppfas" (the fund house of Parag Parikh's schemes) need nothing more: a prefix, a house.
ALTER TABLE schemes DROP COLUMN search_words;
ALTER TABLE schemes ADD COLUMN search_words tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', scheme_name || ' ' || coalesce(fund_house, '')
        || CASE WHEN category ILIKE '%ELSS%' THEN ' elss tax saver' ELSE '' END
        || CASE WHEN fund_house ILIKE 'Aditya Birla%' THEN ' absl' ELSE '' END)
) STORED;
CREATE INDEX schemes_search_words_idx ON schemes USING gin (search_words);

-- 'Franklin  pri-' → 'franklin:* & pri:*': the text's letters and digits in runs, each a prefix;
-- NULL when there are none (then nothing matches, and the search falls to similarity).
CREATE FUNCTION sipline_prefix_query(typed text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsquery('simple', string_agg(word || ':*', ' & '))
    FROM regexp_split_to_table(lower(typed), '[^[:alnum:]]+') AS word
    WHERE word <> ''
$$;
ANALYZE schemes;
