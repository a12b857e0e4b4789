// Command introspection runs Valet's RFC 7662 introspection service.
//
// It is the one place that reads the configuration, opens Redis and NATS and
// starts the service's background work: the client cache's event consumer,
// and the token checker's JWKS refresher and key-stream follower.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/server"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/services/introspection"
)

func main() {
	tuneGC()
	os.Exit(boot.Main("introspection", os.Args[1:], build))
}

// tuneGC applies introspection.GCPercent when GOGC is not set.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(introspection.GCPercent)
	}
}

// checkerStartTimeout bounds the checker's first JWKS fetch and key-stream
// replay; past it the service starts anyway and the checker keeps trying
// (access tokens get 503 and /readyz fails until it has both).
const checkerStartTimeout = 30 * time.Second

// build opens every dependency of the service and returns it ready to run.
func build(ctx context.Context, env boot.Env) (boot.Runner, error) {
	cfg, log := env.Config, env.Logger
	if cfg.Redis.URL == "" || cfg.NATS.URL == "" {
		return nil, errors.New("introspection: redis.url and nats.url are required (the embedded stand-ins run only inside `valet dev`)")
	}
	active, keks, err := boot.StandaloneKEKs(cfg, log, "introspection")
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
	// Introspection only reads (one pipelined deny-state check per
	// request): one batch in flight makes deeper pipelines and costs less
	// CPU per request than the default two (docs/introspection.md).
	st, err := boot.Store(ctx, cfg, aead, log, redisstore.WithBatchFlushers(1))
	if err != nil {
		return nil, err
	}
	nc, js, err := boot.JetStream(ctx, cfg, "valet-introspection")
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	closeAll := func() { nc.Close(); _ = st.Close() }
	cache, err := clients.New(st, clients.Config{
		Prefix:         cfg.NATS.SubjectPrefix,
		StalenessBound: cfg.Services.Edge.StalenessBound,
	}, clients.WithLogger(log), clients.WithRegisterer(env.Registry))
	if err != nil {
		closeAll()
		return nil, err
	}
	// The checker follows the key stream: a key revoked as compromised is
	// refused here as soon as its key.revoked arrives, not after the next
	// JWKS refresh (docs/introspection.md, "Keys").
	chk, err := edge.NewChecker(edge.CheckerConfig{
		Issuer:           cfg.Issuer,
		JWKSURL:          cfg.Services.Issuer.URL("/jwks.json"),
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		ClockSkew:        cfg.Tokens.ClockSkew,
		JetStream:        js,
		SubjectPrefix:    cfg.NATS.SubjectPrefix,
		Observer:         introspection.CheckerObserver(log),
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, checkerStartTimeout)
	err = chk.Start(sctx)
	cancel()
	if err != nil {
		// The issuer may start after us: the checker keeps retrying, and
		// until it has keys and the key stream, access tokens get 503 and
		// /readyz fails.
		log.Warn("token checker not ready yet; retrying in the background", zap.Error(err))
	}
	closeAll = func() { _ = chk.Close(); nc.Close(); _ = st.Close() }

	// Request limits at /introspect: in this replica's memory, so that the
	// endpoint keeps its one Redis round trip.
	clientLimits, err := clientlimit.FromConfig(cfg.Limits)
	if err != nil {
		closeAll()
		return nil, err
	}
	svc, err := introspection.New(cfg, introspection.Deps{
		Logger: log, Registry: env.Registry,
		Store: st, Clients: cache, Secrets: hasher, Checker: chk,
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
			func(ctx context.Context) {
				if err := cache.Run(ctx, js); err != nil {
					log.Error("client cache stopped; lookups read the store", zap.Error(err))
				}
			},
		},
	}, nil
}
