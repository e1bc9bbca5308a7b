#!/usr/bin/env bash
# Benchmark: two sipline binaries side by side on one generated universe, step by step — a
# fresh execution day, the month end (checkpoint), hourly and daily valuation — each binary on
# its own copy of the same warehouse, alternating which goes first, with wall time, peak RSS
# and whether the two wrote the same bytes. For a restructuring that must change nothing
# (issue 38): build the old commit's binary in a worktree, then
#   USERS=10000000 benches/ab.sh /path/to/old/sipline target/release/sipline
# The universe is generated and backfilled by the first binary (the old one), so the second
# reads what the first wrote: the two must agree on the warehouse's tables.
set -euo pipefail
benches=$(cd "$(dirname "$0")" && pwd)
old=$(realpath "$1")
new=$(realpath "$2")
users=${USERS:-1000000}
work=${WORK:-/tmp/sipline-ab}
prev=2025-06-26 day=2025-06-27 month_end=2025-06-30
rm -rf "$work"
mkdir -p "$work"

measure() { python3 "$benches/measure.py" "$@"; }  # label, then the command

# The bytes a step wrote: every data file of the given dates' partitions, path and digest.
digest() {  # warehouse, dates…
  local wh=$1; shift
  local pattern
  pattern=$(printf '%s\n' "$@" | paste -sd'|')
  (cd "$wh" && find . -name '*.parquet' | grep -E "=($pattern)(/|$)" | sort | xargs md5sum) | md5sum | cut -c1-12
}

echo "users=$users cpus=$(nproc) old=$old new=$new"
measure "generate (old)" "$old" generate --users "$users" --months 12 --end-date "$month_end" --warehouse "$work/base"
measure "sip backfill ..$prev (old)" "$old" sip backfill --from 2024-07-01 --to "$prev" --simulate-failures 0.02 --warehouse "$work/base"
# One copy, not two: at 10M users the warehouse is ~7 GB (6.9 GB measured).
cp -a "$work/base" "$work/b"
mv "$work/base" "$work/a"

step() {  # label, dates written, then the job's arguments (without --warehouse)
  local label=$1 dates=$2; shift 2
  # Alternate which binary runs first, so a warmer page cache does not always favour one.
  if [ "${flip:-0}" = 0 ]; then
    measure "$label (old)" "$old" "$@" --warehouse "$work/a"
    measure "$label (new)" "$new" "$@" --warehouse "$work/b"
    flip=1
  else
    measure "$label (new)" "$new" "$@" --warehouse "$work/b"
    measure "$label (old)" "$old" "$@" --warehouse "$work/a"
    flip=0
  fi
  # shellcheck disable=SC2086
  local da db
  da=$(digest "$work/a" $dates) db=$(digest "$work/b" $dates)
  if [ "$da" = "$db" ]; then echo "    same bytes ($da)"; else echo "    BYTES DIFFER: old $da, new $db"; fi
}
step "sip execute (fresh day $day)" "$day" sip execute --date "$day" --simulate-failures 0.02
step "sip execute (month end $month_end)" "$month_end" sip execute --date "$month_end" --simulate-failures 0.02
step "portfolio value --hourly ($month_end 20:00)" "$month_end" portfolio value --date "$month_end" --hourly --hour 20
step "portfolio value (daily $month_end)" "$month_end" portfolio value --date "$month_end"
du -sh "$work/a" "$work/b" | sed 's/^/    /'
rm -rf "$work"
