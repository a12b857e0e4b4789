package boot

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/server"
)

// NATSReady is the "nats" readiness check every service lists: ready while
// the connection is up. The connection reconnects by itself, so a replica
// cut off from NATS leaves the load balancer's rotation and comes back
// without a restart.
func NATSReady(nc *nats.Conn) server.Check {
	return server.Check{Name: "nats", Fn: func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("nats %s", s)
		}
		return nil
	}}
}

// PublishFunc adapts pub to the Publish(ctx, e) error that pkg/keys,
// pkg/clientevent and the issuer's admin API declare: they wait until
// JetStream has stored the event and need nothing else of its ack.
func PublishFunc(pub bus.EventPublisher) keys.PublisherFunc {
	return func(ctx context.Context, e events.Event) error {
		_, err := pub.Publish(ctx, e)
		return err
	}
}

// KeysConfig is the signing-key manager configuration of the issuer, in
// its own main as in valet dev: the keys.* settings, and the token lifetime
// and clock skew that decide how long a retired key stays in JWKS.
func KeysConfig(cfg *config.Config) keys.Config {
	return keys.Config{
		Source:           cfg.Issuer,
		JWKSURI:          cfg.Services.Issuer.URL("/jwks.json"),
		Algorithm:        cfg.Keys.Algorithm,
		RotationInterval: cfg.Keys.RotationInterval,
		PublishLeadTime:  cfg.Keys.PublishLeadTime,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		ClockSkew:        cfg.Tokens.ClockSkew,
	}
}

// NewHeartbeater returns the heartbeater of a replica that publishes on the
// revocation stream, as service with this process's InstanceID, every
// nats.heartbeat_interval: edges and client caches trust the stream only
// while beats arrive. A beat that fails is logged and the next one tried.
func NewHeartbeater(env Env, pub bus.EventPublisher, service string) (*bus.Heartbeater, error) {
	log := env.Logger
	return bus.NewHeartbeater(pub, env.Config.Issuer, events.Heartbeat{Service: service, Instance: InstanceID()},
		bus.WithHeartbeatInterval(env.Config.NATS.HeartbeatInterval),
		bus.WithHeartbeatErrorHook(func(err error) { log.Warn("heartbeat not published", zap.Error(err)) }))
}

// relayInterval is how often the relay scans the revocation outbox.
const relayInterval = time.Second

// NewRevoker returns the revoke primitive of a service that revokes, its
// deny state kept for the replay window, and the relay that publishes the
// outbox events their writer could not (a crash before the PubAck, a NATS
// outage). Every service that revokes runs the relay beside its server.
func NewRevoker(env Env, st revoke.Store, pub bus.EventPublisher) (*revoke.Revoker, *revoke.Relay, error) {
	cfg := env.Config
	rev, err := revoke.New(revoke.Config{
		Source: cfg.Issuer, Prefix: cfg.NATS.SubjectPrefix, Retain: cfg.Tokens.ReplayWindow(),
	}, st, pub, revoke.WithLogger(env.Logger), revoke.WithRegisterer(env.Registry))
	if err != nil {
		return nil, nil, err
	}
	return rev, revoke.NewRelay(rev, relayInterval, env.Registry), nil
}

// NewClientCache returns the client cache of a service that authenticates
// clients, trusted for as long as the edges trust the stream
// (services.edge.staleness_bound). FollowClients runs its consumer.
func NewClientCache(env Env, st clients.Store) (*clients.Cache, error) {
	return clients.New(st, clients.Config{
		Prefix:         env.Config.NATS.SubjectPrefix,
		StalenessBound: env.Config.Services.Edge.StalenessBound,
	}, clients.WithLogger(env.Logger), clients.WithRegisterer(env.Registry))
}

// FollowClients returns the background task that keeps cache current from
// js. Should its consumer stop, lookups keep working by reading the store,
// so that is logged, not fatal.
func FollowClients(cache *clients.Cache, js bus.OrderedConsumers, log *zap.Logger) func(context.Context) {
	return func(ctx context.Context) {
		if err := cache.Run(ctx, js); err != nil {
			log.Error("client cache stopped; lookups read the store", zap.Error(err))
		}
	}
}

// CheckerConfig is the token checker configuration of a service that
// verifies the issuer's access tokens: its JWKS, token lifetime and clock
// skew, and its key stream through js, so that a key revoked as compromised
// stops verifying as soon as the event arrives, not at the next JWKS
// refresh. The caller adds what is its own (an HTTP client, an observer).
func CheckerConfig(cfg *config.Config, js edge.JetStream) edge.CheckerConfig {
	return edge.CheckerConfig{
		Issuer:           cfg.Issuer,
		JWKSURL:          cfg.Services.Issuer.URL("/jwks.json"),
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		ClockSkew:        cfg.Tokens.ClockSkew,
		JetStream:        js,
		SubjectPrefix:    cfg.NATS.SubjectPrefix,
	}
}

// checkerStartTimeout bounds a token checker's first JWKS fetch and
// key-stream replay; past it the service starts anyway and the checker
// keeps trying (access tokens get 503 and /readyz fails until it has both).
const checkerStartTimeout = 30 * time.Second

// StartChecker runs start, a token checker's Start (pkg/edge), for at most
// checkerStartTimeout and returns its error. The issuer may come up after
// the service, so the caller logs the error and starts anyway.
func StartChecker(ctx context.Context, start func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, checkerStartTimeout)
	defer cancel()
	return start(ctx)
}
