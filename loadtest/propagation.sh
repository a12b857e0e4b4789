#!/usr/bin/env bash
# Revocation propagation benchmark (MISSION §3): 200 of /revoke → every edge
# rejects, at a steady rate and in a burst of 10,000, for 1, 4 and 16 edges;
# edge memory per revoked jti; edge rebuild by replay of 1M events.
#
# Builds and runs loadtest/cmd/propagation, which starts its own
# redis-server (free loopback port, temporary directory; or REDIS_URL) and an
# embedded NATS with JetStream (or NATS_URL), the revocation service, a JWKS
# source and the edges, all on this box, and prints the tables.
#
#   loadtest/propagation.sh              # full run (about 3–4 minutes on 2 cores)
#   loadtest/propagation.sh -quick       # under a minute
#   loadtest/propagation.sh -edges 16 -phases burst -burst 20000
#   loadtest/propagation.sh -phases replay -replay-runs 10 -replay-compare /tmp/before -replay-hogs 1
#       # the replay alone, ten fresh edges over one stream, every second one
#       # the edge of another build (go build -o /tmp/before ./cmd/propagation
#       # at the commit to compare with), each beside one CPU hog
#
# Every argument goes to the program (-h lists the flags).
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null || { echo "redis-server is needed (Debian: apt-get install redis-server) or set REDIS_URL" >&2; exit 1; }
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/propagation" ./cmd/propagation
"$work/propagation" "$@"
