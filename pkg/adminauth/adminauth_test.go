package adminauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/store"
)

const issuer = "https://auth.example.test"

// checker is a func-field fake of edge.Checker: tokens are looked up by
// their string.
type checker map[string]edge.Claims

func (c checker) Check(_ context.Context, tok string) (edge.Claims, error) {
	switch tok {
	case "stale":
		return edge.Claims{}, edge.ErrStale
	}
	cl, ok := c[tok]
	if !ok {
		return edge.Claims{}, edge.ErrBadSignature
	}
	return cl, nil
}

type denyStore struct {
	deny store.Deny
	err  error
}

func (d *denyStore) DenyState(context.Context, store.DenyQuery) (store.Deny, error) {
	return d.deny, d.err
}

func TestGuard(t *testing.T) {
	aud := adminauth.Audience(issuer + "/")
	if aud != issuer+"/admin" {
		t.Fatalf("Audience = %q", aud)
	}
	now := time.Now()
	base := edge.Claims{Issuer: issuer, Subject: "ops", ClientID: "ops", JTI: "j1", IssuedAt: now.Add(-time.Minute),
		Audience: []string{aud}, Scopes: []string{adminauth.Scope}}
	withScopes := func(s ...string) edge.Claims { c := base; c.Scopes = s; return c }
	withAud := func(a ...string) edge.Claims { c := base; c.Audience = a; return c }
	chk := checker{
		"good":     base,
		"no-scope": withScopes("read"),
		"no-aud":   withAud("https://api.example.test/"),
		"cut":      base,
	}
	ds := &denyStore{}
	g, err := adminauth.New(adminauth.Config{Audience: aud, ClockSkew: time.Second}, chk, ds)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.Use(g.Middleware())
	e.POST("/admin/x", func(c echo.Context) error {
		return c.String(http.StatusOK, adminauth.Actor(c.Request().Context()))
	})
	tests := []struct {
		name       string
		auth       []string
		deny       store.Deny
		storeErr   error
		status     int
		code       string
		challenge  string
		wantActor  string
		noErrorArg bool
	}{
		{name: "admin token", auth: []string{"Bearer good"}, status: 200, wantActor: "ops"},
		{name: "scheme case-insensitive", auth: []string{"bearer good"}, status: 200, wantActor: "ops"},
		{name: "no token", status: 401, code: "invalid_token", challenge: `Bearer realm="valet"`, noErrorArg: true},
		{name: "basic scheme", auth: []string{"Basic Zm9vOmJhcg=="}, status: 400, code: "invalid_request"},
		{name: "two headers", auth: []string{"Bearer good", "Bearer good"}, status: 400, code: "invalid_request"},
		{name: "bad token", auth: []string{"Bearer forged"}, status: 401, code: "invalid_token", challenge: `error="invalid_token"`},
		{name: "without the admin scope", auth: []string{"Bearer no-scope"}, status: 403, code: "insufficient_scope", challenge: `error="insufficient_scope"`},
		{name: "without the admin audience", auth: []string{"Bearer no-aud"}, status: 401, code: "invalid_token"},
		{name: "revoked jti", auth: []string{"Bearer good"}, deny: store.Deny{JTIRevoked: true}, status: 401, code: "invalid_token"},
		{name: "client cut-off", auth: []string{"Bearer cut"}, deny: store.Deny{ClientCutoff: now.Add(-time.Minute)}, status: 401, code: "invalid_token"},
		{name: "old cut-off", auth: []string{"Bearer cut"}, deny: store.Deny{ClientCutoff: now.Add(-time.Hour)}, status: 200, wantActor: "ops"},
		{name: "store down", auth: []string{"Bearer good"}, storeErr: store.ErrUnavailable, status: 503, code: "temporarily_unavailable"},
		{name: "keys unavailable", auth: []string{"Bearer stale"}, status: 503, code: "temporarily_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds.deny, ds.err = tt.deny, tt.storeErr
			req := httptest.NewRequest(http.MethodPost, "/admin/x", nil)
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 200 {
				if rec.Body.String() != tt.wantActor {
					t.Fatalf("actor %q, want %q", rec.Body, tt.wantActor)
				}
				return
			}
			var body struct{ Error string }
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if body.Error != tt.code {
				t.Fatalf("error %q, want %q", body.Error, tt.code)
			}
			ch := rec.Header().Get("WWW-Authenticate")
			if !strings.Contains(ch, tt.challenge) {
				t.Fatalf("WWW-Authenticate %q lacks %q", ch, tt.challenge)
			}
			if tt.noErrorArg && strings.Contains(ch, "error=") {
				t.Fatalf("WWW-Authenticate %q has an error code for a request without a token", ch)
			}
			if tt.status == 503 && rec.Header().Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		})
	}
	if _, err := adminauth.New(adminauth.Config{}, chk, ds); err == nil {
		t.Fatal("New without an audience")
	}
}
