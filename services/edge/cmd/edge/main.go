// Command edge runs Valet's reference forward-auth authorizer for Envoy
// ext_authz, NGINX auth_request and Traefik forwardAuth, and, with
// services.edge.upstream set, a reverse proxy to that upstream.
//
// It is the one place that reads the configuration (services.edge.audience,
// services.edge.routes_file, services.edge.jwks_url,
// services.edge.upstream; docs/gateway.md) and connects to NATS.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/services/edge"
)

func main() {
	os.Exit(boot.Main("edge", os.Args[1:], build))
}

// build connects to NATS and returns the authorizer ready to run.
func build(_ context.Context, env boot.Env) (boot.Runner, error) {
	cfg := env.Config
	if cfg.NATS.URL == "" {
		return nil, errors.New("edge: nats.url is required (the embedded stand-in runs only inside `valet dev`)")
	}
	audience := cfg.Services.Edge.Audience
	if audience == "" {
		return nil, errors.New("edge: services.edge.audience is required: the audience every token must carry")
	}
	policy, err := edge.LoadPolicy(cfg.Services.Edge.RoutesFile)
	if err != nil {
		return nil, err
	}
	nc, err := boot.NATS(cfg.NATS, "valet-edge")
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("edge: jetstream: %w", err)
	}
	svc, err := edge.New(cfg, edge.Deps{
		Logger: env.Logger, Registry: env.Registry,
		JetStream: js, Audience: audience, Policy: policy,
		Ready: []server.Check{boot.NATSReady(nc)},
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &boot.Service{Serve: svc.Run, Close: nc.Close}, nil
}
