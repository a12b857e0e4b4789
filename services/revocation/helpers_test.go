package revocation_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/services/introspection"
	"github.com/valetauth/valet/services/revocation"
)

// Fixtures.
const (
	testIssuer = "https://auth.example.test"
	apiID      = "https://api.example.test/"
	otherAPI   = "https://other.example.test/"
	clientA    = "svc-a"  // the tokens' client
	clientB    = "svc-b"  // another confidential client
	rsAPI      = "rs-api" // authenticates as the resource server apiID
	pubClient  = "pub"    // a public client
	opsClient  = "ops"    // the admin client
)

// response is a decoded answer.
type response = servicetest.Response

// harness is a revocation service and an introspection service on the
// shared backbone (a real Redis and an embedded JetStream, a real signing
// key ring whose JWKS is served over HTTP), with the revoke primitive's
// relay running and an edge Verifier following the stream.
type harness struct {
	*servicetest.Env
	t      testing.TB
	url    string // the introspection endpoint
	revoke string // the revocation endpoint
	admin  string // the admin listener, http://host:port
	jwks   string // the JWKS document's URL
	rev    *revoke.Revoker
	svc    *revocation.Service
	reg    *prometheus.Registry // the revocation service's
	edge   *edge.Verifier
}

// newHarness is newHarnessWith the default request limits, as the mains
// build them.
func newHarness(t testing.TB) *harness { return newHarnessWith(t, nil) }

// newHarnessWith starts the harness with the revocation service's request
// limits from limits, which may also change the configuration (trusted
// proxies); nil: the defaults of config.Default, as cmd/revocation builds
// them. Introspection always runs with the defaults.
func newHarnessWith(t testing.TB, limits func(cfg *config.Config) clientlimit.Limits) *harness {
	t.Helper()
	// A short acknowledgement timeout: /revoke answers 503 soon while NATS
	// is down.
	env := servicetest.New(t, testIssuer, servicetest.WithPublisherOptions(bus.WithAckTimeout(500*time.Millisecond)))
	h := &harness{Env: env, t: t, reg: prometheus.NewRegistry()}
	cfg := h.Config()
	cfg.Services.Introspection = config.Service{PublicURL: "http://introspect.test", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	cfg.Services.Revocation = config.Service{PublicURL: "http://revoke.test", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	defaults, err := clientlimit.FromConfig(cfg.Limits)
	if err != nil {
		t.Fatal(err)
	}
	revLimits := defaults
	if limits != nil {
		revLimits = limits(cfg)
	}
	h.jwks = h.ServeJWKS()
	if h.rev, err = revoke.New(revoke.Config{Source: testIssuer, Prefix: h.Prefix, Retain: time.Hour, RetryAfter: 2 * time.Second}, h.Store, h.Pub); err != nil {
		t.Fatal(err)
	}
	servicetest.Go(t, revoke.NewRelay(h.rev, 50*time.Millisecond, nil).Run)
	servicetest.Heartbeat(t, h.Pub, testIssuer, events.Heartbeat{Service: "test", Instance: "t"}, 100*time.Millisecond)
	cache := h.FollowClients(time.Second)
	chk := h.checker(cfg)

	isvc, err := introspection.New(cfg, introspection.Deps{
		Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		Store: h.Store, Clients: cache, Secrets: h.Hasher, Checker: chk, ClientLimits: defaults,
	})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := servicetest.Serve(t, isvc)
	h.url = base + introspection.IntrospectPath
	if h.svc, err = revocation.New(cfg, revocation.Deps{
		Logger: zap.NewNop(), Registry: h.reg,
		Store: h.Store, Revoker: h.rev, Clients: cache, Secrets: h.Hasher, Checker: chk, ClientLimits: revLimits,
	}); err != nil {
		t.Fatal(err)
	}
	base, h.admin = servicetest.Serve(t, h.svc)
	h.revoke = base + revocation.RevokePath

	h.edge, err = edge.New(edge.Config{
		Issuer: testIssuer, Audience: apiID, JWKSURL: h.jwks, JetStream: h.JS,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
	}, edge.WithSubjectPrefix(h.Prefix), edge.WithStalenessBound(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.edge.Close() })
	if err := h.edge.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := h.edge.WaitCurrent(ctx); err != nil {
		t.Fatal(err)
	}

	h.CreateResourceServers(
		store.ResourceServer{ID: apiID, Name: "API", Scopes: []string{"read", "write"}},
		store.ResourceServer{ID: otherAPI, Name: "Other", Scopes: []string{"x"}},
	)
	h.CreateClient(store.Client{ID: clientA, Type: store.Confidential, GrantTypes: []string{"client_credentials"}, Resources: map[string][]string{apiID: {"read"}}})
	h.CreateClient(store.Client{ID: clientB, Type: store.Confidential, GrantTypes: []string{"client_credentials"}})
	h.CreateClient(store.Client{ID: rsAPI, Type: store.Confidential, ResourceIDs: []string{apiID}})
	h.CreateClient(store.Client{ID: pubClient, Type: store.Public, GrantTypes: []string{"authorization_code", "refresh_token"}})
	h.CreateClient(store.Client{ID: opsClient, Type: store.Confidential, GrantTypes: []string{"client_credentials"}})
	servicetest.WaitFor(t, 10*time.Second, "client cache trusted", cache.Trusted)
	return h
}

// checker is the access-token checker of the revocation service as
// cmd/revocation builds it from cfg: JWKS over HTTP, no key stream.
func (h *harness) checker(cfg *config.Config) *edge.Checker {
	h.t.Helper()
	return servicetest.Checker(h.t, edge.CheckerConfig{
		Issuer: testIssuer, JWKSURL: h.jwks,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime, ClockSkew: cfg.Tokens.ClockSkew,
	})
}

// claims returns the claims of a client-credentials token of svc-a for the
// API, issued now for five minutes; kv overrides (nil deletes).
func claims(kv ...any) map[string]any {
	return servicetest.AccessClaims(testIssuer, clientA, apiID, "read", kv...)
}

// revokeAs posts token to /revoke as client (Basic auth when it has a
// secret, client_id in the body otherwise).
func (h *harness) revokeAs(tok, client string) response {
	h.t.Helper()
	v := url.Values{"token": {tok}}
	if h.Secrets[client] == "" {
		v.Set("client_id", client)
	}
	return h.Post(h.t, h.revoke, v.Encode(), client)
}

// introspect posts token to /introspect as client (Basic auth when it has
// a secret).
func (h *harness) introspect(tok, client string) response {
	h.t.Helper()
	return h.Post(h.t, h.url, url.Values{"token": {tok}}.Encode(), client)
}

// adminToken mints an admin access token of the ops client.
func (h *harness) adminToken(kv ...any) string {
	h.t.Helper()
	c := claims(append([]any{"aud", adminauth.Audience(testIssuer), "scope", adminauth.Scope, "sub", opsClient, "client_id", opsClient}, kv...)...)
	return h.Mint(c)
}

// adminPost posts a JSON body to an admin revocation endpoint with bearer.
func (h *harness) adminPost(path, body, bearer string) response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.admin+revocation.AdminPrefix+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return servicetest.Do(h.t, req)
}

// edgeRejects waits until the edge rejects tok as revoked.
func (h *harness) edgeRejects(tok string) {
	h.t.Helper()
	servicetest.Eventually(h.t, 10*time.Second, func() error {
		_, err := h.edge.Verify(context.Background(), tok)
		if errors.Is(err, edge.ErrRevoked) {
			return nil
		}
		return fmt.Errorf("the edge does not reject the revoked token: %v", err)
	})
}
