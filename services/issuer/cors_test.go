package issuer_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
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
	res := map[string][]string{apiID: {"read"}}
	h.CreateClient(store.Client{ID: "spa", Type: store.Public, GrantTypes: []string{"authorization_code", "refresh_token"},
		RedirectURIs: []string{spaOrigin + "/cb"}, Resources: res, DefaultResource: apiID, CORSOrigins: []string{spaOrigin}})
	h.CreateClient(store.Client{ID: "spa-off", Type: store.Public, Disabled: true, GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{evilOrigin + "/cb"}, Resources: res, DefaultResource: apiID, CORSOrigins: []string{evilOrigin}})
	h.CreateClient(store.Client{ID: "conf-cors", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: res, DefaultResource: apiID, CORSOrigins: []string{"https://conf.example.test"}})

	origins, err := cors.NewRegistry(h.Store, cors.WithInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := origins.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	servicetest.Go(t, origins.Run)

	cfg := *h.cfg
	deps := h.userDeps(t, prometheus.NewRegistry())
	deps.Origins = origins
	_, u := startIssuer(t, &cfg, deps)
	return u
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
			resp := servicetest.CORSRequest(t, http.MethodOptions, base+path, spaOrigin,
				map[string]string{"Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization, content-type"}, "")
			hd := resp.Header
			if resp.StatusCode != http.StatusNoContent || hd.Get("Access-Control-Allow-Origin") != spaOrigin ||
				hd.Get("Access-Control-Allow-Methods") != method || hd.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
				hd.Get("Access-Control-Max-Age") == "" || hd.Get("Access-Control-Allow-Credentials") != "" || !servicetest.VaryOrigin(hd) {
				t.Errorf("%s: %d %v", path, resp.StatusCode, hd)
			}
		}
	})

	t.Run("preflight from an unregistered origin", func(t *testing.T) {
		for path, method := range docs {
			for _, o := range []string{evilOrigin, "https://conf.example.test", "null", "https://spa.example.test.evil.test", "http://spa.example.test"} {
				resp := servicetest.CORSRequest(t, http.MethodOptions, base+path, o, map[string]string{"Access-Control-Request-Method": method}, "")
				if resp.Header.Get("Access-Control-Allow-Origin") != "" || !servicetest.VaryOrigin(resp.Header) {
					t.Errorf("%s from %s: %d %v", path, o, resp.StatusCode, resp.Header)
				}
			}
		}
	})

	t.Run("actual requests", func(t *testing.T) {
		form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": servicetest.Basic(clientA, h.secretA)}
		resp := servicetest.CORSRequest(t, http.MethodPost, base+"/token", spaOrigin, form, url.Values{"grant_type": {"client_credentials"}}.Encode())
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin || !servicetest.VaryOrigin(resp.Header) ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("POST /token: %d %v", resp.StatusCode, resp.Header)
		}
		// Errors are readable by the page too.
		resp = servicetest.CORSRequest(t, http.MethodPost, base+"/token", spaOrigin, map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			url.Values{"grant_type": {"refresh_token"}, "client_id": {"spa"}, "refresh_token": {"nope"}}.Encode())
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin || !servicetest.VaryOrigin(resp.Header) {
			t.Errorf("POST /token error: %d %v", resp.StatusCode, resp.Header)
		}
		resp = servicetest.CORSRequest(t, http.MethodPost, base+"/token", evilOrigin, form, url.Values{"grant_type": {"client_credentials"}}.Encode())
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" || !servicetest.VaryOrigin(resp.Header) {
			t.Errorf("POST /token from an unregistered origin: %d %v", resp.StatusCode, resp.Header)
		}
		for _, p := range []string{"/.well-known/oauth-authorization-server", "/jwks.json"} {
			resp := servicetest.CORSRequest(t, http.MethodGet, base+p, spaOrigin, nil, "")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin || !servicetest.VaryOrigin(resp.Header) {
				t.Errorf("GET %s: %d %v", p, resp.StatusCode, resp.Header)
			}
		}
	})

	t.Run("other routes never", func(t *testing.T) {
		authz := base + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"spa"},
			"redirect_uri": {spaOrigin + "/cb"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}.Encode()
		for _, m := range []string{http.MethodGet, http.MethodOptions} {
			resp := servicetest.CORSRequest(t, m, authz, spaOrigin, map[string]string{"Access-Control-Request-Method": http.MethodGet}, "")
			servicetest.NoCORS(t, m+" /authorize", resp.Header)
		}
		resp := servicetest.CORSRequest(t, http.MethodPost, base+"/login", spaOrigin, nil, "")
		servicetest.NoCORS(t, "POST /login", resp.Header)
		resp = servicetest.CORSRequest(t, http.MethodOptions, base+"/introspect", spaOrigin, map[string]string{"Access-Control-Request-Method": http.MethodPost}, "")
		servicetest.NoCORS(t, "OPTIONS /introspect", resp.Header)
	})

	t.Run("origin removed from the registry", func(t *testing.T) {
		c, err := h.Store.GetClient(context.Background(), "spa")
		if err != nil {
			t.Fatal(err)
		}
		c.CORSOrigins = nil
		if _, err := h.Store.UpdateClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		h.eventually("origin dropped", func() bool {
			resp := servicetest.CORSRequest(t, http.MethodGet, base+"/jwks.json", spaOrigin, nil, "")
			return resp.Header.Get("Access-Control-Allow-Origin") == ""
		})
	})
}

// TestNoCORSWithoutOrigins: a host that passes no origin source (valet dev)
// sends no CORS headers at all.
func TestNoCORSWithoutOrigins(t *testing.T) {
	h := newHarness(t)
	resp := servicetest.CORSRequest(t, http.MethodOptions, h.url+"/token", spaOrigin, map[string]string{"Access-Control-Request-Method": http.MethodPost}, "")
	servicetest.NoCORS(t, "OPTIONS /token", resp.Header)
	resp = servicetest.CORSRequest(t, http.MethodGet, h.url+"/jwks.json", spaOrigin, nil, "")
	servicetest.NoCORS(t, "GET /jwks.json", resp.Header)
}
