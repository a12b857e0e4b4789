package revocation

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/pkg/store"
)

// Store is what the service reads from the token store directly.
type Store interface {
	// Ping reports whether the store answers (readiness).
	Ping(ctx context.Context) error
	// LookupRefresh returns the live family whose current refresh token
	// hashes to h; store.ErrNotFound, ErrRevoked or ErrExpired when there
	// is none, anything else when the store cannot answer.
	LookupRefresh(ctx context.Context, fid string, h store.Hash) (store.RefreshFamily, error)
	// DenyState reads the deny state of one access token in one round
	// trip (the admin API's own token).
	DenyState(ctx context.Context, q store.DenyQuery) (store.Deny, error)
}

// Revoker is the revoke primitive (*revoke.Revoker): every method returns
// only after the event is durable (PubAck), revoke.ErrPending when the deny
// state is written but the event waits for the relay, or another error when
// the store could not record it.
type Revoker interface {
	Token(ctx context.Context, jti string, exp time.Time, clientID, reason, actor string) error
	Family(ctx context.Context, fid, subject, clientID, reason, actor string) error
	Subject(ctx context.Context, subjectType, subject string, cutoff time.Time, reason, actor string) error
	Client(ctx context.Context, clientID string, cutoff time.Time, reason, actor string) error
	// RetryAfter is the delay to advise while NATS is down.
	RetryAfter() time.Duration
}

var _ Revoker = (*revoke.Revoker)(nil)

// Checker verifies access tokens with the edge's code (*edge.Checker).
type Checker interface {
	Check(ctx context.Context, token string) (edge.Claims, error)
}

// Deps are the service's dependencies, built by its main or by the
// all-in-one dev server.
type Deps struct {
	Logger   *zap.Logger
	Registry *prometheus.Registry
	// Store is the token store; /readyz pings it.
	Store Store
	// Revoker is the revoke primitive; its Relay runs beside the service.
	Revoker Revoker
	// Clients is the client cache (*clients.Cache), already running.
	Clients clientauth.Clients
	// Secrets checks client secrets (*secret.Hasher).
	Secrets clientauth.Verifier
	// Checker verifies access tokens, already started.
	Checker Checker
	// Clock replaces time.Now when set (tests).
	Clock func() time.Time
	// Origins are the browser origins allowed cross-origin access to
	// /revoke (*cors.Registry: every enabled public client's CORSOrigins).
	// Nil: no CORS headers. No other route gets CORS.
	Origins cors.Origins
	// Ready lists further /readyz checks (NATS, JWKS, ...).
	Ready []server.Check
	// ClientLimits are this replica's request limits at /revoke
	// (pkg/ratelimit/clientlimit, docs/security.md): failed client
	// authentications per client address, and requests per confidential
	// client. In memory, no Redis round trip. Nil fields (the zero value):
	// no limit.
	ClientLimits clientlimit.Limits
}

// Service is one running revocation service.
type Service struct {
	srv *server.Server
}

// Endpoint paths.
const (
	// RevokePath is the RFC 7009 endpoint on the public listener.
	RevokePath = "/revoke"
	// AdminPrefix is where the admin revocation API lives on the admin
	// listener: POST <prefix>/family, /subject, /client, /token.
	AdminPrefix = "/admin/revoke"
)

// New builds the service from a validated configuration and registers
// /revoke on the public listener and the admin revocation API, behind
// pkg/adminauth, on the admin listener.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	if cfg == nil || deps.Logger == nil || deps.Registry == nil {
		return nil, errors.New("revocation: config, logger and registry are required")
	}
	if deps.Store == nil || deps.Revoker == nil || deps.Clients == nil || deps.Secrets == nil || deps.Checker == nil {
		return nil, errors.New("revocation: store, revoker, clients, secrets and checker are required")
	}
	now := deps.Clock
	if now == nil {
		now = time.Now
	}
	opts, err := server.ConfigOptions("revocation", cfg.Services.Revocation, cfg.Limits)
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
	guard, err := adminauth.New(adminauth.Config{Audience: adminauth.Audience(cfg.Issuer), ClockSkew: cfg.Tokens.ClockSkew}, deps.Checker, deps.Store)
	if err != nil {
		return nil, err
	}
	limited, err := clientlimit.NewMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	ep := &endpoint{
		auth: auth, st: deps.Store, rev: deps.Revoker, check: deps.Checker,
		met: met, log: deps.Logger, now: now, maxBody: cfg.Limits.MaxBodyBytes,
		limits: limited.Guard("revoke", deps.ClientLimits, deps.Logger),
	}
	srv.Public.Any(RevokePath, ep.serve, cors.Policy{Origins: deps.Origins, Methods: []string{http.MethodPost},
		Expose: []string{"WWW-Authenticate", "Retry-After"}}.Middleware())
	adm := &admin{rev: deps.Revoker, met: met, log: deps.Logger, now: now}
	g := srv.Admin.Group(AdminPrefix, guard.Middleware())
	g.POST("/family", adm.family)
	g.POST("/subject", adm.subject)
	g.POST("/client", adm.client)
	g.POST("/token", adm.token)
	return &Service{srv: srv}, nil
}

// Server returns the listeners, for tests and for hosts that add routes.
func (s *Service) Server() *server.Server { return s.srv }

// Run serves until ctx ends, then drains in-flight requests.
func (s *Service) Run(ctx context.Context) error { return s.srv.Run(ctx) }
