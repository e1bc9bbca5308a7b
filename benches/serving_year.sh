#!/usr/bin/env bash
# Benchmark: a year of nightly runs of the serving store, to see whether `sipline housekeeping`
# levels each table off. NIGHTS (default 250) NSE business days ending on the last one on or
# before today; each night writes, in SQL, roughly what that night's jobs write at USERS
# (default 200,000) users, then runs the real `sipline housekeeping` with its default
# retention. Every EVERY (25) nights it records each table's pg_total_relation_size (summed
# over its partitions) and rows; at the end it prints them side by side, with the growth per
# month (21 nights) over the last 100 nights, and the total elapsed time.
#
# Creates its own database BENCH_DB (default sipline_year_bench; refused if it exists) on the
# server of DATABASE_URL (any database there, e.g. postgres) and drops it on exit:
#   DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres SIPLINE_BIN=target/release/sipline \
#     bash benches/serving_year.sh
# Without SIPLINE_BIN it builds PROFILE (release). Needs psql and python3.
# At 200,000 users and 250 nights it took 18 minutes on a shared 2-core machine (debug binary);
# USERS scales every row count but job_runs'. Sizes hardly depend on the machine's speed.
#
# What a night writes (modelled on `publish`, `notify dispatch` and the API, not run through them):
#   * portfolio_snapshots: one date partition of USERS rows, built beside its month partition
#     (`sipline_ensure_snapshot_month`), keyed (user_id) with fillfactor 100 and attached, as
#     publish does;
#   * portfolio_lines: one date partition of 1.3 × USERS rows, built and attached the same way;
#     partitions of dates other than the two latest publications dropped, as publish does;
#   * publications: one row;
#   * investments: the instalments due that night, 1.26 × USERS SIPs / 21 (~12,000 at 200k),
#     into the month's partition (kept whole by design: publish's --keep-investment-months 0);
#   * notifications: one per instalment, plus on the month's last business day one monthly
#     statement per user (publish writes them then); each with one webhook delivery, taken
#     through the dispatcher's states (pending → delivering → delivered, both tables updated
#     twice, as fan-out, claim, record and roll-up do) so the tables carry their real churn;
#   * idempotency_keys: USERS / 100 (2,000) keys, created over the 24 hours before the night;
#   * job_runs: 11 rows, plus the one housekeeping records itself;
#   * portfolio_month_ends: on the first night of a month, the previous month end's USERS rows
#     as one partition (what publish attaches then). The store starts empty: no history before
#     the first night.
# Not modelled: users' SIPs and their changes, orders, NAVs (systems of record and reference
# data, kept whole by design), intraday tables, failed or dead deliveries.
#
# The clock. Housekeeping compares idempotency keys, notifications and job runs with the
# program's clock (when this was measured, PostgreSQL's now(); `--now` now moves it, and would
# do what the lengthened retentions below do), and snapshots with the latest publication. A night D that lies L whole days before today (UTC) therefore
# writes its rows at now() − L days (its own date, at the real time of day), and runs
# housekeeping with each clock-based retention lengthened by exactly L days (--idempotency-hours
# 24 + 24·L, --notification-days 90 + L, --job-run-days 400 + L): every cut-off housekeeping
# computes, now() − (R + L), is then the simulated night's now − R, to the second, and the
# snapshot retention runs unchanged (92 and 1,100 days, the defaults). The row that
# housekeeping records in job_runs at the real time is moved back L days after it. So what is
# simulated is the calendar; what is real is every statement housekeeping runs and the
# notifications it archives (to a temporary warehouse). Autovacuum is emulated: a night is
# seconds here, not a day, so after each night every table that autovacuum's default
# thresholds (dead tuples > 50 + 20%, inserts > 1,000 + 20%, changes > 50 + 10% for ANALYZE)
# would have vacuumed or analysed during the day is, with VACUUM (ANALYZE) or ANALYZE; the
# server's own autovacuum may run too. Catalog churn (a partition made and one dropped a
# night) is left to the server's autovacuum, and shown as its own row.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a database of the server to create BENCH_DB on}"
users=${USERS:-200000}
nights=${NIGHTS:-250}
every=${EVERY:-25}
db=${BENCH_DB:-sipline_year_bench}
if [[ -z "${SIPLINE_BIN:-}" ]]; then
  cargo build --profile "${PROFILE:-release}" -q -p jobs
fi
bin=$(realpath "${SIPLINE_BIN:-"${CARGO_TARGET_DIR:-target}/${PROFILE:-release}/sipline"}")
# The bench database's URL: DATABASE_URL with its database name replaced (query string kept).
base=${DATABASE_URL%%\?*}
query=${DATABASE_URL#"$base"}
url="${base%/*}/$db$query"
admin=(psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL")
psql=(psql -X -q -v ON_ERROR_STOP=1 "$url")
work=$(mktemp -d)
created=0
cleanup() {
  if ((created)); then
    "${admin[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
if [[ -n $("${admin[@]}" -At -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
  echo "database $db exists: drop it or set BENCH_DB" >&2
  exit 1
fi
"${admin[@]}" -c "CREATE DATABASE $db"
created=1
"$bin" db migrate --database-url "$url" >/dev/null
started=$(date +%s.%N)

# The nights: NSE business days (pipeline/data/nse_holidays.txt), oldest first, as
# "date last_business_day_of_month(0/1)".
python3 - "$nights" >"$work/nights" <<'PY'
import datetime, sys
holidays = {l.split("#")[0].strip() for l in open("pipeline/data/nse_holidays.txt")} - {""}
def business(d): return d.weekday() < 5 and d.isoformat() not in holidays
days, d = [], datetime.datetime.now(datetime.timezone.utc).date()
while len(days) < int(sys.argv[1]):
    if business(d): days.append(d)
    d -= datetime.timedelta(days=1)
for d in reversed(days):
    nxt = d + datetime.timedelta(days=1)
    while not business(nxt): nxt += datetime.timedelta(days=1)
    print(d.isoformat(), int(nxt.month != d.month))
PY

# The rows every night copies (values of realistic widths; what they are does not matter here):
# a user's snapshot, their 1–3 lines (1.3 on average), and the SIPs (1.26 a user).
"${psql[@]}" <<SQL
SET synchronous_commit = off;
INSERT INTO users (user_id, auth_subject, email, phone)
SELECT i, 'auth0|' || md5(i::text), 'user' || i || '@example.com', '+9198' || lpad(i::text, 8, '0')
FROM generate_series(1, $users) i;
CREATE TABLE bench_snapshot_rows AS
SELECT i AS user_id, round((5000 + random() * 995000)::numeric, 2) AS invested,
       round((5000 + random() * 1100000)::numeric, 2) AS current_value,
       round((random() * 100000 - 20000)::numeric, 2) AS gain,
       round((random() * 60 - 10)::numeric, 4) AS abs_return_pct,
       random() * 0.4 - 0.05 AS xirr, 1 + (i % 10 < 2)::int + (i % 10 < 1)::int AS schemes
FROM generate_series(1, $users) i;
CREATE TABLE bench_line_rows AS
SELECT s.user_id, 100000 + (s.user_id * 7 + k * 131) % 9000 AS scheme_code,
       round((random() * 20000)::numeric, 4) AS units,
       round((5000 + random() * 500000)::numeric, 2) AS invested,
       round((10 + random() * 900)::numeric, 8) AS nav,
       round((5000 + random() * 600000)::numeric, 2) AS current_value,
       round((100.0 / s.schemes)::numeric, 4) AS weight_pct, random() * 0.4 - 0.05 AS xirr,
       round((random() * 2000 - 1000)::numeric, 2) AS day_change
FROM bench_snapshot_rows s CROSS JOIN LATERAL generate_series(1, s.schemes) k;
CREATE TABLE bench_sips AS
SELECT i AS sip_id, (i - 1) % $users + 1 AS user_id, 100000 + (i * 7) % 9000 AS scheme_code,
       (500 * (1 + i % 20))::numeric(18,2) AS amount
FROM generate_series(1, ($users * 126 / 100)::int) i;
CREATE INDEX ON bench_sips ((sip_id % 21));
ANALYZE;
SQL
line_rows=$("${psql[@]}" -At -c "SELECT count(*) FROM bench_line_rows")
sip_rows=$((users * 126 / 100 / 21))

# One night's SQL: the publish, then the dispatcher's passes over the new notifications, the
# API's idempotency keys and the other jobs' runs.
night_sql() {
  local n=$1 d=$2 lag=$3 statements=$4 month_end=$5
  local ymd=${d//-/} ss="portfolio_snapshots_d${d//-/}_stage" ls="portfolio_lines_d${d//-/}_stage"
  cat <<SQL
SET synchronous_commit = off;
SET maintenance_work_mem = '1536MB';
SELECT now() - make_interval(days => $lag) AS sim \gset
SELECT sipline_ensure_month_partitions('investments', DATE '$d', DATE '$d') IS NULL AS ignored \gset
SELECT sipline_ensure_snapshot_month(DATE '$d') AS month \gset
CREATE TABLE $ss (LIKE portfolio_snapshots INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                  CONSTRAINT ${ss}_as_of CHECK (as_of = DATE '$d'));
INSERT INTO $ss (user_id, invested, current_value, gain, abs_return_pct, xirr, schemes, nav_date, as_of)
SELECT user_id, invested, current_value, gain, abs_return_pct, xirr, schemes, DATE '$d', DATE '$d'
FROM bench_snapshot_rows;
ALTER TABLE $ss ADD PRIMARY KEY (user_id) WITH (fillfactor = 100);
CREATE TABLE $ls (LIKE portfolio_lines INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                  CONSTRAINT ${ls}_as_of CHECK (as_of = DATE '$d'));
INSERT INTO $ls (user_id, scheme_code, units, invested, nav_date, nav, current_value, weight_pct,
                 xirr, day_change, as_of)
SELECT user_id, scheme_code, units, invested, DATE '$d', nav, current_value, weight_pct, xirr,
       day_change, DATE '$d'
FROM bench_line_rows;
ALTER TABLE $ls ADD PRIMARY KEY (user_id, scheme_code) WITH (fillfactor = 100);
SQL
  if [[ -n $month_end ]]; then
    cat <<SQL
CREATE TABLE portfolio_month_ends_stage (LIKE portfolio_month_ends INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO portfolio_month_ends_stage (month_end, user_id, invested, value)
SELECT DATE '$month_end', user_id, invested, current_value FROM bench_snapshot_rows;
ALTER TABLE portfolio_month_ends_stage ADD PRIMARY KEY (user_id, month_end);
ALTER TABLE portfolio_month_ends_stage ADD CONSTRAINT portfolio_month_ends_stage_ends
  CHECK (month_end IN (DATE '$month_end'));
SQL
  fi
  cat <<SQL
BEGIN;
INSERT INTO investments (exec_date, sip_id, due_date, user_id, scheme_code, status, amount,
                         stamp_duty, nav_date, nav, units)
SELECT DATE '$d', sip_id, DATE '$d', user_id, scheme_code,
       CASE WHEN sip_id % 50 = 0 THEN 'failed' ELSE 'executed' END, amount,
       round(amount * 0.00005, 2), CASE WHEN sip_id % 50 <> 0 THEN DATE '$d' END,
       CASE WHEN sip_id % 50 <> 0 THEN round((10 + (sip_id % 900))::numeric + 0.12345678, 8) END,
       CASE WHEN sip_id % 50 <> 0 THEN round(amount / (10 + (sip_id % 900) + 0.12345678), 4) END
FROM bench_sips WHERE sip_id % 21 = $n % 21 ORDER BY user_id, sip_id;
INSERT INTO notifications (event_key, user_id, kind, payload, created_at, next_attempt_at)
SELECT 'sip:' || sip_id || ':$d:' || CASE WHEN sip_id % 50 = 0 THEN 'failed' ELSE 'executed' END,
       user_id, 'sip_' || CASE WHEN sip_id % 50 = 0 THEN 'failed' ELSE 'executed' END,
       jsonb_strip_nulls(jsonb_build_object('sip_id', sip_id, 'scheme_code', scheme_code,
         'due_date', DATE '$d', 'run_date', DATE '$d', 'amount', amount::text,
         'nav_date', DATE '$d', 'nav', (10 + (sip_id % 900)) || '.1234',
         'units', round(amount / (10 + (sip_id % 900) + 0.1234), 4)::text)),
       :'sim', :'sim'
FROM bench_sips WHERE sip_id % 21 = $n % 21 ORDER BY user_id, sip_id;
SQL
  if ((statements)); then
    cat <<SQL
INSERT INTO notifications (event_key, user_id, kind, payload, created_at, next_attempt_at)
SELECT 'statement:' || user_id || ':' || to_char(DATE '$d', 'YYYY-MM'), user_id, 'statement_ready',
       jsonb_build_object('month', to_char(DATE '$d', 'YYYY-MM'), 'as_of', as_of,
         'invested', invested::text, 'current_value', current_value::text,
         'xirr', CASE WHEN xirr = 'NaN' THEN NULL ELSE xirr END),
       :'sim', :'sim'
FROM $ss WHERE schemes > 0 ORDER BY user_id;
SQL
  fi
  cat <<SQL
SET LOCAL lock_timeout = '60s';
LOCK TABLE portfolio_snapshots, portfolio_lines, portfolio_month_ends, portfolio_intraday
  IN ACCESS EXCLUSIVE MODE;
ALTER TABLE $ss RENAME TO portfolio_snapshots_d$ymd;
ALTER TABLE portfolio_snapshots_d$ymd RENAME CONSTRAINT ${ss}_as_of TO portfolio_snapshots_d${ymd}_as_of;
ALTER INDEX ${ss}_pkey RENAME TO portfolio_snapshots_d${ymd}_pkey;
ALTER TABLE :month ATTACH PARTITION portfolio_snapshots_d$ymd FOR VALUES IN ('$d');
ALTER TABLE $ls RENAME TO portfolio_lines_d$ymd;
ALTER TABLE portfolio_lines_d$ymd RENAME CONSTRAINT ${ls}_as_of TO portfolio_lines_d${ymd}_as_of;
ALTER INDEX ${ls}_pkey RENAME TO portfolio_lines_d${ymd}_pkey;
ALTER TABLE portfolio_lines ATTACH PARTITION portfolio_lines_d$ymd FOR VALUES IN ('$d');
SQL
  if [[ -n $month_end ]]; then
    local me=${month_end//-/}
    cat <<SQL
ALTER TABLE portfolio_month_ends_stage RENAME TO portfolio_month_ends_m$me;
ALTER TABLE portfolio_month_ends_m$me RENAME CONSTRAINT portfolio_month_ends_stage_ends TO portfolio_month_ends_m${me}_ends;
ALTER INDEX portfolio_month_ends_stage_pkey RENAME TO portfolio_month_ends_m${me}_pkey;
ALTER TABLE portfolio_month_ends ATTACH PARTITION portfolio_month_ends_m$me FOR VALUES IN ('$month_end');
SQL
  fi
  cat <<SQL
INSERT INTO publications (as_of, published_at, snapshots, lines, month_ends, investments, events,
                          month_ends_through)
SELECT DATE '$d', :'sim', $users, $line_rows, $([[ -n $month_end ]] && echo "$users" || echo 0),
       $sip_rows, $sip_rows, $([[ -n $month_end ]] && echo "DATE '$month_end'" || echo "(SELECT max(month_ends_through) FROM publications)");
COMMIT;
-- Publish's drop_expired: lines of dates other than the two latest publications.
SELECT format('DROP TABLE %I', c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'portfolio_lines'::regclass
  AND c.relname NOT IN (SELECT 'portfolio_lines_d' || to_char(as_of, 'YYYYMMDD')
                        FROM (SELECT as_of FROM publications ORDER BY as_of DESC LIMIT 2) k) \gexec
-- The dispatcher: fan-out (a webhook delivery each, the notification delivering), claim,
-- record, roll-up; each a statement here, batches of its own there.
BEGIN;
INSERT INTO notification_deliveries (notification_id, channel, created_at, next_attempt_at)
SELECT notification_id, 'webhook', :'sim'::timestamptz + interval '1 minute', :'sim'::timestamptz + interval '1 minute'
FROM notifications WHERE status = 'pending' ORDER BY notification_id;
UPDATE notifications SET status = 'delivering' WHERE status = 'pending';
COMMIT;
UPDATE notification_deliveries SET status = 'delivering', attempts = attempts + 1,
       claim_token = $n, claimed_until = :'sim'::timestamptz + interval '3 minutes'
WHERE status = 'pending';
UPDATE notification_deliveries SET status = 'delivered',
       delivered_at = :'sim'::timestamptz + interval '2 minutes', claim_token = NULL,
       claimed_until = NULL, provider_ref = NULL
WHERE status = 'delivering';
UPDATE notifications SET status = 'delivered', delivered_at = :'sim'::timestamptz + interval '2 minutes'
WHERE status = 'delivering';
-- The API's SIP creations of the day: a key each, made over the 24 hours before the night.
INSERT INTO idempotency_keys (user_id, idem_key, route, request_hash, status, response, created_at)
SELECT ($n::bigint * 7919 + i * 97) % $users + 1, md5('$d' || i)::uuid::text, 'POST /v1/sips',
       sha256(('$d' || i)::bytea), 201,
       json_build_object('sip_id', $users * 2 + $n * $users / 100 + i, 'scheme_code', 100000 + i % 9000,
         'amount', '2500.00', 'sip_day', 1 + i % 28, 'start_date', DATE '$d' + 3, 'end_date', NULL,
         'step_up_pct', '0.00', 'status', 'active', 'paused_until', NULL,
         'created_at', :'sim'::timestamptz - i * interval '24 hours' / ($users / 100))::text,
       :'sim'::timestamptz - i * interval '24 hours' / ($users / 100)
FROM generate_series(1, $users / 100) i;
-- The night's other jobs (housekeeping records its own run).
INSERT INTO job_runs (job, run_date, shard, started_at, finished_at, duration_ms, rows_in, rows_out,
                      outcome, host)
SELECT job, DATE '$d', shard, :'sim'::timestamptz + k * interval '5 minutes',
       :'sim'::timestamptz + k * interval '5 minutes' + interval '90 seconds', 90000,
       $users, $users, 'ok', 'batch-1'
FROM (VALUES (1, 'nav ingest', NULL), (2, 'sips export', NULL), (3, 'sip execute', '0/2'),
             (4, 'sip execute', '1/2'), (5, 'debits ingest', NULL), (6, 'orders execute', NULL),
             (7, 'portfolio value', '0/2'), (8, 'portfolio value', '1/2'), (9, 'publish', NULL),
             (10, 'notify dispatch', NULL), (11, 'metrics', NULL)) j(k, job, shard);
SQL
}

# What autovacuum (default thresholds) would have done to public tables during the day.
autovacuum_sql() {
  cat <<'SQL'
SELECT format(CASE WHEN vac THEN 'VACUUM (ANALYZE) %I' ELSE 'ANALYZE %I' END, relname)
FROM (SELECT s.relname,
             s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0)
               OR s.n_ins_since_vacuum > 1000 + 0.2 * greatest(c.reltuples, 0) AS vac,
             s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0) AS ana
      FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
      WHERE c.relkind = 'r' AND s.schemaname = 'public' AND s.relname NOT LIKE 'bench\_%') t
WHERE vac OR ana \gexec
SQL
}

tables="portfolio_snapshots portfolio_lines portfolio_month_ends publications investments notifications notification_deliveries idempotency_keys job_runs"
measure() {
  local n=$1 d=$2 t
  {
    for t in $tables; do
      # pg_partition_tree: the table and its partitions, or nothing for a plain table.
      "${psql[@]}" -At -F $'\t' -c "SELECT $n, '$d', '$t', (SELECT count(*) FROM $t),
        coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('$t')),
                 pg_total_relation_size('$t'))"
    done
    "${psql[@]}" -At -F $'\t' -c "SELECT $n, '$d', '(pg_catalog)', NULL,
      sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
      WHERE s.nspname = 'pg_catalog' AND c.relkind = 'r'"
    printf '%s\t%s\t%s\t\t%s\n' "$n" "$d" "(archive, warehouse)" "$(du -sb "$work/warehouse" 2>/dev/null | cut -f1 || echo 0)"
  } | tee -a "$work/sizes.tsv" | awk -F '\t' '{ printf "  %-26s %12s rows %10.1f MB\n", $3, $4, $5 / 1048576 }'
}

mkdir -p "$work/warehouse"
n=0
prev_month=
while read -r d last_of_month; do
  n=$((n + 1))
  today=$(date -u +%F)
  lag=$((($(date -u -d "$today" +%s) - $(date -u -d "$d" +%s)) / 86400))
  month_end=
  if [[ ${d:0:7} != "$prev_month" ]]; then
    month_end=$(date -u -d "${d:0:7}-01 - 1 day" +%F)
  fi
  prev_month=${d:0:7}
  night_start=$(date +%s.%N)
  night_sql "$n" "$d" "$lag" "$last_of_month" "$month_end" | "${psql[@]}"
  "$bin" housekeeping --warehouse "$work/warehouse" --database-url "$url" \
    --idempotency-hours $((24 + 24 * lag)) --notification-days $((90 + lag)) \
    --job-run-days $((400 + lag)) >"$work/housekeeping.out" 2>"$work/housekeeping.err" || {
    cat "$work/housekeeping.err" >&2
    exit 1
  }
  { echo "UPDATE job_runs SET started_at = started_at - make_interval(days => $lag),
                finished_at = finished_at - make_interval(days => $lag), run_date = DATE '$d'
         WHERE run_id = (SELECT max(run_id) FROM job_runs WHERE job = 'housekeeping');"
    autovacuum_sql; } | "${psql[@]}"
  night_end=$(date +%s.%N)
  printf 'night %3d %s lag %3dd %5.1f s  %s\n' "$n" "$d" "$lag" "$(awk "BEGIN { print $night_end - $night_start }")" \
    "$(sed -e 's/^housekeeping ok: //' "$work/housekeeping.out")"
  if ((n % every == 0 || n == nights)); then
    echo "after night $n ($d):"
    measure "$n" "$d"
  fi
done <"$work/nights"

elapsed=$(awk "BEGIN { print $(date +%s.%N) - $started }")
echo
echo "Size (MB) after night N, with rows at the last; growth per month (21 nights) over the last 100:"
python3 - "$work/sizes.tsv" <<'PY'
import collections, sys
sizes, rows, nights = collections.defaultdict(dict), {}, []
for line in open(sys.argv[1]):
    n, d, table, count, size = line.rstrip("\n").split("\t")
    n = int(n)
    if n not in nights: nights.append(n)
    sizes[table][n] = int(size or 0)
    rows[table] = count
last = nights[-1]
back = max((m for m in nights if m <= last - 100), default=nights[0])
print(f"{'table':<24}" + "".join(f"{n:>8}" for n in nights) + f"{'rows':>12}{'MB/month':>10}")
for table, by_night in sizes.items():
    growth = (by_night[last] - by_night[back]) / 1048576 / max(last - back, 1) * 21
    print(f"{table:<24}" + "".join(f"{by_night[n] / 1048576:8.1f}" for n in nights)
          + f"{rows[table]:>12}{growth:10.1f}")
PY
printf 'total elapsed: %.0f s (%d nights, %d users)\n' "$elapsed" "$nights" "$users"
