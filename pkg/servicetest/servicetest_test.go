package servicetest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
)

const (
	iss = "https://auth.example.test"
	api = "https://api.example.test/"
)

// TestEnv: the backbone is usable as the services use it: a minted token
// passes a checker on the served JWKS, a seeded confidential client has its
// secret recorded, a family is in the store, and the client cache following
// the stream becomes trusted under heartbeats.
func TestEnv(t *testing.T) {
	e := servicetest.New(t, iss)
	e.CreateResourceServers(store.ResourceServer{ID: api, Name: "API", Scopes: []string{"read"}})
	sec := e.CreateClient(store.Client{ID: "svc", Type: store.Confidential, GrantTypes: []string{"client_credentials"}})
	if sec == "" || e.Secrets["svc"] != sec {
		t.Fatalf("secret %q, recorded %q", sec, e.Secrets["svc"])
	}
	if pub := e.CreateClient(store.Client{ID: "pub", Type: store.Public}); pub != "" {
		t.Fatalf("a public client got secret %q", pub)
	}

	chk := servicetest.Checker(t, edge.CheckerConfig{Issuer: iss, JWKSURL: e.ServeJWKS(), MaxTokenLifetime: 15 * time.Minute})
	if _, err := chk.Check(context.Background(), e.Mint(servicetest.AccessClaims(iss, "svc", api, "read"))); err != nil {
		t.Fatalf("minted token refused: %v", err)
	}
	if _, err := chk.Check(context.Background(), e.MintTyp("JWT", servicetest.AccessClaims(iss, "svc", api, "read"))); err == nil {
		t.Fatal("a token of typ JWT passed")
	}
	if _, err := chk.Check(context.Background(), e.Mint(servicetest.AccessClaims(iss, "svc", api, "read", "exp", nil))); err == nil {
		t.Fatal("a token without exp passed")
	}

	f, rt := e.Family("svc", "alice", api)
	if rt == "" {
		t.Fatal("no refresh token")
	}
	if got, err := e.Store.GetFamily(context.Background(), f.FID); err != nil || got.Subject != "alice" || got.Resource != api {
		t.Fatalf("family %+v, %v", got, err)
	}

	servicetest.Heartbeat(t, e.Pub, iss, events.Heartbeat{Service: "test", Instance: "t"}, 50*time.Millisecond)
	cache := e.FollowClients(time.Second)
	servicetest.Eventually(t, 10*time.Second, func() error {
		if !cache.Trusted() {
			return errors.New("client cache not trusted")
		}
		return nil
	})
}

// TestGoStops: stop cancels the goroutine's context and returns once it has
// returned; calling it again is harmless.
func TestGoStops(t *testing.T) {
	exited := make(chan struct{})
	stop := servicetest.Go(t, func(ctx context.Context) { <-ctx.Done(); close(exited) })
	stop()
	select {
	case <-exited:
	default:
		t.Fatal("stop returned before the goroutine did")
	}
	stop()
}

// TestPostForm: the form encoding, optional headers left out when empty,
// and RFC 6749 §2.3.1 Basic credentials.
func TestPostForm(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_request","user":"` + user + `","pass":"` + pass + `","xff":"` +
			r.Header.Get("X-Forwarded-For") + `","token":"` + r.PostForm.Get("token") + `","active":true}`))
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name               string
		header             []string
		wantUser, wantPass string
		wantXFF            string
	}{
		{"no credentials", []string{"Authorization", ""}, "", "", ""},
		{"basic, encoded", []string{"Authorization", servicetest.Basic("a:b", "p w")}, "a%3Ab", "p+w", ""},
		{"forwarded", []string{"X-Forwarded-For", "192.0.2.1"}, "", "", "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := servicetest.PostForm(t, srv.URL, "token=x", tt.header...)
			servicetest.WantStatus(t, tt.name, r, http.StatusBadRequest, "invalid_request")
			if r.Str("user") != tt.wantUser || r.Str("pass") != tt.wantPass || r.Str("xff") != tt.wantXFF ||
				r.Str("token") != "x" || !r.Bool("active") {
				t.Fatalf("server saw %s", r.Raw)
			}
		})
	}
}
