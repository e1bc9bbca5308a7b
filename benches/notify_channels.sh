#!/usr/bin/env bash
# Benchmark: one dispatcher delivering SAMPLE (default 100,000) notifications per channel
# through the providers' protocols to local stand-ins, beside the plain webhook: nginx answers
# the webhook, Exotel's Send SMS API, Google's token endpoint and FCM's messages:send (HTTP/1.1)
# and APNs (HTTP/2 cleartext, prior knowledge) as the providers do; aiosmtpd (Python, no TLS)
# takes e-mail and is the slowest party of its row. Needs nginx with http_v2, python3 with
# aiosmtpd (jobs/tests/smtp/requirements.txt), and a scratch database:
#   DATABASE_URL=postgres://… benches/notify_channels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a scratch database}"
sample=${SAMPLE:-100000}
cargo build --profile "${PROFILE:-release}" -q -p jobs
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/${PROFILE:-release}/sipline"
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
h2=$(free_port)
smtp=$(free_port)
cat >"$work/nginx.conf" <<NGINX
daemon off; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 4096; }
http { access_log off; client_body_buffer_size 16k; default_type application/json;
  server { listen 127.0.0.1:$port; keepalive_requests 10000000;
    location /hook { return 204; }
    location /token { return 200 '{"access_token":"ya29.bench","expires_in":3599,"token_type":"Bearer"}'; }
    location ~ ^/v1/projects/[^/]+/messages:send$ { return 200 '{"name":"projects/bench/messages/1"}'; }
    location ~ ^/v1/Accounts/[^/]+/Sms/send.json$ { return 200 '{"SMSMessage":{"Sid":"bench","Status":"queued"}}'; } }
  server { listen 127.0.0.1:$h2 http2; keepalive_requests 10000000; http2_max_requests 10000000;
    location /3/device/ { add_header apns-id bench; return 200; } } }
NGINX
nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
python3 - "$smtp" >"$work/smtp.log" 2>&1 <<'PY' &
import signal, sys, threading
from aiosmtpd.controller import Controller
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1])); c.start()
stop = threading.Event(); signal.signal(signal.SIGTERM, lambda *_: stop.set()); stop.wait(); c.stop()
PY
smtp_pid=$!
trap 'kill $nginx_pid $smtp_pid 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
cat >"$work/account.json" <<JSON
{"type": "service_account", "project_id": "bench", "private_key_id": "rsa-1",
 "private_key": $(python3 -c 'import json,sys; print(json.dumps(open("api/tests/fixtures/rsa.pem").read()))'),
 "client_email": "bench@bench.iam.gserviceaccount.com", "token_uri": "http://127.0.0.1:$port/token"}
JSON

"$bin" db migrate --database-url "$DATABASE_URL" >/dev/null
psql "$DATABASE_URL" -X -q -c "INSERT INTO users (user_id, auth_subject) SELECT i, 'bench-' || i FROM generate_series(1, $sample) i ON CONFLICT DO NOTHING"
fill() {
  local channel=$1 platform=$2
  psql "$DATABASE_URL" -X -q -c "TRUNCATE notifications, notification_deliveries" \
    -c "DELETE FROM notification_preferences" \
    -c "INSERT INTO notification_preferences (user_id, channels, email, phone, push_token, push_platform)
        SELECT i, ARRAY['$channel'], 'user' || i || '@example.com', '+9198' || lpad(i::text, 8, '0'),
               'a1b2c3' || to_hex(i), '$platform' FROM generate_series(1, $sample) i" \
    -c "INSERT INTO notifications (event_key, user_id, kind, payload)
        SELECT 'bench:' || i, i, 'sip_executed',
               jsonb_build_object('sip_id', i, 'scheme_code', 120503, 'amount', '3000.00', 'nav_date', '2025-06-27',
                                  'nav', '45.1234', 'units', '66.4800', 'due_date', '2025-06-27')
        FROM generate_series(1, $sample) i" \
    -c "VACUUM ANALYZE notifications, notification_preferences"
}
run() {
  local label=$1 channel=$2 platform=$3; shift 3
  fill "$channel" "$platform"
  local start end delivered
  start=$(date +%s.%N)
  SIPLINE_EXOTEL_API_TOKEN=bench-token "$bin" notify dispatch --database-url "$DATABASE_URL" \
    --webhook-url "http://127.0.0.1:$port/hook" --webhook-secret bench-webhook-secret-32-bytes-long \
    --batch 1000 --concurrency 64 "$@" >"$work/dispatch.log" 2>&1 || { tail -5 "$work/dispatch.log"; exit 1; }
  end=$(date +%s.%N)
  delivered=$(psql "$DATABASE_URL" -X -At -c "SELECT count(*) FROM notification_deliveries WHERE status = 'delivered'")
  python3 -c "
wall = $end - $start
print(f'{\"$label\":<34} {wall:8.2f} s wall  {$delivered} delivered  {$delivered / wall:8.0f} deliveries/s')"
}
run "webhook (JSON, HMAC-signed)" webhook fcm
run "sms: Exotel API with DLT fields" sms fcm --exotel-url "http://127.0.0.1:$port" --exotel-sid bench \
  --exotel-api-key bench --sms-sender SIPLNE --dlt-entity-id 1101234567890123456 \
  --dlt-templates sip_executed=1107161234567890123
run "push: FCM HTTP v1" push fcm --fcm-service-account "$work/account.json" --fcm-url "http://127.0.0.1:$port"
run "push: APNs over HTTP/2" push apns --apns-key-file api/tests/fixtures/ec.pem --apns-key-id ec-1 \
  --apns-team-id BENCH12345 --apns-topic in.sipline.app --apns-url "http://127.0.0.1:$h2"
run "email: SMTP to aiosmtpd" email fcm --smtp-relay "127.0.0.1:$smtp" --smtp-tls none
# DKIM: every message signed with RSA-2048 (rsa-sha256, relaxed/relaxed), PKCS#1 as lettre reads it.
openssl genrsa -traditional -out "$work/dkim.pem" 2048 2>/dev/null
run "email: SMTP + DKIM (RSA-2048)" email fcm --smtp-relay "127.0.0.1:$smtp" --smtp-tls none \
  --mail-from notifications@sipline.example --dkim-domain sipline.example --dkim-selector bench \
  --dkim-key-file "$work/dkim.pem"
