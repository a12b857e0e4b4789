# Valet build, test and benchmark entry points. Every target works from a fresh
# clone with Go and make; `make test` is what CI runs (through .ci/run).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

# Every module of the workspace, as directories relative to the repository root.
MODULES := $(shell go list -m -f '{{.Dir}}' | sed "s|^$(CURDIR)/||")
GOTESTFLAGS ?= -race -count=1 -timeout 20m
BENCHFLAGS ?= -run '^$$' -bench . -benchmem -benchtime 2s

.PHONY: all test fmt-check vet unit-test deps-check build bench loadtest loadtest-refresh loadtest-baseline propagation run lint tidy clean

all: build

## test: gofmt check, go vet, dependency-shape checks and go test -race over every module.
test: fmt-check vet deps-check unit-test

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	@for m in $(MODULES); do echo "vet $$m"; (cd $$m && go vet ./...); done

unit-test:
	@for m in $(MODULES); do echo "test $$m"; (cd $$m && go test $(GOTESTFLAGS) ./...); done

## deps-check: events imports only the standard library; pkg/edge's module graph
## holds no Redis, bbolt or echo, so gateways embedding it never inherit them;
## every module's go.mod and go.sum are tidy.
deps-check:
	@bad=$$(cd events && go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./... | grep -v '^github.com/valetauth/valet/events' || true); \
	 if [ -n "$$bad" ]; then echo "events imports non-standard packages:"; echo "$$bad"; exit 1; fi
	@bad=$$(cd pkg/edge && GOWORK=off GOFLAGS=-mod=mod go mod graph | grep -E 'redis/go-redis|go-redis/redis|go\.etcd\.io/bbolt|boltdb|labstack/echo' || true); \
	 if [ -n "$$bad" ]; then echo "pkg/edge module graph pulls in forbidden modules:"; echo "$$bad"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy -diff >/dev/null) || { echo "$$m: go.mod/go.sum not tidy (run make tidy):"; (cd $$m && GOWORK=off go mod tidy -diff); exit 1; }; done
	@echo "deps-check ok"

## build: every service binary into bin/.
build:
	@mkdir -p bin
	@for s in issuer introspection revocation edge; do (cd services/$$s && go build -o ../../bin/$$s ./cmd/$$s); done
	@cd services/valet && go build -o ../../bin/valet .

## bench: Go benchmarks of every module (prints figures; not part of test).
bench:
	@for m in $(MODULES); do (cd $$m && go test $(BENCHFLAGS) ./...) | grep -E '^(Benchmark|ok|FAIL|---|goos|cpu|pkg|    )' || true; done

## loadtest: the load generators under loadtest/ against a locally started cluster.
loadtest:
	@if [ -x loadtest/run.sh ]; then loadtest/run.sh; else echo "no load scenarios yet"; fi

## loadtest-refresh: the refresh-token grant with rotation (wrk, then the Go generator; issue #6).
loadtest-refresh:
	SCENARIO=refresh loadtest/run.sh

## loadtest-baseline: a bare net/http server at 0-90 µs of CPU per request under the same wrk load: the latency floor of this box.
loadtest-baseline:
	loadtest/baseline.sh

## propagation: revocation propagation, burst and 1M replay across 1/4/16 edges (about 3 minutes).
propagation:
	loadtest/propagation.sh

## run: the whole system in one process (embedded NATS and store).
run:
	go run ./services/valet dev

## lint: gofmt, vet and staticcheck when installed.
lint: fmt-check vet
	@if command -v staticcheck >/dev/null; then for m in $(MODULES); do (cd $$m && staticcheck ./...); done; else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@latest"; fi

## tidy: go mod tidy in every module.
tidy:
	@for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy); done

clean:
	rm -rf bin
