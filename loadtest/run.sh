#!/usr/bin/env bash
# Load test of the issuer on this box (`make loadtest`; the refresh grant:
# `SCENARIO=refresh make loadtest`).
#
# Starts a redis-server on a free loopback port (persistence off, noeviction,
# as the test harness runs it; or uses REDIS_URL under a key prefix of its
# own), builds and starts loadtest/cmd/cluster (an embedded NATS with
# JetStream and one issuer with its user grants, in one process, with
# pprof), then drives /token at CONNECTIONS connections for DURATION:
#
# SCENARIO=client_credentials (default):
#   - wrk with loadtest/wrk/client_credentials.lua (the headline figure: wrk
#     costs the shared CPU least), while a CPU profile of the server is
#     taken, from which the server CPU per token is computed;
#   - the Go generator on vegeta (loadtest/cmd/ccload).
# SCENARIO=refresh: the refresh-token grant with rotation, one family per
#   connection, each minted through the real grant (login, consent, code
#   exchange with PKCE) by loadtest/cmd/refreshload -mint:
#   - wrk with loadtest/wrk/refresh.lua, profiled the same way;
#   - the Go generator loadtest/cmd/refreshload, profiled too, which also
#     checks the issuer's own counts (no grace replay, no reuse).
#   Any refused rotation, reuse detection above all, is a FAILED run.
#
# Everything stays on 127.0.0.1 and stops by itself.
#
# Environment: SCENARIO (client_credentials | refresh), DURATION (20s),
# CONNECTIONS (32), THREADS (2, wrk), GENERATOR (both | wrk | go; vegeta is
# go), RATE (client credentials with vegeta: 0 as fast as the connections
# go, N requests/s for latency below saturation), NARROW (refresh: a scope
# sent with every refresh), PUBLIC (refresh: 1 for the public client),
# REDIS_URL (an existing Redis instead of a private one), KEEP (a directory
# to keep the profiles and binaries in).
set -euo pipefail

cd "$(dirname "$0")"
# shellcheck source=/dev/null
. ./lib.sh
SCENARIO=${SCENARIO:-client_credentials}
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
GENERATOR=${GENERATOR:-both}
RATE=${RATE:-0}
NARROW=${NARROW:-}
PUBLIC=${PUBLIC:-}

case $SCENARIO in client_credentials|refresh) ;; *) echo "SCENARIO must be client_credentials or refresh" >&2; exit 2 ;; esac
case $GENERATOR in both|wrk|go) ;; vegeta) GENERATOR=go ;; *) echo "GENERATOR must be both, wrk or go" >&2; exit 2 ;; esac
secs=${DURATION%s}
case $secs in ''|*[!0-9]*) echo "DURATION must be whole seconds, e.g. 20s" >&2; exit 2 ;; esac
[ "$secs" -ge 5 ] || { echo "DURATION must be at least 5s (the profile skips the first and last second)" >&2; exit 2; }
psecs=$((secs - 2))

work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT



# wait_http waits until a URL answers 200.
wait_http() {
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "timed out waiting for $1" >&2
  return 1
}

command -v curl >/dev/null || { echo "curl is needed (Debian: apt-get install curl)" >&2; exit 1; }

echo "building the cluster and the generators..."
go build -o "$work/cluster" ./cmd/cluster
go build -o "$work/ccload" ./cmd/ccload
go build -o "$work/refreshload" ./cmd/refreshload

redis_pid=""
if [ -n "${REDIS_URL:-}" ]; then
  redis_url=$REDIS_URL
  prefix="loadtest-$$-$RANDOM:"
  echo "using REDIS_URL under the key prefix $prefix"
else
  command -v redis-server >/dev/null || { echo "redis-server is needed (Debian: apt-get install redis-server) or set REDIS_URL" >&2; exit 1; }
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null; then break; fi
    sleep 0.05
  done
  redis_url="redis://127.0.0.1:$rport/0"
  prefix=""
fi

iport=$(free_port); aport=$(free_port); pport=$(free_port)
"$work/cluster" -redis "$redis_url" -key-prefix "$prefix" -listen "127.0.0.1:$iport" -admin "127.0.0.1:$aport" \
  -pprof "127.0.0.1:$pport" -out "$work/creds.env" >"$work/cluster.log" 2>&1 &
cluster=$!
pids+=("$cluster")
wait_http "http://127.0.0.1:$aport/readyz"
for _ in $(seq 1 600); do [ -s "$work/creds.env" ] && break; sleep 0.05; done
[ -s "$work/creds.env" ] || { echo "the cluster wrote no credentials; see $work/cluster.log" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/creds.env"
export CLIENT_ID CLIENT_SECRET TOKEN_URL RESOURCE AUTHORIZATION AUTHORIZE_URL ISSUER REDIRECT_URI \
  WEB_CLIENT_ID WEB_CLIENT_SECRET WEB_AUTHORIZATION PUBLIC_CLIENT_ID LOGIN_USER LOGIN_PASSWORD
export METRICS_URL="http://127.0.0.1:$aport/metrics"
echo "issuer ready at $TOKEN_URL (2 cores shared by the issuer, Redis and the load generator)"
echo

# redis_stats reset|print: resets, or prints, the private redis-server's
# per-command statistics (calls and microseconds per call inside Redis);
# nothing without redis-cli or with REDIS_URL.
redis_stats() {
  [ -n "$redis_pid" ] && command -v redis-cli >/dev/null || return 0
  if [ "$1" = reset ]; then
    redis-cli -p "$rport" CONFIG RESETSTAT >/dev/null
    return 0
  fi
  echo "redis-server time per command (INFO commandstats):"
  redis-cli -p "$rport" INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
    /^cmdstat_/ { sub(/^cmdstat_/, "", $1); printf "  %-12s %9d calls %8.2f us/call %7.2fs in all\n", $1, $3, $7, $5 / 1e6 }' |
    sort -k6 -g -r | head -8
}

# profiled LABEL OPS_AWK CMD...: runs CMD (its output to stdout and
# $work/LABEL.out) while a CPU profile of the server is taken from second
# PROFILE_DELAY (default 1) for $psecs seconds; then prints the profile's
# top, the server CPU per operation from pprof (at the measured rate) and
# from the kernel's accounting over the whole command, the generator's own
# CPU, and the load average. OPS_AWK is an awk program printing, from the
# command's output, the operations over the whole command and the measured
# rate per second.
profiled() {
  local label=$1 ops_awk=$2
  shift 2
  echo "load average before: $(uptime | sed 's/.*load average: //')"
  ( sleep "${PROFILE_DELAY:-1}"; curl -fsS -o "$work/$label.pprof" "http://127.0.0.1:$pport/debug/pprof/profile?seconds=$psecs" ) &
  local prof=$!
  local hz t0 t1 r0=0 r1=0
  redis_stats reset
  hz=$(getconf CLK_TCK)
  t0=$(cpu_ticks "$cluster")
  [ -z "$redis_pid" ] || r0=$(cpu_ticks "$redis_pid")
  local status=0
  TIMEFORMAT='%R %U %S'
  { time "$@" >"$work/$label.out" 2>"$work/$label.err" ; } 2>"$work/$label.time" || status=$?
  t1=$(cpu_ticks "$cluster")
  [ -z "$redis_pid" ] || r1=$(cpu_ticks "$redis_pid")
  cat "$work/$label.out" "$work/$label.err"
  wait "$prof" || true
  echo "load average after:  $(uptime | sed 's/.*load average: //')"
  [ "$SCENARIO" != refresh ] || redis_stats print
  local ops rate
  read -r ops rate < <(awk "$ops_awk" "$work/$label.out") || true
  echo
  echo "server CPU profile over ${psecs}s of the $label run (go tool pprof -top):"
  go tool pprof -top -nodecount=30 "$work/cluster" "$work/$label.pprof" 2>/dev/null | tee "$work/$label.top" | sed -n '1,40p'
  echo
  echo "where the server's CPU goes (cumulative share of the profile):"
  go tool pprof -top -cum -nodecount=2000 "$work/cluster" "$work/$label.pprof" 2>/dev/null >"$work/$label.cum" || true
  awk '
    BEGIN {
      n = split("net/http.(*conn).serve|issuer.(*tokenEndpoint).serve|issuer.(*refreshGrant).handle|redis.(*Store).RotateRefresh|redis.(*Store).readHint|issuer.(*tokenEndpoint).mint|keys.(*Signer).Sign|clientauth.(*Authenticator).Authenticate|issuer.(*userGrants).publishAudit.func1|events.Event.Encode|revoke.(*Revoker).FamilyEvent|nats-server/v2/server.(*stream).internalLoop|redis/go-redis/v9.(*baseClient)._process|runtime.mallocgc|runtime.gcBgMarkWorker|argon2", want, "|")
    }
    {
      for (i = 1; i <= n; i++) if (!(want[i] in seen) && index($0, want[i]) > 0) { seen[want[i]] = 1; printf "  %-62s %s\n", want[i], $5 }
    }' "$work/$label.cum"
  echo
  awk -v total="$(awk '/Total samples/ {for (i = 1; i <= NF; i++) if ($i == "=") {print $(i+1); exit}}' "$work/$label.top")" \
      -v ops="${ops:-0}" -v rate="${rate:-0}" -v psecs="$psecs" -v wt="$(tail -n 1 "$work/$label.time")" -v t0="$t0" -v t1="$t1" -v r0="$r0" -v r1="$r1" -v redis_private="${redis_pid:+1}" -v hz="$hz" '
    BEGIN {
      split(wt, w, " "); wall = w[1]; gen = w[2] + w[3]; server = (t1 - t0) / hz; redis = (r1 - r0) / hz
      t = total; unit = 1
      if (t ~ /ms$/) { sub(/ms$/, "", t); unit = 0.001 } else if (t ~ /s$/) { sub(/s$/, "", t) }
      cpu = t * unit
      if (ops > 0 && rate > 0 && wall > 0) {
        printf "server CPU per operation (pprof): %.1f us (%.2fs of CPU over %ds at %.0f/s; %.0f%% of the 2 cores)\n", 1e6 * cpu / (rate * psecs), cpu, psecs, rate, 100 * cpu / psecs / 2
        rs = redis_private ? sprintf("%.1f us", 1e6 * redis / ops) : "not measured (REDIS_URL)"
        printf "CPU per operation (kernel, whole run): server %.1f us, redis-server %s, generator %.1f us\n", 1e6 * server / ops, rs, 1e6 * gen / ops
        all = server + redis + gen
        printf "together they used %.0f%% of the 2 cores; with both cores to themselves they would sustain ~%.0f operations/s\n", 100 * all / wall / 2, 2 * ops / all
      }
    }'
  echo
  return "$status"
}

if [ "$SCENARIO" = client_credentials ]; then
  if [ "$GENERATOR" != go ]; then
    if command -v wrk >/dev/null; then
      # Warm up (connections, caches, the cold allocator), unmeasured.
      wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s wrk/client_credentials.lua "$TOKEN_URL" >/dev/null
      profiled wrk-cc '/^client_credentials via wrk:/ {n = $4} /^  tokens\/s/ {r = $2} END {print n, r}' \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s wrk/client_credentials.lua "$TOKEN_URL"
    else
      echo "wrk not installed (Debian: apt-get install wrk); skipping the wrk run" >&2
    fi
  fi
  if [ "$GENERATOR" != wrk ]; then
    "$work/ccload" -connections "$CONNECTIONS" -duration "$DURATION" -warmup 2s -rate "$RATE"
  fi
  exit 0
fi

# SCENARIO=refresh. Each run rotates families minted for it: a seed file
# works once, since the run supersedes every token in it.
fail=0
client=(); wrk_client=(AUTHORIZATION="$WEB_AUTHORIZATION")
if [ "$PUBLIC" = 1 ]; then
  client=(-public)
  wrk_client=(PUBLIC=1 CLIENT_ID="$PUBLIC_CLIENT_ID")
fi
mint() { "$work/refreshload" "${client[@]}" -mint "$CONNECTIONS" -seed-out "$1" -scope "read write"; }

if [ "$GENERATOR" != go ]; then
  if command -v wrk >/dev/null; then
    mint "$work/warm.seed"
    env "${wrk_client[@]}" SEED_FILE="$work/warm.seed" THREADS="$THREADS" NARROW="$NARROW" \
      wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s wrk/refresh.lua "$TOKEN_URL" >"$work/wrk-warm.out" ||
      { cat "$work/wrk-warm.out"; fail=1; }
    grep -q '^PASS' "$work/wrk-warm.out" || { cat "$work/wrk-warm.out"; fail=1; }
    mint "$work/wrk.seed"
    profiled wrk-refresh '/^  rotations\/s/ {r = $2; n = $3; gsub(/[()]/, "", n)} END {print n, r}' \
      env "${wrk_client[@]}" SEED_FILE="$work/wrk.seed" THREADS="$THREADS" NARROW="$NARROW" \
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s wrk/refresh.lua "$TOKEN_URL" || fail=1
    grep -q '^PASS' "$work/wrk-refresh.out" || fail=1
  else
    echo "wrk not installed (Debian: apt-get install wrk); skipping the wrk run" >&2
  fi
fi

if [ "$GENERATOR" != wrk ]; then
  mint "$work/go.seed"
  # refreshload warms up for 2s before it measures: profile from second 3.
  PROFILE_DELAY=3 profiled refreshload '/^  rotations / {r = $3; gsub(/[(\/s;]/, "", r); print $2 + $(NF-4), r}' \
    "$work/refreshload" "${client[@]}" -seed "$work/go.seed" -concurrency "$CONNECTIONS" \
    -duration "$DURATION" -warmup 2s -narrow "$NARROW" || fail=1
fi

if [ "$fail" != 0 ]; then
  echo "FAILED: a refresh run refused rotations (see above)" >&2
  exit 1
fi
