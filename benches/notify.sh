#!/usr/bin/env bash
# Benchmark: notification delivery to a local webhook (nginx answering 204 on loopback) with 1
# and 4 dispatchers, then how long a backlog of PENDING (default 1,000,000) notifications takes
# to drain with 4. Needs nginx (Debian's nginx-light) and a PostgreSQL database to fill:
#   DATABASE_URL=postgres://… benches/notify.sh
# The database's outbox is emptied first. Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a scratch database}"
sample=${SAMPLE:-100000}
pending=${PENDING:-1000000}
cargo build --profile "${PROFILE:-release}" -q -p jobs
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/${PROFILE:-release}/sipline"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<NGINX
daemon off; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_buffer_size 16k;
  server { listen 127.0.0.1:$port; keepalive_requests 1000000; location / { return 204; } } }
NGINX
nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
trap 'kill $nginx_pid 2>/dev/null; rm -rf "$work"' EXIT
sleep 0.5

"$bin" db migrate >/dev/null
fill() {
  psql "$DATABASE_URL" -X -q -c "TRUNCATE notifications, notification_deliveries" \
    -c "INSERT INTO notifications (event_key, user_id, kind, payload)
        SELECT 'bench:' || i, i, 'sip_executed',
               jsonb_build_object('sip_id', i, 'scheme_code', 120503, 'amount', '3000.00',
                                  'nav', '45.1234', 'units', '66.480', 'due_date', '2025-06-27')
        FROM generate_series(1, $1) i" \
    -c "VACUUM ANALYZE notifications"
}
run() {
  local workers=$1 count=$2 label=$3
  fill "$count"
  local start end
  start=$(date +%s.%N)
  local pids=()
  for i in $(seq "$workers"); do
    "$bin" notify dispatch --webhook-url "http://127.0.0.1:$port/hook" --webhook-secret bench-webhook-secret-32-bytes-long \
      --batch 1000 --concurrency 64 >"$work/dispatch.$i.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { tail -5 "$work"/dispatch.*.log; exit 1; }; done
  end=$(date +%s.%N)
  local delivered
  delivered=$(psql "$DATABASE_URL" -X -At -c "SELECT count(*) FROM notification_deliveries WHERE status = 'delivered'")
  python3 -c "
wall = $end - $start
print(f'{\"$label\":<40} {wall:8.2f} s wall  {$delivered} delivered  {$delivered / wall:10.0f} deliveries/s')"
}
run 1 "$sample" "1 dispatcher, $sample notifications"
run 4 "$sample" "4 dispatchers, $sample notifications"
run 4 "$pending" "drain $pending pending, 4 dispatchers"
"$bin" notify stats | grep -E "deliveries|latency_p50"
