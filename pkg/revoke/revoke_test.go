package revoke_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
)

const wait = 20 * time.Second

// env is a revoke primitive on a real redis-server (or a real Redis Cluster)
// and an embedded JetStream.
type env struct {
	redis *testenv.RedisServer
	nats  *testenv.NATSServer
	st    *redisstore.Store
	js    jetstream.JetStream
	rev   *revoke.Revoker
	relay *revoke.Relay
	pfx   string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{redis: testenv.Redis(t)}
	opt, err := goredis.ParseURL(e.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	return e.start(t, goredis.NewClient(opt), e.redis.Prefix)
}

// newClusterEnv is newEnv on a three-node Redis Cluster: the outbox is then
// sharded over the nodes (each entry in the slot of its deny state), and the
// index that lists the shards lives on one of them.
func newClusterEnv(t testing.TB) *env {
	t.Helper()
	c := testenv.RedisCluster(t)
	return (&env{}).start(t, goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs}), c.Prefix)
}

func (e *env) start(t testing.TB, rdb goredis.UniversalClient, prefix string) *env {
	t.Helper()
	e.nats = testenv.NATS(t)
	e.pfx = e.nats.Prefix
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var err error
	e.st, err = redisstore.New(ctx, rdb, aead, redisstore.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.st.Close() })
	nc, err := nats.Connect(e.nats.URL, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.js, _ = jetstream.New(nc)
	if err := bus.EnsureStreams(ctx, e.js, bus.StreamsConfig{Prefix: e.pfx, MaxAccessTokenLifetime: time.Hour}); err != nil {
		t.Fatal(err)
	}
	pub, err := bus.NewPublisher(e.js, e.pfx, bus.WithAckTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	e.rev, err = revoke.New(revoke.Config{Source: "https://issuer.test", Prefix: e.pfx, Retain: time.Hour}, e.st, pub)
	if err != nil {
		t.Fatal(err)
	}
	e.relay = revoke.NewRelay(e.rev, 10*time.Millisecond, nil)
	return e
}

// streamEvents returns every event in the revocation stream, in order.
func (e *env) streamEvents(t *testing.T) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := e.js.Stream(ctx, bus.StreamName(e.pfx, events.StreamRevocations))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatalf("decode %d: %v", seq, err)
		}
		out = append(out, ev)
	}
	return out
}

func (e *env) outbox(t *testing.T) []store.OutboxEntry {
	t.Helper()
	entries, err := e.st.PendingOutbox(context.Background(), time.Now().Add(time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestRevocationIsDurableWhenItReturns(t *testing.T) {
	testDurableWhenItReturns(t, newEnv(t))
}

func testDurableWhenItReturns(t *testing.T, e *env) {
	ctx := context.Background()
	cut := time.Now()
	tests := []struct {
		name   string
		revoke func() error
		typ    events.Type
		denied func(store.Deny) bool
		query  store.DenyQuery
	}{
		{"token", func() error {
			return e.rev.Token(ctx, "jti-1", time.Now().Add(time.Minute), "c1", events.ReasonClient, "c1")
		},
			events.TypeTokenRevoked, func(d store.Deny) bool { return d.JTIRevoked }, store.DenyQuery{JTI: "jti-1"}},
		{"family", func() error {
			return e.rev.Family(ctx, "AAAAAAAAAAAAAAAAAAAAAA", "alice", "c1", events.ReasonAdmin, "admin")
		},
			events.TypeFamilyRevoked, func(d store.Deny) bool { return d.FamilyRevoked }, store.DenyQuery{FID: "AAAAAAAAAAAAAAAAAAAAAA"}},
		{"subject", func() error { return e.rev.Subject(ctx, events.SubjectUser, "alice", cut, events.ReasonAdmin, "admin") },
			events.TypeSubjectRevoked, func(d store.Deny) bool { return !d.SubjectCutoff.IsZero() }, store.DenyQuery{SubjectType: events.SubjectUser, Subject: "alice"}},
		{"client", func() error { return e.rev.Client(ctx, "c2", cut, events.ReasonAdmin, "admin") },
			events.TypeClientRevoked, func(d store.Deny) bool { return !d.ClientCutoff.IsZero() }, store.DenyQuery{ClientID: "c2"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.revoke(); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			evs := e.streamEvents(t)
			if len(evs) != i+1 || evs[i].Type != tc.typ {
				t.Fatalf("stream holds %d events, last %v; want %d ending in %s", len(evs), evs[len(evs)-1].Type, i+1, tc.typ)
			}
			d, err := e.st.DenyState(ctx, tc.query)
			if err != nil || !tc.denied(d) {
				t.Fatalf("deny state %+v, %v", d, err)
			}
			if n := len(e.outbox(t)); n != 0 {
				t.Fatalf("outbox holds %d entries after a durable revocation", n)
			}
		})
	}
}

func TestRevocationDuringNATSOutageIsCompletedByTheRelay(t *testing.T) {
	testOutageCompletedByRelay(t, newEnv(t))
}

func testOutageCompletedByRelay(t *testing.T, e *env) {
	ctx := context.Background()
	e.nats.Shutdown()
	err := e.rev.Token(ctx, "jti-down", time.Now().Add(time.Minute), "c1", events.ReasonClient, "c1")
	if !errors.Is(err, revoke.ErrPending) {
		t.Fatalf("Token with NATS down = %v, want ErrPending", err)
	}
	// The store enforces it at once.
	if d, err := e.st.DenyState(ctx, store.DenyQuery{JTI: "jti-down"}); err != nil || !d.JTIRevoked {
		t.Fatalf("deny state during outage: %+v, %v", d, err)
	}
	if n := len(e.outbox(t)); n != 1 {
		t.Fatalf("outbox holds %d entries, want 1", n)
	}
	if n, err := e.relay.Once(ctx); err == nil || n != 0 {
		t.Fatalf("relay with NATS down published %d, err %v", n, err)
	}
	e.nats.Start()
	relayUntilEmpty(t, e)
	evs := e.streamEvents(t)
	if len(evs) != 1 || evs[0].Payload.(*events.TokenRevoked).JTI != "jti-down" {
		t.Fatalf("stream after relay: %+v", evs)
	}
	// A second pass finds nothing; re-publishing would be de-duplicated anyway.
	if n, err := e.relay.Once(ctx); err != nil || n != 0 {
		t.Fatalf("second relay pass: %d, %v", n, err)
	}
}

func relayUntilEmpty(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for len(e.outbox(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d entries", len(e.outbox(t)))
		}
		time.Sleep(20 * time.Millisecond)
		_, _ = e.relay.Once(context.Background())
	}
}

// TestNATSRestartInTheMiddleLosesNothingAndDuplicatesNothing revokes in a
// loop while NATS goes down and comes back: every revocation ends up in the
// stream exactly once.
func TestNATSRestartInTheMiddleLosesNothingAndDuplicatesNothing(t *testing.T) {
	testNATSRestartInTheMiddle(t, newEnv(t))
}

func testNATSRestartInTheMiddle(t *testing.T, e *env) {
	ctx := context.Background()
	const n = 60
	pending := 0
	for i := 0; i < n; i++ {
		switch i {
		case 20:
			e.nats.Shutdown()
		case 40:
			e.nats.Start()
		}
		err := e.rev.Token(ctx, fmt.Sprint("jti-", i), time.Now().Add(time.Minute), "c1", events.ReasonClient, "c1")
		switch {
		case errors.Is(err, revoke.ErrPending):
			pending++
		case err != nil:
			t.Fatalf("revocation %d: %v", i, err)
		}
		// A relay runs alongside, as in every service.
		_, _ = e.relay.Once(ctx)
	}
	if pending == 0 {
		t.Fatal("no revocation saw the outage; the test did not test it")
	}
	relayUntilEmpty(t, e)
	seen := map[string]int{}
	for _, ev := range e.streamEvents(t) {
		seen[ev.Payload.(*events.TokenRevoked).JTI]++
	}
	for i := 0; i < n; i++ {
		if c := seen[fmt.Sprint("jti-", i)]; c != 1 {
			t.Errorf("jti-%d is in the stream %d times, want exactly 1", i, c)
		}
	}
	if len(seen) != n {
		t.Errorf("stream holds %d distinct revocations, want %d", len(seen), n)
	}
}

func TestRedisDownRefusesAndPublishesNothing(t *testing.T) {
	e := newEnv(t)
	e.redis.Stop()
	err := e.rev.Client(context.Background(), "c1", time.Now(), events.ReasonAdmin, "admin")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Client with Redis down = %v, want store.ErrUnavailable", err)
	}
	if evs := e.streamEvents(t); len(evs) != 0 {
		t.Fatalf("an event was published for a revocation the store never recorded: %+v", evs)
	}
}

// TestReplayRebuildsDenyStateAfterRedisLoss revokes one of each kind, loses
// Redis (no persistence), and rebuilds the deny state from the stream.
func TestReplayRebuildsDenyStateAfterRedisLoss(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cut := time.Now()
	fid := "BBBBBBBBBBBBBBBBBBBBBB"
	for _, err := range []error{
		e.rev.Token(ctx, "jti-r", time.Now().Add(time.Hour), "c1", events.ReasonClient, "c1"),
		e.rev.Family(ctx, fid, "alice", "c1", events.ReasonRefreshReuse, "system"),
		e.rev.Subject(ctx, events.SubjectUser, "alice", cut, events.ReasonAdmin, "admin"),
		e.rev.Client(ctx, "c2", cut, events.ReasonAdmin, "admin"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	q := store.DenyQuery{JTI: "jti-r", FID: fid, SubjectType: events.SubjectUser, Subject: "alice", ClientID: "c2"}
	e.redis.Stop()
	e.redis.Start() // persistence is off: everything is gone
	if d, err := e.st.DenyState(ctx, q); err != nil || d.JTIRevoked || d.FamilyRevoked || !d.SubjectCutoff.IsZero() {
		t.Fatalf("deny state survived the Redis loss (%+v, %v): the test would not test replay", d, err)
	}
	stats, err := revoke.ReplayStream(ctx, e.js, bus.StreamName(e.pfx, events.StreamRevocations), e.st, time.Hour, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatalf("ReplayStream: %v", err)
	}
	if n := stats.Applied[events.TypeTokenRevoked] + stats.Applied[events.TypeFamilyRevoked] + stats.Applied[events.TypeSubjectRevoked] + stats.Applied[events.TypeClientRevoked]; n != 4 {
		t.Fatalf("replay applied %d revocations (%+v), want 4", n, stats)
	}
	d, err := e.st.DenyState(ctx, q)
	if err != nil || !d.JTIRevoked || !d.FamilyRevoked || d.SubjectCutoff.Before(cut.Truncate(time.Second)) || d.ClientCutoff.Before(cut.Truncate(time.Second)) {
		t.Fatalf("deny state after replay: %+v, %v", d, err)
	}
	if len(e.outbox(t)) != 0 {
		t.Fatal("replay queued events")
	}
}

// TestReuseEventIsRelayed: a reuse detected by a rotation queues its
// family.revoked in the outbox shard of the family's own slot, written by the
// rotation's script; with NATS down the issuer's Flush leaves it there, and
// the relay publishes it once NATS is back, exactly once.
func TestReuseEventIsRelayed(t *testing.T) { testReuseEventIsRelayed(t, newEnv(t)) }

func testReuseEventIsRelayed(t *testing.T, e *env) {
	ctx := context.Background()
	now := time.Now()
	fid := "CCCCCCCCCCCCCCCCCCCCCC"
	first, second := "vrt_"+fid+".first", "vrt_"+fid+".second"
	f := store.RefreshFamily{FID: fid, ClientID: "c1", Subject: "alice", SubjectType: events.SubjectUser,
		CreatedAt: now, AbsoluteExpiresAt: now.Add(time.Hour)}
	if err := e.st.CreateFamily(ctx, f, sha256.Sum256([]byte(first))); err != nil {
		t.Fatal(err)
	}
	ev, err := e.rev.FamilyEvent(fid, "", "c1", events.ReasonRefreshReuse, "")
	if err != nil {
		t.Fatal(err)
	}
	rot := store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(first)), ClientID: "c1", Now: now, ReuseEvent: ev}
	rot.Successor = second
	if _, err := e.st.RotateRefresh(ctx, rot); err != nil {
		t.Fatal(err)
	}
	e.nats.Shutdown()
	rot.Successor = "vrt_" + fid + ".third"
	if _, err := e.st.RotateRefresh(ctx, rot); !errors.Is(err, store.ErrReused) {
		t.Fatalf("replay of the superseded token: %v, want ErrReused", err)
	}
	if err := e.rev.Flush(ctx, ev); !errors.Is(err, revoke.ErrPending) {
		t.Fatalf("Flush with NATS down = %v, want ErrPending", err)
	}
	if got := e.outbox(t); len(got) != 1 || got[0].ID != ev.ID {
		t.Fatalf("outbox: %+v, want the reuse event", got)
	}
	e.nats.Start()
	relayUntilEmpty(t, e)
	evs := e.streamEvents(t)
	if len(evs) != 1 || evs[0].ID != ev.ID || evs[0].Payload.(*events.FamilyRevoked).FID != fid {
		t.Fatalf("stream after relay: %+v", evs)
	}
}

// TestCluster runs the primitive's guarantees on a three-node Redis Cluster,
// where every revocation's outbox entry lives in its own deny state's slot
// and the relay finds them through the index: durable when it returns,
// completed by the relay after a NATS outage, nothing lost nor duplicated
// across a NATS restart, reuse events relayed from the family's slot.
func TestCluster(t *testing.T) {
	for name, body := range map[string]func(*testing.T, *env){
		"DurableWhenItReturns":   testDurableWhenItReturns,
		"OutageCompletedByRelay": testOutageCompletedByRelay,
		"NATSRestartInTheMiddle": testNATSRestartInTheMiddle,
		"ReuseEventIsRelayed":    testReuseEventIsRelayed,
	} {
		t.Run(name, func(t *testing.T) { body(t, newClusterEnv(t)) })
	}
}

// TestNilRegistererRegistersNothing: a service built without a metrics
// registry (boot.NewRevoker with Env.Registry nil) starts rather than
// panicking, as NewRelay and the client cache already did.
func TestNilRegistererRegistersNothing(t *testing.T) {
	cfg := revoke.Config{Source: "https://issuer.example.test", Prefix: "valet", Retain: time.Minute}
	if _, err := revoke.New(cfg, nil, nil, revoke.WithRegisterer(nil)); err != nil {
		t.Fatal(err)
	}
	if r := revoke.NewRelay(nil, time.Second, nil); r == nil {
		t.Fatal("NewRelay(nil registry) = nil")
	}
}
