package revocation_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/cors"
	"github.com/valetauth/valet/pkg/servicetest"
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
	ctx := t.Context()
	c, err := h.Store.GetClient(ctx, pubClient)
	if err != nil {
		t.Fatal(err)
	}
	c.CORSOrigins = []string{spaOrigin}
	if _, err := h.Store.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	origins, err := cors.NewRegistry(h.Store)
	if err != nil {
		t.Fatal(err)
	}
	if err := origins.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	cfg := h.Config()
	cfg.Services.Revocation = config.Service{PublicURL: "http://revoke.test", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	// Not running: every lookup reads the store.
	cache, err := clients.New(h.Store, clients.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := revocation.New(cfg, revocation.Deps{
		Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		Store: h.Store, Revoker: h.rev, Clients: cache, Secrets: h.Hasher, Checker: h.checker(cfg),
		Origins: origins,
	})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := servicetest.Serve(t, svc)
	return base + revocation.RevokePath
}

func TestCORS(t *testing.T) {
	h := newHarness(t)
	revokeURL := newCORSRevocation(t, h)
	pre := map[string]string{"Access-Control-Request-Method": http.MethodPost, "Access-Control-Request-Headers": "content-type"}

	resp := servicetest.CORSRequest(t, http.MethodOptions, revokeURL, spaOrigin, pre, "")
	hd := resp.Header
	if resp.StatusCode != http.StatusNoContent || hd.Get("Access-Control-Allow-Origin") != spaOrigin ||
		hd.Get("Access-Control-Allow-Methods") != http.MethodPost || hd.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
		hd.Get("Access-Control-Max-Age") == "" || hd.Get("Access-Control-Allow-Credentials") != "" || !servicetest.VaryOrigin(hd) {
		t.Errorf("preflight: %d %v", resp.StatusCode, hd)
	}
	for _, o := range []string{evilOrigin, "null", "http://spa.example.test"} {
		resp := servicetest.CORSRequest(t, http.MethodOptions, revokeURL, o, pre, "")
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || !servicetest.VaryOrigin(resp.Header) {
			t.Errorf("preflight from %s: %d %v", o, resp.StatusCode, resp.Header)
		}
	}

	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	body := url.Values{"token": {h.Mint(claims())}, "client_id": {pubClient}}.Encode()
	resp = servicetest.CORSRequest(t, http.MethodPost, revokeURL, spaOrigin, form, body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin || !servicetest.VaryOrigin(resp.Header) {
		t.Errorf("POST /revoke: %d %v", resp.StatusCode, resp.Header)
	}
	resp = servicetest.CORSRequest(t, http.MethodPost, revokeURL, evilOrigin, form, body)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || !servicetest.VaryOrigin(resp.Header) {
		t.Errorf("POST /revoke from an unregistered origin: %d %v", resp.StatusCode, resp.Header)
	}

	// The introspection endpoint and the harness's revocation service
	// (no origin source) never answer with CORS.
	for _, u := range []string{h.url, h.revoke} {
		resp := servicetest.CORSRequest(t, http.MethodOptions, u, spaOrigin, pre, "")
		servicetest.NoCORS(t, "OPTIONS "+u, resp.Header)
		resp = servicetest.CORSRequest(t, http.MethodPost, u, spaOrigin, form, url.Values{"token": {"x"}}.Encode())
		servicetest.NoCORS(t, "POST "+u, resp.Header)
	}
}
