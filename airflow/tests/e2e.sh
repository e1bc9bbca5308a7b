#!/usr/bin/env bash
# One logical date of the sipline_daily DAG under `airflow dags test`, end to end, against a
# small generated universe: the NAV file downloaded from a local HTTP server, mandates exported
# from PostgreSQL, execution and valuation in 2 shards each, the date published. Then checks
# what landed: the DAG run's state, the publication, job_runs, and the run manifests.
#
# Needs: SIPLINE_BIN, SIPLINE_TEST_DATABASE_URL (a PostgreSQL superuser URL), AIRFLOW_HOME with
# a migrated metadata database, `airflow` and `python3` on PATH. With SIPLINE_S3_PYTHON (a
# python with warehouse/tests/s3/requirements.txt: moto and boto3), the warehouse is an S3
# bucket on a moto server, as a deployment with several workers has it (issue 40): every task,
# shards included, reads and writes it through the standard AWS variables.
set -euo pipefail
: "${SIPLINE_BIN:?}" "${SIPLINE_TEST_DATABASE_URL:?}" "${AIRFLOW_HOME:?}"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/sipline-dag-e2e.XXXXXX)
server_pid= s3_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  [ -n "$s3_pid" ] && kill "$s3_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
objects="$here/../../warehouse/tests/s3/objects.py"

previous=2025-03-03 date=2025-03-04
db=sipline_dag_e2e
psql -X -q "$SIPLINE_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
export DATABASE_URL="${SIPLINE_TEST_DATABASE_URL%/*}/$db"
export SIPLINE_WAREHOUSE="$work/warehouse" SIPLINE_SHARDS=2 NO_COLOR=1
if [ -n "${SIPLINE_S3_PYTHON:-}" ]; then
  s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$SIPLINE_S3_PYTHON" -m moto.server -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
  s3_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$s3_port/" && break; sleep 0.1; done
  export AWS_ACCESS_KEY_ID=sipline-dag AWS_SECRET_ACCESS_KEY="dag-e2e-secret-$RANDOM$RANDOM"
  export AWS_REGION=ap-south-1 AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ALLOW_HTTP=true
  "$SIPLINE_S3_PYTHON" "$objects" create-bucket sipline-dag
  export SIPLINE_WAREHOUSE=s3://sipline-dag/warehouse
fi
echo "warehouse: $SIPLINE_WAREHOUSE"
# A run manifest's text, from the folder or the bucket.
manifest() {
  if [ -n "${SIPLINE_S3_PYTHON:-}" ]; then
    "$SIPLINE_S3_PYTHON" "$objects" cat sipline-dag "warehouse/_runs/$1"
  else
    cat "$SIPLINE_WAREHOUSE/_runs/$1"
  fi
}
# Setup commands log to a file; their summary lines show.
sipline() { "$SIPLINE_BIN" "$@" 2>>"$work/setup.log" || { tail -20 "$work/setup.log"; exit 1; }; }

echo "== the state before the night of $date: a universe executed, valued and published up to $previous"
sipline generate --users 500 --months 3 --end-date "$previous" --seed 7 | tail -1
# The generated mandates are dated at the start of the 3 months of history.
sipline sip backfill --from 2024-12-03 --to "$previous" --simulate-failures 0.05 | tail -1
sipline portfolio value --date "$previous" | tail -1
sipline publish --date "$previous" --mandates | tail -1

echo "== AMFI's file for $date, on a local HTTP server"
mkdir -p "$work/http"
python3 "$here/navall_for_date.py" "$SIPLINE_BIN" "$SIPLINE_WAREHOUSE" "$previous" "$date" "$work/http/NAVAll.txt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/http" >"$work/http.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/NAVAll.txt" && break; sleep 0.1; done
export AIRFLOW_VAR_SIPLINE_AMFI_NAVALL_URL="http://127.0.0.1:$port/NAVAll.txt"

echo "== the bank's debit report for $date: one debit allotted on $previous came back"
returned=$(psql -X -At -F, "$DATABASE_URL" -c "SELECT sip_id, due_date, amount FROM investments \
  WHERE exec_date = DATE '$previous' AND status = 'executed' ORDER BY sip_id LIMIT 1")
[ -n "$returned" ] || { echo "FAIL: nothing executed on $previous to return"; exit 1; }
printf 'sip_id,due_date,amount,status,reason_code\n%s,returned,04\n' "$returned" >"$work/http/debits_$date.csv"
cat "$work/http/debits_$date.csv"
export AIRFLOW_VAR_SIPLINE_DEBIT_REPORT_URL="http://127.0.0.1:$port/debits_{date}.csv"

echo "== airflow dags test sipline_daily $date"
started=$(date +%s)
airflow dags test sipline_daily "$date" >"$work/dag.log" 2>&1 || { tail -50 "$work/dag.log"; exit 1; }
echo "dag run took $(( $(date +%s) - started )) s"

echo "== what landed"
fail() { echo "FAIL: $*"; tail -80 "$work/dag.log"; exit 1; }
# `dags test` runs the tasks in this process; its exit code does not say whether they
# succeeded. Airflow's own record of the run does.
# Airflow's CLI logs warnings to stdout too: its JSON is the last line that is a list.
airflow_json() { airflow "$@" -o json 2>/dev/null | grep '^\[' | tail -1; }
run_id=$(airflow_json dags list-runs sipline_daily | python3 -c '
import json, sys
runs = [r for r in json.load(sys.stdin) if r["logical_date"].startswith(sys.argv[1])]
print(runs[0]["run_id"] if runs and runs[0]["state"] == "success" else "")' "$date")
[ -n "$run_id" ] || fail "the DAG run for $date did not succeed"
states=$(airflow_json tasks states-for-dag-run sipline_daily "$run_id" | python3 -c '
import collections, json, sys
print(" ".join(f"{k}={v}" for k, v in sorted(collections.Counter(t["state"] for t in json.load(sys.stdin)).items())))')
echo "task states: $states"
# business_day, nav_ingest_amfi, sips_export, debits_ingest, 2 × sip_execute, orders_execute,
# 2 × portfolio_value, publish, housekeeping
[ "$states" = "success=11" ] || fail "task states $states, not 11 successes"
published=$(psql -X -At "$DATABASE_URL" -c "SELECT max(as_of) FROM publications")
[ "$published" = "$date" ] || fail "latest publication is $published, not $date"
runs=$(psql -X -At "$DATABASE_URL" -c "SELECT job || ' ' || coalesce(shard, '-') || ' ' || outcome FROM job_runs WHERE run_date = DATE '$date' ORDER BY 1")
echo "$runs"
for expected in "nav ingest - ok" "sips export - ok" "debits ingest - ok" "sip execute 0/2 ok" "sip execute 1/2 ok" "orders execute - ok" \
                "portfolio value 0/2 ok" "portfolio value 1/2 ok" "publish - ok"; do
  grep -qx "$expected" <<<"$runs" || fail "no job_runs row '$expected'"
done
executed=$(psql -X -At "$DATABASE_URL" -c "SELECT count(*) FROM investments WHERE exec_date = DATE '$date' AND status = 'executed'")
[ "$executed" -gt 0 ] || fail "no instalment executed on $date"
for manifest in sip_execute/date=$date/shard=0-of-2.json portfolio_value/date=$date/shard=1-of-2.json publish/date=$date/shard=0-of-1.json; do
  manifest "$manifest" | grep -q '"outcome": "ok"' || fail "manifest $manifest"
done
# The returned debit: reversed on $date (the instalment's latest status), and the user told.
sip_id=${returned%%,*}
reversed=$(psql -X -At "$DATABASE_URL" -c "SELECT count(*) FROM investments WHERE exec_date = DATE '$date' \
  AND status = 'reversed' AND sip_id = $sip_id")
[ "$reversed" -eq 1 ] || fail "SIP $sip_id's returned debit was not reversed on $date"
told=$(psql -X -At "$DATABASE_URL" -c "SELECT count(*) FROM notifications WHERE kind = 'sip_reversed' \
  AND (payload->>'sip_id')::bigint = $sip_id")
[ "$told" -eq 1 ] || fail "no sip_reversed notification for SIP $sip_id"
echo "dag e2e ok: date=$date executed=$executed reversed=sip:$sip_id"

echo "== airflow dags test sipline_hourly at 00:05 IST after $date: value the day hourly, publish it"
hourly_at="${date}T18:35:00+00:00"
airflow dags test sipline_hourly "$hourly_at" >"$work/hourly.log" 2>&1 || { tail -50 "$work/hourly.log"; exit 1; }
hourly_run=$(airflow_json dags list-runs sipline_hourly | python3 -c '
import json, sys
runs = [r for r in json.load(sys.stdin) if r["state"] == "success"]
print(runs[0]["run_id"] if runs else "")')
[ -n "$hourly_run" ] || { tail -80 "$work/hourly.log"; fail "the hourly DAG run did not succeed"; }
hour=$(psql -X -At "$DATABASE_URL" -c "SELECT as_of || ' ' || hour || ' ' || users FROM intraday_publications")
users=$(psql -X -At "$DATABASE_URL" -c "SELECT count(*) FROM portfolio_latest")
[ "$hour" = "$date 0 $users" ] || { tail -80 "$work/hourly.log"; fail "intraday publication '$hour', not '$date 0 $users'"; }
runs=$(psql -X -At "$DATABASE_URL" -c "SELECT job || ' ' || outcome FROM job_runs WHERE job LIKE '% hourly' ORDER BY 1")
grep -qx "publish hourly ok" <<<"$runs" || fail "no job_runs row 'publish hourly ok': $runs"
echo "hourly dag e2e ok: $hour"

echo "== the cron alternative, for the next date, on the same universe"
next=2025-03-05
cron="$here/../../deploy/cron/sipline-nightly.sh"
python3 "$here/navall_for_date.py" "$SIPLINE_BIN" "$SIPLINE_WAREHOUSE" "$date" "$next" "$work/http/NAVAll.txt"
export SIPLINE_LOG_DIR="$work/logs" SIPLINE_AMFI_NAVALL_URL="$AIRFLOW_VAR_SIPLINE_AMFI_NAVALL_URL"
export SIPLINE_DEBIT_REPORT_URL="$AIRFLOW_VAR_SIPLINE_DEBIT_REPORT_URL"
"$cron" "$next" || { cat "$work/logs/nightly-$next.log"; fail "sipline-nightly.sh $next"; }
# No report for $next on the server: no returns, the night goes on.
grep -q "debits ingest ok: .* missing" "$work/logs/nightly-$next.log" || fail "cron did not look for the debit report"
published=$(psql -X -At "$DATABASE_URL" -c "SELECT max(as_of) FROM publications")
[ "$published" = "$next" ] || fail "after cron, latest publication is $published, not $next"
# A holiday (Holi) does nothing and succeeds; a file that never gets a NAV dated the day (a
# market holiday nobody listed, or AMFI very late) ends the night waiting at the deadline:
# exit 0, nothing run past the ingest, settled by the next business day's file.
"$cron" 2025-03-14 || fail "sipline-nightly.sh on a holiday"
grep -q "not a business day" "$work/logs/nightly-2025-03-14.log" || fail "holiday log"
set +e
SIPLINE_NAV_DEADLINE_SECS=0 "$cron" 2025-03-06
code=$?
set -e
[ "$code" -eq 0 ] || { cat "$work/logs/nightly-2025-03-06.log"; fail "a NAV file without the date exited $code, not 0 (waiting)"; }
grep -q "no NAV dated 2025-03-06 by the deadline: waiting" "$work/logs/nightly-2025-03-06.log" \
  || fail "the night without a NAV dated the day did not say it is waiting"
! grep -q "sipline sip execute" "$work/logs/nightly-2025-03-06.log" || fail "the waiting night executed SIPs"
echo "cron e2e ok: date=$next"
