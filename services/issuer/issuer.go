package issuer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/pkg/store"
)

// Keys is what the issuer needs of the signing key ring (*keys.Manager).
type Keys interface {
	// Current returns the key to sign with now, or an error matching
	// store.ErrUnavailable when this replica has none it may use.
	Current() (*keys.Signer, error)
	// JWKS returns the public JWK Set, or an error matching
	// store.ErrUnavailable.
	JWKS() ([]byte, error)
	// MaxAge is the Cache-Control max-age of JWKS responses.
	MaxAge() time.Duration
	// Ready returns nil when this replica can sign.
	Ready() error
}

var _ Keys = (*keys.Manager)(nil)

// Clients finds registered clients and resource servers (*clients.Cache).
// Both return errors matching store.ErrNotFound for unknown ids and
// anything else when the registry cannot be read; the values are shared
// and never modified.
type Clients interface {
	clientauth.Clients
	ResourceServer(ctx context.Context, id string) (*store.ResourceServer, error)
}

// Store is what the issuer needs of the token store directly. Client
// credentials need nothing but readiness; later grants add their steps here.
type Store interface {
	// Ping reports whether the store answers (readiness).
	Ping(ctx context.Context) error
}

// Deps are the service's dependencies, built by its main or by the
// all-in-one dev server.
type Deps struct {
	Logger   *zap.Logger
	Registry *prometheus.Registry
	// Store is the token store; /readyz pings it.
	Store Store
	// Keys is the signing key ring, already running (Manager.Run).
	Keys Keys
	// Clients is the client and resource-server cache, already running.
	Clients Clients
	// Secrets checks client secrets against their stored hashes
	// (*secret.Hasher).
	Secrets clientauth.Verifier
	// Clock replaces time.Now when set (tests).
	Clock func() time.Time
	// Origins are the browser origins allowed cross-origin access to
	// /token, discovery and JWKS (*cors.Registry: every enabled public
	// client's CORSOrigins). Nil: no CORS headers at all. No other route
	// gets CORS (docs/clients.md, CORS).
	Origins cors.Origins

	// Grants, Sessions, Users and Revoker, all set, turn on the user
	// grants: /authorize with its login and consent pages, and the
	// authorization_code and refresh_token grants at /token
	// (docs/authorize.md). All nil: client credentials only.
	Grants   Grants
	Sessions Sessions
	Users    Users
	Revoker  FamilyRevoker
	// LoginLimiter slows password guessing per account and per client
	// address across replicas (*ratelimit.Login, docs/authorize.md); the
	// client address honours X-Forwarded-For only from limits.trusted_proxies.
	// Nil: no limits (tests only; cmd/issuer always sets it).
	LoginLimiter LoginLimiter
	// DeviceLimiter caps failed user-code entries at /device per client
	// address and per session (RFC 8628 §5.1; device.go). Nil: built from
	// Store: on Redis (a store with Client(), as cmd/issuer's) the shared
	// *ratelimit.Attempts under redis.key_prefix, so that the cap holds
	// across replicas; on any other store (valet dev's embedded bbolt file,
	// one process by construction) an in-memory *ratelimit.LocalAttempts.
	DeviceLimiter DeviceLimiter
	// ClientLimits are this replica's request limits at /token and
	// /device_authorization (pkg/ratelimit/clientlimit, docs/security.md):
	// failed client authentications per client address, and requests per
	// confidential client. In memory, no Redis round trip; cmd/issuer builds
	// them from limits.client_*. Nil fields (the zero value): no limit.
	ClientLimits clientlimit.Limits
	// Audit publishes family.created and family.rotated, best effort
	// (*bus.Publisher); nil publishes nothing.
	Audit AuditPublisher
	// Ready lists further /readyz checks (NATS, ...); the store and the
	// signing key are checked without being listed.
	Ready []server.Check
	// Admin, when set, mounts the admin API (admin.go) on the admin
	// listener behind pkg/adminauth.
	Admin *AdminDeps
}

// Service is one running issuer.
type Service struct {
	srv   *server.Server
	token *tokenEndpoint
}

// New builds the service from a validated configuration and its
// dependencies, and registers its routes: discovery (RFC 8414), JWKS and
// /token on the public listener.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	if cfg == nil || deps.Logger == nil || deps.Registry == nil {
		return nil, errors.New("issuer: config, logger and registry are required")
	}
	if deps.Store == nil || deps.Keys == nil || deps.Clients == nil || deps.Secrets == nil {
		return nil, errors.New("issuer: store, keys, clients and secrets are required")
	}
	now := deps.Clock
	if now == nil {
		now = time.Now
	}
	ready := append([]server.Check{
		{Name: "store", Fn: deps.Store.Ping},
		{Name: "signing_key", Fn: func(context.Context) error { return deps.Keys.Ready() }},
	}, deps.Ready...)
	opts, err := server.ConfigOptions("issuer", cfg.Services.Issuer, cfg.Limits)
	if err != nil {
		return nil, err
	}
	opts.Logger = deps.Logger
	opts.Registry = deps.Registry
	opts.Ready = ready
	srv, err := server.New(opts)
	if err != nil {
		return nil, err
	}
	auth, err := clientauth.New(deps.Clients, deps.Secrets,
		clientauth.WithClock(now), clientauth.WithLogger(deps.Logger), clientauth.WithRegisterer(deps.Registry),
		clientauth.WithRetryAfter(retryAfter))
	if err != nil {
		return nil, err
	}
	met, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	tok, err := newTokenEndpoint(cfg, deps, auth, met, now)
	if err != nil {
		return nil, err
	}
	limited, err := clientlimit.NewMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	tok.limits = limited.Guard("token", deps.ClientLimits, deps.Logger)
	disc, err := newDiscovery(cfg, deps.Keys, tok.grantTypes())
	if err != nil {
		return nil, err
	}

	pub := srv.Public
	docCORS := cors.Policy{Origins: deps.Origins, Methods: []string{http.MethodGet}}.Middleware()
	docMethods := []string{http.MethodGet, http.MethodOptions}
	for _, p := range disc.paths() {
		pub.Match(docMethods, p, disc.metadata, docCORS)
	}
	pub.Match(docMethods, jwksPath, disc.jwks, docCORS)
	pub.Any(tokenPath, tok.serve, cors.Policy{Origins: deps.Origins, Methods: []string{http.MethodPost},
		Expose: []string{"WWW-Authenticate", "Retry-After"}}.Middleware())
	if deps.Admin != nil {
		if err := mountAdmin(cfg, srv, *deps.Admin, deps.Logger, now); err != nil {
			return nil, err
		}
	}
	if deps.Grants != nil {
		az, err := newAuthorize(cfg, deps, tok, now)
		if err != nil {
			return nil, err
		}
		if az.loginLimits, err = newLoginLimits(cfg, deps.LoginLimiter); err != nil {
			return nil, err
		}
		az.register(pub)
		dv, err := newDeviceFlow(cfg, deps, az)
		if err != nil {
			return nil, err
		}
		if dv != nil {
			dv.limits = limited.Guard("device_authorization", deps.ClientLimits, deps.Logger)
			dv.register(pub)
		}
	}
	return &Service{srv: srv, token: tok}, nil
}

// Endpoint paths on the issuer's public listener.
const (
	// wellKnownPath is where RFC 8414 §3 puts the metadata.
	wellKnownPath = "/.well-known/oauth-authorization-server"
	jwksPath      = "/jwks.json"
	tokenPath     = "/token"
)

// Server returns the listeners, for tests and for hosts that add routes.
func (s *Service) Server() *server.Server { return s.srv }

// Run serves until ctx ends, then drains in-flight requests.
func (s *Service) Run(ctx context.Context) error { return s.srv.Run(ctx) }

// issuerPath returns the path component of the issuer identifier, for the
// RFC 8414 §3.1 well-known URL of an issuer with a path.
func issuerPath(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("issuer: issuer identifier: %w", err)
	}
	p := u.EscapedPath()
	if p == "/" {
		p = ""
	}
	return p, nil
}
