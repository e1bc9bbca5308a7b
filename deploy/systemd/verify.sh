#!/usr/bin/env bash
# Checks the units with `systemd-analyze verify` (syntax, directives, the executables they
# start) against a copy where the installed paths point at this build:
#   SIPLINE_BIN=…/sipline bash deploy/systemd/verify.sh
# then `systemd-analyze security` scores the two long-running services (printed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SIPLINE_BIN:?the sipline binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in "$here"/*.service "$here"/*.timer; do
  sed -e "s#/usr/local/bin/sipline#$bin#" \
      -e "s#/usr/local/lib/sipline/#$(cd "$here/../cron" && pwd)/#" "$unit" >"$work/$(basename "$unit")"
done
# The EnvironmentFile is read at start, not at verification; the user need not exist here.
cd "$work"
# verify exits 0 on a directive it cannot parse (it only warns): any output is a failure.
if ! out=$(systemd-analyze verify --man=no ./*.service ./*.timer 2>&1) || [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify:"; echo "$out"; exit 1
fi
for unit in sipline-api.service sipline-notify.service; do
  score=$(systemd-analyze security --offline=yes --no-pager "./$unit" 2>/dev/null | tail -1 || true)
  echo "$unit: ${score:-security scoring unavailable here}"
done
echo "systemd units: verified"
