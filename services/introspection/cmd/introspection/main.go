// Command introspection runs Valet's RFC 7662 introspection service.
//
// It is the one place that reads the configuration, opens Redis and NATS and
// starts the service's background work: the client cache's event consumer,
// and the token checker's JWKS refresher and key-stream follower.
package main

import (
	"context"
	"os"
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
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

// build opens every dependency of the service and returns it ready to run.
func build(ctx context.Context, env boot.Env) (_ boot.Runner, err error) {
	cfg, log := env.Config, env.Logger
	// Introspection only reads (one pipelined deny-state check per
	// request): one batch in flight makes deeper pipelines and costs less
	// CPU per request than the default two (docs/introspection.md).
	d, err := boot.Open(ctx, env, "introspection", redisstore.WithBatchFlushers(1))
	if err != nil {
		return nil, err
	}
	defer d.CloseOnError(&err)
	cache, err := boot.NewClientCache(env, d.Store)
	if err != nil {
		return nil, err
	}
	// The checker follows the key stream: a key revoked as compromised is
	// refused here as soon as its key.revoked arrives, not after the next
	// JWKS refresh (docs/introspection.md, "Keys").
	ccfg := boot.CheckerConfig(cfg, d.JetStream)
	ccfg.Observer = introspection.CheckerObserver(log)
	chk, err := edge.NewChecker(ccfg)
	if err != nil {
		return nil, err
	}
	if err := boot.StartChecker(ctx, chk.Start); err != nil {
		// The issuer may start after us: the checker keeps retrying, and
		// until it has keys and the key stream, access tokens get 503 and
		// /readyz fails.
		log.Warn("token checker not ready yet; retrying in the background", zap.Error(err))
	}
	d.OnClose(chk)

	// Request limits at /introspect: in this replica's memory, so that the
	// endpoint keeps its one Redis round trip.
	clientLimits, err := clientlimit.FromConfig(cfg.Limits)
	if err != nil {
		return nil, err
	}
	svc, err := introspection.New(cfg, introspection.Deps{
		Logger: log, Registry: env.Registry,
		Store: d.Store, Clients: cache, Secrets: d.Hasher, Checker: chk,
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
		Serve:      svc.Run,
		Close:      d.Close,
		Background: []func(context.Context){boot.FollowClients(cache, d.JetStream, log)},
	}, nil
}
