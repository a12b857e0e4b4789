package introspection_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/pkg/token"
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

// harness is an introspection service on a real Redis and an embedded
// JetStream, with a real signing key ring whose JWKS is served over HTTP.
type harness struct {
	t       testing.TB
	redis   *testenv.RedisServer
	st      *redisstore.Store
	keys    *keys.Manager
	url     string
	secrets map[string]string
	hasher  *secret.Hasher
	rev     *revoke.Revoker
	svc     *introspection.Service
	reg     *prometheus.Registry
}

// newHarness is newHarnessWith the default request limits, as
// cmd/introspection builds them.
func newHarness(t testing.TB) *harness { return newHarnessWith(t, nil) }

// newHarnessWith starts the harness with the service's request limits from
// limits, which may also change the configuration (trusted proxies); nil:
// the defaults of config.Default, as cmd/introspection builds them.
func newHarnessWith(t testing.TB, limits func(cfg *config.Config) clientlimit.Limits) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(fn func(ctx context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); fn(ctx) }()
	}
	h := &harness{t: t, secrets: map[string]string{}}
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
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{Prefix: ns.Prefix, MaxAccessTokenLifetime: 15 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	pub, err := bus.NewPublisher(js, ns.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	keks := map[string][]byte{"kek-1": randomKey(t)}
	ring, err := keys.NewKEKRing("kek-1", keks)
	if err != nil {
		t.Fatal(err)
	}
	h.hasher, err = secret.NewHasher("kek-1", keks)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Dev = true
	cfg.Issuer = testIssuer
	cfg.Services.Introspection = config.Service{PublicURL: "http://introspect.test", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	cfg.NATS.SubjectPrefix = ns.Prefix
	var cl clientlimit.Limits
	if limits != nil {
		cl = limits(&cfg)
	} else if cl, err = clientlimit.FromConfig(cfg.Limits); err != nil {
		t.Fatal(err)
	}
	h.keys, err = keys.New(keys.Config{
		Source: testIssuer, Algorithm: keys.ES256,
		RotationInterval: 24 * time.Hour, PublishLeadTime: time.Second,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime, ClockSkew: cfg.Tokens.ClockSkew,
		RefreshInterval: 200 * time.Millisecond,
	}, h.st, keys.PublisherFunc(func(ctx context.Context, e events.Event) error {
		_, err := pub.Publish(ctx, e)
		return err
	}), ring)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	run(func(ctx context.Context) { _ = h.keys.Run(ctx) })
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b, err := h.keys.JWKS()
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(jwks.Close)

	h.rev, err = revoke.New(revoke.Config{Source: testIssuer, Prefix: ns.Prefix, Retain: time.Hour}, h.st, pub)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := bus.NewHeartbeater(pub, testIssuer, events.Heartbeat{Service: "test", Instance: "t"}, bus.WithHeartbeatInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run(func(ctx context.Context) { _ = hb.Run(ctx) })
	cache, err := clients.New(h.st, clients.Config{Prefix: ns.Prefix, StalenessBound: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run(func(ctx context.Context) { _ = cache.Run(ctx, js) })
	// As the main wires it, following the key stream; the periodic JWKS
	// refresh is an hour apart, so that only the stream can make the
	// checker learn of a key change within a test.
	chk, err := edge.NewChecker(edge.CheckerConfig{
		Issuer: testIssuer, JWKSURL: jwks.URL + "/jwks.json",
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime, ClockSkew: cfg.Tokens.ClockSkew,
		RefreshInterval: time.Hour, JetStream: js, SubjectPrefix: ns.Prefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := chk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = chk.Close() })

	h.reg = prometheus.NewRegistry()
	svc, err := introspection.New(&cfg, introspection.Deps{
		Logger: zap.NewNop(), Registry: h.reg,
		Store: h.st, Clients: cache, Secrets: h.hasher, Checker: chk, ClientLimits: cl,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	run(func(ctx context.Context) { _ = svc.Run(ctx) })
	addr, _, err := svc.Server().Addrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + addr.String() + introspection.IntrospectPath
	h.seed()
	deadline := time.Now().Add(10 * time.Second)
	for !cache.Trusted() {
		if time.Now().After(deadline) {
			t.Fatal("client cache never trusted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h
}

func (h *harness) seed() {
	h.t.Helper()
	ctx := context.Background()
	for _, rs := range []store.ResourceServer{
		{ID: apiID, Name: "API", Scopes: []string{"read", "write"}},
		{ID: otherAPI, Name: "Other", Scopes: []string{"x"}},
	} {
		if err := h.st.CreateResourceServer(ctx, rs); err != nil {
			h.t.Fatal(err)
		}
	}
	for _, c := range []store.Client{
		{ID: clientA, Type: store.Confidential, GrantTypes: []string{"client_credentials"}, Resources: map[string][]string{apiID: {"read"}}},
		{ID: clientB, Type: store.Confidential, GrantTypes: []string{"client_credentials"}},
		{ID: rsAPI, Type: store.Confidential, ResourceIDs: []string{apiID}},
		{ID: pubClient, Type: store.Public, GrantTypes: []string{"authorization_code", "refresh_token"}},
	} {
		if c.Type == store.Confidential {
			s, err := secret.New()
			if err != nil {
				h.t.Fatal(err)
			}
			h.secrets[c.ID] = s
			c.Secrets = []store.Secret{{ID: "s1", Hash: h.hasher.Hash(s), CreatedAt: time.Now()}}
		}
		if err := h.st.CreateClient(ctx, c); err != nil {
			h.t.Fatal(err)
		}
	}
}

// claims returns the claims of a client-credentials token of svc-a for the
// API, issued now for five minutes; kv overrides (nil deletes).
func claims(kv ...any) map[string]any {
	now := time.Now().Unix()
	jti, _ := token.NewID()
	c := map[string]any{
		"iss": testIssuer, "sub": clientA, "aud": apiID, "exp": now + 300, "iat": now, "nbf": now,
		"jti": jti, "client_id": clientA, "scope": "read",
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// mint signs c with the ring's current key as an RFC 9068 access token.
func (h *harness) mint(c map[string]any) string {
	h.t.Helper()
	return h.mintTyp(keys.TypeAccessToken, c)
}

// mintTyp signs c with the typ header typ.
func (h *harness) mintTyp(typ string, c map[string]any) string {
	h.t.Helper()
	s, err := h.keys.Current()
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := s.Sign(typ, b)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(tok)
}

// family stores a refresh family of client for subject and returns its live
// refresh token.
func (h *harness) family(client, subject string) (store.RefreshFamily, string) {
	h.t.Helper()
	fid, err := token.NewFamilyID()
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := token.New(token.KindRefresh, fid)
	if err != nil {
		h.t.Fatal(err)
	}
	now := time.Now()
	f := store.RefreshFamily{FID: fid, ClientID: client, Subject: subject, SubjectType: events.SubjectUser,
		Scopes: []string{"read"}, Resource: apiID, Grant: "authorization_code", AuthTime: now, CreatedAt: now,
		IdleTimeout: time.Hour, AbsoluteExpiresAt: now.Add(24 * time.Hour), Generation: 1}
	if err := h.st.CreateFamily(context.Background(), f, store.Hash(token.HashOf(tok.Value))); err != nil {
		h.t.Fatal(err)
	}
	return f, tok.Value
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (r response) code() string        { s, _ := r.Body["error"].(string); return s }
func (r response) active() bool        { b, _ := r.Body["active"].(bool); return b }
func (r response) str(k string) string { s, _ := r.Body[k].(string); return s }

// introspect posts token as client (Basic auth when it has a secret).
func (h *harness) introspect(tok, client string) response {
	h.t.Helper()
	return h.post(url.Values{"token": {tok}}.Encode(), client)
}

func (h *harness) post(body, client string) response {
	h.t.Helper()
	return h.postAs(h.t, body, client)
}

// postAs is post reporting to t (fuzz targets get their own t).
func (h *harness) postAs(t testing.TB, body, client string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if s := h.secrets[client]; s != "" {
		req.Header.Set("Authorization", basic(client, s))
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

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
