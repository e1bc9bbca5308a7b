-- Portfolio lines carry the scheme's own XIRR and its one-day change (issue 16): the value at
-- the line's NAV less the value at the scheme's previous NAV. Null XIRR: hourly, or no solution.
DROP VIEW portfolio_lines_latest;
ALTER TABLE portfolio_lines ADD COLUMN xirr double precision,
                            ADD COLUMN day_change numeric(18,2) NOT NULL DEFAULT 0;
CREATE VIEW portfolio_lines_latest AS
    SELECT l.* FROM portfolio_lines l WHERE l.as_of = (SELECT max(as_of) FROM publications);
