package issuer_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
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

// clock is a settable offset from the real time, for the issuer only: the
// key ring and the stream run on real time.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// harness is a running issuer on a real Redis and an embedded JetStream, with
// the key ring, a heartbeater and the client cache running as the issuer's
// main runs them.
type harness struct {
	t       testing.TB
	cfg     *config.Config
	redis   *testenv.RedisServer
	st      *redisstore.Store
	js      jetstream.JetStream
	pub     *bus.Publisher
	prefix  string
	keys    *keys.Manager
	cache   *clients.Cache
	hasher  *secret.Hasher
	svc     *issuer.Service
	clock   *clock
	url     string // the public listener, http://127.0.0.1:port
	secretA string // svc-a's secret

	stopBeats context.CancelFunc
	reg       *prometheus.Registry
}

// newHarness starts everything and registers the fixtures: resource servers
// api (read, write, admin; no lifetime) and billing (invoice:read; 2m), and
// client svc-a (confidential, client_credentials, read+write at api,
// invoice:read at billing, default api, lifetime 10m).
func newHarness(t testing.TB) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(fn func(ctx context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); fn(ctx) }()
	}
	// Only a *testing.T may log from background goroutines: F and B get a
	// no-op logger.
	var log *zap.Logger
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt)
	}

	h := &harness{t: t, clock: &clock{}, reg: prometheus.NewRegistry()}
	h.redis = testenv.Redis(t)
	opt, err := goredis.ParseURL(h.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.ReadTimeout, opt.DialTimeout = 300*time.Millisecond, 300*time.Millisecond
	opt.MaxRetries = -1
	h.st, err = redisstore.New(ctx, goredis.NewClient(opt), newAEAD(t), redisstore.WithPrefix(h.redis.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.st.Close() })

	ns := testenv.NATS(t)
	h.prefix = ns.Prefix
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h.js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, h.js, bus.StreamsConfig{Prefix: h.prefix, MaxAccessTokenLifetime: 15 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	h.pub, err = bus.NewPublisher(h.js, h.prefix)
	if err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Dev = true
	cfg.Issuer = testIssuer
	cfg.Services.Issuer = config.Service{PublicURL: testIssuer, Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	cfg.Services.Introspection.PublicURL = "https://introspect.example.test"
	cfg.Services.Revocation.PublicURL = "https://revoke.example.test/base/"
	cfg.NATS.SubjectPrefix = h.prefix
	cfg.Limits.MaxBodyBytes = 8 << 10
	h.cfg = &cfg

	keks := map[string][]byte{"kek-1": randomKey(t)}
	ring, err := keys.NewKEKRing("kek-1", keks)
	if err != nil {
		t.Fatal(err)
	}
	h.hasher, err = secret.NewHasher("kek-1", keks)
	if err != nil {
		t.Fatal(err)
	}
	kopts := []keys.Option{}
	if log != nil {
		kopts = append(kopts, keys.WithLogger(log))
	}
	h.keys, err = keys.New(keys.Config{
		Source: testIssuer, Algorithm: keys.ES256,
		RotationInterval: 24 * time.Hour, PublishLeadTime: time.Second,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime, ClockSkew: cfg.Tokens.ClockSkew,
		RefreshInterval: 200 * time.Millisecond,
	}, h.st, keys.PublisherFunc(func(ctx context.Context, e events.Event) error {
		_, err := h.pub.Publish(ctx, e)
		return err
	}), ring, kopts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	run(func(ctx context.Context) { _ = h.keys.Run(ctx) })
	h.startBeats(ctx, &wg)

	h.cache, err = clients.New(h.st, clients.Config{Prefix: h.prefix, StalenessBound: 2 * time.Second},
		clients.WithRegisterer(h.reg))
	if err != nil {
		t.Fatal(err)
	}
	run(func(ctx context.Context) { _ = h.cache.Run(ctx, h.js) })

	deps := issuer.Deps{
		Logger: zapNop(log), Registry: h.reg,
		Store: h.st, Keys: h.keys, Clients: h.cache, Secrets: h.hasher, Clock: h.clock.Now,
		ClientLimits: defaultClientLimits(t), // as cmd/issuer: a correct client is never limited
	}
	h.svc, err = issuer.New(h.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	run(func(ctx context.Context) { _ = h.svc.Run(ctx) })
	pubAddr, _, err := h.svc.Server().Addrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + pubAddr.String()

	h.seed()
	h.eventually("client cache trusted", h.cache.Trusted)
	return h
}

func (h *harness) startBeats(ctx context.Context, wg *sync.WaitGroup) {
	bctx, cancel := context.WithCancel(ctx)
	h.stopBeats = cancel
	hb, err := bus.NewHeartbeater(h.pub, testIssuer, events.Heartbeat{Service: "issuer", Instance: "test"},
		bus.WithHeartbeatInterval(100*time.Millisecond))
	if err != nil {
		h.t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = hb.Run(bctx) }()
}

func (h *harness) seed() {
	h.t.Helper()
	ctx := context.Background()
	for _, rs := range []store.ResourceServer{
		{ID: apiID, Name: "API", Scopes: []string{"read", "write", "admin"}},
		{ID: billingID, Name: "Billing", Scopes: []string{"invoice:read", "invoice:write"}, AccessTokenLifetime: 2 * time.Minute},
	} {
		if err := h.st.CreateResourceServer(ctx, rs); err != nil {
			h.t.Fatal(err)
		}
	}
	h.secretA = h.createClient(store.Client{
		ID: clientA, Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources:       map[string][]string{apiID: {"read", "write"}, billingID: {"invoice:read", "invoice:write", "gone"}, orphanID: {"x"}},
		DefaultResource: apiID, AccessTokenLifetime: 10 * time.Minute,
	})
}

// createClient stores c with one fresh secret (for confidential clients) and
// returns the secret.
func (h *harness) createClient(c store.Client) string {
	h.t.Helper()
	var s string
	if c.Type == store.Confidential && c.Secrets == nil {
		var err error
		if s, err = secret.New(); err != nil {
			h.t.Fatal(err)
		}
		c.Secrets = []store.Secret{{ID: "s1", Hash: h.hasher.Hash(s), CreatedAt: time.Now()}}
	}
	if err := h.st.CreateClient(context.Background(), c); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// publish puts a client event on the stream, as the admin API does.
func (h *harness) publish(p events.Payload) {
	h.t.Helper()
	e, err := events.New(events.NewID(), testIssuer, time.Now(), p)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.pub.Publish(context.Background(), e); err != nil {
		h.t.Fatal(err)
	}
}

// eventually fails the test unless cond holds within 10 s.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter returns the value of the counter name (summed over its labels)
// in the harness's registry.
func (h *harness) counter(name string) float64 {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// response is a decoded /token answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// code returns the error member, or "".
func (r response) code() string { s, _ := r.Body["error"].(string); return s }

// post sends form to /token, with Basic credentials when user is not empty.
func (h *harness) post(form url.Values, user, pass string) response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.Header.Set("Authorization", basic(user, pass))
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) response {
	h.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// basic returns an Authorization header value with the RFC 6749 §2.3.1
// form-url-encoding of both parts.
func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(user)+":"+url.QueryEscape(pass)))
}

func newAEAD(t testing.TB) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(randomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

func randomKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// zapNop returns l, or a no-op logger when l is nil (benchmarks).
func zapNop(l *zap.Logger) *zap.Logger {
	if l == nil {
		return zap.NewNop()
	}
	return l
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
