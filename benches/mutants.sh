#!/usr/bin/env bash
# Mutation testing of the money and rule modules with cargo-mutants (crates.io): every mutant
# of pipeline's SIP rules, valuation, XIRR, money, calendar and NAV readers is built and
# pipeline's own tests run against it; a mutant that survives is a change to the arithmetic or
# the rules that no test notices. Too slow for every CI run (about 8 s a mutant here, ~530
# mutants), so it is a script:
#   benches/mutants.sh                      # all the modules
#   FILES="pipeline/src/money.rs" benches/mutants.sh
# Results land in mutants.out/ (outcomes.json, caught.txt, missed.txt, unviable.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sipline-target}"
files=${FILES:-"pipeline/src/money.rs pipeline/src/calendar.rs pipeline/src/sip.rs pipeline/src/xirr.rs pipeline/src/valuation.rs pipeline/src/nav/amfi.rs pipeline/src/nav/bse.rs pipeline/src/nav/mod.rs pipeline/src/nav/collect.rs"}
args=()
for f in $files; do args+=(-f "$f"); done
# --in-place reuses this tree's target dir (incremental builds); the tree is restored after
# each mutant, and `git status` should be clean again at the end.
cargo mutants -p pipeline --test-package pipeline --in-place --timeout 300 "${args[@]}" -o "${OUT:-.}" "$@"
