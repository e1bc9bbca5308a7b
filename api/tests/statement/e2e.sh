#!/usr/bin/env bash
# A person's account statement as a PDF, opened by a PDF engine nobody here wrote (PDFium,
# through pypdfium2): the real `sipline serve` over a real PostgreSQL holding 80 monthly
# instalments, the PDF fetched with a signed-in person's token, every page rendered to PNG
# (kept in $SIPLINE_STATEMENT_OUT when set, to look at) and its text checked.
#
#   SIPLINE_BIN=… SIPLINE_TEST_DATABASE_URL=postgres://…/postgres bash api/tests/statement/e2e.sh
#
# with `python` from a virtualenv holding jobs/tests/smtp/requirements.txt first on PATH.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SIPLINE_BIN:?the sipline binary}
base=${SIPLINE_TEST_DATABASE_URL:?a PostgreSQL server URL}
psql=/usr/lib/postgresql/15/bin/psql
work=$(mktemp -d /tmp/sipline-statement-e2e.XXXXXX)
db="sipline_statement_e2e_$$"
url="${base%/*}/$db"
secret="statement-e2e-jwt-secret-0123456789abcdef"
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  "$psql" "$base" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$psql" "$base" -qc "CREATE DATABASE $db"
"$bin" db migrate --database-url "$url" >/dev/null
# 80 monthly instalments of ₹1,000 from Jan 2021, at a NAV that rises ₹0.50 a month.
"$psql" "$url" -q -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO schemes (scheme_code, scheme_name, unit_decimals)
VALUES (122639, 'Parag Parikh Flexi Cap Fund - Direct Plan - Growth', 3);
INSERT INTO users (user_id, auth_subject) VALUES (7, 'auth0|priya');
SELECT FROM sipline_ensure_month_partitions('investments', '2021-01-01', '2027-09-01');
SELECT FROM sipline_ensure_month_partitions('navs', '2021-01-01', '2027-09-01');
INSERT INTO navs (scheme_code, nav_date, nav, source)
SELECT 122639, (DATE '2021-01-05' + make_interval(months => m))::date, 50 + m * 0.5, 'amfi'
FROM generate_series(0, 79) m;
INSERT INTO investments (exec_date, sip_id, due_date, user_id, scheme_code, status, amount, stamp_duty, nav_date, nav, units)
SELECT d, 1, d, 7, 122639, 'executed', 1000, 0.05, d, 50 + m * 0.5, round(999.95 / (50 + m * 0.5), 3)
FROM (SELECT m, (DATE '2021-01-05' + make_interval(months => m))::date AS d FROM generate_series(0, 79) m) s;
SQL

port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --database-url "$url" --jwt-secret "$secret" \
  --audience authenticated >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
token=$(python - "$secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "auth0|priya", "aud": "authenticated", "exp": int(time.time()) + 600}).encode())
sig = b64(hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)
curl -sf -H "Authorization: Bearer $token" -o "$work/statement.pdf" \
  "http://127.0.0.1:$port/v1/users/me/statement?from=2021-01-01&to=2027-04-30&format=pdf"
python "$here/check_pdf.py" "$work/statement.pdf"
if [ -n "${SIPLINE_STATEMENT_OUT:-}" ]; then
  mkdir -p "$SIPLINE_STATEMENT_OUT" && cp "$work"/statement* "$SIPLINE_STATEMENT_OUT/"
fi
echo "statement end to end: ok"
