#!/usr/bin/env bash
# Schemathesis (from PyPI, a tool nobody here wrote) drives the real API process through its
# own `/openapi.json`: every operation, the examples, coverage, fuzzing and stateful phases
# (the OpenAPI links lead it from a created SIP or alert to the operations that read and change
# it), with a valid token of a user who has published data. It fails on a 5xx, a status code
# the document does not list, a response that does not match the document, a request that
# breaks the documented constraints and is accepted, or a valid one that is refused.
#
# Needs: SIPLINE_BIN, SIPLINE_TEST_DATABASE_URL (a PostgreSQL superuser URL), `psql`, and
# `schemathesis` on PATH (`.ci/run` installs the versions pinned in schemathesis-requirements.txt
# into a virtualenv outside the clone). SCHEMATHESIS_MAX_TIME (s, default 120) bounds the run.
set -euo pipefail
: "${SIPLINE_BIN:?}" "${SIPLINE_TEST_DATABASE_URL:?}"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/sipline-schemathesis.XXXXXX)
serve_pid=
cleanup() { [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

db=sipline_schemathesis
psql -X -q "$SIPLINE_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
export DATABASE_URL="${SIPLINE_TEST_DATABASE_URL%/*}/$db"
export SIPLINE_WAREHOUSE="$work/warehouse" NO_COLOR=1
sipline() { "$SIPLINE_BIN" "$@" 2>>"$work/setup.log" || { tail -20 "$work/setup.log"; exit 1; }; }

date=2025-03-04
echo "== published data to read: a small universe executed, valued and published for $date"
sipline db migrate | tail -1
sipline generate --users 40 --months 3 --end-date "$date" --seed 11 | tail -1
sipline sip backfill --from 2024-12-04 --to "$date" | tail -1
sipline portfolio value --date "$date" | tail -1
sipline publish --date "$date" --mandates | tail -1

# A user with SIPs and charts (holdings and a month-end history) published.
subject=$(psql -X -At "$DATABASE_URL" -c "SELECT u.auth_subject FROM users u \
  WHERE EXISTS (SELECT 1 FROM sips s WHERE s.user_id = u.user_id) \
    AND EXISTS (SELECT 1 FROM portfolio_latest p WHERE p.user_id = u.user_id AND p.schemes > 0) \
    AND EXISTS (SELECT 1 FROM portfolio_month_ends m WHERE m.user_id = u.user_id) \
  ORDER BY u.user_id LIMIT 1")
[ -n "$subject" ] || { echo "FAIL: no user with SIPs and charts"; exit 1; }
codes=$(psql -X -At "$DATABASE_URL" -c "SELECT string_agg(scheme_code::text, ', ' ORDER BY scheme_code) \
  FROM (SELECT scheme_code FROM schemes ORDER BY scheme_code LIMIT 200) s")
# Integers, in the configuration itself (a dictionary file holds strings only).
sed "s|\${SIPLINE_SCHEME_CODES}|$codes|" "$here/schemathesis.toml" >"$work/schemathesis.toml"
secret=schemathesis-secret-of-at-least-32-bytes
token=$(python3 - "$secret" "$subject" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret, subject = sys.argv[1].encode(), sys.argv[2]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": subject, "aud": "authenticated", "exp": int(time.time()) + 7200}).encode())
sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The rate limits are raised for the fuzzer's one address and one token: they are tested on
# their own (`jobs` tests), and a run spent on 429s would reach nothing else.
RUST_LOG=warn "$SIPLINE_BIN" serve --listen "127.0.0.1:$port" --jwt-secret "$secret" \
  --audience authenticated --database-url "$DATABASE_URL" \
  --rate-per-user 100000 --rate-per-address 100000 \
  --unsubscribe-secret "schemathesis-unsubscribe-secret" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done

echo "== schemathesis $(schemathesis --version | awk '{print $NF}') against http://127.0.0.1:$port/openapi.json"
export SIPLINE_TOKEN=$token
status=0
# From the work folder: Schemathesis keeps a cache in the current directory, not in the clone.
cd "$work"
schemathesis --config-file "$work/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
  --max-time "${SCHEMATHESIS_MAX_TIME:-120}" --report ndjson --report-dir "$work/report" \
  || status=$?
if grep -q "panicked" "$work/serve.log"; then
  echo "FAIL: the API panicked"; grep -m5 -A5 panicked "$work/serve.log"; exit 1
fi
[ "$status" -eq 0 ] || { echo "FAIL: schemathesis exit $status"; tail -30 "$work/serve.log"; exit "$status"; }
echo "schemathesis: ok"
