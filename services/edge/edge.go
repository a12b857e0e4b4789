package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/server"
)

// Deps are the service's dependencies, built by its main or by the
// all-in-one dev server.
type Deps struct {
	Logger   *zap.Logger
	Registry *prometheus.Registry
	// JetStream carries the revocation and key streams (a
	// jetstream.JetStream). Required.
	JetStream edge.JetStream
	// Audience is the audience this authorizer protects: every token's aud
	// must contain it. Required (services.edge.audience).
	Audience string
	// Policy holds the per-route required scopes (main reads the file named
	// by services.edge.routes_file).
	Policy Policy
	// EdgeOptions are further pkg/edge options, applied after those taken
	// from the configuration: an HTTP client trusting a private CA for
	// JWKS, a clock. The service sets its own observer last.
	EdgeOptions []edge.Option
	// Ready lists further /readyz checks (NATS, ...); whether the edge is
	// current is checked without being listed.
	Ready []server.Check
	// Upstream, when set, turns on reverse-proxy mode with this handler,
	// served in process, as the upstream: valet dev's demo API, tests. It
	// takes precedence over services.edge.upstream.
	Upstream http.Handler
}

// Service is one running edge authorizer.
type Service struct {
	srv *server.Server
	v   *edge.Verifier
	log *zap.Logger
}

// New builds the service from a validated configuration: a pkg/edge
// Verifier for cfg.Issuer and deps.Audience that learns keys from the
// issuer's JWKS (services.issuer.public_url + /jwks.json), replays
// tokens.max_access_token_lifetime of the revocation stream (prefix
// nats.subject_prefix), allows tokens.clock_skew and fails closed after
// services.edge.staleness_bound; and the forward-auth endpoints PathNGINX,
// PathTraefik and PathEnvoy on the public listener. With
// services.edge.upstream or deps.Upstream set, every other public request
// is authorized the same way and, when accepted, proxied there
// (reverse-proxy mode, proxy.go). It does no I/O: Run starts everything.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	if cfg == nil || deps.Logger == nil || deps.Registry == nil {
		return nil, errors.New("edge: config, logger and registry are required")
	}
	routes, err := compilePolicy(deps.Policy)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	met, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	opts := append([]edge.Option{
		edge.WithSubjectPrefix(cfg.NATS.SubjectPrefix),
		edge.WithClockSkew(cfg.Tokens.ClockSkew),
		edge.WithStalenessBound(cfg.Services.Edge.StalenessBound),
	}, deps.EdgeOptions...)
	opts = append(opts, edge.WithObserver(met.observer(log)))
	v, err := edge.New(edge.Config{
		Issuer:           cfg.Issuer,
		Audience:         deps.Audience,
		JWKSURL:          jwksURL(cfg),
		JetStream:        deps.JetStream,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
	}, opts...)
	if err != nil {
		return nil, err
	}
	if err := deps.Registry.Register(newStatusCollector(v.Status)); err != nil {
		return nil, fmt.Errorf("edge: register metrics: %w", err)
	}

	ready := append([]server.Check{{Name: "edge", Fn: func(context.Context) error { return currentErr(v.Status()) }}}, deps.Ready...)
	sc := cfg.Services.Edge
	sopts, err := server.ConfigOptions("edge", cfg.Services.Edge.Service, cfg.Limits)
	if err != nil {
		return nil, err
	}
	sopts.Logger = log
	sopts.Registry = deps.Registry
	sopts.Ready = ready
	srv, err := server.New(sopts)
	if err != nil {
		return nil, err
	}
	a := &authorizer{v: v, routes: routes, met: met}
	pub := srv.Public
	pub.Any(PathNGINX, echo.WrapHandler(http.HandlerFunc(a.nginx)))
	pub.Any(PathTraefik, echo.WrapHandler(http.HandlerFunc(a.traefik)))
	pub.Any(PathEnvoy, echo.WrapHandler(http.HandlerFunc(a.envoy)))
	pub.Any(PathEnvoy+"/*", echo.WrapHandler(http.HandlerFunc(a.envoy)))
	if deps.Upstream != nil || sc.Upstream != "" {
		umet, err := newUpstreamMetrics(deps.Registry)
		if err != nil {
			return nil, err
		}
		p, name, err := newProxy(cfg, deps, a, umet, log)
		if err != nil {
			return nil, err
		}
		// Everything the routes above and pkg/server's /healthz and
		// /readyz do not claim, whatever the method.
		h := echo.WrapHandler(p)
		pub.Pre(keepClientContext)
		pub.Any("/*", h)
		pub.RouteNotFound("/*", h)
		log.Info("reverse-proxy mode: authorized requests outside the forward-auth paths go upstream", zap.String("upstream", name))
	}
	return &Service{srv: srv, v: v, log: log}, nil
}

// currentErr explains why the edge is not current, or returns nil.
func currentErr(st edge.Status) error {
	if st.Current {
		return nil
	}
	r := st.Revocations
	switch {
	case st.JWKSFetched.IsZero():
		return errors.New("not current: JWKS never fetched")
	case r.Stale:
		return fmt.Errorf("not current: revocation stream stale: %v", r.Err)
	case st.Keys.Stale:
		return fmt.Errorf("not current: key stream stale: %v", st.Keys.Err)
	case !r.CaughtUp || !st.Keys.CaughtUp:
		return errors.New("not current: replaying the event streams")
	case r.LastCurrent.IsZero():
		return errors.New("not current: no heartbeat yet")
	}
	return fmt.Errorf("not current: revocation stream last current %s ago (heartbeat age %s)",
		time.Since(r.LastCurrent).Round(time.Millisecond), r.HeartbeatAge.Round(time.Millisecond))
}

// Server returns the listeners, for tests and for hosts that add routes.
func (s *Service) Server() *server.Server { return s.srv }

// Verifier returns the edge verifier, for hosts and tests (WaitCurrent,
// Status).
func (s *Service) Verifier() *edge.Verifier { return s.v }

// Start bounds: the first JWKS fetch is retried with this backoff while the
// listeners already answer 503 (fail closed) and /readyz fails.
const (
	minStartWait = 250 * time.Millisecond
	maxStartWait = 30 * time.Second
)

// Run serves until ctx ends. It starts the verifier beside the listeners,
// retrying while JWKS cannot be fetched (every decision is 503 meanwhile),
// and closes it once the listeners have drained.
func (s *Service) Run(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.start(sctx) })
	err := s.srv.Run(ctx)
	cancel()
	wg.Wait()
	_ = s.v.Close()
	return err
}

// start starts the verifier, retrying with backoff until it succeeds or ctx
// ends.
func (s *Service) start(ctx context.Context) {
	wait := minStartWait
	for {
		fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := s.v.Start(fctx)
		cancel()
		if err == nil {
			s.log.Info("edge started: replaying the event streams")
			return
		}
		s.log.Warn("edge not started; failing closed and retrying", zap.Error(err), zap.Duration("retry_in", wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxStartWait)
	}
}

// jwksURL is services.edge.jwks_url, or the issuer's public JWKS document.
func jwksURL(cfg *config.Config) string {
	if u := cfg.Services.Edge.JWKSURL; u != "" {
		return u
	}
	return cfg.Services.Issuer.URL("/jwks.json")
}
