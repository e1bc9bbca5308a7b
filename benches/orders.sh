#!/usr/bin/env bash
# Benchmark: money out at scale (issue 36). A generated universe (default 10,000,000 users,
# 12 months of SIP instalments) whose people also place orders the way the API stores them
# (PostgreSQL's `orders` and `plans`): on a fresh day a share of them top up with a lumpsum
# (LUMPSUM_PCT, default 1), redeem by amount, by units or everything held (REDEEM_PCT, 0.5),
# switch to another scheme of the same fund house (SWITCH_PCT, 0.2), and run an SWP or STP
# (PLAN_PCT, 0.3) whose instalment falls due the next day. Measured, wall and peak RSS:
#   1. the fresh day without orders: `sip execute`, then daily `portfolio value` (today's figures);
#   2. `orders execute` of that day: every person's lots read from the warehouse, FIFO, charges,
#      realised gains, the outcomes recorded in PostgreSQL;
#   3. daily `portfolio value` of the same day again, now with the orders' flows;
#   4. the next day: `sip execute`, then `orders execute` placing and executing the plans'
#      instalments;
#   5. the month end: `sip execute` (its checkpoint), `orders execute`, daily `portfolio value`;
# then what the orders and realised gains take on disk and in PostgreSQL.
#   USERS=1000000 benches/orders.sh           (a quicker run; KEEP=1 keeps WORK)
# Starts a throwaway PostgreSQL 15 cluster unless DATABASE_URL names an empty database.
# Needs ~12 GB of disk for 10M users.
set -euo pipefail
benches=$(cd "$(dirname "$0")" && pwd)
cd "$(dirname "$0")/.."
users=${USERS:-10000000}
cargo build --profile "${PROFILE:-release}" -q -p jobs
bin=${SIPLINE_BIN:-"${CARGO_TARGET_DIR:-target}/${PROFILE:-release}/sipline"}
work=${WORK:-$(mktemp -d)}
wh="$work/wh"
mkdir -p "$work"

pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ]; then
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${DATABASE_URL:-}" ]; then
  pg_dir=$(mktemp -d /tmp/sipline-bench-pg.XXXXXX)
  chown postgres "$pg_dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$pg_dir/data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=1GB" start >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
fi
psql=(psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL")

measure() { python3 "$benches/measure.py" --tail "$@"; }  # label, then the command

prev=2025-06-25 day=2025-06-26 next=2025-06-27 month_end=2025-06-30
# The job refuses a date before its cut-off (15:00 IST): the clock of the evening run.
at() { echo "$1T20:00:00+05:30"; }
echo "users=$users cpus=$(nproc) warehouse=$wh"
# A fresh universe every time: a kept one has the later days and orders run already.
rm -rf "$wh"
measure "generate --users $users --months 12" "$bin" generate --users "$users" --months 12 --end-date "$month_end" --warehouse "$wh"
measure "sip backfill 2024-07-01..$prev" "$bin" sip backfill --from 2024-07-01 --to "$prev" --simulate-failures 0.02 --warehouse "$wh"
measure "portfolio value $prev (daily)" "$bin" portfolio value --date "$prev" --warehouse "$wh"
measure "db migrate" "$bin" db migrate
measure "publish $prev --mandates (users, SIPs, schemes into PostgreSQL)" "$bin" publish --date "$prev" --warehouse "$wh" --mandates

# The orders, as the API would have stored them after checking them: received in the morning
# of $day, NAV date $day, cancellable until its cut-off (so no liquid or overnight scheme,
# whose orders follow another rule). Who and how much follow from the user id, so a re-run
# places the same ones. The plans' instalments fall due on $next. Switches go to one other
# open-ended scheme of the fund house, so a little fewer than SWITCH_PCT switch.
"${psql[@]}" -v day="$day" -v next="$next" \
  -v lumpsum="${LUMPSUM_PCT:-1}" -v redeem="${REDEEM_PCT:-0.5}" -v switch="${SWITCH_PCT:-0.2}" -v plan="${PLAN_PCT:-0.3}" <<'SQL'
TRUNCATE orders, plans, plan_spans, realized_gains CASCADE;
CREATE TEMP TABLE held AS
  SELECT DISTINCT ON (user_id) user_id, scheme_code, amount
  FROM sips JOIN schemes USING (scheme_code)
  WHERE status = 'active' AND coalesce(category, '') !~* 'liquid|overnight'
  ORDER BY user_id, sip_id;
-- One other open-ended scheme per fund house, to switch into.
CREATE TEMP TABLE switch_to AS
  SELECT DISTINCT ON (fund_house) fund_house, scheme_code
  FROM schemes WHERE scheme_type ILIKE 'Open Ended%' AND coalesce(category, '') !~* 'liquid|overnight'
  ORDER BY fund_house, scheme_code DESC;
-- A share of users, spread over the id range: the id's hash, in hundredths of a percent.
CREATE TEMP TABLE pick AS
  SELECT h.*, s.fund_house, abs(hashint8(h.user_id)::bigint) % 10000 AS draw
  FROM held h JOIN schemes s USING (scheme_code);
\set lumpsum_to (:lumpsum * 100)
\set redeem_to (:lumpsum_to + :redeem * 100)
\set switch_to (:redeem_to + :switch * 100)
\set plan_to (:switch_to + :plan * 100)
INSERT INTO orders (user_id, kind, scheme_code, target_scheme_code, amount, units, redeem_all,
                    received_at, nav_date, executes_on, cancel_before)
SELECT user_id, kind, scheme_code, target, amount, units, redeem_all,
       (:'day' || ' 10:00+05:30')::timestamptz, :'day', :'day', (:'day' || ' 15:00+05:30')::timestamptz
FROM (
  SELECT user_id, 'purchase' AS kind, scheme_code, NULL::bigint AS target,
         (5000 + (user_id % 10) * 1000)::numeric AS amount, NULL::numeric AS units, false AS redeem_all
  FROM pick WHERE draw < :lumpsum_to
  UNION ALL
  -- A third each by amount, by units and everything held (more units than held fail, as a
  -- person's would once units changed).
  SELECT user_id, 'redemption', scheme_code, NULL,
         CASE WHEN user_id % 3 = 0 THEN amount * 2 END,
         CASE WHEN user_id % 3 = 1 THEN 5 END,
         user_id % 3 = 2
  FROM pick WHERE draw >= :lumpsum_to AND draw < :redeem_to
  UNION ALL
  SELECT p.user_id, 'switch', p.scheme_code, t.scheme_code, p.amount, NULL, false
  FROM pick p JOIN switch_to t USING (fund_house)
  WHERE draw >= :redeem_to AND draw < :switch_to AND t.scheme_code <> p.scheme_code
) o ORDER BY user_id;
INSERT INTO plans (user_id, kind, scheme_code, target_scheme_code, amount, plan_day, start_date,
                   created_at, active_since)
SELECT p.user_id, CASE WHEN p.user_id % 2 = 0 THEN 'swp' ELSE 'stp' END, p.scheme_code,
       CASE WHEN p.user_id % 2 = 1 THEN t.scheme_code END, p.amount,
       extract(day FROM :'next'::date), date_trunc('month', :'next'::date)::date,
       (:'day' || ' 10:00+05:30')::timestamptz, (:'day' || ' 10:00+05:30')::timestamptz
FROM pick p JOIN switch_to t USING (fund_house)
WHERE draw >= :switch_to AND draw < :plan_to AND (p.user_id % 2 = 0 OR t.scheme_code <> p.scheme_code);
SELECT (SELECT count(*) FROM orders) AS orders_placed, (SELECT count(*) FROM plans) AS plans;
SQL
"${psql[@]}" -At -c "SELECT 'orders placed: ' || string_agg(kind || '=' || n, ' ') FROM (SELECT kind, count(*) n FROM orders GROUP BY kind ORDER BY kind) k" \
  -c "SELECT 'plans: ' || string_agg(kind || '=' || n, ' ') FROM (SELECT kind, count(*) n FROM plans GROUP BY kind ORDER BY kind) k"

measure "sip execute $day (fresh day)" "$bin" sip execute --date "$day" --simulate-failures 0.02 --warehouse "$wh"
measure "portfolio value $day (daily), before its orders" "$bin" portfolio value --date "$day" --warehouse "$wh"
measure "orders execute $day" "$bin" --now "$(at "$day")" orders execute --date "$day" --warehouse "$wh"
day_files() { find "$wh/orders" "$wh/realized_gains" -path "*=$day/*" -name "*.parquet" | sort | xargs md5sum; }
day_files >"$work/first.md5"
measure "orders execute $day again (a re-run)" "$bin" --now "$(at "$day")" orders execute --date "$day" --warehouse "$wh"
if cmp -s "$work/first.md5" <(day_files); then
  echo "    the re-run wrote the same bytes ($(wc -l <"$work/first.md5") files)"
else
  echo "    the re-run wrote other bytes" >&2; exit 1
fi
measure "portfolio value $day (daily), with its orders" "$bin" portfolio value --date "$day" --warehouse "$wh"
measure "sip execute $next" "$bin" sip execute --date "$next" --simulate-failures 0.02 --warehouse "$wh"
measure "orders execute $next (the plans' instalments)" "$bin" --now "$(at "$next")" orders execute --date "$next" --warehouse "$wh"
measure "sip execute $month_end (month end, checkpoint)" "$bin" sip execute --date "$month_end" --simulate-failures 0.02 --warehouse "$wh"
measure "orders execute $month_end (nothing due)" "$bin" --now "$(at "$month_end")" orders execute --date "$month_end" --warehouse "$wh"
measure "portfolio value $month_end (daily, month end)" "$bin" portfolio value --date "$month_end" --warehouse "$wh"

"${psql[@]}" -At -c "SELECT 'outcomes: ' || string_agg(kind || '/' || status || coalesce('/' || failure, '') || '=' || n, ' ') FROM (SELECT kind, status, failure, count(*) n FROM orders GROUP BY 1, 2, 3 ORDER BY 1, 2, 3) k" \
  -c "SELECT 'realised gains in PostgreSQL: ' || count(*) || ' lots, ' || pg_size_pretty(pg_total_relation_size('realized_gains')) || '; orders ' || pg_size_pretty(pg_total_relation_size('orders')) FROM realized_gains"
for table in orders realized_gains investments purchases; do
  [ -d "$wh/$table" ] && echo "    warehouse $table: $(du -sh "$wh/$table" | cut -f1), $(find "$wh/$table" -name '*.parquet' | wc -l) files"
done
