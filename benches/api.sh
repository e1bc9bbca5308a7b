#!/usr/bin/env bash
# Load benchmark of `sipline serve` with wrk on loopback (wrk, the API and PostgreSQL share the
# machine): requests per second and latency percentiles for the portfolio and line-chart routes,
# cold (random users over the whole universe: mostly cache misses, one indexed query each) and
# warm (a set of WARM_USERS users, read once before measuring: cache hits), at each of
# CONNECTIONS, with the server's CPU per request; then pgbench running the portfolio route's
# own statement (prepared, same users, same connection counts): a cached read should beat the
# database it caches. Needs a database with a published universe (benches/publish.sh), Debian's
# wrk and PostgreSQL's pgbench:
#   DATABASE_URL=postgres://… [CONNECTIONS="8 16"] [SIPLINE_BIN=…] benches/api.sh
# With READ_DATABASE_URL set to a hot standby of that database (pg_basebackup -R), `serve` reads
# published data there (--read-database-url): run once with and once without to compare; the
# pgbench part then runs against the standby too.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a database with a published universe}"
duration=${DURATION:-20s}
connections_list=${CONNECTIONS:-8 16}
warm_users=${WARM_USERS:-10000}
# SIPLINE_BIN: measure a given binary (an older build, for a before/after comparison).
if [ -n "${SIPLINE_BIN:-}" ]; then
  bin=$SIPLINE_BIN
else
  cargo build --profile "${PROFILE:-release}" -q -p jobs
  bin="$(realpath "${CARGO_TARGET_DIR:-target}")/${PROFILE:-release}/sipline"
fi

secret=bench-secret-of-at-least-32-bytes-long
# The rate limits stay on (their check is part of every request's cost) but far above what one
# load generator on one address sends; environment variables, so an older binary runs too.
export SIPLINE_RATE_PER_USER=1000000 SIPLINE_BURST_PER_USER=1000000
export SIPLINE_RATE_PER_ADDRESS=1000000 SIPLINE_BURST_PER_ADDRESS=1000000
read -r min_user max_user < <(psql "$DATABASE_URL" -X -At -F ' ' -c "SELECT min(user_id), max(user_id) FROM portfolio_latest")
# The token's subject is a real user's (the first one's), as a signed-in client's is: a subject
# that is no user is looked up in `users` on every request, warm ones too, and would measure that.
subject=$(psql "$DATABASE_URL" -X -At -c "SELECT auth_subject FROM users WHERE user_id = $min_user")
token=$(python3 - "$secret" "$subject" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
# service_role: the benchmark reads every user's portfolio with one token.
body = b64(json.dumps({"sub": sys.argv[2], "aud": "authenticated", "role": "service_role", "exp": int(time.time()) + 86400}).encode())
sig = b64(hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
read_args=()
if [ -n "${READ_DATABASE_URL:-}" ]; then
  read_args=(--read-database-url "$READ_DATABASE_URL")
fi
RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --jwt-secret "$secret" --audience authenticated "${read_args[@]}" >"$work/serve.log" 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done

script() {  # path template, lowest user, highest user
  cat >"$work/$4.lua" <<LUA
-- One seed per wrk thread: seeded with the time alone, both threads start in the same second
-- and draw the same users, so one thread's misses become the other's hits.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
function init(args)
  math.randomseed(os.time() * 1000 + thread_id)
end
local token = "$token"
request = function()
  local user = math.random($2, $3)
  return wrk.format("GET", string.format("$1", user), { ["Authorization"] = "Bearer " .. token })
end
LUA
  echo "$work/$4.lua"
}
# The server's CPU time so far (user + system, in clock ticks), from /proc.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$serve_pid/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))
measure() {  # label, lua script
  local out before after
  before=$(cpu_ticks)
  out=$(wrk -t2 -c"$connections" -d"$duration" --latency -s "$2" "http://127.0.0.1:$port")
  after=$(cpu_ticks)
  local rps p50 p99 non2xx requests cpu
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  # The API's own CPU per request (kernel TCP work included; wrk's is not).
  cpu=$(( (after - before) * tick_us / (requests > 0 ? requests : 1) ))
  printf '%-34s %10s req/s   p50 %8s   p99 %8s   cpu %4s us/req   non-2xx %s\n' \
    "$1" "$rps" "$p50" "$p99" "$cpu" "${non2xx:-0}"
}
warm_hi=$((min_user + warm_users - 1))
echo "universe users $min_user..$max_user; wrk -t2, $duration per run; warm set $warm_users users"
for connections in $connections_list; do
  echo "-- $connections connections"
  for route in portfolio charts/line; do
    measure "$route, cold (random over all)" "$(script "/v1/users/%d/$route" "$min_user" "$max_user" "cold-${route//\//-}")"
    warm=$(script "/v1/users/%d/$route" "$min_user" "$warm_hi" "warm-${route//\//-}")
    wrk -t2 -c"$connections" -d5s -s "$warm" "http://127.0.0.1:$port" >/dev/null  # fill the cache
    measure "$route, warm (cached)" "$warm"
  done
  # The database alone, on the same warm users (their rows in shared buffers after the runs
  # above): the route's statement, prepared, as the API's pool runs it.
  out=$(pgbench -n -M prepared -c "$connections" -j 2 -T "${duration%s}" -r \
    -D min_user="$min_user" -D max_user="$warm_hi" -f benches/api-portfolio.pgbench "${READ_DATABASE_URL:-$DATABASE_URL}" 2>&1)
  tps=$(awk '/^tps/ {print $3; exit}' <<<"$out")
  latency=$(awk '/^latency average/ {print $4 " " $5}' <<<"$out")
  printf '%-34s %10s tps     mean %s\n' "pgbench, portfolio statement" "$tps" "$latency"
done
curl -s "http://127.0.0.1:$port/metrics" | grep -E 'cache_requests_total|pool_connections|^sipline_api_replica_'
