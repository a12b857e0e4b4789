package bus_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/testenv"
)

const (
	testSource = "https://issuer.test"
	// wait is the generous deadline for anything to happen; tests never
	// assert how long something took.
	wait = 20 * time.Second
)

// env is one test's JetStream: a server, the declared streams, and a
// publisher on its own connection.
type env struct {
	srv *testenv.NATSServer
	js  jetstream.JetStream
	pub *bus.Publisher
	cfg bus.StreamsConfig
}

// newEnv starts a server, declares the streams with cfg (its Prefix and
// MaxAccessTokenLifetime filled in when empty) and builds a publisher.
func newEnv(t testing.TB, cfg bus.StreamsConfig) *env {
	t.Helper()
	srv := testenv.NATS(t)
	if cfg.Prefix == "" {
		cfg.Prefix = srv.Prefix
	}
	if cfg.MaxAccessTokenLifetime == 0 {
		cfg.MaxAccessTokenLifetime = time.Hour
	}
	js := connect(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	pub, err := bus.NewPublisher(js, cfg.Prefix)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	return &env{srv: srv, js: js, pub: pub, cfg: cfg}
}

// connect opens a connection that reconnects forever, closed in cleanup.
func connect(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url,
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectJitter(0, 0),
	)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return js
}

func (e *env) stream(s events.Stream) string { return bus.StreamName(e.cfg.Prefix, s) }

// streamInfo returns the current state of s.
func (e *env) streamInfo(t testing.TB, s events.Stream) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := e.js.Stream(ctx, e.stream(s))
	if err != nil {
		t.Fatalf("stream %s: %v", e.stream(s), err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", e.stream(s), err)
	}
	return info
}

// publish publishes every event and fails the test on any error.
func (e *env) publish(t testing.TB, evs ...events.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, ev := range evs {
		if _, err := e.pub.Publish(ctx, ev); err != nil {
			t.Fatalf("publish %s %s: %v", ev.Type, ev.ID, err)
		}
	}
}

// newEvent builds an event with a random id.
func newEvent(t testing.TB, p events.Payload) events.Event {
	t.Helper()
	e, err := events.New(events.NewID(), testSource, time.Now(), p)
	if err != nil {
		t.Fatalf("events.New: %v", err)
	}
	return e
}

// revocation builds a token.revoked event for jti, its id derived from jti.
func revocation(t testing.TB, jti string) events.Event {
	t.Helper()
	e, err := events.New(events.DeterministicID(events.TypeTokenRevoked, jti), testSource, time.Now(),
		&events.TokenRevoked{JTI: jti, Exp: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatalf("events.New: %v", err)
	}
	return e
}

func revocations(t testing.TB, prefix string, n int) []events.Event {
	t.Helper()
	out := make([]events.Event, n)
	for i := range out {
		out[i] = revocation(t, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// recorder is a Handler that records what it applied.
type recorder struct {
	mu    sync.Mutex
	evs   []events.Event
	metas []bus.Meta
	fail  func(events.Event) error
}

func (r *recorder) handle(_ context.Context, e events.Event, m bus.Meta) error {
	if r.fail != nil {
		if err := r.fail(e); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
	r.metas = append(r.metas, m)
	return nil
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.evs)
}

func (r *recorder) snapshot() ([]events.Event, []bus.Meta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.evs...), append([]bus.Meta(nil), r.metas...)
}

// ids returns the ids of the recorded events, in order.
func (r *recorder) ids() []string {
	evs, _ := r.snapshot()
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// running is a Consumer whose Run is in a goroutine.
type running struct {
	c      *bus.Consumer
	cancel context.CancelFunc
	done   chan error
}

// start runs c until the test ends (or stop).
func start(t testing.TB, c *bus.Consumer) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and returns its result, once.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(wait):
		t.Fatal("Consumer.Run did not return after its context ended")
		return nil
	}
}

// ready waits until the consumer has caught up.
func (r *running) ready(t testing.TB) {
	t.Helper()
	select {
	case <-r.c.Ready():
	case err := <-r.done:
		t.Fatalf("Run returned before the consumer was ready: %v", err)
	case <-time.After(wait):
		t.Fatalf("consumer not ready within %s: %+v", wait, r.c.Position())
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

// waitApplied waits until rec has applied n events.
func waitApplied(t testing.TB, rec *recorder, n int) {
	t.Helper()
	eventually(t, func() error {
		if got := rec.len(); got < n {
			return fmt.Errorf("applied %d events, want %d", got, n)
		}
		return nil
	})
}

func ids(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func equalStrings(a, b []string) error {
	if len(a) != len(b) {
		return fmt.Errorf("got %d items, want %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Errorf("item %d is %q, want %q", i, a[i], b[i])
		}
	}
	return nil
}

var errBoom = errors.New("boom")

// thumbprint returns a well-formed RFC 7638 thumbprint for kid.
func thumbprint(kid string) string {
	sum := sha256.Sum256([]byte(kid))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func keyPublished(kid string) *events.KeyPublished {
	return &events.KeyPublished{KID: kid, Alg: "ES256", Thumbprint: thumbprint(kid)}
}

func keyActivated(kid string) *events.KeyActivated {
	return &events.KeyActivated{KID: kid, Alg: "ES256", Thumbprint: thumbprint(kid)}
}
