// Command edge runs Valet's reference forward-auth authorizer for Envoy
// ext_authz, NGINX auth_request and Traefik forwardAuth.
//
// It is the one place that reads the configuration and the edge's own
// environment (VALET_EDGE_AUDIENCE, VALET_EDGE_ROUTES_FILE; docs/gateway.md)
// and connects to NATS.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/services/edge"
)

// The edge's settings that the configuration file has no key for yet.
const (
	// audienceEnv names the audience the authorizer protects.
	audienceEnv = "VALET_EDGE_AUDIENCE"
	// routesEnv names the route policy file (per-route required scopes).
	routesEnv = "VALET_EDGE_ROUTES_FILE"
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
	audience := os.Getenv(audienceEnv)
	if audience == "" {
		return nil, fmt.Errorf("edge: %s is required: the audience every token must carry", audienceEnv)
	}
	policy, err := edge.LoadPolicy(os.Getenv(routesEnv))
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
		Ready: []server.Check{{Name: "nats", Fn: func(context.Context) error {
			if s := nc.Status(); s != nats.CONNECTED {
				return fmt.Errorf("nats %s", s)
			}
			return nil
		}}},
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &runner{svc: svc, nc: nc}, nil
}

// runner closes the NATS connection once the service has stopped.
type runner struct {
	svc *edge.Service
	nc  *nats.Conn
}

// Run serves until ctx ends, then closes NATS.
func (r *runner) Run(ctx context.Context) error {
	defer r.nc.Close()
	return r.svc.Run(ctx)
}
