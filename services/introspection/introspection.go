package introspection

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/pkg/store"
)

// Store is what introspection reads from the token store.
type Store interface {
	// Ping reports whether the store answers (readiness).
	Ping(ctx context.Context) error
	// LookupRefresh returns the live family whose current refresh token
	// hashes to h; store.ErrNotFound, ErrRevoked or ErrExpired when there
	// is none, anything else when the store cannot answer.
	LookupRefresh(ctx context.Context, fid string, h store.Hash) (store.RefreshFamily, error)
	// DenyState reads everything that could deny one access token, in one
	// round trip.
	DenyState(ctx context.Context, q store.DenyQuery) (store.Deny, error)
}

// Checker verifies access tokens with the edge's code (*edge.Checker).
type Checker interface {
	Check(ctx context.Context, token string) (edge.Claims, error)
}

var _ Checker = (*edge.Checker)(nil)

// Deps are the service's dependencies, built by its main or by the
// all-in-one dev server.
type Deps struct {
	Logger   *zap.Logger
	Registry *prometheus.Registry
	// Store is the token store; /readyz pings it.
	Store Store
	// Clients is the client cache (*clients.Cache), already running.
	Clients clientauth.Clients
	// Secrets checks client secrets (*secret.Hasher).
	Secrets clientauth.Verifier
	// Checker verifies access tokens, already started.
	Checker Checker
	// Clock replaces time.Now when set (tests).
	Clock func() time.Time
	// Ready lists further /readyz checks (NATS, JWKS, ...).
	Ready []server.Check
	// ClientLimits are this replica's request limits at /introspect
	// (pkg/ratelimit/clientlimit, docs/security.md): failed client
	// authentications per client address, and requests per client. In
	// memory: the endpoint keeps its one Redis round trip. Nil fields (the
	// zero value): no limit.
	ClientLimits clientlimit.Limits
}

// IntrospectPath is the RFC 7662 endpoint on the public listener.
const IntrospectPath = "/introspect"

// Service is one running introspection service.
type Service struct {
	srv *server.Server
	ep  *endpoint
}

// New builds the service from a validated configuration and registers
// /introspect on the public listener.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	if cfg == nil || deps.Logger == nil || deps.Registry == nil {
		return nil, errors.New("introspection: config, logger and registry are required")
	}
	if deps.Store == nil || deps.Clients == nil || deps.Secrets == nil || deps.Checker == nil {
		return nil, errors.New("introspection: store, clients, secrets and checker are required")
	}
	now := deps.Clock
	if now == nil {
		now = time.Now
	}
	opts, err := server.ConfigOptions("introspection", cfg.Services.Introspection, cfg.Limits)
	if err != nil {
		return nil, err
	}
	opts.Logger = deps.Logger
	opts.Registry = deps.Registry
	opts.Ready = append([]server.Check{{Name: "store", Fn: deps.Store.Ping}}, deps.Ready...)
	srv, err := server.New(opts)
	if err != nil {
		return nil, err
	}
	auth, err := clientauth.New(deps.Clients, deps.Secrets,
		clientauth.WithClock(now), clientauth.WithLogger(deps.Logger), clientauth.WithRegisterer(deps.Registry))
	if err != nil {
		return nil, err
	}
	met, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	limited, err := clientlimit.NewMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	ep := &endpoint{
		auth: auth, st: deps.Store, check: deps.Checker, met: met, log: deps.Logger,
		skew: cfg.Tokens.ClockSkew, maxBody: cfg.Limits.MaxBodyBytes,
		limits: limited.Guard("introspect", deps.ClientLimits, deps.Logger),
	}
	srv.Public.Any(IntrospectPath, ep.serve)
	return &Service{srv: srv, ep: ep}, nil
}

// Server returns the listeners, for tests and for hosts that add routes.
func (s *Service) Server() *server.Server { return s.srv }

// Run serves until ctx ends, then drains in-flight requests.
func (s *Service) Run(ctx context.Context) error { return s.srv.Run(ctx) }
