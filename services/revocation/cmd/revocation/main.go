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
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/services/revocation"
)

func main() {
	os.Exit(boot.Main("revocation", os.Args[1:], build))
}

// build opens every dependency of the service and returns it ready to run.
func build(ctx context.Context, env boot.Env) (boot.Runner, error) {
	cfg, log := env.Config, env.Logger
	if cfg.Redis.URL == "" || cfg.NATS.URL == "" {
		return nil, errors.New("revocation: redis.url and nats.url are required (the embedded stand-ins run only inside `valet dev`)")
	}
	active, keks, err := boot.StandaloneKEKs(cfg, log, "revocation")
	if err != nil {
		return nil, err
	}
	hasher, err := secret.NewHasher(active, keks)
	if err != nil {
		return nil, err
	}
	aead, err := boot.SuccessorAEAD(keks[active])
	if err != nil {
		return nil, err
	}
	st, err := boot.Store(ctx, cfg, aead, log)
	if err != nil {
		return nil, err
	}
	nc, js, err := boot.JetStream(ctx, cfg, "valet-revocation")
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	closeAll := func() { nc.Close(); _ = st.Close() }
	pub, err := bus.NewPublisher(js, cfg.NATS.SubjectPrefix)
	if err != nil {
		closeAll()
		return nil, err
	}
	beat, err := bus.NewHeartbeater(pub, cfg.Issuer, events.Heartbeat{Service: "revocation", Instance: boot.InstanceID()},
		bus.WithHeartbeatInterval(cfg.NATS.HeartbeatInterval),
		bus.WithHeartbeatErrorHook(func(err error) { log.Warn("heartbeat not published", zap.Error(err)) }))
	if err != nil {
		closeAll()
		return nil, err
	}
	rev, err := revoke.New(revoke.Config{
		Source: cfg.Issuer, Prefix: cfg.NATS.SubjectPrefix, Retain: cfg.Tokens.ReplayWindow(),
	}, st, pub, revoke.WithLogger(log), revoke.WithRegisterer(env.Registry))
	if err != nil {
		closeAll()
		return nil, err
	}
	relay := revoke.NewRelay(rev, time.Second, env.Registry)
	cache, err := clients.New(st, clients.Config{
		Prefix:         cfg.NATS.SubjectPrefix,
		StalenessBound: cfg.Services.Edge.StalenessBound,
	}, clients.WithLogger(log), clients.WithRegisterer(env.Registry))
	if err != nil {
		closeAll()
		return nil, err
	}
	// CORS allow-list: every enabled public client's origins, re-read from
	// the registry every few seconds; empty until the first read.
	origins, err := cors.NewRegistry(st, cors.WithLogger(log))
	if err != nil {
		closeAll()
		return nil, err
	}
	chk, err := edge.NewChecker(edge.CheckerConfig{
		Issuer:           cfg.Issuer,
		JWKSURL:          cfg.Services.Issuer.URL("/jwks.json"),
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		ClockSkew:        cfg.Tokens.ClockSkew,
		// Key events make the checker refetch JWKS at once, so a key
		// revoked as compromised stops verifying here within milliseconds.
		JetStream:     js,
		SubjectPrefix: cfg.NATS.SubjectPrefix,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	sctx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	err = chk.Start(sctx)
	cancelStart()
	if err != nil {
		// The issuer may start after us: the checker keeps retrying, and
		// until it has keys access tokens get 503 and /readyz fails.
		log.Warn("JWKS not fetched yet; retrying in the background", zap.Error(err))
	}
	closeAll = func() { _ = chk.Close(); nc.Close(); _ = st.Close() }

	// Request limits at /revoke: in this replica's memory, never a Redis
	// round trip.
	clientLimits, err := clientlimit.FromConfig(cfg.Limits)
	if err != nil {
		closeAll()
		return nil, err
	}
	svc, err := revocation.New(cfg, revocation.Deps{
		Logger: log, Registry: env.Registry, Origins: origins,
		Store: st, Revoker: rev, Clients: cache, Secrets: hasher, Checker: chk,
		ClientLimits: clientLimits,
		Ready: []server.Check{
			{Name: "nats", Fn: func(context.Context) error {
				if s := nc.Status(); s != nats.CONNECTED {
					return fmt.Errorf("nats %s", s)
				}
				return nil
			}},
			{Name: "jwks", Fn: func(context.Context) error { return chk.Ready() }},
		},
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	return &boot.Service{
		Serve: svc.Run,
		Close: closeAll,
		Background: []func(context.Context){
			func(ctx context.Context) { _ = beat.Run(ctx) },
			func(ctx context.Context) { relay.Run(ctx) },
			origins.Run,
			func(ctx context.Context) {
				if err := cache.Run(ctx, js); err != nil {
					log.Error("client cache stopped; lookups read the store", zap.Error(err))
				}
			},
		},
	}, nil
}
