#!/usr/bin/env bash
# Benchmark: `generate`, a 12-month `sip backfill`, then fresh days (never executed before: one
# with the page cache dropped where allowed, one warm, a month end) and a re-run, on a generated
# universe (default 10,000,000 users; `USERS=1000000 benches/sip_execute.sh` for a quicker run),
# with the floor: the time to just read the input columns with DataFusion.
# Needs ~10 GB of disk for 10M users. Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${USERS:-10000000}
cargo build --profile "${PROFILE:-release}" -q -p jobs
bin="${CARGO_TARGET_DIR:-target}/${PROFILE:-release}/sipline"
work=${WORK:-$(mktemp -d)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
wh="$work/wh"

measure() { python3 benches/measure.py --tail "$@"; }  # label, then the command

echo "users=$users cpus=$(nproc) warehouse=$wh"
measure "generate --users $users --months 12" "$bin" generate --users "$users" --months 12 --end-date 2025-06-30 --warehouse "$wh"
# The floor: what one day's run must at least read, the SIPs due that day (sips is sorted by
# sip_day, so DataFusion prunes row groups the way the job does), not the whole table.
measure "floor: scan the sips due on day 26 (DataFusion)" "$bin" sql --warehouse "$wh" \
  "SELECT count(*), sum(amount), min(start_date), max(end_date), sum(step_up_pct), count(status), max(paused_until), sum(user_id + sip_id + scheme_code) FROM sips WHERE sip_day = 26"
measure "sip execute (first day, 2024-07-01)" "$bin" sip execute --date 2024-07-01 --simulate-failures 0.02 --warehouse "$wh"
# The backfill stops short of the last days, so each day below is executed for the first time.
measure "sip backfill 2024-07-02..2025-06-25 (12 months)" "$bin" sip backfill --from 2024-07-02 --to 2025-06-25 --simulate-failures 0.02 --warehouse "$wh"
cold() {  # drops the page cache where the machine allows it; says which it was
  if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then echo "cold page cache"; else echo "page cache not dropped: warm"; fi
}
label=$(cold)
measure "sip execute (fresh day 2025-06-26, $label)" "$bin" sip execute --date 2025-06-26 --simulate-failures 0.02 --warehouse "$wh"
measure "sip execute (fresh day 2025-06-27, warm cache)" "$bin" sip execute --date 2025-06-27 --simulate-failures 0.02 --warehouse "$wh"
measure "sip execute (fresh month end 2025-06-30, checkpoint)" "$bin" sip execute --date 2025-06-30 --simulate-failures 0.02 --warehouse "$wh"
# The latest date re-run reproduces it; an earlier one would be refused (exit 6, see --rewind).
measure "sip execute (re-run of 2025-06-30, already executed)" "$bin" sip execute --date 2025-06-30 --simulate-failures 0.02 --warehouse "$wh"
du -sh "$wh"/* | sed 's/^/    /'
