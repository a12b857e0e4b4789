package introspection_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/services/introspection"
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
)

// response is a decoded answer.
type response = servicetest.Response

// harness is an introspection service on the shared backbone (a real Redis
// and an embedded JetStream, a real signing key ring whose JWKS is served
// over HTTP), wired as cmd/introspection wires it.
type harness struct {
	*servicetest.Env
	t   testing.TB
	url string // the introspection endpoint
	rev *revoke.Revoker
	svc *introspection.Service
	reg *prometheus.Registry
}

// newHarness is newHarnessWith the default request limits, as
// cmd/introspection builds them.
func newHarness(t testing.TB) *harness { return newHarnessWith(t, nil) }

// newHarnessWith starts the harness with the service's request limits from
// limits, which may also change the configuration (trusted proxies); nil:
// the defaults of config.Default, as cmd/introspection builds them.
func newHarnessWith(t testing.TB, limits func(cfg *config.Config) clientlimit.Limits) *harness {
	t.Helper()
	h := &harness{Env: servicetest.New(t, testIssuer), t: t, reg: prometheus.NewRegistry()}
	cfg := h.Config()
	cfg.Services.Introspection = config.Service{PublicURL: "http://introspect.test", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	var cl clientlimit.Limits
	var err error
	if limits != nil {
		cl = limits(cfg)
	} else if cl, err = clientlimit.FromConfig(cfg.Limits); err != nil {
		t.Fatal(err)
	}
	if h.rev, err = revoke.New(revoke.Config{Source: testIssuer, Prefix: h.Prefix, Retain: time.Hour}, h.Store, h.Pub); err != nil {
		t.Fatal(err)
	}
	servicetest.Heartbeat(t, h.Pub, testIssuer, events.Heartbeat{Service: "test", Instance: "t"}, 100*time.Millisecond)
	cache := h.FollowClients(time.Second)
	// As the main wires it, following the key stream; the periodic JWKS
	// refresh is an hour apart, so that only the stream can make the
	// checker learn of a key change within a test.
	chk := servicetest.Checker(t, edge.CheckerConfig{
		Issuer: testIssuer, JWKSURL: h.ServeJWKS(),
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime, ClockSkew: cfg.Tokens.ClockSkew,
		RefreshInterval: time.Hour, JetStream: h.JS, SubjectPrefix: h.Prefix,
	})
	if h.svc, err = introspection.New(cfg, introspection.Deps{
		Logger: zap.NewNop(), Registry: h.reg,
		Store: h.Store, Clients: cache, Secrets: h.Hasher, Checker: chk, ClientLimits: cl,
	}); err != nil {
		t.Fatal(err)
	}
	base, _ := servicetest.Serve(t, h.svc)
	h.url = base + introspection.IntrospectPath

	h.CreateResourceServers(
		store.ResourceServer{ID: apiID, Name: "API", Scopes: []string{"read", "write"}},
		store.ResourceServer{ID: otherAPI, Name: "Other", Scopes: []string{"x"}},
	)
	h.CreateClient(store.Client{ID: clientA, Type: store.Confidential, GrantTypes: []string{"client_credentials"}, Resources: map[string][]string{apiID: {"read"}}})
	h.CreateClient(store.Client{ID: clientB, Type: store.Confidential, GrantTypes: []string{"client_credentials"}})
	h.CreateClient(store.Client{ID: rsAPI, Type: store.Confidential, ResourceIDs: []string{apiID}})
	h.CreateClient(store.Client{ID: pubClient, Type: store.Public, GrantTypes: []string{"authorization_code", "refresh_token"}})
	servicetest.WaitFor(t, 10*time.Second, "client cache trusted", cache.Trusted)
	return h
}

// claims returns the claims of a client-credentials token of svc-a for the
// API, issued now for five minutes; kv overrides (nil deletes).
func claims(kv ...any) map[string]any {
	return servicetest.AccessClaims(testIssuer, clientA, apiID, "read", kv...)
}

// introspect posts token as client (Basic auth when it has a secret).
func (h *harness) introspect(tok, client string) response {
	h.t.Helper()
	return h.Post(h.t, h.url, url.Values{"token": {tok}}.Encode(), client)
}
