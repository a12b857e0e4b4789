package servicetest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/bus/bustest"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/pkg/token"
)

// KEKID names the one key-encryption key of an Env, for tests that build a
// second hasher or ring over the same key.
const KEKID = "kek-1"

// Env is one test's backbone. Its fields are what the service under test
// is given; stopping Redis or NATS through them is how tests reach the
// outage paths.
type Env struct {
	// Issuer is the issuer identifier: the key ring's event source, the
	// configuration's issuer and the iss of AccessClaims callers.
	Issuer string
	// Redis is the test's Redis server (Stop and Start it for outages).
	Redis *testenv.RedisServer
	// Store is the token store on Redis under the test's key prefix. Its
	// client gives up within 300 ms and never retries, so that an outage
	// shows at once as the services' 503.
	Store *redisstore.Store
	// NATS is the test's NATS server (Shutdown and Start it for outages).
	NATS *testenv.NATSServer
	// JS is a JetStream handle on a connection that reconnects forever.
	JS jetstream.JetStream
	// Prefix is the stream and subject prefix of this test.
	Prefix string
	// Pub publishes on the streams and waits for the acknowledgement.
	Pub *bus.Publisher
	// Hasher hashes client secrets under the key-encryption key KEKID.
	Hasher *secret.Hasher
	// Keys is the signing-key ring, refreshed and running as in the mains.
	Keys *keys.Manager
	// Secrets holds the secret CreateClient gave each confidential client,
	// by client id; Post authenticates with it.
	Secrets map[string]string

	t testing.TB
}

// Option changes how New builds an Env.
type Option func(*options)

type options struct {
	keys []keys.Option
	pub  []bus.PublisherOption
}

// WithKeyOptions passes opts to the key ring, for a test that wants its
// logs or metrics.
func WithKeyOptions(opts ...keys.Option) Option {
	return func(o *options) { o.keys = append(o.keys, opts...) }
}

// WithPublisherOptions builds Env.Pub with opts, for a test that needs the
// publisher to give up sooner than the default while NATS is down.
func WithPublisherOptions(opts ...bus.PublisherOption) Option {
	return func(o *options) { o.pub = append(o.pub, opts...) }
}

// New returns t's backbone for issuer: a fresh store on Redis, JetStream
// with the streams for a 15-minute maximum access-token lifetime, a hasher
// and a signing-key ring already holding a key, running until t ends. It
// fails t on any error, so that a test starts from a working cluster.
func New(t testing.TB, issuer string, opts ...Option) *Env {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	e := &Env{Issuer: issuer, Secrets: map[string]string{}, t: t}
	e.Redis = testenv.Redis(t)
	e.Store = newStore(t, e.Redis)

	b := bustest.New(t)
	e.NATS, e.JS, e.Prefix, e.Pub = b.Server, b.JS, b.Prefix, b.Pub
	if len(o.pub) > 0 {
		pub, err := bus.NewPublisher(b.JS, b.Prefix, o.pub...)
		if err != nil {
			t.Fatalf("servicetest: publisher: %v", err)
		}
		e.Pub = pub
	}

	keks := map[string][]byte{KEKID: testenv.RandomKey(t)}
	ring, err := keys.NewKEKRing(KEKID, keks)
	if err != nil {
		t.Fatalf("servicetest: KEK ring: %v", err)
	}
	if e.Hasher, err = secret.NewHasher(KEKID, keks); err != nil {
		t.Fatalf("servicetest: hasher: %v", err)
	}
	tokens := config.Default().Tokens
	e.Keys, err = keys.New(keys.Config{
		Source: issuer, Algorithm: keys.ES256,
		RotationInterval: 24 * time.Hour, PublishLeadTime: time.Second,
		MaxTokenLifetime: tokens.MaxAccessTokenLifetime, ClockSkew: tokens.ClockSkew,
		RefreshInterval: 200 * time.Millisecond,
	}, e.Store, e, ring, o.keys...)
	if err != nil {
		t.Fatalf("servicetest: key ring: %v", err)
	}
	if err := e.Keys.Refresh(t.Context()); err != nil {
		t.Fatalf("servicetest: first key: %v", err)
	}
	Go(t, func(ctx context.Context) { _ = e.Keys.Run(ctx) })
	return e
}

// newStore returns a store on rs under its prefix, with a fresh AEAD for
// refresh-token successors, closed when t ends.
func newStore(t testing.TB, rs *testenv.RedisServer) *redisstore.Store {
	t.Helper()
	opt, err := goredis.ParseURL(rs.URL)
	if err != nil {
		t.Fatalf("servicetest: redis URL: %v", err)
	}
	opt.ReadTimeout, opt.DialTimeout = 300*time.Millisecond, 300*time.Millisecond
	opt.MaxRetries = -1
	st, err := redisstore.New(t.Context(), goredis.NewClient(opt), testenv.AEAD(t), redisstore.WithPrefix(rs.Prefix))
	if err != nil {
		t.Fatalf("servicetest: store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// Config returns the default configuration of a development cluster on
// e: Dev on, e's issuer and subject prefix. The caller adds its service's
// listeners.
func (e *Env) Config() *config.Config {
	cfg := config.Default()
	cfg.Dev = true
	cfg.Issuer = e.Issuer
	cfg.NATS.SubjectPrefix = e.Prefix
	return &cfg
}

// An Env is the key ring's publisher.
var _ keys.Publisher = (*Env)(nil)

// Publish puts ev on the streams and returns once JetStream stored it, so
// that an Env is the publisher the key ring and the admin API are given.
func (e *Env) Publish(ctx context.Context, ev events.Event) error {
	_, err := e.Pub.Publish(ctx, ev)
	return err
}

// FollowClients returns the client cache as the mains run it: reading
// e.Store and following the client events until t ends, trusted while
// heartbeats show it at most bound behind. Waiting for trust is left to
// the caller, which seeds first as a deployment does.
func (e *Env) FollowClients(bound time.Duration, opts ...clients.Option) *clients.Cache {
	e.t.Helper()
	c, err := clients.New(e.Store, clients.Config{Prefix: e.Prefix, StalenessBound: bound}, opts...)
	if err != nil {
		e.t.Fatalf("servicetest: client cache: %v", err)
	}
	Go(e.t, func(ctx context.Context) { _ = c.Run(ctx, e.JS) })
	return c
}

// ServeJWKS serves e.Keys' current JWKS over loopback plain HTTP (which
// pkg/edge allows for a loopback host only) until t ends, and returns the
// document's URL: the issuer's /jwks.json, for a checker or an edge.
func (e *Env) ServeJWKS() string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b, err := e.Keys.JWKS()
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(b)
	}))
	e.t.Cleanup(srv.Close)
	return srv.URL + "/jwks.json"
}

// CreateResourceServers stores rs, failing t when one exists already.
func (e *Env) CreateResourceServers(rs ...store.ResourceServer) {
	e.t.Helper()
	for _, r := range rs {
		if err := e.Store.CreateResourceServer(e.t.Context(), r); err != nil {
			e.t.Fatalf("servicetest: resource server %s: %v", r.ID, err)
		}
	}
}

// CreateClient stores c. A confidential client given no secrets gets one
// fresh secret, stored only as its hash as the admin API does; CreateClient
// returns it and records it in e.Secrets. Otherwise it returns "".
func (e *Env) CreateClient(c store.Client) string {
	e.t.Helper()
	var s string
	if c.Type == store.Confidential && c.Secrets == nil {
		var err error
		if s, err = secret.New(); err != nil {
			e.t.Fatal(err)
		}
		c.Secrets = []store.Secret{{ID: "s1", Hash: e.Hasher.Hash(s), CreatedAt: time.Now()}}
		e.Secrets[c.ID] = s
	}
	if err := e.Store.CreateClient(e.t.Context(), c); err != nil {
		e.t.Fatalf("servicetest: client %s: %v", c.ID, err)
	}
	return s
}

// Mint signs claims with the ring's current key as an RFC 9068 access
// token (typ at+jwt), as the issuer would, without a round trip to it.
func (e *Env) Mint(claims map[string]any) string {
	e.t.Helper()
	return e.MintTyp(keys.TypeAccessToken, claims)
}

// MintTyp is Mint with the JOSE typ header typ, for the tokens a verifier
// must refuse for their type alone.
func (e *Env) MintTyp(typ string, claims map[string]any) string {
	e.t.Helper()
	s, err := e.Keys.Current()
	if err != nil {
		e.t.Fatalf("servicetest: signing key: %v", err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := s.Sign(typ, b)
	if err != nil {
		e.t.Fatalf("servicetest: sign: %v", err)
	}
	return string(tok)
}

// Family stores a refresh-token family (RFC 6749 §6) of client for the user
// subject at resource, as an authorization-code grant creates it now
// (scope read, idle one hour, absolute one day), and returns it and its
// live refresh token.
func (e *Env) Family(client, subject, resource string) (store.RefreshFamily, string) {
	e.t.Helper()
	fid, err := token.NewFamilyID()
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := token.New(token.KindRefresh, fid)
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now()
	f := store.RefreshFamily{FID: fid, ClientID: client, Subject: subject, SubjectType: events.SubjectUser,
		Scopes: []string{"read"}, Resource: resource, Grant: "authorization_code", AuthTime: now, CreatedAt: now,
		IdleTimeout: time.Hour, AbsoluteExpiresAt: now.Add(24 * time.Hour), Generation: 1}
	if err := e.Store.CreateFamily(e.t.Context(), f, store.Hash(token.HashOf(tok.Value))); err != nil {
		e.t.Fatalf("servicetest: family: %v", err)
	}
	return f, tok.Value
}

// Post posts body, form-encoded, to target as client: with HTTP Basic
// credentials (RFC 6749 §2.3.1) when e.Secrets holds its secret, without
// any otherwise. It reports to t, which fuzz targets pass as their own.
func (e *Env) Post(t testing.TB, target, body, client string) Response {
	t.Helper()
	var authz string
	if s := e.Secrets[client]; s != "" {
		authz = Basic(client, s)
	}
	return PostForm(t, target, body, "Authorization", authz)
}
