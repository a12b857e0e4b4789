package issuer_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
	"github.com/valetauth/valet/services/issuer"
)

const (
	spaOrigin  = "https://spa.example.test"
	evilOrigin = "https://evil.example.test"
)

// newCORSIssuer starts a second issuer on h's dependencies with the user
// grants on and the CORS allow-list read from the registry, after
// registering a public client with spaOrigin (and a disabled one and a
// confidential one whose origins must not count). It returns its URL.
func newCORSIssuer(t *testing.T, h *harness) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	res := map[string][]string{apiID: {"read"}}
	h.createClient(store.Client{ID: "spa", Type: store.Public, GrantTypes: []string{"authorization_code", "refresh_token"},
		RedirectURIs: []string{spaOrigin + "/cb"}, Resources: res, DefaultResource: apiID, CORSOrigins: []string{spaOrigin}})
	h.createClient(store.Client{ID: "spa-off", Type: store.Public, Disabled: true, GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{evilOrigin + "/cb"}, Resources: res, DefaultResource: apiID, CORSOrigins: []string{evilOrigin}})
	h.createClient(store.Client{ID: "conf-cors", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: res, DefaultResource: apiID, CORSOrigins: []string{"https://conf.example.test"}})

	origins, err := cors.NewRegistry(h.st, cors.WithInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := origins.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); origins.Run(ctx) }()

	opt, err := goredis.ParseURL(h.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	ua, err := users.NewAuthenticator(users.NewRedis(rdb, h.redis.Prefix), users.Params{Memory: 256, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := revoke.New(revoke.Config{Source: testIssuer, Prefix: h.prefix, Retain: 20 * time.Minute}, h.st, h.pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := *h.cfg
	svc, err := issuer.New(&cfg, issuer.Deps{
		Logger: zapNop(nil), Registry: prometheus.NewRegistry(),
		Store: h.st, Keys: h.keys, Clients: h.cache, Secrets: h.hasher, Clock: h.clock.Now,
		Grants: h.st, Sessions: h.st, Users: ua, Revoker: rev, Audit: h.pub,
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
	return "http://" + addr.String()
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
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
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
	base := newCORSIssuer(t, h)
	docs := map[string]string{
		"/token": http.MethodPost,
		"/.well-known/oauth-authorization-server": http.MethodGet,
		"/jwks.json": http.MethodGet,
	}

	t.Run("preflight from a registered origin", func(t *testing.T) {
		for path, method := range docs {
			resp := corsDo(t, http.MethodOptions, base+path, spaOrigin,
				map[string]string{"Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization, content-type"}, "")
			hd := resp.Header
			if resp.StatusCode != http.StatusNoContent || hd.Get("Access-Control-Allow-Origin") != spaOrigin ||
				hd.Get("Access-Control-Allow-Methods") != method || hd.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
				hd.Get("Access-Control-Max-Age") == "" || hd.Get("Access-Control-Allow-Credentials") != "" || !varyOrigin(hd) {
				t.Errorf("%s: %d %v", path, resp.StatusCode, hd)
			}
		}
	})

	t.Run("preflight from an unregistered origin", func(t *testing.T) {
		for path, method := range docs {
			for _, o := range []string{evilOrigin, "https://conf.example.test", "null", "https://spa.example.test.evil.test", "http://spa.example.test"} {
				resp := corsDo(t, http.MethodOptions, base+path, o, map[string]string{"Access-Control-Request-Method": method}, "")
				if resp.Header.Get("Access-Control-Allow-Origin") != "" || !varyOrigin(resp.Header) {
					t.Errorf("%s from %s: %d %v", path, o, resp.StatusCode, resp.Header)
				}
			}
		}
	})

	t.Run("actual requests", func(t *testing.T) {
		form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": basic(clientA, h.secretA)}
		resp := corsDo(t, http.MethodPost, base+"/token", spaOrigin, form, url.Values{"grant_type": {"client_credentials"}}.Encode())
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin || !varyOrigin(resp.Header) ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("POST /token: %d %v", resp.StatusCode, resp.Header)
		}
		// Errors are readable by the page too.
		resp = corsDo(t, http.MethodPost, base+"/token", spaOrigin, map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			url.Values{"grant_type": {"refresh_token"}, "client_id": {"spa"}, "refresh_token": {"nope"}}.Encode())
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin || !varyOrigin(resp.Header) {
			t.Errorf("POST /token error: %d %v", resp.StatusCode, resp.Header)
		}
		resp = corsDo(t, http.MethodPost, base+"/token", evilOrigin, form, url.Values{"grant_type": {"client_credentials"}}.Encode())
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" || !varyOrigin(resp.Header) {
			t.Errorf("POST /token from an unregistered origin: %d %v", resp.StatusCode, resp.Header)
		}
		for _, p := range []string{"/.well-known/oauth-authorization-server", "/jwks.json"} {
			resp := corsDo(t, http.MethodGet, base+p, spaOrigin, nil, "")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin || !varyOrigin(resp.Header) {
				t.Errorf("GET %s: %d %v", p, resp.StatusCode, resp.Header)
			}
		}
	})

	t.Run("other routes never", func(t *testing.T) {
		authz := base + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"spa"},
			"redirect_uri": {spaOrigin + "/cb"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}.Encode()
		for _, m := range []string{http.MethodGet, http.MethodOptions} {
			resp := corsDo(t, m, authz, spaOrigin, map[string]string{"Access-Control-Request-Method": http.MethodGet}, "")
			noCORS(t, m+" /authorize", resp.Header)
		}
		resp := corsDo(t, http.MethodPost, base+"/login", spaOrigin, nil, "")
		noCORS(t, "POST /login", resp.Header)
		resp = corsDo(t, http.MethodOptions, base+"/introspect", spaOrigin, map[string]string{"Access-Control-Request-Method": http.MethodPost}, "")
		noCORS(t, "OPTIONS /introspect", resp.Header)
	})

	t.Run("origin removed from the registry", func(t *testing.T) {
		c, err := h.st.GetClient(context.Background(), "spa")
		if err != nil {
			t.Fatal(err)
		}
		c.CORSOrigins = nil
		if _, err := h.st.UpdateClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		h.eventually("origin dropped", func() bool {
			resp := corsDo(t, http.MethodGet, base+"/jwks.json", spaOrigin, nil, "")
			return resp.Header.Get("Access-Control-Allow-Origin") == ""
		})
	})
}

// TestNoCORSWithoutOrigins: a host that passes no origin source (valet dev)
// sends no CORS headers at all.
func TestNoCORSWithoutOrigins(t *testing.T) {
	h := newHarness(t)
	resp := corsDo(t, http.MethodOptions, h.url+"/token", spaOrigin, map[string]string{"Access-Control-Request-Method": http.MethodPost}, "")
	noCORS(t, "OPTIONS /token", resp.Header)
	resp = corsDo(t, http.MethodGet, h.url+"/jwks.json", spaOrigin, nil, "")
	noCORS(t, "GET /jwks.json", resp.Header)
}
