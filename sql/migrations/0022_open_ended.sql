-- One rule for "open-ended" (issue 38): the Rust side is `pipeline::nav::Scheme::is_open_ended`
-- (leading spaces ignored, case-insensitive prefix "open ended"); a PostgreSQL test checks both
-- agree on the same strings. NULL is not open-ended.
CREATE FUNCTION sipline_open_ended(scheme_type text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN coalesce(lower(ltrim(scheme_type)) LIKE 'open ended%', false);
