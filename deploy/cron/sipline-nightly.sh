#!/usr/bin/env bash
# The nightly pipeline for one business date, for cron: what the sipline_daily DAG does, in
# order, on one machine. Idempotent: re-running it for a date that already ran changes nothing.
#
#   sipline-nightly.sh [DATE] [--rewind]
#
# DATE defaults to today in Asia/Kolkata. Re-running a past date after later dates ran is
# refused (exit 6) unless --rewind is given, which retires the later dates' execution and
# valuation output first: run them again in order afterwards.
#
# Exit codes are sipline's: 0 done (or not a business day, or no NAV dated the day by the
# deadline: a market holiday not on the list, settled by the next night), 3 bad input, 4 the
# day's NAVs only partly out by the deadline, 6 later dates ran (see --rewind), 1 anything else. One run at a time (flock).
set -uo pipefail
# shellcheck disable=SC1090
[ -n "${SIPLINE_ENV:-}" ] && [ -r "$SIPLINE_ENV" ] && { set -a; . "$SIPLINE_ENV"; set +a; }
sipline=${SIPLINE_BIN:-sipline}
date=${1:-$(TZ=Asia/Kolkata date +%F)}
rewind=()
[ "${2:-}" = "--rewind" ] && rewind=(--rewind)
amfi_url=${SIPLINE_AMFI_NAVALL_URL:-https://www.amfiindia.com/spages/NAVAll.txt}
# The bank's debit report for the date (`{date}` is replaced); none there means no returns.
# (The default is set apart: a `}` inside ${VAR:-default} would end the expansion.)
default_debit_report='/var/lib/sipline/debits/{date}.csv'
debit_report_url=${SIPLINE_DEBIT_REPORT_URL:-$default_debit_report}
# How long to wait for AMFI's file, and how often to look.
nav_deadline_secs=${SIPLINE_NAV_DEADLINE_SECS:-21600}
nav_retry_secs=${SIPLINE_NAV_RETRY_SECS:-900}
log_dir=${SIPLINE_LOG_DIR:-/var/log/sipline}
mkdir -p "$log_dir"
exec >>"$log_dir/nightly-$date.log" 2>&1
exec 9>"$log_dir/nightly.lock"
flock -n 9 || { echo "another nightly run holds $log_dir/nightly.lock"; exit 1; }

# A command as it may be logged: URLs (signed queries, tokens in paths) reduced to their host.
shown() {
  local arg out=()
  for arg in "$@"; do
    if [[ "$arg" == *://* ]]; then
      local rest=${arg#*://}
      rest=${rest%%[/?#]*}
      out+=("${arg%%://*}://${rest##*@}/…")
    else
      out+=("$arg")
    fi
  done
  echo "${out[*]}"
}

step() {
  echo "== $(date -u +%FT%TZ) sipline $(shown "$@")"
  "$sipline" "$@"
  local code=$?
  [ "$code" -eq 0 ] || echo "== sipline $1 $2 exited $code"
  return "$code"
}

step calendar check --date "$date"
case $? in
  0) ;;
  5) exit 0 ;;  # weekend or holiday: no NAV file comes, no SIP falls due
  *) exit 1 ;;
esac

started=$(date +%s)
while true; do
  step nav ingest --source amfi --input "$amfi_url" --date "$date"
  code=$?
  [ "$code" -eq 0 ] && break
  # Only "not published yet" is worth waiting for: 4 (partly out), 7 (nothing dated the day).
  [ "$code" -eq 4 ] || [ "$code" -eq 7 ] || exit "$code"
  if (( $(date +%s) - started + nav_retry_secs > nav_deadline_secs )); then
    # Nothing dated the day by the deadline: a market holiday the list does not have (AMFI's
    # file still shows the previous business day), or AMFI very late. The night ends waiting,
    # not failed: the next business day's file settles it, and its run takes tonight's
    # instalments at that day's NAV (a weekday without NAVs between two with NAVs is a holiday).
    if [ "$code" -eq 7 ]; then
      echo "== $(date -u +%FT%TZ) no NAV dated $date by the deadline: waiting (a market holiday, or AMFI very late); the next business day's run settles it"
      exit 0
    fi
    exit 4
  fi
  sleep "$nav_retry_secs"
done

step sips export --date "$date" || exit $?
step debits ingest --input "$debit_report_url" --date "$date" --missing-ok || exit $?
step sip execute --date "$date" "${rewind[@]}" || exit $?
# Orders of the date (lumpsums, redemptions, switches, and the SWP and STP instalments it
# places first) against the lots the SIPs left.
step orders execute --date "$date" || exit $?
step portfolio value --date "$date" || exit $?
step publish --date "$date" || exit $?
# What the serving store no longer needs; after the publish, never competing with it.
step housekeeping || exit $?
echo "== $(date -u +%FT%TZ) nightly run for $date done"
