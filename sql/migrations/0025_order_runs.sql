-- The run that settled an order (issue 36): `orders execute --date D` takes the orders due by
-- D still waiting (one whose date turned out to be a market holiday nobody listed, or whose
-- scheme's NAV was late) and, on a re-run of D, exactly those D settled before.
ALTER TABLE orders ADD COLUMN executed_on date;
CREATE INDEX orders_waiting_idx ON orders (executes_on) WHERE status = 'received';
CREATE INDEX orders_executed_on_idx ON orders (executed_on) WHERE executed_on IS NOT NULL;
