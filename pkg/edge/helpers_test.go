package edge_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/testenv"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "https://api.test"
	// wait is the generous deadline for anything to happen; tests never
	// assert how long something took.
	wait = 20 * time.Second
	// bound is the staleness bound of test edges; heartbeats come every
	// beat.
	bound = 2 * time.Second
	beat  = 50 * time.Millisecond
	skew  = 2 * time.Second
)

// signingKey is one issuer key: its private half signs test tokens, its
// public JWK is what JWKS serves.
type signingKey struct {
	kid        string
	alg        string
	priv       crypto.Signer
	pub        jwk.Key
	thumbprint string
}

// newKey generates a key for alg ("ES256", "EdDSA", "RS256") named kid.
func newKey(t testing.TB, alg, kid string) *signingKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("newKey: unknown alg %s", alg)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", alg, err)
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		t.Fatalf("jwk.FromRaw: %v", err)
	}
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.SignatureAlgorithm(alg), jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("thumbprint: %v", err)
	}
	return &signingKey{kid: kid, alg: alg, priv: priv, pub: pub, thumbprint: base64.RawURLEncoding.EncodeToString(tp)}
}

// issuer serves JWKS over TLS and signs tokens.
type issuer struct {
	srv     *httptest.Server
	fetches atomic.Int64

	mu     sync.Mutex
	served []*signingKey
	down   bool
}

func newIssuer(t testing.TB, keys ...*signingKey) *issuer {
	t.Helper()
	is := &issuer{served: keys}
	is.srv = httptest.NewTLSServer(http.HandlerFunc(is.serveJWKS))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	is.fetches.Add(1)
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	set := jwk.NewSet()
	for _, k := range is.served {
		_ = set.AddKey(k.pub)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(set)
}

// serve replaces the keys JWKS serves.
func (is *issuer) serve(keys ...*signingKey) {
	is.mu.Lock()
	is.served = keys
	is.mu.Unlock()
}

func (is *issuer) setDown(down bool) {
	is.mu.Lock()
	is.down = down
	is.mu.Unlock()
}

func (is *issuer) url() string { return is.srv.URL + "/jwks.json" }

// claims returns a valid claim set for testAudience: a user token of a
// refresh family, issued now, living ten minutes.
func claims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss":       testIssuer,
		"sub":       "alice",
		"aud":       []string{"https://other.test", testAudience},
		"exp":       now + 600,
		"iat":       now,
		"nbf":       now,
		"jti":       events.NewID(),
		"client_id": "web-portal",
		"scope":     "read write",
		"fid":       events.NewID(),
	}
}

// with returns c with the given claims set (a nil value deletes one).
func with(c map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// sign returns a compact JWS of c signed by k with typ at+jwt, k's kid and
// alg, unless hdr overrides header fields.
func sign(t testing.TB, k *signingKey, c map[string]any, hdr ...any) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "at+jwt")
	_ = h.Set(jws.KeyIDKey, k.kid)
	for i := 0; i < len(hdr); i += 2 {
		if err := h.Set(hdr[i].(string), hdr[i+1]); err != nil {
			t.Fatalf("header %s: %v", hdr[i], err)
		}
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(k.alg), k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return string(tok)
}

// rawToken assembles a compact JWS from a header and claims, with sig as
// the signature segment's bytes.
func rawToken(t testing.TB, hdr, c map[string]any, sig []byte) string {
	t.Helper()
	hb, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(hb) + "." + enc.EncodeToString(cb) + "." + enc.EncodeToString(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// env is one test's cluster: JetStream with the streams, a publisher, a
// heartbeater, and an issuer serving JWKS.
type env struct {
	srv    *testenv.NATSServer
	js     jetstream.JetStream
	nc     *nats.Conn
	pub    *bus.Publisher
	prefix string
	key    *signingKey
	is     *issuer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := testenv.NATS(t)
	nc, js := connect(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{Prefix: srv.Prefix, MaxAccessTokenLifetime: time.Hour}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	pub, err := bus.NewPublisher(js, srv.Prefix)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	key := newKey(t, "ES256", "es256-a")
	e := &env{srv: srv, js: js, nc: nc, pub: pub, prefix: srv.Prefix, key: key, is: newIssuer(t, key)}
	e.heartbeats(t)
	return e
}

// heartbeats publishes a heartbeat every beat until the test ends.
func (e *env) heartbeats(t testing.TB) {
	t.Helper()
	hb, err := bus.NewHeartbeater(e.pub, testIssuer, events.Heartbeat{Service: "test", Instance: "hb-1"}, bus.WithHeartbeatInterval(beat))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hb.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// connect opens a connection that reconnects forever, closed in cleanup.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// config is the edge configuration of the test cluster.
func (e *env) config(t testing.TB) edge.Config {
	t.Helper()
	_, js := connect(t, e.srv.URL)
	return edge.Config{
		Issuer:           testIssuer,
		Audience:         testAudience,
		JWKSURL:          e.is.url(),
		JetStream:        js,
		MaxTokenLifetime: time.Hour,
	}
}

// options are the test edge's options, before extra.
func (e *env) options(extra ...edge.Option) []edge.Option {
	return append([]edge.Option{
		edge.WithSubjectPrefix(e.prefix),
		edge.WithHTTPClient(e.is.srv.Client()),
		edge.WithStalenessBound(bound),
		edge.WithClockSkew(skew),
		edge.WithUnknownKIDInterval(10 * time.Millisecond),
	}, extra...)
}

// startEdge starts an edge and waits until it is current.
func (e *env) startEdge(t testing.TB, extra ...edge.Option) *edge.Verifier {
	t.Helper()
	v := e.newEdge(t, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := v.WaitCurrent(ctx); err != nil {
		t.Fatalf("edge not current: %v; status %+v", err, v.Status())
	}
	return v
}

// newEdge starts an edge without waiting for it.
func (e *env) newEdge(t testing.TB, extra ...edge.Option) *edge.Verifier {
	t.Helper()
	v, err := edge.New(e.config(t), e.options(extra...)...)
	if err != nil {
		t.Fatalf("edge.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// publish publishes events built from payloads, at time at (now if zero).
func (e *env) publish(t testing.TB, payloads ...events.Payload) {
	t.Helper()
	e.publishAt(t, time.Now(), payloads...)
}

func (e *env) publishAt(t testing.TB, at time.Time, payloads ...events.Payload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, p := range payloads {
		ev, err := events.New(events.NewID(), testIssuer, at, p)
		if err != nil {
			t.Fatalf("events.New: %v", err)
		}
		if _, err := e.pub.Publish(ctx, ev); err != nil {
			t.Fatalf("publish %s: %v", ev.Type, err)
		}
	}
}

// eventually retries f until it returns nil, failing with its last error
// after the deadline.
func eventually(t testing.TB, f func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s: %v", wait, err)
}

// rejectedWith returns nil when Verify of tok fails with want.
func rejectedWith(v *edge.Verifier, tok string, want error) error {
	_, err := v.Verify(context.Background(), tok)
	if !errors.Is(err, want) {
		return fmt.Errorf("Verify = %v, want %v", err, want)
	}
	return nil
}

// mustVerify verifies tok and fails the test on error.
func mustVerify(t testing.TB, v *edge.Verifier, tok string) edge.Claims {
	t.Helper()
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v (reason %s)", err, edge.ReasonOf(err))
	}
	return c
}

// offsetClock is a clock tests can move forward.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// decisions counts OnDecision reasons.
type decisions struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *decisions) record(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[reason]++
}

func (d *decisions) count(reason string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[reason]
}

func (d *decisions) reasons() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for r := range d.n {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
