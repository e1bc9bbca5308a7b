#!/usr/bin/env bash
# Benchmark: `sipline publish` into PostgreSQL, against the floor of a raw binary COPY of the
# same rows into unindexed tables, measured in the same run. Needs a warehouse valued (daily)
# on PREV_DATE and DATE, e.g. the one benches/sip_execute.sh keeps with KEEP=1 plus
# `portfolio value` of both dates, and an empty database:
#   WORK=DIR DATABASE_URL=postgres://… benches/publish.sh
# Measures, one line each:
#   1. the store's first publish (PREV_DATE with --mandates: users, SIPs, the whole month-end
#      history of the line and bar charts);
#   2. the daily publish of DATE (the nightly figure: snapshots, lines, investments, events);
#   3. a re-publish of DATE (replaces it);
#   4. the floor: the rows the daily publish wrote, exported with psql's \copy in binary, and
#      copied back into unindexed tables on two streams (lines; snapshots, investments and
#      events), as the publish loads them;
#   5. hourly (HOURLY=0 skips): `publish --hourly` of an hour that changed nobody, then of an
#      hour after a NAV correction of the day that moved ~CHANGED_PCT (5) percent of the users
#      (the schemes' NAVs +1%, ingested as an AMFI file; put back afterwards);
# then the ratio daily / floor and the storage per published date.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${WORK:?set WORK to the folder that holds the warehouse (WORK/wh)}"
: "${DATABASE_URL:?set DATABASE_URL to an empty database}"
date=${DATE:-2025-06-27}
prev=${PREV_DATE:-2025-06-26}
wh="$WORK/wh"
cargo build --profile "${PROFILE:-release}" -q -p jobs
bin=${SIPLINE_BIN:-"${CARGO_TARGET_DIR:-target}/${PROFILE:-release}/sipline"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
psql=(psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL")

measure() { python3 benches/measure.py --tail --grep ' loaded |locked for the switch' --key "$@"; }  # label, then the command

{
measure "db migrate" "$bin" db migrate
measure "first: store's first publish of $prev, --mandates, history" "$bin" publish --date "$prev" --warehouse "$wh" --mandates
"${psql[@]}" -c "CHECKPOINT" -c "VACUUM ANALYZE"
measure "daily: publish of $date" "$bin" publish --date "$date" --warehouse "$wh"
"${psql[@]}" -c "CHECKPOINT"
measure "again: re-publish of $date (replaces it)" "$bin" publish --date "$date" --warehouse "$wh"

# The floor: the same rows, already encoded, into tables without an index or a constraint.
"${psql[@]}" <<SQL
\copy (SELECT * FROM portfolio_lines WHERE as_of = DATE '$date') TO '$out/lines.bin' (FORMAT binary)
\copy (SELECT * FROM portfolio_snapshots WHERE as_of = DATE '$date') TO '$out/snapshots.bin' (FORMAT binary)
\copy (SELECT * FROM investments WHERE exec_date = DATE '$date') TO '$out/investments.bin' (FORMAT binary)
\copy (SELECT * FROM notifications WHERE payload->>'run_date' = '$date') TO '$out/events.bin' (FORMAT binary)
DROP TABLE IF EXISTS raw_lines, raw_snapshots, raw_investments, raw_events;
CREATE TABLE raw_lines (LIKE portfolio_lines);
CREATE TABLE raw_snapshots (LIKE portfolio_snapshots);
CREATE TABLE raw_investments (LIKE investments);
CREATE TABLE raw_events (LIKE notifications);
CHECKPOINT;
SQL
cat >"$out/floor.sh" <<SH
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "\\copy raw_lines FROM '$out/lines.bin' (FORMAT binary)" &
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "\\copy raw_snapshots FROM '$out/snapshots.bin' (FORMAT binary)" \\
  -c "\\copy raw_investments FROM '$out/investments.bin' (FORMAT binary)" \\
  -c "\\copy raw_events FROM '$out/events.bin' (FORMAT binary)"
wait
SH
measure "floor: raw binary COPY of the same rows, unindexed, 2 streams" bash "$out/floor.sh"
"${psql[@]}" -c "DROP TABLE raw_lines, raw_snapshots, raw_investments, raw_events"

if [ "${HOURLY:-1}" = 1 ]; then
  "$bin" portfolio value --hourly --date "$date" --hour 10 --warehouse "$wh" >/dev/null 2>&1
  measure "hourly: publish --hourly of hour 10, nothing changed" "$bin" publish --hourly --date "$date" --warehouse "$wh"
  # A NAV correction of the day: the schemes (by code) whose holders add up to CHANGED_PCT.
  python3 - "$bin" "$wh" "$date" "${CHANGED_PCT:-5}" "$out" <<'PY'
import csv, io, subprocess, sys
from datetime import date as Date
bin, wh, day, pct, out = sys.argv[1:]
def sql(query):
    run = subprocess.run([bin, "sql", "--format", "csv", "--warehouse", wh, query],
                         check=True, capture_output=True, text=True)
    return list(csv.DictReader(io.StringIO(run.stdout)))
users = int(sql(f"SELECT count(*) AS n FROM portfolio_snapshots WHERE as_of = DATE '{day}'")[0]["n"])
held = sql(f"SELECT scheme_code, count(*) AS n FROM portfolio_lines WHERE as_of = DATE '{day}' GROUP BY scheme_code ORDER BY scheme_code")
chosen, total = [], 0
for row in held:
    if total >= users * float(pct) / 100:
        break
    chosen.append(row["scheme_code"]); total += int(row["n"])
codes = ",".join(chosen)
navs = {r["scheme_code"]: r["nav"] for r in sql(f"SELECT scheme_code, CAST(nav AS VARCHAR) AS nav FROM navs WHERE nav_date = DATE '{day}' AND scheme_code IN ({codes})")}
schemes = sql(f"SELECT scheme_code, coalesce(isin_growth, '-') AS g, coalesce(isin_reinvestment, '-') AS r, scheme_name, fund_house, category, scheme_type FROM schemes WHERE scheme_code IN ({codes})")
stamp = Date.fromisoformat(day).strftime("%d-%b-%Y")
for name, scale in (("corrected", 1.01), ("original", 1.0)):
    with open(f"{out}/{name}.txt", "w") as f:
        f.write("Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\n")
        for s in schemes:
            if s["scheme_code"] not in navs:
                continue
            nav = float(navs[s["scheme_code"]]) * scale if scale != 1.0 else None
            text = f"{nav:.4f}" if nav is not None else navs[s["scheme_code"]]
            f.write(f" \n{s['scheme_type']} Schemes({s['category']})\n \n{s['fund_house']}\n \n")
            f.write(f"{s['scheme_code']};{s['g']};{s['r']};{s['scheme_name']};{text};{stamp}\n")
print(f"NAV correction: {len(chosen)} schemes held in {total} lines ({100 * total / users:.1f}% of {users} users)")
PY
  "$bin" nav ingest --source amfi --input "$out/corrected.txt" --warehouse "$wh" >/dev/null 2>&1
  "$bin" portfolio value --hourly --date "$date" --hour 11 --warehouse "$wh" >/dev/null 2>&1
  measure "hourly: publish --hourly of hour 11, ~${CHANGED_PCT:-5}% changed" "$bin" publish --hourly --date "$date" --warehouse "$wh"
  measure "hourly: the same hour again (nothing to write)" "$bin" publish --hourly --date "$date" --warehouse "$wh"
  "$bin" nav ingest --source amfi --input "$out/original.txt" --warehouse "$wh" >/dev/null 2>&1
  "${psql[@]}" -c "SELECT as_of, hour, users, changed FROM intraday_publications ORDER BY hour"
  echo "storage of the intraday points: $("${psql[@]}" -At -c "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits WHERE inhparent = 'portfolio_intraday'::regclass")"
fi
} | tee "$out/log"
python3 - "$out/log" <<'PY'
import sys
t = dict(l[2:].strip().rsplit("=", 1) for l in open(sys.argv[1]) if l.startswith("##"))
t = {k: float(v) for k, v in t.items()}
print(f"daily publish / raw COPY floor: {t['daily'] / t['floor']:.2f}x  ({t['daily']:.1f} s / {t['floor']:.1f} s)")
PY
echo "storage of one published date ($date) and of the month-end history (all dates):"
"${psql[@]}" -c "
  SELECT c.relname AS table, pg_size_pretty(sum(pg_table_size(p.oid))) AS data,
         pg_size_pretty(sum(pg_indexes_size(p.oid))) AS indexes,
         pg_size_pretty(sum(pg_total_relation_size(p.oid))) AS total
  FROM pg_class c
  JOIN LATERAL (SELECT c.oid UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = c.oid) p(oid) ON true
  WHERE c.relname IN ('portfolio_lines_d$(echo "$date" | tr -d -)', 'portfolio_month_ends', 'visibility_graphs')
  GROUP BY c.relname
  UNION ALL
  SELECT 'portfolio_snapshots (the date''s partition, or its share of an older month)', NULL, NULL,
         pg_size_pretty(coalesce(pg_total_relation_size(to_regclass('portfolio_snapshots_d$(echo "$date" | tr -d -)')),
           (SELECT pg_total_relation_size('portfolio_snapshots_y' || to_char(DATE '$date', 'YYYY') || 'm' || to_char(DATE '$date', 'MM')))
           * (SELECT count(*) FROM portfolio_snapshots WHERE as_of = DATE '$date')
           / greatest((SELECT count(*) FROM portfolio_snapshots WHERE date_trunc('month', as_of) = date_trunc('month', DATE '$date')), 1)))"
