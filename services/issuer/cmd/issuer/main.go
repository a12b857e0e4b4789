// Command issuer runs Valet's issuer service: discovery, JWKS and /token.
//
// It is the one place that reads the configuration, opens Redis and NATS and
// starts the issuer's background work: the signing key ring, the client
// cache's event consumer, the heartbeat and the revocation outbox relay.
// Before it serves, it applies the configuration's declarative bootstrap
// section (pkg/bootstrap, docs/bootstrap.md) and refuses to start when that
// cannot be done.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/bootstrap"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/pkg/users"
	"github.com/valetauth/valet/services/issuer"
)

func main() {
	tuneGC()
	os.Exit(boot.Main("issuer", os.Args[1:], build))
}

// gcPercent is the issuer's GOGC unless the environment sets one. Its own
// token path allocates little, but each ES256 signature allocates about
// 6 KB inside crypto/ecdsa; on the issuer's small live heap the default of
// 100 collects every few milliseconds at full load. 400 keeps the heap in
// the tens of megabytes and saves about a tenth of the CPU per token
// (docs/issuer.md).
const gcPercent = 400

// tuneGC applies gcPercent when GOGC is not set.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
}

// bootstrapTimeout bounds applying the bootstrap section at start: a store that
// does not answer within it stops the start rather than hanging it.
const bootstrapTimeout = 2 * time.Minute

// build opens every dependency of the issuer and returns it ready to run.
func build(ctx context.Context, env boot.Env) (_ boot.Runner, err error) {
	cfg, log := env.Config, env.Logger
	if err := boot.RequireServers(cfg, "issuer"); err != nil {
		return nil, err
	}
	// The bootstrap section's references are read first, so that a missing
	// secret stops the start before anything is opened.
	var spec bootstrap.Spec
	if !cfg.Bootstrap.Empty() {
		if spec, err = bootstrap.Resolve(cfg, nil); err != nil {
			return nil, fmt.Errorf("declarative bootstrap refused (docs/bootstrap.md):\n%w", err)
		}
	}
	active, keks, err := boot.StandaloneKEKs(cfg, log, "issuer")
	if err != nil {
		return nil, err
	}
	ring, err := keys.NewKEKRing(active, keks)
	if err != nil {
		return nil, err
	}
	d, err := boot.OpenKEKs(ctx, env, "issuer", active, keks)
	if err != nil {
		return nil, err
	}
	defer d.CloseOnError(&err)
	st, hasher, rdb := d.Store, d.Hasher, d.Store.Client()
	pub, err := bus.NewPublisher(d.JetStream, cfg.NATS.SubjectPrefix)
	if err != nil {
		return nil, err
	}
	// What the key manager, the bootstrap and the admin API publish.
	publish := boot.PublishFunc(pub)

	km, err := keys.New(boot.KeysConfig(cfg), st, publish, ring, keys.WithLogger(log), keys.WithRegisterer(env.Registry))
	if err != nil {
		return nil, err
	}
	beat, err := boot.NewHeartbeater(env, pub, "issuer")
	if err != nil {
		return nil, err
	}
	rev, relay, err := boot.NewRevoker(env, st, pub)
	if err != nil {
		return nil, err
	}
	cache, err := boot.NewClientCache(env, st)
	if err != nil {
		return nil, err
	}
	// CORS allow-list: every enabled public client's origins, re-read from
	// the registry every few seconds; empty until the first read.
	origins, err := cors.NewRegistry(st, cors.WithLogger(log))
	if err != nil {
		return nil, err
	}

	// The admin API's tokens are checked by the edge's own code, against
	// this replica's key ring served in-process (issuer.LocalJWKS).
	ccfg := boot.CheckerConfig(cfg, d.JetStream)
	ccfg.HTTPClient = &http.Client{Transport: issuer.LocalJWKS(km), Timeout: 10 * time.Second}
	// In-process and cheap: a revoked key stops admitting admin tokens
	// within seconds, and a key activated by `valet keys rotate
	// --immediate` is learnt on its first token.
	ccfg.RefreshInterval, ccfg.UnknownKIDInterval = 5*time.Second, 10*time.Millisecond
	chk, err := edge.NewChecker(ccfg)
	if err != nil {
		return nil, err
	}
	if err := boot.StartChecker(ctx, chk.Start); err != nil {
		// The key ring loads when Run starts; the checker retries.
		log.Debug("admin token checker: keys not loaded yet", zap.Error(err))
	}
	d.OnClose(chk)

	// Users live in the same Redis, under the same prefix (pkg/users).
	userStore := users.NewRedis(rdb, cfg.Redis.KeyPrefix)
	ua, err := users.NewAuthenticator(userStore, users.DefaultParams)
	if err != nil {
		return nil, err
	}
	// Declarative bootstrap: the declared records are in the store, as
	// declared, before the first request is served. Replicas starting
	// together all apply it; the store's create and compare-and-set make
	// that safe.
	if !spec.Empty() {
		bctx, cancel := context.WithTimeout(ctx, bootstrapTimeout)
		_, err := bootstrap.Apply(bctx, spec, bootstrap.Deps{
			Registry: st, Hasher: hasher, Users: userStore, PasswordParams: users.DefaultParams,
			Publisher: publish, Source: cfg.Issuer, Revoker: rev,
			Logger: log.With(zap.String("component", "bootstrap")), Registerer: env.Registry,
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("declarative bootstrap not applied (docs/bootstrap.md): %w", err)
		}
	}
	// Password-guessing limits, shared by every replica through Redis.
	limiter, err := ratelimit.NewLogin(rdb, cfg.Redis.KeyPrefix, ratelimit.LoginConfig{
		AccountFailures: cfg.Limits.LoginFailuresPerAccount, AddrFailures: cfg.Limits.LoginFailuresPerIP,
	})
	if err != nil {
		return nil, err
	}
	// Request limits at /token and /device_authorization: in this
	// replica's memory, never a Redis round trip on the hot path.
	clientLimits, err := clientlimit.FromConfig(cfg.Limits)
	if err != nil {
		return nil, err
	}
	svc, err := issuer.New(cfg, issuer.Deps{
		Logger: log, Registry: env.Registry, Origins: origins,
		Store: st, Keys: km, Clients: cache, Secrets: hasher,
		Grants: st, Sessions: st, Users: ua, Revoker: rev, Audit: pub, LoginLimiter: limiter,
		ClientLimits: clientLimits,
		Admin: &issuer.AdminDeps{
			Store: st, Checker: chk, Revoker: rev, Keys: km, Hasher: hasher, Cache: cache, Publisher: publish,
		},
		Ready: []server.Check{boot.NATSReady(d.NATS)},
	})
	if err != nil {
		return nil, err
	}
	return &boot.Service{
		Serve: svc.Run,
		Close: d.Close,
		Background: []func(context.Context){
			func(ctx context.Context) { _ = km.Run(ctx) },
			// Key events of other replicas and `valet keys revoke` refresh the
			// ring at once, not at the next refresh interval.
			func(ctx context.Context) { _ = km.Follow(ctx, d.JetStream, cfg.NATS.SubjectPrefix) },
			func(ctx context.Context) { _ = beat.Run(ctx) },
			func(ctx context.Context) { relay.Run(ctx) },
			origins.Run,
			boot.FollowClients(cache, d.JetStream, log),
		},
	}, nil
}
