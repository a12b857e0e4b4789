package issuer_test

import (
	"context"
	"encoding/base64"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
	"github.com/valetauth/valet/services/issuer"
)

// Fixtures every harness registers.
const (
	testIssuer = "https://auth.example.test"
	apiID      = "https://api.example.test/"
	billingID  = "urn:example:billing" // allowed to svc-a, with its own lifetime
	orphanID   = "https://orphan.example.test/"
	clientA    = "svc-a"
)

// response is a decoded /token answer.
type response = servicetest.Response

// clock is a settable offset from the real time, for the issuer only: the
// key ring and the stream run on real time.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// harness is a running issuer on the shared backbone (a real Redis and an
// embedded JetStream), with the key ring, a heartbeater and the client
// cache running as the issuer's main runs them.
type harness struct {
	*servicetest.Env
	t       testing.TB
	cfg     *config.Config
	cache   *clients.Cache
	svc     *issuer.Service
	clock   *clock
	url     string // the public listener, http://127.0.0.1:port
	secretA string // svc-a's secret

	stopBeats func()
	reg       *prometheus.Registry
}

// newHarness starts everything and registers the fixtures: resource servers
// api (read, write, admin; no lifetime) and billing (invoice:read; 2m), and
// client svc-a (confidential, client_credentials, read+write at api,
// invoice:read at billing, default api, lifetime 10m).
func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessLimited(t, defaultClientLimits(t)) // as cmd/issuer: a correct client is never limited
}

// newHarnessLimited is newHarness with the issuer's request limits lim.
func newHarnessLimited(t testing.TB, lim clientlimit.Limits) *harness {
	t.Helper()
	// Only a *testing.T may log from background goroutines: F and B get a
	// no-op logger.
	log := zap.NewNop()
	var envOpts []servicetest.Option
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt)
		envOpts = append(envOpts, servicetest.WithKeyOptions(keys.WithLogger(log)))
	}
	h := &harness{Env: servicetest.New(t, testIssuer, envOpts...), t: t, clock: &clock{}, reg: prometheus.NewRegistry()}

	h.cfg = h.Config()
	h.cfg.Services.Issuer = config.Service{PublicURL: testIssuer, Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	h.cfg.Services.Introspection.PublicURL = "https://introspect.example.test"
	h.cfg.Services.Revocation.PublicURL = "https://revoke.example.test/base/"
	h.cfg.Limits.MaxBodyBytes = 8 << 10

	h.stopBeats = servicetest.Heartbeat(t, h.Pub, testIssuer, events.Heartbeat{Service: "issuer", Instance: "test"}, 100*time.Millisecond)
	h.cache = h.FollowClients(2*time.Second, clients.WithRegisterer(h.reg))
	h.svc, h.url = startIssuer(t, h.cfg, issuer.Deps{
		Logger: log, Registry: h.reg,
		Store: h.Store, Keys: h.Keys, Clients: h.cache, Secrets: h.Hasher, Clock: h.clock.Now,
		ClientLimits: lim,
	})

	h.CreateResourceServers(
		store.ResourceServer{ID: apiID, Name: "API", Scopes: []string{"read", "write", "admin"}},
		store.ResourceServer{ID: billingID, Name: "Billing", Scopes: []string{"invoice:read", "invoice:write"}, AccessTokenLifetime: 2 * time.Minute},
	)
	h.secretA = h.CreateClient(store.Client{
		ID: clientA, Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources:       map[string][]string{apiID: {"read", "write"}, billingID: {"invoice:read", "invoice:write", "gone"}, orphanID: {"x"}},
		DefaultResource: apiID, AccessTokenLifetime: 10 * time.Minute,
	})
	h.eventually("client cache trusted", h.cache.Trusted)
	return h
}

// startIssuer runs an issuer with cfg and deps until t ends and returns it
// and its public URL.
func startIssuer(t testing.TB, cfg *config.Config, deps issuer.Deps) (*issuer.Service, string) {
	t.Helper()
	svc, err := issuer.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := servicetest.Serve(t, svc)
	return svc, u
}

// users is a user store in h's Redis, as a second cmd/issuer on the same
// Redis sees it, with Argon2 parameters cheap enough for tests.
func (h *harness) users(t testing.TB) *users.Authenticator {
	t.Helper()
	opt, err := goredis.ParseURL(h.Redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	ua, err := users.NewAuthenticator(users.NewRedis(rdb, h.Redis.Prefix), users.Params{Memory: 256, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return ua
}

// userDeps are the dependencies of one more issuer replica with the user
// grants on, on h's store, keys, cache and JetStream (as a second
// cmd/issuer on the same Redis), reporting its metrics to reg.
func (h *harness) userDeps(t testing.TB, reg *prometheus.Registry) issuer.Deps {
	t.Helper()
	rev, err := revoke.New(revoke.Config{Source: testIssuer, Prefix: h.Prefix, Retain: 20 * time.Minute}, h.Store, h.Pub)
	if err != nil {
		t.Fatal(err)
	}
	return issuer.Deps{
		Logger: zap.NewNop(), Registry: reg,
		Store: h.Store, Keys: h.Keys, Clients: h.cache, Secrets: h.Hasher, Clock: h.clock.Now,
		Grants: h.Store, Sessions: h.Store, Users: h.users(t), Revoker: rev, Audit: h.Pub,
	}
}

// publish puts a client event on the stream, as the admin API does.
func (h *harness) publish(p events.Payload) {
	h.t.Helper()
	e, err := events.New(events.NewID(), testIssuer, time.Now(), p)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.Publish(context.Background(), e); err != nil {
		h.t.Fatal(err)
	}
}

// eventually fails the test unless cond holds within 10 s.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	servicetest.WaitFor(h.t, 10*time.Second, what, cond)
}

// post sends form to /token, with Basic credentials when user is not empty.
func (h *harness) post(form url.Values, user, pass string) response {
	h.t.Helper()
	return h.postFrom(h.url, "/token", "", form, user, pass)
}

// postFrom posts form to base+path as the client at address xff (none: the
// peer, 127.0.0.1), with Basic credentials when user is set.
func (h *harness) postFrom(base, path, xff string, form url.Values, user, pass string) response {
	h.t.Helper()
	var authz string
	if user != "" {
		authz = servicetest.Basic(user, pass)
	}
	return servicetest.PostForm(h.t, base+path, form.Encode(), "X-Forwarded-For", xff, "Authorization", authz)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
