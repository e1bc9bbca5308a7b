#!/usr/bin/env bash
# Benchmark: time and peak memory of `sipline nav ingest` on a full-size NAVAll.txt (14,000
# scheme codes) and a ~20 MB AMFI NAV history report, into a fresh local warehouse, then the
# same ingest again (the idempotent re-run). Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p jobs
bin="${CARGO_TARGET_DIR:-target}/release/sipline"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" nav sample --format amfi --schemes 14000 --date 2024-12-27 --out "$work/NAVAll.txt" >/dev/null
"$bin" nav sample --format amfi-history --schemes 8500 --date 2024-12-27 --days 34 --out "$work/history.txt" >/dev/null

measure() { python3 benches/measure.py "$@"; }  # label, then the command

for file in NAVAll.txt history.txt; do
  printf '%-40s %s bytes, %s lines\n' "$file" "$(stat -c %s "$work/$file")" "$(wc -l < "$work/$file")"
done
source_of() { [ "$1" = NAVAll.txt ] && echo amfi || echo amfi-history; }
for file in NAVAll.txt history.txt; do
  rm -rf "$work/wh"
  measure "ingest $file (fresh warehouse)" "$bin" nav ingest --source "$(source_of $file)" --input "$work/$file" --warehouse "$work/wh"
  measure "ingest $file (re-run, no change)" "$bin" nav ingest --source "$(source_of $file)" --input "$work/$file" --warehouse "$work/wh"
done
