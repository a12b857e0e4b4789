package revocation_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/services/revocation"
)

const (
	spaOrigin  = "https://spa.example.test"
	evilOrigin = "https://evil.example.test"
)

// newCORSRevocation starts a second revocation service on h's store, key
// ring and revoke primitive, with the CORS allow-list read from the
// registry after giving the public client spaOrigin. It returns its /revoke
// URL.
func newCORSRevocation(t *testing.T, h *harness) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	c, err := h.st.GetClient(ctx, pubClient)
	if err != nil {
		t.Fatal(err)
	}
	c.CORSOrigins = []string{spaOrigin}
	if _, err := h.st.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	origins, err := cors.NewRegistry(h.st)
	if err != nil {
		t.Fatal(err)
	}
	if err := origins.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b, err := h.keys.JWKS()
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(jwks.Close)
	cfg := config.Default()
	cfg.Dev = true
	cfg.Issuer = testIssuer
	cfg.Services.Revocation = config.Service{PublicURL: "http://revoke.test", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	chk, err := edge.NewChecker(edge.CheckerConfig{
		Issuer: testIssuer, JWKSURL: jwks.URL + "/jwks.json",
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime, ClockSkew: cfg.Tokens.ClockSkew,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := chk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = chk.Close() })
	// Not running: every lookup reads the store.
	cache, err := clients.New(h.st, clients.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := revocation.New(&cfg, revocation.Deps{
		Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		Store: h.st, Revoker: h.rev, Clients: cache, Secrets: h.hasher, Checker: chk,
		Origins: origins,
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	addr, _, err := svc.Server().Addrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr.String() + revocation.RevokePath
}

func corsDo(t *testing.T, method, u, origin string, hdr map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

func varyOrigin(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.TrimSpace(f) == "Origin" {
				return true
			}
		}
	}
	return false
}

func noCORS(t *testing.T, what string, h http.Header) {
	t.Helper()
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("%s: unexpected %s: %q", what, k, h.Get(k))
		}
	}
}

func TestCORS(t *testing.T) {
	h := newHarness(t)
	revokeURL := newCORSRevocation(t, h)
	pre := map[string]string{"Access-Control-Request-Method": http.MethodPost, "Access-Control-Request-Headers": "content-type"}

	resp := corsDo(t, http.MethodOptions, revokeURL, spaOrigin, pre, "")
	hd := resp.Header
	if resp.StatusCode != http.StatusNoContent || hd.Get("Access-Control-Allow-Origin") != spaOrigin ||
		hd.Get("Access-Control-Allow-Methods") != http.MethodPost || hd.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
		hd.Get("Access-Control-Max-Age") == "" || hd.Get("Access-Control-Allow-Credentials") != "" || !varyOrigin(hd) {
		t.Errorf("preflight: %d %v", resp.StatusCode, hd)
	}
	for _, o := range []string{evilOrigin, "null", "http://spa.example.test"} {
		resp := corsDo(t, http.MethodOptions, revokeURL, o, pre, "")
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || !varyOrigin(resp.Header) {
			t.Errorf("preflight from %s: %d %v", o, resp.StatusCode, resp.Header)
		}
	}

	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	body := url.Values{"token": {h.mint(claims())}, "client_id": {pubClient}}.Encode()
	resp = corsDo(t, http.MethodPost, revokeURL, spaOrigin, form, body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin || !varyOrigin(resp.Header) {
		t.Errorf("POST /revoke: %d %v", resp.StatusCode, resp.Header)
	}
	resp = corsDo(t, http.MethodPost, revokeURL, evilOrigin, form, body)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || !varyOrigin(resp.Header) {
		t.Errorf("POST /revoke from an unregistered origin: %d %v", resp.StatusCode, resp.Header)
	}

	// The introspection endpoint and the harness's revocation service
	// (no origin source) never answer with CORS.
	for _, u := range []string{h.url, h.revoke} {
		resp := corsDo(t, http.MethodOptions, u, spaOrigin, pre, "")
		noCORS(t, "OPTIONS "+u, resp.Header)
		resp = corsDo(t, http.MethodPost, u, spaOrigin, form, url.Values{"token": {"x"}}.Encode())
		noCORS(t, "POST "+u, resp.Header)
	}
}
