# syntax=docker/dockerfile:1
#
# One image holding every Valet binary, built from the go.work workspace:
#
#   /usr/local/bin/valet-issuer          services/issuer/cmd/issuer
#   /usr/local/bin/valet-introspection   services/introspection/cmd/introspection
#   /usr/local/bin/valet-revocation      services/revocation/cmd/revocation
#   /usr/local/bin/valet-edge            services/edge/cmd/edge
#   /usr/local/bin/valet                 services/valet (operator CLI)
#   /usr/local/bin/valet-healthcheck     deploy/tools/cmd/healthcheck (container healthcheck)
#
# The container's command picks the service (docker-compose.yml `command:`, the Kubernetes
# manifests' `command:`); without one the image prints the configuration keys. Static binaries
# (CGO_ENABLED=0, -trimpath, stripped) on distroless static: no shell, no package manager, CA
# certificates and tzdata only, user nonroot (65532). Every service reads its configuration from
# VALET_* variables and/or the file named by VALET_CONFIG_FILE (docs/configuration.md).
#
#   docker build -t valet:dev .
#   docker run --rm valet:dev                                  # configuration keys
#   docker run --rm -e VALET_DEV=true valet:dev valet config check

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 \
    GOFLAGS=-trimpath
# The whole workspace: go.work lists the modules, and every service module depends on
# several of them through replace directives. .dockerignore keeps binaries and secrets out.
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eux; \
    mkdir -p /out; \
    for s in issuer introspection revocation edge; do \
      go build -trimpath -ldflags="-s -w" -o /out/valet-$s ./services/$s/cmd/$s; \
    done; \
    go build -trimpath -ldflags="-s -w" -o /out/valet ./services/valet; \
    cd deploy/tools && GOWORK=off go build -trimpath -ldflags="-s -w" -o /out/valet-healthcheck ./cmd/healthcheck

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="Valet" \
      org.opencontainers.image.description="Event-sourced OAuth 2.0 authorization cluster: issuer, introspection, revocation, edge authorizer and CLI" \
      org.opencontainers.image.source="https://github.com/valetauth/valet" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/ /usr/local/bin/
# Non-root, numeric so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# Public listeners (issuer, introspection, revocation, edge) and their admin listeners
# (/metrics, /healthz, /readyz, admin API). Open the admin ones (":9080") in the configuration:
# they default to loopback.
EXPOSE 8080 8081 8082 8083 9080 9081 9082 9083
CMD ["/usr/local/bin/valet", "config", "keys"]
