#!/usr/bin/env bash
# Hourly valuation without XIRR, for cron: the last executed day's holdings (yesterday, IST) at
# the latest NAVs, stored with the hour, then published to the API (incrementally). Skipped
# while another hourly run is still going.
set -uo pipefail
# shellcheck disable=SC1090
[ -n "${SIPLINE_ENV:-}" ] && [ -r "$SIPLINE_ENV" ] && { set -a; . "$SIPLINE_ENV"; set +a; }
sipline=${SIPLINE_BIN:-sipline}
log_dir=${SIPLINE_LOG_DIR:-/var/log/sipline}
mkdir -p "$log_dir"
exec >>"$log_dir/hourly-$(TZ=Asia/Kolkata date +%F).log" 2>&1
exec 9>"$log_dir/hourly.lock"
flock -n 9 || { echo "the previous hourly run is still going"; exit 0; }
date=$(TZ=Asia/Kolkata date -d yesterday +%F)
hour=$(TZ=Asia/Kolkata date +%-H)
echo "== $(date -u +%FT%TZ) sipline portfolio value --hourly --date $date --hour $hour"
"$sipline" portfolio value --hourly --date "$date" --hour "$hour" || exit
# Only the users whose numbers changed since what the API shows; skipped (exit 0) when a newer
# hour or the next daily publication is already served.
echo "== $(date -u +%FT%TZ) sipline publish --hourly --date $date"
exec "$sipline" publish --hourly --date "$date"
