package edge_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/bus/bustest"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/services/edge"
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
	kid   = "es256-test"
)

// testPolicy is the route policy of the tests: reports need read to GET and
// write to POST, admin needs admin, public any valid token, anything else
// is denied (the default).
const testPolicy = `
routes:
  - prefix: /reports
    methods: [GET, HEAD]
    scopes: [read]
  - prefix: /reports
    methods: [POST]
    scopes: [write]
  - prefix: /admin
    scopes: [admin]
  - prefix: /public
`

// env is one test's cluster: JetStream with the streams (pkg/bus/bustest),
// a publisher, a heartbeater, and an issuer serving JWKS with a key
// generated here.
type env struct {
	nats *testenv.NATSServer
	pub  *bus.Publisher
	key  *ecdsa.PrivateKey
	jwks *httptest.Server
}

func newEnv(t testing.TB) *env {
	t.Helper()
	b := bustest.New(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{nats: b.Server, pub: b.Pub, key: key, jwks: serveJWKS(t, key)}
	servicetest.Heartbeat(t, b.Pub, testIssuer, events.Heartbeat{Service: "test", Instance: "hb-1"}, beat)
	return e
}

// serveJWKS serves key's public half as the issuer's JWKS, on loopback
// plain HTTP (which pkg/edge allows for a loopback host only).
func serveJWKS(t testing.TB, key *ecdsa.PrivateKey) *httptest.Server {
	t.Helper()
	pub, err := jwk.FromRaw(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.ES256, jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
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

// claims returns a valid claim set for testAudience: a user token issued
// now, living ten minutes, with scopes read and write.
func claims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss":       testIssuer,
		"sub":       "alice",
		"aud":       []string{testAudience},
		"exp":       now + 600,
		"iat":       now,
		"jti":       events.NewID(),
		"client_id": "web-portal",
		"scope":     "read write",
		"fid":       events.NewID(),
	}
}

// with returns c with the given claims set.
func with(c map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// sign returns c as an RFC 9068 access token signed with the env's key.
func (e *env) sign(t testing.TB, c map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "at+jwt")
	_ = h.Set(jws.KeyIDKey, kid)
	tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256, e.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return string(tok)
}

// revoke publishes token.revoked for the token with claims c.
func (e *env) revoke(t testing.TB, c map[string]any) {
	t.Helper()
	ev, err := events.New(events.NewID(), testIssuer, time.Now(), &events.TokenRevoked{
		JTI: c["jti"].(string), Exp: c["exp"].(int64), ClientID: c["client_id"].(string), Reason: events.ReasonClient,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := e.pub.Publish(ctx, ev); err != nil {
		t.Fatalf("publish token.revoked: %v", err)
	}
}

// config is the configuration of a test edge.
func (e *env) config() *config.Config {
	cfg := config.Default()
	cfg.Issuer = testIssuer
	cfg.Services.Issuer.PublicURL = e.jwks.URL
	cfg.Services.Edge.Listen = "127.0.0.1:0"
	cfg.Services.Edge.AdminListen = "127.0.0.1:0"
	cfg.Services.Edge.StalenessBound = bound
	cfg.NATS.SubjectPrefix = e.nats.Prefix
	cfg.Tokens.MaxAccessTokenLifetime = time.Hour
	cfg.Tokens.ClockSkew = skew
	return &cfg
}

// authz is a running authorizer.
type authz struct {
	svc   *edge.Service
	url   string // public listener, http://host:port
	admin string // admin listener
}

// startAuthz runs an authorizer with policy (YAML) until the test ends and
// waits until it is current.
func (e *env) startAuthz(t testing.TB, policy string) *authz {
	t.Helper()
	return e.startAuthzWith(t, policy, nil)
}

// startAuthzWith is startAuthz with edit, when not nil, applied to the
// configuration and the dependencies before edge.New.
func (e *env) startAuthzWith(t testing.TB, policy string, edit func(*config.Config, *edge.Deps)) *authz {
	t.Helper()
	p, err := edge.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatalf("ParsePolicy: %v", err)
	}
	_, js := connect(t, e.nats.URL)
	cfg := e.config()
	deps := edge.Deps{
		Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		JetStream: js, Audience: testAudience, Policy: p,
	}
	if edit != nil {
		edit(cfg, &deps)
	}
	svc, err := edge.New(cfg, deps)
	if err != nil {
		t.Fatalf("edge.New: %v", err)
	}
	pub, admin := servicetest.Serve(t, svc)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := svc.Verifier().WaitCurrent(ctx); err != nil {
		t.Fatalf("edge not current: %v; status %+v", err, svc.Verifier().Status())
	}
	return &authz{svc: svc, url: pub, admin: admin}
}

// reply is an answer of the authorizer.
type reply struct {
	status int
	header http.Header
	body   map[string]string
}

// ask sends req and decodes the answer.
func ask(t testing.TB, req *http.Request) reply {
	t.Helper()
	status, header, body := send(t, req)
	r := reply{status: status, header: header}
	if body != "" {
		if err := json.Unmarshal([]byte(body), &r.body); err != nil {
			t.Fatalf("body %q is not a JSON object: %v", body, err)
		}
	}
	return r
}

// traefik builds the request Traefik's forwardAuth sends for method and
// uri with an Authorization header (none when token is "").
func (a *authz) traefik(t testing.TB, method, uri, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.url+edge.PathTraefik, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-Method", method)
	req.Header.Set("X-Forwarded-Uri", uri)
	req.Header.Set("X-Forwarded-Host", "api.test")
	req.Header.Set("X-Forwarded-Proto", "https")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// get fetches url and returns status and body.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// metric returns the value of the sample line of /metrics starting with
// series (name and labels exactly as exposed), or "" when absent.
func (a *authz) metric(t testing.TB, series string) string {
	t.Helper()
	_, body := get(t, a.admin+"/metrics")
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// statusIs returns nil when r has status want.
func statusIs(r reply, want int) error {
	if r.status != want {
		return fmt.Errorf("status %d, want %d (body %v)", r.status, want, r.body)
	}
	return nil
}
