#!/usr/bin/env bash
# The warehouse on S3, end to end, against an S3 server nobody here wrote (moto in server
# mode): the nightly chain — generate, every business day's `sip execute` and `portfolio
# value` — runs with `--shard 0/2` and `--shard 1/2` as parallel processes against one bucket
# (credentials and endpoint from the standard AWS variables), then `sql` and `publish` read
# from S3. Every object must equal, byte for byte, the same chain run unsharded on a local
# folder, and the published serving store must equal the one published from the folder.
# Then a shard killed mid-write (SIGKILL) on S3 leaves the previous partition readable: the
# same query answers the same while the re-runs are killed, and a completed re-run leaves the
# same bytes.
#
#   SIPLINE_BIN=… SIPLINE_TEST_DATABASE_URL=postgres://…/postgres bash warehouse/tests/s3/e2e.sh
#
# with `python` from a virtualenv holding warehouse/tests/s3/requirements.txt first on PATH.
set -euo pipefail
export RUST_LOG=${RUST_LOG:-warn}
here=$(cd "$(dirname "$0")" && pwd)
bin=${SIPLINE_BIN:?the sipline binary}
base=${SIPLINE_TEST_DATABASE_URL:?a PostgreSQL server URL}
psql=/usr/lib/postgresql/15/bin/psql
work=$(mktemp -d /tmp/sipline-s3-e2e.XXXXXX)
users=${S3_E2E_USERS:-3000}
from=2025-03-03
to=2025-03-07
db_s3="sipline_s3_e2e_s3_$$"
db_local="sipline_s3_e2e_local_$$"
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  for db in "$db_s3" "$db_local"; do
    "$psql" "$base" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "s3 e2e: $*" >&2; exit 1; }

port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done

# What any S3 client of the warehouse reads (object_store's AmazonS3Builder::from_env).
export AWS_ACCESS_KEY_ID=sipline-e2e AWS_SECRET_ACCESS_KEY="s3-e2e-secret-$RANDOM$RANDOM"
export AWS_REGION=ap-south-1 AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true
python "$here/objects.py" create-bucket sipline
s3=s3://sipline/warehouse
local="$work/local"

# Business days of the week (the chain's dates), from the binary's own calendar.
days=()
d=$from
while [[ "$d" < "$to" || "$d" == "$to" ]]; do
  if "$bin" calendar check --date "$d" >/dev/null 2>&1; then days+=("$d"); fi
  d=$(date -u -d "$d + 1 day" +%F)
done
[ "${#days[@]}" -ge 4 ] || fail "expected a week of business days, got ${days[*]}"

generate() { "$bin" generate --users "$users" --months 3 --end-date "$to" --seed 11 "$@" >/dev/null; }
# Two shards at once; both must succeed.
both_shards() {
  "$@" --shard 0/2 >"$work/shard0.log" 2>&1 & local a=$!
  "$@" --shard 1/2 >"$work/shard1.log" 2>&1 & local b=$!
  wait "$a" || { cat "$work/shard0.log" >&2; fail "shard 0/2 of: $*"; }
  wait "$b" || { cat "$work/shard1.log" >&2; fail "shard 1/2 of: $*"; }
}

echo "-- the chain on a local folder, unsharded"
generate --warehouse "$local"
for day in "${days[@]}"; do
  "$bin" sip execute --date "$day" --warehouse "$local" >/dev/null
  "$bin" portfolio value --date "$day" --warehouse "$local" >/dev/null
done

echo "-- the same chain on S3, two shards in parallel at every step"
both_shards generate --warehouse "$s3"
for day in "${days[@]}"; do
  both_shards "$bin" sip execute --date "$day" --warehouse "$s3"
  both_shards "$bin" portfolio value --date "$day" --warehouse "$s3"
done
grep -qF "$AWS_SECRET_ACCESS_KEY" "$work/shard0.log" "$work/shard1.log" && fail "the secret key in a log"

python "$here/objects.py" download sipline warehouse "$work/from-s3"
# Run manifests record when and how long: not data.
if ! diff -r -x _runs "$local" "$work/from-s3" >"$work/diff.txt"; then
  head -20 "$work/diff.txt" >&2
  fail "the S3 warehouse differs from the local one"
fi
objects=$(find "$work/from-s3" -type f -not -path '*/_runs/*' | wc -l)
echo "   $objects objects byte-identical to the local folder's files"

echo "-- sql over S3"
query="SELECT as_of, count(*) AS users, sum(current_value) AS value FROM portfolio_snapshots GROUP BY as_of ORDER BY as_of"
"$bin" sql --format csv --warehouse "$local" "$query" >"$work/sql-local.csv"
"$bin" sql --format csv --warehouse "$s3" "$query" >"$work/sql-s3.csv"
cmp -s "$work/sql-local.csv" "$work/sql-s3.csv" || fail "sql answers differ: $(diff "$work/sql-local.csv" "$work/sql-s3.csv")"
[ "$(wc -l <"$work/sql-s3.csv")" -eq $(( ${#days[@]} + 1 )) ] || fail "sql: $(cat "$work/sql-s3.csv")"

echo "-- publish from S3 and from the folder"
last=${days[-1]}
for db in "$db_s3" "$db_local"; do "$psql" "$base" -qc "CREATE DATABASE $db"; done
url_s3="${base%/*}/$db_s3"
url_local="${base%/*}/$db_local"
"$bin" publish --date "$last" --mandates --warehouse "$s3" --database-url "$url_s3" >/dev/null
"$bin" publish --date "$last" --mandates --warehouse "$local" --database-url "$url_local" >/dev/null
dump() {
  "$psql" "$1" -At -v ON_ERROR_STOP=1 <<'SQL'
SELECT 'snapshots', md5(string_agg(t::text, ';' ORDER BY t::text)) FROM (SELECT user_id, invested, current_value, xirr, as_of FROM portfolio_snapshots) t;
SELECT 'lines', md5(string_agg(t::text, ';' ORDER BY t::text)) FROM (SELECT user_id, scheme_code, units, current_value FROM portfolio_lines) t;
SELECT 'month_ends', md5(string_agg(t::text, ';' ORDER BY t::text)) FROM portfolio_month_ends t;
SELECT 'investments', md5(string_agg(t::text, ';' ORDER BY t::text)) FROM investments t;
SELECT 'sips', md5(string_agg(t::text, ';' ORDER BY t::text)) FROM (SELECT sip_id, user_id, scheme_code, amount, status FROM sips) t;
SELECT 'rows', (SELECT count(*) FROM portfolio_snapshots);
SQL
}
dump "$url_s3" >"$work/pg-s3.txt"
dump "$url_local" >"$work/pg-local.txt"
cmp -s "$work/pg-s3.txt" "$work/pg-local.txt" || fail "published stores differ: $(diff "$work/pg-s3.txt" "$work/pg-local.txt")"
grep -q "^rows|$users$" "$work/pg-s3.txt" || fail "published: $(cat "$work/pg-s3.txt")"

echo "-- a shard killed mid-write on S3 leaves the previous partition readable"
value_query="SELECT count(*) AS users, sum(current_value) AS value FROM portfolio_snapshots WHERE as_of = '$last'"
"$bin" sql --format csv --warehouse "$s3" "$value_query" >"$work/before.csv"
start=$(date +%s%N)
"$bin" portfolio value --date "$last" --warehouse "$s3" --shard 0/2 >/dev/null 2>&1
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
killed=0
for fraction in 10 30 50 70 90; do
  "$bin" portfolio value --date "$last" --warehouse "$s3" --shard 0/2 >/dev/null 2>&1 &
  pid=$!
  sleep "$(python -c "print($took_ms * $fraction / 100000)")"
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null || true
  "$bin" sql --format csv --warehouse "$s3" "$value_query" >"$work/during.csv"
  cmp -s "$work/before.csv" "$work/during.csv" || fail "after a kill at $fraction%: $(cat "$work/during.csv")"
done
[ "$killed" -gt 0 ] || fail "no kill landed while the shard was writing (run took ${took_ms} ms)"
"$bin" portfolio value --date "$last" --warehouse "$s3" --shard 0/2 >/dev/null 2>&1
rm -rf "$work/from-s3"
python "$here/objects.py" download sipline warehouse "$work/from-s3"
diff -r -x _runs -q "$local" "$work/from-s3" >/dev/null || fail "after the kills and a re-run, S3 differs from the local folder"
echo "s3 e2e ok: ${#days[@]} business days, $users users, $objects objects identical; $killed kills mid-write, previous partition readable throughout (shard run ${took_ms} ms)"
