package clients_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
)

// countingStore wraps the real Redis store and counts reads, so tests can
// tell a cache hit from a store read.
type countingStore struct {
	*redisstore.Store
	clientReads, resourceReads atomic.Int64
	// hook, when set, runs at the start of GetClient.
	hook atomic.Pointer[func()]
}

func (s *countingStore) GetClient(ctx context.Context, id string) (store.Client, error) {
	s.clientReads.Add(1)
	if h := s.hook.Load(); h != nil {
		(*h)()
	}
	return s.Store.GetClient(ctx, id)
}

func (s *countingStore) GetResourceServer(ctx context.Context, id string) (store.ResourceServer, error) {
	s.resourceReads.Add(1)
	return s.Store.GetResourceServer(ctx, id)
}

type env struct {
	t      *testing.T
	redis  *testenv.RedisServer
	st     *countingStore
	cache  *clients.Cache
	pub    *bus.Publisher
	now    atomic.Int64 // offset added to time.Now for the cache
	cancel context.CancelFunc
	beats  context.CancelFunc
}

// newEnv runs a cache on a real Redis and an embedded JetStream, with
// heartbeats every 50 ms and a 2 s staleness bound (generous, so a loaded CI
// machine does not make it untrusted by accident), and waits until it is
// trusted.
func newEnv(t *testing.T, opts ...func(*clients.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	e := &env{t: t, cancel: cancel}

	e.redis = testenv.Redis(t)
	opt, _ := goredis.ParseURL(e.redis.URL)
	opt.ReadTimeout, opt.DialTimeout, opt.MaxRetries = 200*time.Millisecond, 200*time.Millisecond, -1
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	rs, err := redisstore.New(ctx, goredis.NewClient(opt), aead, redisstore.WithPrefix(e.redis.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	e.st = &countingStore{Store: rs}

	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{Prefix: ns.Prefix, MaxAccessTokenLifetime: time.Hour}); err != nil {
		t.Fatal(err)
	}
	e.pub, _ = bus.NewPublisher(js, ns.Prefix)
	bctx, beats := context.WithCancel(ctx)
	e.beats = beats
	hb, _ := bus.NewHeartbeater(e.pub, "https://auth.example.test", events.Heartbeat{Service: "test", Instance: "t"}, bus.WithHeartbeatInterval(50*time.Millisecond))
	wg.Add(2)
	go func() { defer wg.Done(); _ = hb.Run(bctx) }()

	cfg := clients.Config{Prefix: ns.Prefix, StalenessBound: 2 * time.Second, ResourceTTL: time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	e.cache, err = clients.New(e.st, cfg,
		clients.WithClock(func() time.Time { return time.Now().Add(time.Duration(e.now.Load())) }))
	if err != nil {
		t.Fatal(err)
	}
	go func() { defer wg.Done(); _ = e.cache.Run(ctx, js) }()
	e.eventually("trusted", e.cache.Trusted)
	return e
}

func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) publish(p events.Payload) {
	e.t.Helper()
	ev, err := events.New(events.NewID(), "https://auth.example.test", time.Now(), p)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.pub.Publish(context.Background(), ev); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) create(id string) {
	e.t.Helper()
	if err := e.st.CreateClient(context.Background(), store.Client{ID: id, Type: store.Public, Name: "v1"}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) rename(id, name string) {
	e.t.Helper()
	c, err := e.st.Store.GetClient(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	c.Name = name
	if _, err := e.st.UpdateClient(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) name(id string) string {
	e.t.Helper()
	c, err := e.cache.Client(context.Background(), id)
	if err != nil {
		e.t.Fatalf("Client(%q): %v", id, err)
	}
	return c.Name
}

func TestClientCachedAndEvicted(t *testing.T) {
	e := newEnv(t)
	e.create("c1")
	if e.name("c1") != "v1" || e.name("c1") != "v1" {
		t.Fatal("wrong client")
	}
	if n := e.st.clientReads.Load(); n != 1 {
		t.Fatalf("%d store reads for two lookups, want 1", n)
	}
	e.rename("c1", "v2")
	if e.name("c1") != "v1" {
		t.Fatal("a trusted cache read the store without an event")
	}
	for _, p := range []events.Payload{
		&events.ClientUpdated{ClientID: "c1"},
		&events.ClientSecretRotated{ClientID: "c1"},
		&events.ClientRevoked{ClientID: "c1", Cutoff: time.Now().Unix()},
	} {
		name := "after " + string(p.EventType())
		e.rename("c1", name)
		e.publish(p)
		e.eventually(name, func() bool { return e.name("c1") == name })
	}
	e.publish(&events.ClientDeleted{ClientID: "c1"})
	if err := e.st.DeleteClient(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	e.eventually("deleted", func() bool {
		_, err := e.cache.Client(context.Background(), "c1")
		return errors.Is(err, store.ErrNotFound)
	})
}

// TestUntrustedReadsThrough: without heartbeats the cache stops trusting
// itself and reads the store on every lookup; with the store down too, the
// lookup fails with store.ErrUnavailable — never a stale answer.
func TestUntrustedReadsThrough(t *testing.T) {
	e := newEnv(t)
	e.create("c1")
	_ = e.name("c1")
	e.beats()
	e.eventually("untrusted", func() bool { return !e.cache.Trusted() })
	e.rename("c1", "v2")
	if e.name("c1") != "v2" {
		t.Fatal("an untrusted cache served its copy")
	}
	before := e.st.clientReads.Load()
	_, _ = e.name("c1"), e.name("c1")
	if got := e.st.clientReads.Load() - before; got != 2 {
		t.Fatalf("%d store reads for two untrusted lookups, want 2", got)
	}
	e.redis.Stop()
	_, err := e.cache.Client(context.Background(), "c1")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("store down and cache untrusted: %v, want store.ErrUnavailable", err)
	}
}

// TestClientMaxAge: a cached client is read again after ClientMaxAge even
// without an event.
func TestClientMaxAge(t *testing.T) {
	e := newEnv(t, func(c *clients.Config) { c.ClientMaxAge = 300 * time.Millisecond })
	e.create("c1")
	_ = e.name("c1")
	e.rename("c1", "v2")
	if e.name("c1") != "v1" {
		t.Fatal("served a fresh copy without an event, before the maximum age")
	}
	time.Sleep(350 * time.Millisecond)
	if e.name("c1") != "v2" {
		t.Fatal("served the cached copy after its maximum age")
	}
}

func TestResourceServerTTL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.st.CreateResourceServer(ctx, store.ResourceServer{ID: "https://api.example.test/", Scopes: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	get := func() []string {
		rs, err := e.cache.ResourceServer(ctx, "https://api.example.test/")
		if err != nil {
			t.Fatal(err)
		}
		return rs.Scopes
	}
	get()
	get()
	if n := e.st.resourceReads.Load(); n != 1 {
		t.Fatalf("%d reads, want 1", n)
	}
	rs, _ := e.st.Store.GetResourceServer(ctx, "https://api.example.test/")
	rs.Scopes = []string{"a", "b"}
	if _, err := e.st.UpdateResourceServer(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if len(get()) != 1 {
		t.Fatal("reloaded before the TTL")
	}
	e.now.Store(int64(time.Minute))
	if len(get()) != 2 {
		t.Fatal("not reloaded after the TTL")
	}
	if _, err := e.cache.ResourceServer(ctx, "urn:none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown resource server: %v", err)
	}
	// After the TTL with the store down: unavailable, not the stale copy.
	e.now.Store(int64(3 * time.Minute))
	e.redis.Stop()
	if _, err := e.cache.ResourceServer(ctx, "https://api.example.test/"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("expired entry, store down: %v, want store.ErrUnavailable", err)
	}
}

// TestEvictDuringLoad: an eviction that lands while a lookup reads the store
// keeps that lookup's result out of the cache, so a reload racing an event
// can never re-insert what the event invalidated.
func TestEvictDuringLoad(t *testing.T) {
	e := newEnv(t)
	e.create("c1")
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func() { once.Do(func() { close(started); <-release }) }
	e.st.hook.Store(&hook)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = e.cache.Client(context.Background(), "c1")
	}()
	<-started
	e.cache.Evict("c1")
	close(release)
	<-done
	before := e.st.clientReads.Load()
	_ = e.name("c1")
	if e.st.clientReads.Load() == before {
		t.Fatal("the racing load was cached despite the eviction")
	}
	before = e.st.clientReads.Load()
	_ = e.name("c1")
	if e.st.clientReads.Load() != before {
		t.Fatal("a load without a racing eviction was not cached")
	}
}

func TestHandleIgnoresOtherEvents(t *testing.T) {
	c, err := clients.New(&countingStore{}, clients.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := events.New(events.NewID(), "https://a.example", time.Now(), &events.Heartbeat{Service: "x", Instance: "y"})
	if err := c.Handle(context.Background(), ev, bus.Meta{}); err != nil {
		t.Fatal(err)
	}
	if got := clients.Subjects("valet"); len(got) != 2 || got[0] != "valet.client.>" || got[1] != "valet.stream.heartbeat" {
		t.Fatalf("Subjects = %q", got)
	}
}

func BenchmarkClientHit(b *testing.B) {
	// A trusted hit needs a running consumer; the hit path itself is a read
	// lock and a map lookup, measured here through the untrusted-free path
	// of ResourceServer, which shares it.
	st := &memStore{rs: store.ResourceServer{ID: "r"}}
	c, _ := clients.New(st, clients.Config{})
	ctx := context.Background()
	_, _ = c.ResourceServer(ctx, "r")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ResourceServer(ctx, "r"); err != nil {
			b.Fatal(err)
		}
	}
}

type memStore struct{ rs store.ResourceServer }

func (m *memStore) GetClient(context.Context, string) (store.Client, error) {
	return store.Client{}, store.ErrNotFound
}
func (m *memStore) GetResourceServer(context.Context, string) (store.ResourceServer, error) {
	return m.rs, nil
}
