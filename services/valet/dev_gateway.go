package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/valetauth/valet/services/edge"
)

// gateway is valet dev's demo gateway: a reverse proxy that asks the edge
// authorizer's forward-auth endpoint (the Traefik convention,
// edge.PathTraefik) about every request, and passes the accepted ones to the
// upstream with the edge's X-Valet-* identity headers, replacing any the
// client sent. A refusal (401, 403, 503) is returned to the client as the
// edge gave it, WWW-Authenticate included. It is what an NGINX, Envoy or
// Traefik in front of an API does (docs/gateway.md), small enough to need
// none of them.
type gateway struct {
	listen   string
	upstream http.Handler
	upName   string
	authURL  atomic.Pointer[string]
	hc       *http.Client
	log      *zap.Logger

	started chan struct{}
	mu      sync.Mutex
	addr    net.Addr
}

// identityHeaders are the headers the edge answers a 200 with; the gateway
// forwards them, and only them, upstream.
var identityHeaders = []string{edge.HeaderSubject, edge.HeaderClient, edge.HeaderScope, edge.HeaderTokenID}

// deniedHeaders are copied from the edge's refusal to the client.
var deniedHeaders = []string{"WWW-Authenticate", "Content-Type", "Cache-Control", "Retry-After"}

// newGateway returns a gateway listening on listen that proxies to
// upstream, or to the built-in demo upstream (demoUpstream) when upstream is
// empty, calling the edge through tr. SetAuthURL must be called before it accepts anything: until then
// it answers 503.
func newGateway(listen, upstream string, tr http.RoundTripper, log *zap.Logger) (*gateway, error) {
	g := &gateway{
		listen: listen, log: log, started: make(chan struct{}),
		hc: &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	if upstream == "" {
		g.upstream, g.upName = http.HandlerFunc(demoUpstream), "the built-in demo upstream"
		return g, nil
	}
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--upstream %q: want an http or https URL", upstream)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	g.upstream, g.upName = rp, u.String()
	return g, nil
}

// upstreamName describes the upstream for the banner.
func (g *gateway) upstreamName() string { return g.upName }

// SetAuthURL sets the edge's forward-auth URL.
func (g *gateway) SetAuthURL(u string) { g.authURL.Store(&u) }

// Addr waits until Run listens and returns its address.
func (g *gateway) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case <-g.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addr, nil
}

// Run serves until ctx ends, then drains for up to 10 seconds.
func (g *gateway) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", g.listen, err)
	}
	g.mu.Lock()
	g.addr = ln.Addr()
	g.mu.Unlock()
	close(g.started)
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeHTTP asks the edge, then proxies or refuses.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	au := g.authURL.Load()
	if au == nil {
		http.Error(w, "gateway starting", http.StatusServiceUnavailable)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, *au, nil)
	if err != nil {
		http.Error(w, "gateway misconfigured", http.StatusInternalServerError)
		return
	}
	req.Header.Set("X-Forwarded-Method", r.Method)
	req.Header.Set("X-Forwarded-Uri", r.URL.RequestURI())
	req.Header.Set("X-Forwarded-Host", r.Host)
	req.Header.Set("X-Forwarded-Proto", "http")
	if rid := r.Header.Get("X-Request-Id"); rid != "" {
		req.Header.Set("X-Request-Id", rid)
	}
	for _, v := range r.Header.Values("Authorization") {
		req.Header.Add("Authorization", v)
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		g.log.Warn("edge authorizer unreachable; refusing", zap.Error(err))
		w.Header().Set("Retry-After", "1")
		http.Error(w, "authorizer unavailable", http.StatusServiceUnavailable)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		for _, h := range deniedHeaders {
			if v := resp.Header.Values(h); len(v) > 0 {
				w.Header()[h] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 64<<10))
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	for _, h := range identityHeaders {
		r.Header.Del(h)
		r.Header.Set(h, resp.Header.Get(h))
	}
	g.upstream.ServeHTTP(w, r)
}

// demoUpstream is the demo API behind the gateway: it answers every
// request with the identity the edge established.
func demoUpstream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"message":   "hello from the Valet dev demo upstream",
		"method":    r.Method,
		"path":      r.URL.Path,
		"subject":   r.Header.Get(edge.HeaderSubject),
		"client_id": r.Header.Get(edge.HeaderClient),
		"scope":     r.Header.Get(edge.HeaderScope),
		"jti":       r.Header.Get(edge.HeaderTokenID),
	})
}
