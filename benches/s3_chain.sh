#!/usr/bin/env bash
# Benchmark (issue 40): the nightly chain with the warehouse on a local S3 server (moto in
# server mode) against the same chain on a local folder — same machine, same binary, one run
# each. A generated universe (default 10,000,000 users; `USERS=1000000` for a quicker run),
# then for each of two business days: `sip execute` and `portfolio value` as two shards in
# parallel (`--shard 0/2`, `--shard 1/2`, as the sharded DAG runs them), and a `sql` query of
# the day's valuation. Prints wall and CPU (user + system, the children's) per step, and
# checks that both warehouses answer the query the same. The S3 server's own CPU is printed at
# the end (on top of the S3 steps').
#
#   PYTHON=~/.cache/sipline-s3-venv/bin/python benches/s3_chain.sh
#
# PYTHON must have warehouse/tests/s3/requirements.txt (moto[server], boto3). BIN= skips
# the release build. Needs ~2× the universe's size of disk and, for moto, of memory.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${USERS:-10000000}
python=${PYTHON:-python3}
if [ -z "${BIN:-}" ]; then
  cargo build --profile "${PROFILE:-release}" -q -p jobs
  BIN="${CARGO_TARGET_DIR:-target}/${PROFILE:-release}/sipline"
fi
bin=$BIN
work=${WORK:-$(mktemp -d)}
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
export RUST_LOG=${RUST_LOG:-warn}

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=sipline-bench AWS_SECRET_ACCESS_KEY="bench-$RANDOM$RANDOM"
export AWS_REGION=ap-south-1 AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true
"$python" warehouse/tests/s3/objects.py create-bucket sipline

# Wall and the children's CPU of one command (both shards when it runs two).
measure() {
  local label=$1; shift
  "$python" - "$label" "$@" <<'PY'
import resource, subprocess, sys, time
label, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
import tempfile
# stderr to files, not pipes: a shard with much to say must not block on a full pipe.
runs = [cmd[1:] + ["--shard", f"{i}/2"] for i in range(2)] if cmd[0] == "--shards" else [cmd]
logs = [tempfile.TemporaryFile(mode="w+") for _ in runs]
procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=log) for c, log in zip(runs, logs)]
codes = []
for p, log in zip(procs, logs):
    code = p.wait()
    log.seek(0)
    codes.append((code, log.read()))
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
for code, err in codes:
    if code != 0:
        sys.exit(f"{label}: exit {code}\n{err[-2000:]}")
print(f"{label:<58} {wall:8.2f} s wall {usage.ru_utime + usage.ru_stime:8.2f} s CPU")
PY
}

days=(2025-06-26 2025-06-27)
query="SELECT as_of, count(*) AS users, sum(current_value) AS value FROM portfolio_snapshots GROUP BY as_of ORDER BY as_of"
echo "users=$users cpus=$(nproc) moto=$("$python" -c 'import moto; print(moto.__version__)')"
for where in local s3; do
  if [ "$where" = local ]; then wh="$work/local"; else wh=s3://sipline/warehouse; fi
  echo "-- warehouse: $where"
  measure "$where: generate --users $users --months 1" --shards "$bin" generate --users "$users" --months 1 --end-date 2025-06-27 --seed 7 --warehouse "$wh"
  for day in "${days[@]}"; do
    measure "$where: sip execute $day (2 shards)" --shards "$bin" sip execute --date "$day" --warehouse "$wh"
    measure "$where: portfolio value $day (2 shards)" --shards "$bin" portfolio value --date "$day" --warehouse "$wh"
  done
  measure "$where: sql (the days' valuation)" "$bin" sql --format csv --warehouse "$wh" "$query"
  "$bin" sql --format csv --warehouse "$wh" "$query" >"$work/answer-$where.csv"
done
cmp -s "$work/answer-local.csv" "$work/answer-s3.csv" || { echo "the answers differ" >&2; diff "$work/answer-local.csv" "$work/answer-s3.csv" >&2; exit 1; }
echo "same answer from both: $(tr '\n' ' ' <"$work/answer-s3.csv")"
du -sh "$work/local" | sed 's/^/local folder: /'
# The S3 steps' CPU above is sipline's; the server's own is on top of it.
echo "moto server CPU over the run: $(ps -o times= -p "$server_pid" | tr -d ' ') s"
