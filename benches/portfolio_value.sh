#!/usr/bin/env bash
# Benchmark: `portfolio value` (hourly, and daily with XIRR and charts) on an executed universe,
# side by side with DuckDB computing the same snapshot numbers from the same Parquet files.
# Run benches/sip_execute.sh with KEEP=1 WORK=DIR first (10,000,000 users, 12 months), then
#   WORK=DIR benches/portfolio_value.sh
# Needs `pip install duckdb`. Prints one line per measurement and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${WORK:?set WORK to the folder benches/sip_execute.sh kept}"
date=${DATE:-2025-06-27}
wh="$WORK/wh"
cargo build --profile "${PROFILE:-release}" -q -p jobs
bin="${CARGO_TARGET_DIR:-target}/${PROFILE:-release}/sipline"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

measure() { python3 benches/measure.py --tail "$@"; }  # label, then the command

duck_py='import duckdb, sys; duckdb.sql(sys.argv[1]); print("duckdb ok")'

nav_latest="SELECT scheme_code, arg_max(nav, nav_date) AS nav FROM read_parquet('$wh/navs/*/*.parquet', hive_partitioning = true) WHERE nav_date <= DATE '$date' GROUP BY scheme_code"
checkpoint=$(ls "$wh/holdings" | sed 's/as_of=//' | awk -v d="$date" '$0 <= d' | sort | tail -1)

# Hourly equivalent: the month-end checkpoint plus the purchases since, valued per user.
duck_hourly="COPY (
  WITH held AS (
    SELECT user_id, scheme_code, sum(units) AS units, sum(invested) AS invested FROM (
      SELECT user_id, scheme_code, units, invested FROM read_parquet('$wh/holdings/as_of=$checkpoint/*/*.parquet')
      UNION ALL
      SELECT user_id, scheme_code, units, amount FROM read_parquet('$wh/investments/*/*/*.parquet', hive_partitioning = true)
      WHERE status = 'executed' AND exec_date > DATE '$checkpoint' AND exec_date <= DATE '$date')
    GROUP BY ALL),
  lines AS (SELECT user_id, units, invested, round(units * nav, 2) AS value FROM held JOIN ($nav_latest) USING (scheme_code))
  SELECT user_id, sum(invested) AS invested, sum(value) AS current_value, sum(value) - sum(invested) AS gain
  FROM lines GROUP BY user_id ORDER BY user_id
) TO '$out/duck_hourly.parquet' (FORMAT parquet)"

# Daily equivalent without XIRR or charts (DuckDB has no XIRR): every purchase up to the date.
duck_daily="COPY (
  WITH held AS (
    SELECT user_id, scheme_code, sum(units) AS units, sum(amount) AS invested
    FROM read_parquet('$wh/investments/*/*/*.parquet', hive_partitioning = true)
    WHERE status = 'executed' AND exec_date <= DATE '$date' GROUP BY ALL),
  lines AS (SELECT user_id, units, invested, round(units * nav, 2) AS value FROM held JOIN ($nav_latest) USING (scheme_code))
  SELECT user_id, sum(invested) AS invested, sum(value) AS current_value, sum(value) - sum(invested) AS gain
  FROM lines GROUP BY user_id ORDER BY user_id
) TO '$out/duck_daily.parquet' (FORMAT parquet)"

echo "date=$date cpus=$(nproc) warehouse=$wh checkpoint=$checkpoint"
{
measure "sipline portfolio value --hourly" "$bin" portfolio value --date "$date" --hourly --hour 20 --warehouse "$wh"
measure "duckdb: same snapshot (checkpoint + since)" python3 -c "$duck_py" "$duck_hourly"
measure "sipline portfolio value (daily: XIRR, charts)" "$bin" portfolio value --date "$date" --warehouse "$wh"
measure "duckdb: same snapshot from every purchase" python3 -c "$duck_py" "$duck_daily"
measure "floor: scan executed purchases (DataFusion)" "$bin" sql --warehouse "$wh" \
  "SELECT count(*), sum(units), sum(amount), min(nav_date), max(user_id + scheme_code) FROM investments WHERE status = 'executed' AND exec_date <= DATE '$date'"
} | tee "$out/log"
python3 - "$out/log" <<'PY'
import sys
t = dict(l[2:].strip().rsplit("=", 1) for l in open(sys.argv[1]) if l.startswith("##"))
t = {k: float(v) for k, v in t.items()}
h = t["sipline portfolio value --hourly"] / t["duckdb: same snapshot (checkpoint + since)"]
d = t["sipline portfolio value (daily: XIRR, charts)"] / t["duckdb: same snapshot from every purchase"]
print(f"ratio sipline/duckdb hourly: {h:.2f}  daily (sipline also computes XIRR and charts): {d:.2f}")
PY

# The same numbers, not only the same work: DuckDB's snapshots against sipline's, row for row
# (users holding something; counts and both EXCEPTs), in this run.
python3 - "$wh" "$date" "$out" <<'PY'
import duckdb, sys
wh, date, out = sys.argv[1:]
pairs = {
    "daily": (f"{out}/duck_daily.parquet", f"{wh}/portfolio_snapshots/as_of={date}/*/*.parquet"),
    "hourly": (f"{out}/duck_hourly.parquet", f"{wh}/portfolio_hourly/as_of={date}/*/*.parquet"),
}
bad = False
for name, (duck, ours) in pairs.items():
    d = f"SELECT user_id, invested, current_value, gain FROM read_parquet('{duck}')"
    s = f"SELECT user_id, invested, current_value, gain FROM read_parquet('{ours}') WHERE schemes > 0"
    # `execute(...).fetchone()`: DuckDB 2 dropped `fetchone` on relations (`sql(...)`).
    counts = duckdb.execute(f"SELECT (SELECT count(*) FROM ({d})), (SELECT count(*) FROM ({s})), "
                            f"(SELECT count(*) FROM (({d}) EXCEPT ALL ({s}))), "
                            f"(SELECT count(*) FROM (({s}) EXCEPT ALL ({d})))").fetchone()
    same = counts[0] == counts[1] and counts[2] == 0 and counts[3] == 0
    bad |= not same
    print(f"{name}: duckdb {counts[0]} users, sipline {counts[1]}; only duckdb {counts[2]}, only sipline {counts[3]}: "
          + ("same numbers" if same else "DIFFERENT"))
sys.exit(1 if bad else 0)
PY
