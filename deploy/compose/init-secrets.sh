#!/bin/sh
# Generates the secrets docker-compose.yml mounts into deploy/compose/secrets/ (gitignored):
# the key-encryption key, the Redis and Grafana passwords, one NATS NKey per service, the secrets
# of the admin and demo clients the issuers bootstrap (admin-client-secret, demo-client-secret;
# deploy/compose/issuer.yaml) and a local TLS certificate authority with a certificate for
# valet.localhost. Run it once before the first `docker compose up`; running it again keeps what
# exists (never replace kek-1: the signing keys stored in Redis are sealed with it). Needs Go (the
# generator uses the standard library only).
#
#   deploy/compose/init-secrets.sh               # create what is missing
#   deploy/compose/init-secrets.sh -force-tls    # renew the TLS authority and certificate
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../tools"
GOWORK=off exec go run ./cmd/compose-secrets -out "$here/secrets" "$@"
