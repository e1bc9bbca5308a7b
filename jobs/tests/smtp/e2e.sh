#!/usr/bin/env bash
# E-mail end to end through a submission server nobody here wrote: aiosmtpd requiring
# STARTTLS and AUTH (server.py), the real `sipline notify dispatch`, a real PostgreSQL, and
# Python's own `email` parser reading what arrived, with dkimpy verifying its DKIM signature
# against the key's TXT record (check.py).
#
#   SIPLINE_BIN=… SIPLINE_TEST_DATABASE_URL=postgres://…/postgres bash jobs/tests/smtp/e2e.sh
#
# with `python` from a virtualenv holding jobs/tests/smtp/requirements.txt first on PATH.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SIPLINE_BIN:?the sipline binary}
base=${SIPLINE_TEST_DATABASE_URL:?a PostgreSQL server URL}
psql=/usr/lib/postgresql/15/bin/psql
work=$(mktemp -d /tmp/sipline-smtp-e2e.XXXXXX)
db="sipline_smtp_e2e_$$"
url="${base%/*}/$db"
password="smtp-pass-$RANDOM$RANDOM-not-in-logs"
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  "$psql" "$base" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$psql" "$base" -qc "CREATE DATABASE $db"
"$bin" db migrate --database-url "$url" >/dev/null
"$psql" "$url" -q -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO schemes (scheme_code, scheme_name, unit_decimals)
VALUES (122639, 'Parag Parikh Flexi Cap Fund - Direct Plan - Growth', 3);
INSERT INTO users (user_id, auth_subject) VALUES (7, 'auth0|priya');
INSERT INTO notification_preferences (user_id, channels, email) VALUES (7, '{email}', 'priya@example.co.in');
INSERT INTO notifications (event_key, user_id, kind, payload) VALUES
  ('sip:1:2026-12-05:executed', 7, 'sip_executed',
   '{"sip_id": 1, "scheme_code": 122639, "due_date": "2026-12-05", "run_date": "2026-12-07", "amount": "5000.00", "nav_date": "2026-12-07", "nav": "84.2512", "units": "59.3430"}'),
  ('statement:7:2026-11', 7, 'statement_ready',
   '{"month": "2026-11", "as_of": "2026-11-30", "invested": "1234567.50", "current_value": "1398765.43", "xirr": 0.1342}');
SQL

python "$here/server.py" "$work" sipline "$password" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
dispatch() {
  "$bin" notify dispatch --database-url "$url" --webhook-secret "e2e-webhook-secret-0123456789" \
    --mail-from notifications@sipline.example --smtp-relay "127.0.0.1:$port" \
    --retry-base-ms 1 --timeout-secs 10 "$@"
}
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "-- AUTH over a plain connection is refused before anything is sent (exit 3)"
set +e
SIPLINE_SMTP_PASSWORD=$password dispatch --smtp-tls none --smtp-username sipline >"$work/plain.out" 2>&1
code=$?
set -e
[ "$code" = 3 ] || fail "exit $code, expected 3: $(cat "$work/plain.out")"
grep -q "in the clear" "$work/plain.out" || fail "$(cat "$work/plain.out")"

echo "-- a wrong password: the server's 535 is final, the delivery dead, no password in any output"
SIPLINE_SMTP_PASSWORD=wrong-password-123 dispatch --smtp-tls starttls --smtp-username sipline \
  --smtp-ca-file "$work/ca.pem" >"$work/wrong.out" 2>&1 || fail "$(cat "$work/wrong.out")"
errors=$("$psql" "$url" -Atc "SELECT status || ' ' || last_error FROM notification_deliveries ORDER BY delivery_id")
echo "$errors" | grep -q "^dead .*535" || fail "expected dead with 535: $errors"
if grep -q "wrong-password-123" "$work/wrong.out" || grep -q "wrong-password-123" <<<"$errors"; then
  fail "a password in the output or in last_error"
fi
ls "$work"/*.eml >/dev/null 2>&1 && fail "a message was accepted without AUTH"
"$psql" "$url" -qc "DELETE FROM notification_deliveries; UPDATE notifications SET status = 'pending', delivered_at = NULL"

echo "-- a DKIM key for another domain than the sender's is refused at start (exit 3), unquoted"
set +e
dispatch --smtp-tls starttls --dkim-domain other.example --dkim-selector e2e \
  --dkim-key-file "$work/dkim.pem" >"$work/dkim-domain.out" 2>&1
code=$?
set -e
[ "$code" = 3 ] || fail "exit $code, expected 3: $(cat "$work/dkim-domain.out")"
grep -q "DMARC" "$work/dkim-domain.out" || fail "$(cat "$work/dkim-domain.out")"
if grep -q "PRIVATE KEY" "$work"/*.out; then fail "the DKIM key reached the output"; fi

echo "-- STARTTLS + AUTH with the throwaway CA trusted: both messages delivered, with unsubscribe links, DKIM-signed"
SIPLINE_SMTP_PASSWORD=$password SIPLINE_UNSUBSCRIBE_SECRET=e2e-unsubscribe-secret-0123 \
  dispatch --smtp-tls starttls --smtp-username sipline --smtp-ca-file "$work/ca.pem" \
  --dkim-domain sipline.example --dkim-selector e2e --dkim-key-file "$work/dkim.pem" \
  --statement-url https://app.sipline.example/statement \
  --unsubscribe-url https://api.sipline.example/v1/unsubscribe >"$work/ok.out" 2>&1 || fail "$(cat "$work/ok.out")"
grep -q "delivered=2" "$work/ok.out" || fail "$(cat "$work/ok.out")"
if grep -q "$password" "$work"/*.out; then fail "the SMTP password reached the output"; fi
python "$here/check.py" "$work"
grep -q '"login": "sipline"' "$work"/001.json || fail "$(cat "$work"/001.json)"

echo "-- the CA not trusted: the handshake fails and the delivery waits for a retry"
"$psql" "$url" -qc "DELETE FROM notification_deliveries; UPDATE notifications SET status = 'pending', delivered_at = NULL"
SIPLINE_SMTP_PASSWORD=$password dispatch --smtp-tls starttls --smtp-username sipline --max-batches 1 \
  >"$work/untrusted.out" 2>&1 || fail "$(cat "$work/untrusted.out")"
statuses=$("$psql" "$url" -Atc "SELECT DISTINCT status FROM notification_deliveries")
[ "$statuses" = pending ] || fail "expected pending after an untrusted certificate, got: $statuses"
echo "e-mail end to end: ok"
