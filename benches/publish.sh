#!/usr/bin/env bash
# Benchmark: `sipline publish` of one valued date into PostgreSQL, with time, peak memory and
# the tables' sizes afterwards. Needs a warehouse valued (daily) on DATE, e.g. the one
# benches/sip_execute.sh + benches/portfolio_value.sh keep, and a PostgreSQL to publish to:
#   WORK=DIR DATABASE_URL=postgres://… benches/publish.sh
# The database should be empty (its first publish also loads users and SIPs with --mandates,
# measured separately). Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${WORK:?set WORK to the folder that holds the warehouse (WORK/wh)}"
: "${DATABASE_URL:?set DATABASE_URL to an empty database}"
date=${DATE:-2025-06-27}
wh="$WORK/wh"
cargo build --profile "${PROFILE:-release}" -q -p jobs
bin="${CARGO_TARGET_DIR:-target}/${PROFILE:-release}/sipline"

measure() {
  local label=$1; shift
  python3 - "$label" "$@" <<'PY'
import resource, subprocess, sys, time
label, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
if done.returncode != 0:
    sys.exit(f"{label}: exit {done.returncode}\n{done.stderr[-2000:]}")
print(f"{label:<44} {wall:8.2f} s wall  {peak_mib:8.1f} MiB peak RSS")
for line in done.stdout.strip().splitlines()[-2:]:
    print("    " + line[:300])
for line in done.stderr.splitlines():
    if '"loaded"' in line or " loaded " in line:
        print("    " + line[-120:])
PY
}

measure "db migrate" "$bin" db migrate
measure "first publish of $date, empty store, --mandates (users and SIPs too)" "$bin" publish --date "$date" --warehouse "$wh" --mandates
measure "re-publish of $date (replaces a published date)" "$bin" publish --date "$date" --warehouse "$wh"
# A clean first publish of a date alone: NEXT_DATE, valued in the same warehouse and never
# published here (run `portfolio value --date NEXT_DATE` first), without --mandates.
if [ -n "${NEXT_DATE:-}" ]; then
  measure "first publish of $NEXT_DATE (date only, never published)" "$bin" publish --date "$NEXT_DATE" --warehouse "$wh"
fi
psql "$DATABASE_URL" -X -q -c "
  SELECT c.relname AS table, pg_size_pretty(sum(pg_table_size(p.oid))) AS data,
         pg_size_pretty(sum(pg_indexes_size(p.oid))) AS indexes
  FROM pg_class c
  JOIN LATERAL (SELECT c.oid UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = c.oid) p(oid) ON true
  WHERE c.relname IN ('users', 'sips', 'navs', 'investments', 'portfolio_snapshots', 'portfolio_lines',
                      'portfolio_month_ends', 'notifications')
  GROUP BY c.relname ORDER BY sum(pg_total_relation_size(p.oid)) DESC"
