package bootstrap_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bootstrap"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/bus/bustest"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	boltstore "github.com/valetauth/valet/pkg/store/bolt"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/pkg/users"
)

const testIssuer = "https://auth.example.test"

// fastParams keep argon2id cheap in tests (the race detector slows it down a lot).
var fastParams = users.Params{Memory: 64, Time: 1, Threads: 1}

// backend is one store implementation with its user store.
type backend struct {
	name  string
	open  func(t *testing.T) (storeWithRevocations, bootstrap.UserStore)
	multi bool // several independent connections are possible (replicas)
}

// storeWithRevocations is the registry plus what the revoke primitive needs.
type storeWithRevocations interface {
	bootstrap.Registry
	revoke.Store
}

var backends = []backend{
	{name: "redis", open: openRedis},
	{name: "bolt", open: openBolt},
}

// openRedis returns the Redis store and the Redis user store on a real redis-server.
func openRedis(t *testing.T) (storeWithRevocations, bootstrap.UserStore) {
	t.Helper()
	r := testenv.Redis(t)
	opt, err := goredis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	st, err := redisstore.New(context.Background(), rdb, testenv.AEAD(t), redisstore.WithPrefix(r.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, users.NewRedis(rdb, r.Prefix)
}

// openBolt returns the embedded store on a temporary file and its user bucket.
func openBolt(t *testing.T) (storeWithRevocations, bootstrap.UserStore) {
	t.Helper()
	st, err := boltstore.New(filepath.Join(t.TempDir(), "valet.db"), testenv.AEAD(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, st.Users()
}

// stream is an embedded JetStream with the Valet streams, a publisher, and a recorder of the
// client events published on it.
type stream struct {
	prefix string
	pub    *bus.Publisher
	mu     sync.Mutex
	seen   []events.Event
}

func newStream(t *testing.T) *stream {
	t.Helper()
	env := bustest.New(t)
	s := &stream{prefix: env.Prefix, pub: env.Pub}
	sub, err := env.Conn.Subscribe(env.Prefix+".client.>", func(m *nats.Msg) {
		e, err := events.Decode(m.Data)
		if err != nil {
			t.Errorf("undecodable event on %s: %v", m.Subject, err)
			return
		}
		s.mu.Lock()
		s.seen = append(s.seen, e)
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return s
}

// publisher is the stream as Deps.Publisher.
func (s *stream) publisher() keys.PublisherFunc {
	return func(ctx context.Context, e events.Event) error { _, err := s.pub.Publish(ctx, e); return err }
}

// take waits until n events of type typ have arrived since the last take and returns them, with
// every other event seen meanwhile.
func (s *stream) take(t *testing.T, typ events.Type, n int) []events.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		count := 0
		for _, e := range s.seen {
			if e.Type == typ {
				count++
			}
		}
		if count >= n {
			out := s.seen
			s.seen = nil
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d %s events", n, typ)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quiet returns the events that arrived since the last take, after giving late ones a moment.
func (s *stream) quiet() []events.Event {
	time.Sleep(200 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.seen
	s.seen = nil
	return out
}

// envMap returns a lookupEnv backed by m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// loadSpec parses a configuration document strictly (dev mode, the test issuer) and resolves
// its bootstrap section with env.
func loadSpec(t *testing.T, doc string, env map[string]string) bootstrap.Spec {
	t.Helper()
	cfg, err := config.Parse([]byte("dev: true\nissuer: "+testIssuer+"\n"+doc), envMap(nil))
	if err != nil {
		t.Fatalf("configuration refused:\n%v", err)
	}
	spec, err := bootstrap.Resolve(cfg, envMap(env))
	if err != nil {
		t.Fatalf("resolve:\n%v", err)
	}
	return spec
}

func newHasher(t *testing.T) *secret.Hasher {
	t.Helper()
	h, err := newHasherTB(t)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newHasherTB(t testing.TB) (*secret.Hasher, error) {
	return secret.NewHasher("kek-1", map[string][]byte{"kek-1": testenv.RandomKey(t)})
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := secret.New()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verifies reports whether sec authenticates as one of c's live secrets.
func verifies(t *testing.T, h *secret.Hasher, c store.Client, sec string) bool {
	t.Helper()
	for _, s := range c.Secrets {
		if !s.ExpiresAt.IsZero() && !time.Now().Before(s.ExpiresAt) {
			continue
		}
		if ok, err := h.Verify(s.Hash, sec); err == nil && ok {
			return true
		}
	}
	return false
}

// outcomes maps kind/id to the outcome of a report, with the drifted fields.
func outcomes(r bootstrap.Report) map[string]string {
	out := map[string]string{}
	for _, res := range r.Results {
		v := string(res.Outcome)
		for _, f := range res.Drifted {
			v += " " + f
		}
		out[res.Kind+"/"+res.ID] = v
	}
	return out
}

// parse parses a configuration document strictly in dev mode with the test issuer.
func parse(t *testing.T, doc string) *config.Config {
	t.Helper()
	cfg, err := parseErr(doc)
	if err != nil {
		t.Fatalf("configuration refused:\n%v", err)
	}
	return cfg
}

func parseErr(doc string) (*config.Config, error) {
	return config.Parse([]byte("dev: true\nissuer: "+testIssuer+"\n"+doc), envMap(nil))
}
