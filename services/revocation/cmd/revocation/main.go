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
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
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
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/server"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/services/revocation"
)

func main() {
	os.Exit(boot.Main("revocation", os.Args[1:], build))
}

// successorInfo and devKEKSeed must match the issuer's (services/issuer
// cmd): the store and the client secret hashes are shared.
const (
	successorInfo = "valet refresh successor v1"
	devKEKSeed    = "valet dev-mode key-encryption key: protects nothing"
)

// build opens every dependency of the service and returns it ready to run.
func build(ctx context.Context, env boot.Env) (boot.Runner, error) {
	cfg, log := env.Config, env.Logger
	if cfg.Redis.URL == "" || cfg.NATS.URL == "" {
		return nil, errors.New("revocation: redis.url and nats.url are required (the embedded stand-ins run only inside `valet dev`)")
	}
	active, keks, err := resolveKEKs(cfg, log)
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
	nc, err := boot.NATS(cfg.NATS, "valet-revocation")
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	closeAll := func() { nc.Close(); _ = st.Close() }
	js, err := jetstream.New(nc)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("revocation: jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = bus.EnsureStreams(sctx, js, bus.StreamsConfig{
		Prefix:                 cfg.NATS.SubjectPrefix,
		MaxAccessTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		RetentionMargin:        cfg.Tokens.ClockSkew + cfg.NATS.StreamMargin,
		Replicas:               cfg.NATS.StreamReplicas,
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
	beat, err := bus.NewHeartbeater(pub, cfg.Issuer, events.Heartbeat{Service: "revocation", Instance: instanceID()},
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
	chk, err := edge.NewChecker(edge.CheckerConfig{
		Issuer:           cfg.Issuer,
		JWKSURL:          cfg.Services.Issuer.URL("/jwks.json"),
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		ClockSkew:        cfg.Tokens.ClockSkew,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	if err := chk.Start(ctx); err != nil {
		// The issuer may start after us: the checker keeps retrying, and
		// until it has keys access tokens get 503 and /readyz fails.
		log.Warn("JWKS not fetched yet; retrying in the background", zap.Error(err))
	}
	closeAll = func() { _ = chk.Close(); nc.Close(); _ = st.Close() }

	svc, err := revocation.New(cfg, revocation.Deps{
		Logger: log, Registry: env.Registry,
		Store: st, Revoker: rev, Clients: cache, Secrets: hasher, Checker: chk,
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
	return &runner{
		svc:   svc,
		close: closeAll,
		background: []func(context.Context){
			func(ctx context.Context) { _ = beat.Run(ctx) },
			func(ctx context.Context) { relay.Run(ctx) },
			func(ctx context.Context) {
				if err := cache.Run(ctx, js); err != nil {
					log.Error("client cache stopped; lookups read the store", zap.Error(err))
				}
			},
		},
	}, nil
}

// runner runs the background work beside the server, and stops it after the
// server has drained.
type runner struct {
	svc        *revocation.Service
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

// resolveKEKs reads the key-encryption keys the configuration names (client
// secret hashes are keyed with them). In dev mode without any it supplies
// the issuer's fixed development key, with a warning.
func resolveKEKs(cfg *config.Config, log *zap.Logger) (string, map[string][]byte, error) {
	if len(cfg.Keys.EncryptionKeys) == 0 {
		if !cfg.Dev {
			return "", nil, errors.New("revocation: keys.encryption_keys is required outside dev mode (client secrets are hashed with them)")
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

// successorAEAD returns AES-256-GCM under HKDF-SHA256(kek, successorInfo),
// as the issuer derives it.
func successorAEAD(kek []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, kek, nil, successorInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("revocation: derive successor key: %w", err)
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
