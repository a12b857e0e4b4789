package edge_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/services/edge"
)

func TestForwardAuth(t *testing.T) {
	e := newEnv(t)
	a := e.startAuthz(t, testPolicy)
	valid := claims()
	tok := e.sign(t, valid)
	now := time.Now().Unix()

	tests := []struct {
		name   string
		method string
		uri    string
		// token is the bearer token; "" sends no Authorization header.
		token string
		// edit changes the request before it is sent.
		edit       func(r *http.Request)
		wantStatus int
		// wantWWW is the exact WWW-Authenticate; "" means none.
		wantWWW   string
		wantError string // the body's error
	}{
		{name: "valid token, GET needs read", method: "GET", uri: "/reports/1?page=2", token: tok, wantStatus: 200},
		{name: "valid token, POST needs write", method: "POST", uri: "/reports", token: tok, wantStatus: 200},
		{name: "valid token, public route", method: "DELETE", uri: "/public/x", token: tok, wantStatus: 200},
		{
			name: "no token", method: "GET", uri: "/reports/1", wantStatus: 401,
			wantWWW: `Bearer realm="valet"`,
		},
		{
			name: "another scheme is no bearer token", method: "GET", uri: "/reports/1", wantStatus: 401,
			edit:    func(r *http.Request) { r.Header.Set("Authorization", "Basic d2ViOnNlY3JldA==") },
			wantWWW: `Bearer realm="valet"`,
		},
		{
			name: "garbage", method: "GET", uri: "/reports/1", token: "not.a.token", wantStatus: 401,
			wantWWW:   `Bearer realm="valet", error="invalid_token", error_description="the access token is malformed"`,
			wantError: "invalid_token",
		},
		{
			name: "expired", method: "GET", uri: "/reports/1", wantStatus: 401,
			token:     e.sign(t, with(claims(), "iat", now-1200, "exp", now-600)),
			wantWWW:   `Bearer realm="valet", error="invalid_token", error_description="the access token expired"`,
			wantError: "invalid_token",
		},
		{
			name: "wrong audience", method: "GET", uri: "/reports/1", wantStatus: 401,
			token:     e.sign(t, with(claims(), "aud", "https://elsewhere.test")),
			wantWWW:   `Bearer realm="valet", error="invalid_token", error_description="the token is not meant for this audience"`,
			wantError: "invalid_token",
		},
		{
			name: "wrong issuer", method: "GET", uri: "/reports/1", wantStatus: 401,
			token:     e.sign(t, with(claims(), "iss", "https://evil.test")),
			wantWWW:   `Bearer realm="valet", error="invalid_token", error_description="the token was issued by another issuer"`,
			wantError: "invalid_token",
		},
		{
			name: "insufficient scope for the route", method: "GET", uri: "/admin/users", token: tok, wantStatus: 403,
			wantWWW:   `Bearer realm="valet", error="insufficient_scope", error_description="the access token lacks a scope this route requires", scope="admin"`,
			wantError: "insufficient_scope",
		},
		{
			name: "method-specific scope", method: "POST", uri: "/reports", wantStatus: 403,
			token:     e.sign(t, with(claims(), "scope", "read")),
			wantWWW:   `Bearer realm="valet", error="insufficient_scope", error_description="the access token lacks a scope this route requires", scope="write"`,
			wantError: "insufficient_scope",
		},
		{
			name: "unmatched route denied by default", method: "GET", uri: "/elsewhere", token: tok, wantStatus: 403,
			wantWWW:   `Bearer realm="valet", error="insufficient_scope", error_description="no route policy allows this request"`,
			wantError: "insufficient_scope",
		},
		{
			name: "prefixes match whole segments", method: "GET", uri: "/publicity", token: tok, wantStatus: 403,
			wantWWW:   `Bearer realm="valet", error="insufficient_scope", error_description="no route policy allows this request"`,
			wantError: "insufficient_scope",
		},
		{
			name: "invalid token on an unmatched route is 401", method: "GET", uri: "/elsewhere", token: "x", wantStatus: 401,
			wantWWW:   `Bearer realm="valet", error="invalid_token", error_description="the access token is malformed"`,
			wantError: "invalid_token",
		},
		{
			name: "token in the query string", method: "GET", uri: "/public/x?a=1&access_token=" + tok, token: tok, wantStatus: 400,
			wantWWW:   `Bearer realm="valet", error="invalid_request", error_description="access tokens are accepted in the Authorization header only"`,
			wantError: "invalid_request",
		},
		{
			name: "token only in the query string", method: "GET", uri: "/public/x?%61ccess_token=" + tok, wantStatus: 400,
			wantWWW:   `Bearer realm="valet", error="invalid_request", error_description="access tokens are accepted in the Authorization header only"`,
			wantError: "invalid_request",
		},
		{
			name: "two Authorization headers", method: "GET", uri: "/public/x", token: tok, wantStatus: 400,
			edit:      func(r *http.Request) { r.Header.Add("Authorization", "Bearer "+tok) },
			wantWWW:   `Bearer realm="valet", error="invalid_request", error_description="malformed or repeated Authorization header"`,
			wantError: "invalid_request",
		},
		{
			name: "dot segments are refused", method: "GET", uri: "/public/../admin/users", token: tok, wantStatus: 400,
			wantError: "invalid_request",
		},
		{
			name: "escaped dot segments are refused", method: "GET", uri: "/public/%2e%2e/admin", token: tok, wantStatus: 400,
			wantError: "invalid_request",
		},
		{
			name: "repeated slashes are merged before matching", method: "GET", uri: "//admin//users", token: tok, wantStatus: 403,
			wantWWW:   `Bearer realm="valet", error="insufficient_scope", error_description="the access token lacks a scope this route requires", scope="admin"`,
			wantError: "insufficient_scope",
		},
		{
			name: "gateway forwarded no URI", method: "GET", uri: "", token: tok, wantStatus: 400,
			wantError: "invalid_request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := a.traefik(t, tt.method, tt.uri, tt.token)
			if tt.edit != nil {
				tt.edit(req)
			}
			r := ask(t, req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %v)", r.status, tt.wantStatus, r.body)
			}
			if got := r.header.Get("WWW-Authenticate"); got != tt.wantWWW {
				t.Errorf("WWW-Authenticate\n got %q\nwant %q", got, tt.wantWWW)
			}
			if got := r.body["error"]; got != tt.wantError {
				t.Errorf("body error %q, want %q", got, tt.wantError)
			}
			if got := r.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if tt.wantStatus == 200 {
				want := map[string]string{
					edge.HeaderSubject: "alice", edge.HeaderClient: "web-portal",
					edge.HeaderScope: "read write", edge.HeaderTokenID: valid["jti"].(string),
				}
				for h, v := range want {
					if got := r.header.Get(h); got != v {
						t.Errorf("%s = %q, want %q", h, got, v)
					}
				}
				return
			}
			for _, h := range []string{edge.HeaderSubject, edge.HeaderClient, edge.HeaderScope, edge.HeaderTokenID} {
				if v, ok := r.header[h]; ok {
					t.Errorf("denial carries %s: %q", h, v)
				}
			}
		})
	}
}

// TestGatewayConventions checks that each endpoint reads its own gateway's
// headers, and only those.
func TestGatewayConventions(t *testing.T) {
	e := newEnv(t)
	a := e.startAuthz(t, testPolicy)
	tok := e.sign(t, claims())

	tests := []struct {
		name string
		path string
		// hdr are the request headers besides Authorization.
		hdr    map[string]string
		method string
		want   int
	}{
		{name: "nginx", path: edge.PathNGINX, hdr: map[string]string{"X-Original-URI": "/admin/x", "X-Original-Method": "GET"}, want: 403},
		{name: "nginx reads method from its header", path: edge.PathNGINX, hdr: map[string]string{"X-Original-URI": "/reports/1", "X-Original-Method": "POST"}, want: 200},
		{name: "nginx ignores Traefik headers", path: edge.PathNGINX, hdr: map[string]string{
			"X-Original-URI": "/admin/x", "X-Original-Method": "GET", "X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET",
		}, want: 403},
		{name: "nginx without its headers", path: edge.PathNGINX, hdr: map[string]string{"X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET"}, want: 400},
		{name: "traefik ignores NGINX headers", path: edge.PathTraefik, hdr: map[string]string{
			"X-Forwarded-Uri": "/admin/x", "X-Forwarded-Method": "GET", "X-Original-URI": "/public/x", "X-Original-Method": "GET",
		}, want: 403},
		{name: "envoy", path: edge.PathEnvoy + "/reports/1?q=1", method: "GET", want: 200},
		{name: "envoy method", path: edge.PathEnvoy + "/admin", method: "POST", want: 403},
		{name: "envoy ignores forwarded headers", path: edge.PathEnvoy + "/admin", method: "GET", hdr: map[string]string{"X-Forwarded-Uri": "/public/x", "X-Original-URI": "/public/x"}, want: 403},
		{name: "envoy root", path: edge.PathEnvoy + "/", method: "GET", want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req, err := http.NewRequest(method, a.url+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			if r := ask(t, req); r.status != tt.want {
				t.Fatalf("status %d, want %d (body %v)", r.status, tt.want, r.body)
			}
		})
	}
}

// TestSpoofedIdentityHeaders checks that X-Valet-* headers a client sends
// are never echoed: a 200 carries the token's identity, a denial none.
func TestSpoofedIdentityHeaders(t *testing.T) {
	e := newEnv(t)
	a := e.startAuthz(t, testPolicy)
	tok := e.sign(t, claims())
	spoof := func(r *http.Request) {
		r.Header.Set(edge.HeaderSubject, "root")
		r.Header.Set(edge.HeaderClient, "admin-cli")
		r.Header.Set(edge.HeaderScope, "admin")
		r.Header.Set(edge.HeaderTokenID, "forged")
		r.Header.Set("X-Valet-Other", "x")
	}

	req := a.traefik(t, "GET", "/public/x", tok)
	spoof(req)
	r := ask(t, req)
	if r.status != 200 {
		t.Fatalf("status %d, want 200", r.status)
	}
	if got := r.header.Get(edge.HeaderSubject); got != "alice" {
		t.Errorf("%s = %q, want alice", edge.HeaderSubject, got)
	}
	if got := r.header.Values(edge.HeaderScope); len(got) != 1 || got[0] != "read write" {
		t.Errorf("%s = %q, want [read write]", edge.HeaderScope, got)
	}
	if got := r.header.Get("X-Valet-Other"); got != "" {
		t.Errorf("X-Valet-Other echoed: %q", got)
	}

	req = a.traefik(t, "GET", "/public/x", "")
	spoof(req)
	r = ask(t, req)
	if r.status != 401 {
		t.Fatalf("status %d, want 401", r.status)
	}
	for h := range r.header {
		if strings.HasPrefix(strings.ToLower(h), "x-valet-") {
			t.Errorf("401 carries %s: %q", h, r.header[h])
		}
	}
}

// TestRevokedTokenRejected publishes token.revoked and expects 401 within
// the generous deadline, and the propagation metric to count it.
func TestRevokedTokenRejected(t *testing.T) {
	e := newEnv(t)
	a := e.startAuthz(t, testPolicy)
	victim, bystander := claims(), claims()
	vt, bt := e.sign(t, victim), e.sign(t, bystander)
	for _, tok := range []string{vt, bt} {
		if err := statusIs(ask(t, a.traefik(t, "GET", "/public/x", tok)), 200); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
	}

	e.revoke(t, victim)
	servicetest.Eventually(t, wait, func() error {
		r := ask(t, a.traefik(t, "GET", "/public/x", vt))
		if err := statusIs(r, 401); err != nil {
			return err
		}
		want := `Bearer realm="valet", error="invalid_token", error_description="the access token is revoked"`
		if got := r.header.Get("WWW-Authenticate"); got != want {
			return fmt.Errorf("WWW-Authenticate %q, want %q", got, want)
		}
		return nil
	})
	if err := statusIs(ask(t, a.traefik(t, "GET", "/public/x", bt)), 200); err != nil {
		t.Errorf("bystander: %v", err)
	}
	if got := a.metric(t, `valet_edge_decisions_total{code="401",reason="revoked"}`); got == "" || got == "0" {
		t.Errorf("revoked decisions = %q, want > 0", got)
	}
	if got := a.metric(t, `valet_edge_revocation_propagation_seconds_count{type="token.revoked"}`); got != "1" {
		t.Errorf("propagation observations = %q, want 1", got)
	}
}

// TestStaleFailsClosedAndRecovers stops NATS beyond the staleness bound:
// every decision is 503 without a challenge and /readyz fails; once NATS is
// back the edge recovers by itself.
func TestStaleFailsClosedAndRecovers(t *testing.T) {
	e := newEnv(t)
	a := e.startAuthz(t, testPolicy)
	tok := e.sign(t, claims())
	if err := statusIs(ask(t, a.traefik(t, "GET", "/public/x", tok)), 200); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, a.admin+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d before the outage: %s", code, body)
	}
	if got := a.metric(t, "valet_edge_current"); got != "1" {
		t.Errorf("valet_edge_current = %q, want 1", got)
	}

	e.nats.Shutdown()
	servicetest.Eventually(t, wait, func() error {
		r := ask(t, a.traefik(t, "GET", "/public/x", tok))
		if err := statusIs(r, 503); err != nil {
			return err
		}
		if got := r.header.Get("WWW-Authenticate"); got != "" {
			t.Errorf("503 carries WWW-Authenticate %q", got)
		}
		if r.body["error"] != "temporarily_unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("503 body %v, Retry-After %q", r.body, r.header.Get("Retry-After"))
		}
		return nil
	})
	if code, body := get(t, a.admin+"/readyz"); code != 503 || !strings.Contains(body, "not current") {
		t.Errorf("/readyz while stale: %d %s", code, body)
	}
	if got := a.metric(t, "valet_edge_current"); got != "0" {
		t.Errorf("valet_edge_current = %q, want 0", got)
	}
	// A request without a token is still answered 401: it needs no state.
	if err := statusIs(ask(t, a.traefik(t, "GET", "/public/x", "")), 401); err != nil {
		t.Error(err)
	}

	e.nats.Start()
	servicetest.Eventually(t, wait, func() error { return statusIs(ask(t, a.traefik(t, "GET", "/public/x", tok)), 200) })
	servicetest.Eventually(t, wait, func() error {
		if code, body := get(t, a.admin+"/readyz"); code != 200 {
			return fmt.Errorf("/readyz %d: %s", code, body)
		}
		return nil
	})
	if got := a.metric(t, `valet_edge_decisions_total{code="503",reason="stale"}`); got == "" || got == "0" {
		t.Errorf("stale decisions = %q, want > 0", got)
	}
}
