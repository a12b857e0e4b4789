// Package tools holds nothing but this comment: the module is home to two small commands the
// deployment files use, kept out of the service modules because neither is part of Valet itself.
//
//   - cmd/healthcheck (valet-healthcheck in the image): the container healthcheck of the
//     distroless image, which has no shell, curl or wget.
//   - cmd/compose-secrets: generates the secrets docker-compose.yml mounts (key-encryption key,
//     Redis password, NATS NKeys, the secrets of the clients the issuers bootstrap, a local TLS
//     certificate authority), once, before the first `docker compose up`.
//
// Both use the standard library only, so `GOWORK=off go build` works offline.
package tools
