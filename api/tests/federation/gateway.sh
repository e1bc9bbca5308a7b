#!/usr/bin/env bash
# A real federation gateway in front of the real API process (issue 40): published data in a
# throwaway database, `sipline serve`, then gateway.mjs (Apollo's @apollo/gateway and a second
# subgraph, from npm) sending a client app's queries through the gateway and comparing the
# answers with REST.
#
#   SIPLINE_BIN=… SIPLINE_TEST_DATABASE_URL=postgres://…/postgres FEDERATION_DIR=… bash gateway.sh
#
# FEDERATION_DIR holds node_modules installed from package-lock.json (`npm ci`) and the scripts.
set -euo pipefail
: "${SIPLINE_BIN:?}" "${SIPLINE_TEST_DATABASE_URL:?}" "${FEDERATION_DIR:?}"
psql=/usr/lib/postgresql/15/bin/psql
work=$(mktemp -d /tmp/sipline-gateway.XXXXXX)
db="sipline_gateway_$$"
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  "$psql" "$SIPLINE_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$psql" -X -q "$SIPLINE_TEST_DATABASE_URL" -c "CREATE DATABASE $db"
export DATABASE_URL="${SIPLINE_TEST_DATABASE_URL%/*}/$db"
export SIPLINE_WAREHOUSE="$work/warehouse" NO_COLOR=1
sipline() { "$SIPLINE_BIN" "$@" 2>>"$work/setup.log" || { tail -20 "$work/setup.log"; exit 1; }; }
date=2025-03-04
sipline db migrate >/dev/null
sipline generate --users 40 --months 3 --end-date "$date" --seed 11 >/dev/null
sipline sip backfill --from 2024-12-04 --to "$date" >/dev/null
sipline portfolio value --date "$date" >/dev/null
sipline publish --date "$date" --mandates >/dev/null

# A person with SIPs and published lines, another person, and a scheme open to purchases.
read -r subject user_id <<<"$("$psql" -X -At -F ' ' "$DATABASE_URL" -c "SELECT u.auth_subject, u.user_id FROM users u \
  WHERE EXISTS (SELECT 1 FROM sips s WHERE s.user_id = u.user_id) \
    AND EXISTS (SELECT 1 FROM portfolio_latest p WHERE p.user_id = u.user_id AND p.schemes > 0) \
  ORDER BY u.user_id LIMIT 1")"
other=$("$psql" -X -At "$DATABASE_URL" -c "SELECT user_id FROM users WHERE user_id <> $user_id ORDER BY user_id LIMIT 1")
scheme=$("$psql" -X -At "$DATABASE_URL" -c "SELECT scheme_code FROM schemes \
  WHERE sipline_open_ended(scheme_type) ORDER BY scheme_code LIMIT 1")
[ -n "$subject" ] && [ -n "$other" ] && [ -n "$scheme" ] || { echo "FAIL: no data to read"; exit 1; }

secret=gateway-secret-of-at-least-32-bytes-long
token=$(python3 - "$secret" "$subject" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret, subject = sys.argv[1].encode(), sys.argv[2]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": subject, "aud": "authenticated", "exp": int(time.time()) + 3600}).encode())
sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=warn "$SIPLINE_BIN" serve --listen "127.0.0.1:$port" --jwt-secret "$secret" \
  --audience authenticated --database-url "$DATABASE_URL" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
"$SIPLINE_BIN" graphql-sdl >"$work/sipline.graphql"
SIPLINE_TOKEN=$token SIPLINE_OTHER_USER=$other SIPLINE_SCHEME=$scheme \
  node "$FEDERATION_DIR/gateway.mjs" "http://127.0.0.1:$port" "$work/sipline.graphql"
