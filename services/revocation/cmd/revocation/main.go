// Command revocation runs Valet's revocation service: RFC 7009 /revoke and
// the admin revocation API.
//
// It is the one place that reads the configuration, opens Redis and NATS and
// starts the service's background work: the revoke primitive's outbox relay,
// the client cache's event consumer, the heartbeat and the JWKS refresher of
// the token checker.
package main

import (
	"context"
	"os"

	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/services/revocation"
)

func main() {
	os.Exit(boot.Main("revocation", os.Args[1:], build))
}

// build opens every dependency of the service and returns it ready to run.
func build(ctx context.Context, env boot.Env) (_ boot.Runner, err error) {
	cfg, log := env.Config, env.Logger
	d, err := boot.Open(ctx, env, "revocation")
	if err != nil {
		return nil, err
	}
	defer d.CloseOnError(&err)
	pub, err := bus.NewPublisher(d.JetStream, cfg.NATS.SubjectPrefix)
	if err != nil {
		return nil, err
	}
	beat, err := boot.NewHeartbeater(env, pub, "revocation")
	if err != nil {
		return nil, err
	}
	rev, relay, err := boot.NewRevoker(env, d.Store, pub)
	if err != nil {
		return nil, err
	}
	cache, err := boot.NewClientCache(env, d.Store)
	if err != nil {
		return nil, err
	}
	// CORS allow-list: every enabled public client's origins, re-read from
	// the registry every few seconds; empty until the first read.
	origins, err := cors.NewRegistry(d.Store, cors.WithLogger(log))
	if err != nil {
		return nil, err
	}
	// Key events make the checker refetch JWKS at once, so a key revoked as
	// compromised stops verifying here within milliseconds.
	chk, err := edge.NewChecker(boot.CheckerConfig(cfg, d.JetStream))
	if err != nil {
		return nil, err
	}
	if err := boot.StartChecker(ctx, chk.Start); err != nil {
		// The issuer may start after us: the checker keeps retrying, and
		// until it has keys access tokens get 503 and /readyz fails.
		log.Warn("JWKS not fetched yet; retrying in the background", zap.Error(err))
	}
	d.OnClose(chk)

	// Request limits at /revoke: in this replica's memory, never a Redis
	// round trip.
	clientLimits, err := clientlimit.FromConfig(cfg.Limits)
	if err != nil {
		return nil, err
	}
	svc, err := revocation.New(cfg, revocation.Deps{
		Logger: log, Registry: env.Registry, Origins: origins,
		Store: d.Store, Revoker: rev, Clients: cache, Secrets: d.Hasher, Checker: chk,
		ClientLimits: clientLimits,
		Ready: []server.Check{
			boot.NATSReady(d.NATS),
			{Name: "jwks", Fn: func(context.Context) error { return chk.Ready() }},
		},
	})
	if err != nil {
		return nil, err
	}
	return &boot.Service{
		Serve: svc.Run,
		Close: d.Close,
		Background: []func(context.Context){
			func(ctx context.Context) { _ = beat.Run(ctx) },
			func(ctx context.Context) { relay.Run(ctx) },
			origins.Run,
			boot.FollowClients(cache, d.JetStream, log),
		},
	}, nil
}
