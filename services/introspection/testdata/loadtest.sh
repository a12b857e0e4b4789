#!/usr/bin/env bash
# Load test of RFC 7662 introspection on this box, issue #5's two figures:
# one token, and 10,000 distinct tokens, at CONNECTIONS connections.
#
#   services/introspection/testdata/loadtest.sh            # both scenarios
#   SCENARIOS=one DURATION=30s services/introspection/testdata/loadtest.sh
#
# Starts a private redis-server on a free loopback port (persistence off),
# builds and starts services/introspection/internal/cmd/introload (embedded
# NATS, a key ring, JWKS on loopback, the introspection service, pprof), then
# for each scenario drives /introspect with wrk and testdata/introspect.lua
# for DURATION after a 4 s warm-up, while a CPU profile of the server is
# taken. It prints wrk's figures, the top of the profile, and the CPU per
# request of the server, of redis-server and of wrk, from the kernel's
# accounting. Everything stays on 127.0.0.1 and stops by itself.
#
# Environment: DURATION (20s), CONNECTIONS (32), THREADS (2), SCENARIOS
# ("one distinct"), KEEP (a directory to keep binaries, profiles and tokens
# in).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
. ../../loadtest/lib.sh
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
SCENARIOS=${SCENARIOS:-one distinct}
secs=${DURATION%s}
case $secs in ''|*[!0-9]*) echo "DURATION must be whole seconds, e.g. 20s" >&2; exit 2 ;; esac

for c in redis-server redis-cli wrk curl; do
  command -v "$c" >/dev/null || { echo "$c is needed (Debian: apt-get install redis-server wrk curl)" >&2; exit 1; }
done

work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# redis_stat prints one counter of INFO stats of the private redis-server.
redis_stat() { redis-cli -p "$rport" info stats | tr -d '\r' | awk -F: -v k="$1" '$1 == k {print $2}'; }

echo "building introload..."
go build -o "$work/introload" ./internal/cmd/introload

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
redis=$!
pids+=("$redis")
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null; then break; fi
  sleep 0.05
done

lport=$(free_port); aport=$(free_port); pport=$(free_port)
rm -f "$work/env"
"$work/introload" -redis "redis://127.0.0.1:$rport/0" -listen "127.0.0.1:$lport" -admin "127.0.0.1:$aport" \
  -pprof "127.0.0.1:$pport" -out "$work" >"$work/introload.log" 2>&1 &
server=$!
pids+=("$server")
for _ in $(seq 1 600); do [ -s "$work/env" ] && break; sleep 0.05; done
[ -s "$work/env" ] || { echo "introload wrote no env; see $work/introload.log" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/env"
export AUTHORIZATION TOKENS
echo "introspection ready at $INTROSPECT_URL; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

hz=$(getconf CLK_TCK)
for scenario in $SCENARIOS; do
  case $scenario in
    one) export DISTINCT=1 ;;
    distinct) export DISTINCT=0 ;;
    *) echo "unknown scenario $scenario (one, distinct)" >&2; exit 2 ;;
  esac
  echo
  echo "== $scenario =="
  # Warm up, unmeasured: connections, the client cache, and the checker's
  # cache of verified tokens (the distinct run measures repeats, not first
  # signature checks).
  wrk -t"$THREADS" -c"$CONNECTIONS" -d4s -s testdata/introspect.lua "$INTROSPECT_URL" >/dev/null
  curl -fsS -o "$work/cpu-$scenario.pprof" "http://127.0.0.1:$pport/debug/pprof/profile?seconds=$((secs - 2))" &
  prof=$!
  s0=$(cpu_ticks "$server"); r0=$(cpu_ticks "$redis")
  c0=$(redis_stat total_commands_processed); n0=$(redis_stat total_reads_processed)
  TIMEFORMAT='%U %S'
  { time wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s testdata/introspect.lua "$INTROSPECT_URL" >"$work/wrk-$scenario.out"; } 2>"$work/wrk-$scenario.time"
  s1=$(cpu_ticks "$server"); r1=$(cpu_ticks "$redis")
  c1=$(redis_stat total_commands_processed); n1=$(redis_stat total_reads_processed)
  wait "$prof"
  sed -n '/^introspection via wrk/,$p' "$work/wrk-$scenario.out"
  grep -E 'Non-2xx|Socket errors' "$work/wrk-$scenario.out" || true
  reqs=$(awk '/^introspection via wrk/ {print $(NF-3)}' "$work/wrk-$scenario.out")
  awk -v s="$((s1 - s0))" -v r="$((r1 - r0))" -v hz="$hz" -v reqs="$reqs" -v secs="$secs" -v wt="$(cat "$work/wrk-$scenario.time")" 'BEGIN {
    split(wt, w, " "); gen = w[1] + w[2]
    if (reqs > 0) printf "CPU per request (kernel): server %.1f us, redis-server %.1f us, wrk %.1f us; all three used %.0f%% of 2 cores\n",
      1e6 * s / hz / reqs, 1e6 * r / hz / reqs, 1e6 * gen / reqs, 100 * (s / hz + r / hz + gen) / secs / 2
  }'
  awk -v c="$((c1 - c0))" -v n="$((n1 - n0))" -v reqs="$reqs" 'BEGIN {
    if (reqs > 0 && n > 0) printf "redis: %.1f commands per request, %.1f commands per socket read (pipelining depth)\n", c / reqs, c / n
  }'
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  go tool pprof -top -nodecount=25 "$work/introload" "$work/cpu-$scenario.pprof" 2>/dev/null | sed -n '1,32p'
done
