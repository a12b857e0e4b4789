#!/usr/bin/env bash
# The floor under the latency figures of `make loadtest` (`make
# loadtest-baseline`; docs/performance.md, "What the box allows").
#
# Builds loadtest/cmd/baseline, a bare net/http server whose handler spends
# a fixed CPU time per request and answers a token-sized body, and drives it
# with wrk exactly as `make loadtest` drives the issuer (one wrk thread, 32
# connections, on the same box), for each CPU cost in BURNS. It prints, per
# cost, the throughput and the latency percentiles wrk saw. No Valet code
# runs: the tail it shows is what Go's net/http, the loopback and two shared
# cores give any server of that cost per request.
#
# Environment: BURNS (CPU per request in µs, "0 30 60 90"), CONNECTIONS
# (32), THREADS (1), DURATION (10s).
set -euo pipefail

cd "$(dirname "$0")"
# shellcheck source=/dev/null
. ./lib.sh
BURNS=${BURNS:-0 30 60 90}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
DURATION=${DURATION:-10s}
command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk)" >&2; exit 1; }

work=$(mktemp -d)
srv=""
cleanup() {
  [ -z "$srv" ] || { kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT


go build -o "$work/baseline" ./cmd/baseline
echo "bare net/http server, wrk -t$THREADS -c$CONNECTIONS -d$DURATION on the same box; load average $(uptime | sed 's/.*load average: //')"
printf "%-14s %10s %9s %9s %9s %9s\n" "CPU/request" "requests/s" "p50" "p90" "p99" "max"
for burn in $BURNS; do
  port=$(free_port)
  "$work/baseline" -listen "127.0.0.1:$port" -burn "${burn}us" >"$work/server.log" 2>&1 &
  srv=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.05
  done
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$port/" >"$work/wrk.out"
  kill "$srv"; wait "$srv" 2>/dev/null || true; srv=""
  awk -v burn="$burn" '
    function ms(v) { if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 } if (v ~ /ms$/) { sub(/ms$/, "", v); return v } if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 } return v }
    $1 == "50%" { p50 = ms($2) } $1 == "90%" { p90 = ms($2) } $1 == "99%" { p99 = ms($2) }
    $1 == "Latency" && NF >= 5 { mx = ms($4) }
    $1 == "Requests/sec:" { rps = $2 }
    END { printf "%-14s %10.0f %7.2fms %7.2fms %7.2fms %7.2fms\n", burn " µs", rps, p50, p90, p99, mx }' "$work/wrk.out"
done
