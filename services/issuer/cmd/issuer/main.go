// Command issuer runs Valet's issuer service: discovery, JWKS and /token.
//
// It is the one place that reads the configuration, opens Redis and NATS and
// starts the issuer's background work: the signing key ring, the client
// cache's event consumer, the heartbeat and the revocation outbox relay.
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/server"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
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

// successorInfo is the HKDF info of the AEAD that seals refresh-token
// successors in the store (pkg/store/redis), derived from the active
// key-encryption key.
const successorInfo = "valet refresh successor v1"

// devKEKSeed derives the key-encryption key of a dev-mode issuer started
// without one: fixed, so restarts can open the keys they sealed, and
// protecting nothing (docs/configuration.md, dev mode).
const devKEKSeed = "valet dev-mode key-encryption key: protects nothing"

// build opens every dependency of the issuer and returns it ready to run.
func build(ctx context.Context, env boot.Env) (boot.Runner, error) {
	cfg, log := env.Config, env.Logger
	if cfg.Redis.URL == "" || cfg.NATS.URL == "" {
		return nil, errors.New("issuer: redis.url and nats.url are required (the embedded stand-ins run only inside `valet dev`)")
	}
	active, keks, err := resolveKEKs(cfg, log)
	if err != nil {
		return nil, err
	}
	ring, err := keys.NewKEKRing(active, keks)
	if err != nil {
		return nil, err
	}
	hasher, err := secret.NewHasher(active, keks)
	if err != nil {
		return nil, err
	}
	aead, err := successorAEAD(keks[active])
	if err != nil {
		return nil, err
	}

	rdb, err := boot.Redis(ctx, cfg.Redis)
	if err != nil {
		return nil, err
	}
	st, err := redisstore.New(ctx, rdb, aead, redisstore.WithPrefix(cfg.Redis.KeyPrefix), redisstore.WithLogger(log),
		redisstore.WithDenyRetention(cfg.Tokens.ReplayWindow()), redisstore.WithMaxGrantLifetime(cfg.Tokens.RefreshAbsoluteLifetime))
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	nc, err := boot.NATS(cfg.NATS, "valet-issuer")
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	closeAll := func() { nc.Close(); _ = st.Close() }
	js, err := jetstream.New(nc)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("issuer: jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = bus.EnsureStreams(sctx, js, bus.StreamsConfig{
		Prefix:                 cfg.NATS.SubjectPrefix,
		MaxAccessTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		// config's StreamRetention: the replay window plus the margin.
		RetentionMargin: cfg.Tokens.ClockSkew + cfg.NATS.StreamMargin,
		Replicas:        cfg.NATS.StreamReplicas,
	})
	cancel()
	if err != nil {
		closeAll()
		return nil, err
	}
	pub, err := bus.NewPublisher(js, cfg.NATS.SubjectPrefix)
	if err != nil {
		closeAll()
		return nil, err
	}

	km, err := keys.New(keys.Config{
		Source:           cfg.Issuer,
		JWKSURI:          cfg.Services.Issuer.URL("/jwks.json"),
		Algorithm:        cfg.Keys.Algorithm,
		RotationInterval: cfg.Keys.RotationInterval,
		PublishLeadTime:  cfg.Keys.PublishLeadTime,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		ClockSkew:        cfg.Tokens.ClockSkew,
	}, st, keys.PublisherFunc(func(ctx context.Context, e events.Event) error {
		_, err := pub.Publish(ctx, e)
		return err
	}), ring, keys.WithLogger(log), keys.WithRegisterer(env.Registry))
	if err != nil {
		closeAll()
		return nil, err
	}
	beat, err := bus.NewHeartbeater(pub, cfg.Issuer, events.Heartbeat{Service: "issuer", Instance: instanceID()},
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

	// The admin API's tokens are checked by the edge's own code, against
	// this replica's key ring served in-process (issuer.LocalJWKS).
	chk, err := edge.NewChecker(edge.CheckerConfig{
		Issuer:           cfg.Issuer,
		JWKSURL:          cfg.Services.Issuer.URL("/jwks.json"),
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		ClockSkew:        cfg.Tokens.ClockSkew,
		HTTPClient:       &http.Client{Transport: issuer.LocalJWKS(km), Timeout: 10 * time.Second},
		// In-process and cheap: a revoked key stops admitting admin tokens
		// within seconds, and a key activated by `valet keys rotate
		// --immediate` is learnt on its first token.
		RefreshInterval:    5 * time.Second,
		UnknownKIDInterval: 10 * time.Millisecond,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	if err := chk.Start(ctx); err != nil {
		// The key ring loads when Run starts; the checker retries.
		log.Debug("admin token checker: keys not loaded yet", zap.Error(err))
	}
	closeAll = func() { _ = chk.Close(); nc.Close(); _ = st.Close() }

	// Users live in the same Redis, under the same prefix (pkg/users).
	ua, err := users.NewAuthenticator(users.NewRedis(rdb, cfg.Redis.KeyPrefix), users.DefaultParams)
	if err != nil {
		closeAll()
		return nil, err
	}
	// Password-guessing limits, shared by every replica through Redis.
	limiter, err := ratelimit.NewLogin(rdb, cfg.Redis.KeyPrefix, ratelimit.LoginConfig{
		AccountFailures: cfg.Limits.LoginFailuresPerAccount, AddrFailures: cfg.Limits.LoginFailuresPerIP,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	svc, err := issuer.New(cfg, issuer.Deps{
		Logger: log, Registry: env.Registry, Origins: origins,
		Store: st, Keys: km, Clients: cache, Secrets: hasher,
		Grants: st, Sessions: st, Users: ua, Revoker: rev, Audit: pub, LoginLimiter: limiter,
		Admin: &issuer.AdminDeps{
			Store: st, Checker: chk, Revoker: rev, Keys: km, Hasher: hasher, Cache: cache,
			Publisher: keys.PublisherFunc(func(ctx context.Context, e events.Event) error {
				_, err := pub.Publish(ctx, e)
				return err
			}),
		},
		Ready: []server.Check{{Name: "nats", Fn: func(context.Context) error {
			if s := nc.Status(); s != nats.CONNECTED {
				return fmt.Errorf("nats %s", s)
			}
			return nil
		}}},
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	return &runner{
		svc:   svc,
		close: closeAll,
		background: []func(context.Context){
			func(ctx context.Context) { _ = km.Run(ctx) },
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

// runner runs the issuer's background work beside its server, and stops it
// after the server has drained.
type runner struct {
	svc        *issuer.Service
	background []func(context.Context)
	close      func()
}

// Run serves until ctx ends, drains in-flight requests, then stops the
// background work and closes NATS and Redis.
func (r *runner) Run(ctx context.Context) error {
	bctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, fn := range r.background {
		wg.Add(1)
		go func() { defer wg.Done(); fn(bctx) }()
	}
	err := r.svc.Run(ctx)
	cancel()
	wg.Wait()
	r.close()
	return err
}

// resolveKEKs reads the key-encryption keys the configuration names. In dev
// mode without any it supplies a fixed development key, with a warning.
func resolveKEKs(cfg *config.Config, log *zap.Logger) (string, map[string][]byte, error) {
	if len(cfg.Keys.EncryptionKeys) == 0 {
		if !cfg.Dev {
			return "", nil, errors.New("issuer: keys.encryption_keys is required outside dev mode")
		}
		log.Warn("dev mode without keys.encryption_keys: using the fixed development key-encryption key, which protects nothing")
		k := sha256.Sum256([]byte(devKEKSeed))
		return "dev", map[string][]byte{"dev": k[:]}, nil
	}
	keks := make(map[string][]byte, len(cfg.Keys.EncryptionKeys))
	for _, e := range cfg.Keys.EncryptionKeys {
		k, err := e.Resolve(nil)
		if err != nil {
			return "", nil, err
		}
		keks[e.ID] = k
	}
	return cfg.Keys.ActiveEncryptionKey, keks, nil
}

// successorAEAD returns AES-256-GCM under HKDF-SHA256(kek, successorInfo).
func successorAEAD(kek []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, kek, nil, successorInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("issuer: derive successor key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// instanceID names this process in heartbeats: host, pid and a random tag.
func instanceID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
