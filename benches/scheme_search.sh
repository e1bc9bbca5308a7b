#!/usr/bin/env bash
# Benchmark: `GET /v1/schemes` latency over AMFI's real scheme master (NAVAll.txt of 16 May 2025,
# ~14,000 schemes) through the real API process, one request at a time from a Python client on
# the same machine (client time included), over a throwaway PostgreSQL 15 cluster:
#   benches/scheme_search.sh            (REQUESTS=2000 by default)
# Prints p50/p95/p99/max per kind of query (misspelt words, words cut short as people type, a
# fund house, an ISIN, a code, a filtered list) and over all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${REQUESTS:-2000}
if [ -n "${SIPLINE_BIN:-}" ]; then
  bin=$SIPLINE_BIN  # a binary built already (e.g. to measure two versions)
else
  cargo build --profile "${PROFILE:-release}" -q -p jobs
  bin="$(realpath "${CARGO_TARGET_DIR:-target}")/${PROFILE:-release}/sipline"
fi
pg=/usr/lib/postgresql/15/bin
work=$(mktemp -d)
chmod 755 "$work"
as_pg=()
[ "$(id -u)" = 0 ] && { chown postgres "$work"; as_pg=(runuser -u postgres --); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
"${as_pg[@]}" "$pg/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
"${as_pg[@]}" "$pg/pg_ctl" -D "$work/data" -l "$work/pg.log" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" -w start >/dev/null
db="postgres://postgres@127.0.0.1:$pg_port/postgres"
cleanup() { kill "${serve_pid:-0}" 2>/dev/null || true; "${as_pg[@]}" "$pg/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
"$bin" nav ingest --source amfi --input pipeline/tests/fixtures/NAVAll_real_2025-05-16.txt \
  --warehouse "$work/wh" --database-url "$db" 2>/dev/null | sed 's/^/    /'
secret=bench-secret-of-at-least-32-bytes-long
# The rate limits stay on (their check is part of every request's cost) but far above what one
# load generator on one address sends; environment variables, so an older binary runs too.
export SIPLINE_RATE_PER_USER=1000000 SIPLINE_BURST_PER_USER=1000000
export SIPLINE_RATE_PER_ADDRESS=1000000 SIPLINE_BURST_PER_ADDRESS=1000000
port=$(free_port)
RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --jwt-secret "$secret" --audience authenticated --database-url "$db" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
python3 - "$port" "$secret" "$requests" <<'PY'
import base64, hashlib, hmac, http.client, json, random, sys, time, urllib.parse
port, secret, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "bench|searcher", "aud": "authenticated", "exp": int(time.time()) + 3600}).encode())
token = f"{head}.{body}." + b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
kinds = {
    "misspelt words": ["axis blue chip", "parag parikh flexy cap", "hdfc midcap oportunities",
                        "sbi small cap", "mirae asset emerging blue chip", "icici pru value discovery",
                        "nippon india growth", "kotak emerging equity", "quant small cap", "uti nifty 50 index"],
    "as typed": ["franklin pri", "motilal mid", "icici pru blue", "hdfc mid", "sbi sma",
                 "kotak tax", "absl elss", "hdfc long term adv", "nippon india small", "parag"],
    "fund house": ["axis mutual fund", "hdfc mutual fund", "sbi mutual fund", "nippon india"],
    "isin": ["INF846K01DP8", "INF209K01YM3", "INF179K01XQ0", "INF200K01RJ1"],
    "code": ["120465", "119551", "100047", "148980"],
}
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Authorization": f"Bearer {token}"}
def get(path):
    start = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    elapsed = (time.perf_counter() - start) * 1000
    assert response.status == 200, (path, response.status)
    return elapsed
for _ in range(50):  # warm the connection pool and PostgreSQL's buffers
    get("/v1/schemes?q=axis")
random.seed(1)
results = {k: [] for k in list(kinds) + ["filtered list"]}
for i in range(total):
    kind = random.choice(list(results))
    if kind == "filtered list":
        path = "/v1/schemes?plan=direct&option=growth&open_for_sip=true&limit=50"
    else:
        path = "/v1/schemes?" + urllib.parse.urlencode({"q": random.choice(kinds[kind]), "limit": 20})
    results[kind].append(get(path))
def line(label, xs):
    xs = sorted(xs)
    pct = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    print(f"{label:<16} n={len(xs):5d}  p50 {pct(0.50):6.2f} ms  p95 {pct(0.95):6.2f} ms  p99 {pct(0.99):6.2f} ms  max {xs[-1]:6.2f} ms")
for kind, xs in results.items():
    line(kind, xs)
line("all", [x for xs in results.values() for x in xs])
PY
