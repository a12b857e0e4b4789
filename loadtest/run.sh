#!/usr/bin/env bash
# Load test of the issuer's client-credentials grant on this box (`make loadtest`).
#
# Starts a redis-server on a free loopback port (persistence off, noeviction,
# as the test harness runs it), builds and starts loadtest/cmd/cluster (an
# embedded NATS with JetStream and one issuer, in one process, with pprof),
# then drives /token at CONNECTIONS connections for DURATION:
#   - with wrk and loadtest/wrk/client_credentials.lua (the headline figure:
#     wrk costs the shared CPU least), while a CPU profile of the server is
#     taken, from which the server CPU per token is computed;
#   - with the Go generator on vegeta (loadtest/cmd/ccload).
# Everything stays on 127.0.0.1 and stops by itself.
#
# Environment: DURATION (20s), CONNECTIONS (32), THREADS (2, wrk),
# GENERATOR (both | wrk | vegeta), RATE (0: the vegeta run as fast as the
# connections go; N: N requests/s, for latency below saturation), KEEP (a
# directory to keep the profile and binaries in).
set -euo pipefail

cd "$(dirname "$0")"
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
GENERATOR=${GENERATOR:-both}
RATE=${RATE:-0}

secs=${DURATION%s}
case $secs in ''|*[!0-9]*) echo "DURATION must be whole seconds, e.g. 20s" >&2; exit 2 ;; esac

work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# free_port prints a loopback TCP port nothing listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

# cpu_ticks prints a process's user + system CPU time in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# wait_http waits until a URL answers 200.
wait_http() {
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "timed out waiting for $1" >&2
  return 1
}

command -v redis-server >/dev/null || { echo "redis-server is needed (Debian: apt-get install redis-server)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed (Debian: apt-get install curl)" >&2; exit 1; }

echo "building the cluster and the generator..."
go build -o "$work/cluster" ./cmd/cluster
go build -o "$work/ccload" ./cmd/ccload

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null; then break; fi
  sleep 0.05
done

iport=$(free_port); aport=$(free_port); pport=$(free_port)
"$work/cluster" -redis "redis://127.0.0.1:$rport/0" -listen "127.0.0.1:$iport" -admin "127.0.0.1:$aport" \
  -pprof "127.0.0.1:$pport" -out "$work/creds.env" >"$work/cluster.log" 2>&1 &
cluster=$!
pids+=("$cluster")
wait_http "http://127.0.0.1:$aport/readyz"
for _ in $(seq 1 600); do [ -s "$work/creds.env" ] && break; sleep 0.05; done
[ -s "$work/creds.env" ] || { echo "the cluster wrote no credentials; see $work/cluster.log" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/creds.env"
export CLIENT_ID CLIENT_SECRET TOKEN_URL RESOURCE AUTHORIZATION
echo "issuer ready at $TOKEN_URL (2 cores shared by the issuer and the load generator)"
echo

if [ "$GENERATOR" != "vegeta" ]; then
  if command -v wrk >/dev/null; then
    # Warm up (connections, caches, the JIT-less but cold allocator), unmeasured.
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s wrk/client_credentials.lua "$TOKEN_URL" >/dev/null
    curl -fsS -o "$work/cpu.pprof" "http://127.0.0.1:$pport/debug/pprof/profile?seconds=$((secs - 2))" &
    prof=$!
    sleep 1
    hz=$(getconf CLK_TCK)
    ticks0=$(cpu_ticks "$cluster")
    TIMEFORMAT='%U %S'
    { time wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s wrk/client_credentials.lua "$TOKEN_URL" >"$work/wrk.out" ; } 2>"$work/wrk.time"
    ticks1=$(cpu_ticks "$cluster")
    cat "$work/wrk.out"
    wait "$prof"
    reqs=$(awk '/^client_credentials via wrk:/ {print $4}' "$work/wrk.out")
    rate=$(awk '/tokens\/s/ {print $2}' "$work/wrk.out")
    echo
    echo "server CPU profile over $((secs - 2))s of the wrk run (go tool pprof -top):"
    go tool pprof -top -nodecount=30 "$work/cluster" "$work/cpu.pprof" 2>/dev/null | tee "$work/pprof.top" | sed -n '1,40p'
    total=$(awk '/Total samples/ {for (i = 1; i <= NF; i++) if ($i == "=") {v = $(i+1); print v; exit}}' "$work/pprof.top")
    awk -v total="$total" -v rate="$rate" -v psecs="$((secs - 2))" 'BEGIN {
      t = total; unit = 1
      if (t ~ /ms$/) { sub(/ms$/, "", t); unit = 0.001 } else if (t ~ /s$/) { sub(/s$/, "", t) }
      cpu = t * unit
      tokens = rate * psecs
      if (tokens > 0) printf "server CPU per token (pprof): %.1f us (%.2fs of CPU for ~%d tokens; %.0f%% of the 2 cores)\n", 1e6 * cpu / tokens, cpu, tokens, 100 * cpu / psecs / 2
    }'
    # The same from the kernel's accounting over the whole wrk run, with the
    # generator's own cost, and what the two cores could sustain if nothing
    # else ran on them (other processes on a shared box take their share).
    awk -v t0="$ticks0" -v t1="$ticks1" -v hz="$hz" -v reqs="$reqs" -v secs="$secs" -v wt="$(cat "$work/wrk.time")" 'BEGIN {
      split(wt, w, " "); server = (t1 - t0) / hz; gen = w[1] + w[2]
      if (reqs > 0) {
        printf "server CPU per token (kernel): %.1f us; wrk CPU per token: %.1f us\n", 1e6 * server / reqs, 1e6 * gen / reqs
        printf "server + generator used %.0f%% of the 2 cores; at 100%% they would sustain ~%.0f tokens/s\n", 100 * (server + gen) / secs / 2, 2 * reqs / (server + gen)
      }
    }'
    echo
  else
    echo "wrk not installed (Debian: apt-get install wrk); skipping the wrk run" >&2
  fi
fi

if [ "$GENERATOR" != "wrk" ]; then
  "$work/ccload" -connections "$CONNECTIONS" -duration "$DURATION" -warmup 2s -rate "$RATE"
fi
