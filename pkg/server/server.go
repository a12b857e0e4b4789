// Package server is the HTTP scaffolding every Valet service shares: an echo
// server for the public endpoints and a separate admin listener for metrics,
// health, readiness and the admin API; request ids, structured access logs
// without secrets, Prometheus metrics, body-size and time limits, and a
// graceful shutdown that drains in-flight requests.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/valetauth/valet/pkg/config"
)

// Check is one readiness dependency (Redis, NATS, signing key loaded).
type Check struct {
	Name string
	// Fn returns nil when the dependency is usable.
	Fn func(ctx context.Context) error
}

// Options configures a Server. Service and Logger are required.
type Options struct {
	// Service names the service in metrics ("issuer", ...). Logs carry
	// it from the caller's Logger (boot.Main and valet dev scope theirs),
	// so that a line names its service once.
	Service string
	// PublicAddr and AdminAddr are the listen addresses; ":0" picks a port.
	PublicAddr string
	AdminAddr  string
	// MaxBodyBytes caps request bodies (default 64 KiB).
	MaxBodyBytes int64
	// RequestTimeout bounds each request (default 10 s).
	RequestTimeout time.Duration
	// ShutdownTimeout bounds the drain on shutdown (default 15 s).
	ShutdownTimeout time.Duration
	Logger          *zap.Logger
	// Registry receives the HTTP metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Ready lists the dependencies /readyz checks.
	Ready []Check
	// TrustedProxies are the reverse proxies (limits.trusted_proxies) whose
	// X-Forwarded-For the access log believes for its remote field. Empty
	// means the TCP peer, whatever headers say: a client must not be able
	// to write another address into the logs.
	TrustedProxies []netip.Prefix
}

// Server is a service's pair of listeners.
type Server struct {
	// Public serves the protocol endpoints.
	Public *echo.Echo
	// Admin serves /metrics, /healthz, /readyz and the admin API.
	Admin *echo.Echo

	opts     Options
	log      *zap.Logger
	mu       sync.Mutex
	addrs    [2]net.Addr
	started  chan struct{}
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// seriesCache maps seriesKey to *seriesMetrics. Routes are registered
	// patterns (unmatched requests share one), so it stays small.
	seriesCache sync.Map
}

// New builds a Server and registers its metrics.
func New(opts Options) (*Server, error) {
	if opts.Service == "" || opts.Logger == nil || opts.Registry == nil {
		return nil, errors.New("server: Service, Logger and Registry are required")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	s := &Server{opts: opts, log: opts.Logger, started: make(chan struct{})}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "valet_http_requests_total",
		Help:        "HTTP requests by route, method and status code.",
		ConstLabels: prometheus.Labels{"service": opts.Service},
	}, []string{"listener", "route", "method", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "valet_http_request_duration_seconds",
		Help:        "HTTP request latency by route.",
		ConstLabels: prometheus.Labels{"service": opts.Service},
		Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"listener", "route", "method"})
	for _, c := range []prometheus.Collector{s.requests, s.latency} {
		if err := opts.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	s.Public = s.newEcho("public")
	s.Admin = s.newEcho("admin")
	s.Admin.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry})))
	s.Admin.GET("/healthz", s.healthz)
	s.Admin.GET("/readyz", s.readyz)
	// Load balancers usually probe the public port.
	s.Public.GET("/healthz", s.healthz)
	s.Public.GET("/readyz", s.readyz)
	return s, nil
}

func (s *Server) newEcho(listener string) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.IPExtractor = s.ipExtractor()
	e.Use(requestID)
	e.Use(s.observe(listener))
	e.Use(middleware.BodyLimit(strconv.FormatInt(s.opts.MaxBodyBytes, 10) + "B"))
	e.Use(middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{Timeout: s.opts.RequestTimeout}))
	e.Use(middleware.Recover())
	return e
}

// observe records metrics and one access-log line per request. It logs the
// route pattern and path only: query strings and bodies carry codes, tokens
// and secrets, and never reach a log.
func (s *Server) observe(listener string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := c.Response().Status
			elapsed := time.Since(start)
			m := s.series(listener, route, methodLabel(c.Request().Method), status)
			m.requests.Inc()
			m.latency.Observe(elapsed.Seconds())
			if ce := s.log.Check(levelFor(status), "request"); ce != nil {
				ce.Write(
					zap.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
					zap.String("listener", listener),
					zap.String("method", c.Request().Method),
					zap.String("route", route),
					zap.Int("status", status),
					zap.Duration("latency", elapsed),
					zap.String("remote", c.RealIP()),
				)
			}
			return nil
		}
	}
}

// ipExtractor returns what c.RealIP() reports: ClientIP of the request.
// echo's own XFF extractor is not used: its default believes the first
// X-Forwarded-For entry from anyone, and the issuer's login and device
// limits, which read the address without echo, must count the same one.
func (s *Server) ipExtractor() echo.IPExtractor {
	trusted := s.opts.TrustedProxies
	return func(r *http.Request) string { return ClientIP(r, trusted) }
}

// ClientIP is the address a request comes from, for logs and limits: the
// TCP peer, unless the peer is one of the trusted proxies; then the
// right-most X-Forwarded-For entry that is not a trusted proxy (entries left
// of it could be written by anyone). A malformed entry stops the walk: the
// last address believed counts. IPv4-mapped IPv6 addresses are unmapped.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		hops := strings.Split(vals[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return peer.String() // malformed: believe nothing further left
			}
			peer = a.Unmap()
			if !isTrusted(peer, trusted) {
				return peer.String()
			}
		}
	}
	return peer.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func levelFor(status int) zapcore.Level {
	if status >= 500 {
		return zapcore.WarnLevel
	}
	return zapcore.DebugLevel
}

// requestID keeps an incoming X-Request-Id for correlation when it is short
// and plain (it ends up in logs), and makes one otherwise.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !plainID(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func plainID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// errorHandler answers echo's own errors (404, 405, 413) as JSON without
// internals. Protocol handlers write their RFC errors themselves.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code := http.StatusInternalServerError
	msg := "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
		msg = http.StatusText(code)
	} else {
		s.log.Error("unhandled error", zap.Error(err), zap.String("route", c.Path()))
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	_ = c.JSON(code, map[string]string{"error": errorCodeFor(code), "error_description": msg})
}

func errorCodeFor(status int) string {
	switch {
	case status == http.StatusServiceUnavailable:
		return "temporarily_unavailable"
	case status >= 500:
		return "server_error"
	case status == http.StatusNotFound:
		return "not_found"
	case status == http.StatusMethodNotAllowed:
		return "method_not_allowed"
	default:
		return "invalid_request"
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	out := map[string]string{}
	ok := true
	for _, chk := range s.opts.Ready {
		if err := chk.Fn(ctx); err != nil {
			ok = false
			out[chk.Name] = err.Error()
			continue
		}
		out[chk.Name] = "ok"
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if !ok {
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "checks": out})
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready", "checks": out})
}

// Run serves both listeners until ctx ends, then stops accepting and drains
// in-flight requests for up to ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	pub, err := net.Listen("tcp", s.opts.PublicAddr)
	if err != nil {
		return fmt.Errorf("server: listen public %s: %w", s.opts.PublicAddr, err)
	}
	adm, err := net.Listen("tcp", s.opts.AdminAddr)
	if err != nil {
		pub.Close()
		return fmt.Errorf("server: listen admin %s: %w", s.opts.AdminAddr, err)
	}
	s.mu.Lock()
	s.addrs = [2]net.Addr{pub.Addr(), adm.Addr()}
	s.mu.Unlock()
	close(s.started)
	s.log.Info("listening", zap.String("public", pub.Addr().String()), zap.String("admin", adm.Addr().String()))

	servers := []*http.Server{
		{Handler: s.Public, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second},
		{Handler: s.Admin, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second},
	}
	errc := make(chan error, 2)
	for i, ln := range []net.Listener{pub, adm} {
		go func(srv *http.Server, ln net.Listener) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(servers[i], ln)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down: draining in-flight requests", zap.Duration("timeout", s.opts.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil && runErr == nil {
			runErr = fmt.Errorf("server: shutdown: %w", err)
		}
	}
	return runErr
}

// Addrs waits until Run is listening and returns the public and admin
// addresses (useful with ":0").
func (s *Server) Addrs(ctx context.Context) (public, admin net.Addr, err error) {
	select {
	case <-s.started:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[0], s.addrs[1], nil
}

// requestIDs makes request ids from a random per-process prefix and a
// counter: unique, cheap on the hot path, and unguessable enough for what
// they are (correlation, not authentication).
var requestIDs = func() func() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := hex.EncodeToString(b[:]) + "-"
	var n atomic.Uint64
	return func() string { return prefix + strconv.FormatUint(n.Add(1), 36) }
}()

func newRequestID() string { return requestIDs() }

// seriesKey names one label combination of the HTTP metrics.
type seriesKey struct {
	listener, route, method string
	status                  int
}

// seriesMetrics are the resolved children of the HTTP metrics for one
// seriesKey, cached so the hot path skips the label hashing of
// WithLabelValues.
type seriesMetrics struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// methodLabel bounds the method label: a client choosing arbitrary methods
// must not create unbounded metric series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}

func (s *Server) series(listener, route, method string, status int) *seriesMetrics {
	k := seriesKey{listener, route, method, status}
	if m, ok := s.seriesCache.Load(k); ok {
		return m.(*seriesMetrics)
	}
	m := &seriesMetrics{
		requests: s.requests.WithLabelValues(listener, route, method, strconv.Itoa(status)),
		latency:  s.latency.WithLabelValues(listener, route, method),
	}
	actual, _ := s.seriesCache.LoadOrStore(k, m)
	return actual.(*seriesMetrics)
}

// ConfigOptions returns the Options every service derives from its
// configuration: its listeners (svc), the body and time limits and the
// trusted proxies (limits). Logger, Registry and Ready are the caller's to
// add. It fails only when limits.trusted_proxies does not parse, which
// configuration validation refuses first.
func ConfigOptions(service string, svc config.Service, limits config.Limits) (Options, error) {
	trusted, err := limits.TrustedProxyPrefixes()
	if err != nil {
		return Options{}, fmt.Errorf("%s: limits.trusted_proxies: %w", service, err)
	}
	return Options{
		Service:        service,
		PublicAddr:     svc.Listen,
		AdminAddr:      svc.AdminListen,
		MaxBodyBytes:   limits.MaxBodyBytes,
		RequestTimeout: limits.RequestTimeout,
		TrustedProxies: trusted,
	}, nil
}
