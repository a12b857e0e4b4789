package redis

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// relayDrain revokes one of each kind, then drains the outbox as the relay
// does: read, ack, and read again, which retires the empty shards. The
// index must be empty at the end.
func relayDrain(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	for _, r := range []store.Revocation{
		{Kind: store.RevokeToken, JTI: testFID(t), Expires: now.Add(time.Minute), Retain: time.Minute},
		{Kind: store.RevokeFamily, FID: testFID(t), Retain: time.Minute},
		{Kind: store.RevokeSubject, SubjectType: "user", Subject: "alice", Cutoff: now, Retain: time.Minute},
		{Kind: store.RevokeClient, ClientID: "app", Cutoff: now, Retain: time.Minute},
	} {
		if err := st.Revoke(ctx, r, testEvent(t)); err != nil {
			t.Fatal(err)
		}
	}
	later := now.Add(time.Hour)
	got, err := st.PendingOutbox(ctx, later, 100)
	if err != nil || len(got) != 4 {
		t.Fatalf("pending: %d, %v; want 4", len(got), err)
	}
	for _, e := range got {
		if err := st.AckOutbox(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := st.PendingOutbox(ctx, later, 100); err != nil || len(got) != 0 {
		t.Fatalf("pending after acks: %d, %v", len(got), err)
	}
	s := st.(*Store)
	shards, _ := s.indexKeys()
	if n := s.rdb.ZCard(ctx, shards).Val(); n != 0 {
		t.Fatalf("%d shards still indexed after the drain", n)
	}
}

// TestOutboxRelayDrain: the relay's pass retires empty shards.
func TestOutboxRelayDrain(t *testing.T) {
	s, _ := newTestStore(t)
	relayDrain(t, s)
}

// TestOutboxCloseFencesLateWriter plays the race the fence exists for: a
// writer registers its shard, the relay reads the shard (empty: the writer
// has not queued yet) and retires it, then the writer's script runs. The
// writer must not queue into a shard the index no longer lists: it gets
// INDEX, registers again, and its entry is then found by the relay.
func TestOutboxCloseFencesLateWriter(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	const op = "test"
	jti := testFID(t)
	tag := jtiTag(jti)
	v, err := s.register(ctx, op, tag)
	if err != nil {
		t.Fatal(err)
	}
	// The relay's pass: the shard is empty and old enough, so it is closed
	// at v and dropped from the index.
	if got, err := s.PendingOutbox(ctx, time.Now().Add(time.Hour), 10); err != nil || len(got) != 0 {
		t.Fatalf("pending: %v, %v", got, err)
	}
	shards, _ := s.indexKeys()
	if n := s.rdb.ZCard(ctx, shards).Val(); n != 0 {
		t.Fatalf("the empty shard is still indexed (%d)", n)
	}
	// The late writer's script, with the registration the relay retired.
	e := testEvent(t)
	ev, err := outboxArgs(e)
	if err != nil {
		t.Fatal(err)
	}
	until := ms(time.Now().Add(time.Hour))
	status, _, err := s.run(ctx, op, revokeTokenScript, []string{s.jtiKey(jti), s.shardKey(tag)}, until, v, ev.id, ev.value)
	if err != nil || status != statusIndex {
		t.Fatalf("late writer: status %q, %v; want INDEX", status, err)
	}
	if s.rdb.Exists(ctx, s.jtiKey(jti)).Val() != 0 {
		t.Fatal("the refused step wrote deny state without its event")
	}
	// What Revoke does next: register again and run again.
	if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: time.Now().Add(time.Hour), Retain: time.Minute}, e); err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingOutbox(ctx, time.Now().Add(time.Hour), 10)
	if err != nil || len(got) != 1 || got[0].ID != e.ID {
		t.Fatalf("the entry after the re-registration: %v, %v", got, err)
	}
}

// TestOutboxStaleRegistration: a registration older than registrationMaxAge
// is not trusted (the relay may have retired it and its close expired).
func TestOutboxStaleRegistration(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	jti := testFID(t)
	tag := jtiTag(jti)
	old := (time.Now().Add(-2*registrationMaxAge).UnixMilli())*1024 + 1
	ev, _ := outboxArgs(testEvent(t))
	status, _, err := s.run(ctx, "test", revokeTokenScript, []string{s.jtiKey(jti), s.shardKey(tag)},
		ms(time.Now().Add(time.Hour)), old, ev.id, ev.value)
	if err != nil || status != statusIndex {
		t.Fatalf("stale registration: status %q, %v; want INDEX", status, err)
	}
	fresh, err := s.register(ctx, "test", tag)
	if err != nil {
		t.Fatal(err)
	}
	status, _, err = s.run(ctx, "test", revokeTokenScript, []string{s.jtiKey(jti), s.shardKey(tag)},
		ms(time.Now().Add(time.Hour)), fresh, ev.id, ev.value)
	if err != nil || status != statusOK {
		t.Fatalf("fresh registration: status %q, %v; want OK", status, err)
	}
}

// TestOutboxReregistrationKeepsShard: a writer that registers after the
// relay read the shard moves its version, so the relay's retirement, which
// is conditional on the version it closed, leaves the shard indexed.
func TestOutboxReregistrationKeepsShard(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	tag := jtiTag(testFID(t))
	v1, err := s.register(ctx, "test", tag)
	if err != nil {
		t.Fatal(err)
	}
	// The relay closes the shard at v1 ...
	status, _, err := s.run(ctx, "test", outboxReadScript, []string{s.shardKey(tag)}, v1, "1", closedShardTTL.Milliseconds())
	if err != nil || status != statusClosed {
		t.Fatalf("close: %q, %v", status, err)
	}
	// ... a writer registers again before the relay drops it ...
	v2, err := s.register(ctx, "test", tag)
	if err != nil {
		t.Fatal(err)
	}
	if n1, _ := strconv.ParseInt(v1, 10, 64); func() bool { n2, _ := strconv.ParseInt(v2, 10, 64); return n2 <= n1 }() {
		t.Fatalf("second registration %s is not newer than %s", v2, v1)
	}
	// ... and the drop, conditional on v1, keeps it.
	shards, _ := s.indexKeys()
	if _, _, err := s.run(ctx, "test", outboxForgetScript, []string{shards}, tag, v1); err != nil {
		t.Fatal(err)
	}
	if s.rdb.ZScore(ctx, shards, tag).Err() != nil {
		t.Fatal("the relay dropped a shard a writer had registered again")
	}
}

// TestOutboxAckUnknownShard: an entry this store instance neither queued
// nor read is left for the relay; another instance's pass finds and acks
// it.
func TestOutboxAckUnknownShard(t *testing.T) {
	srv := newTestServer(t)
	a, b := newStoreOn(t, srv), newStoreOn(t, srv)
	ctx := context.Background()
	e := testEvent(t)
	if err := a.Revoke(ctx, store.Revocation{Kind: store.RevokeFamily, FID: testFID(t), Retain: time.Minute}, e); err != nil {
		t.Fatal(err)
	}
	if err := b.AckOutbox(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	got, err := b.PendingOutbox(ctx, time.Now().Add(time.Hour), 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("an ack from a store that did not know the shard removed the entry: %v, %v", got, err)
	}
	if err := b.AckOutbox(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := a.PendingOutbox(ctx, time.Now().Add(time.Hour), 10); err != nil || len(got) != 0 {
		t.Fatalf("after the relay's ack: %v, %v", got, err)
	}
}

// sameBucketJTIs returns n distinct jtis whose marks share one bucket tag.
func sameBucketJTIs(t *testing.T, n int) []string {
	t.Helper()
	first := testFID(t)
	out := []string{first}
	for i := 0; len(out) < n; i++ {
		if j := first + strconv.Itoa(i); jtiTag(j) == jtiTag(first) {
			out = append(out, j)
		}
	}
	return out
}

// TestOutboxRegistrationReused: revocations into a shard registered moments
// ago reuse the registration (one round trip each); once the relay has
// closed the shard, the cached registration is refused, the store registers
// again, and the relay finds the entry: caching never loses an event.
func TestOutboxRegistrationReused(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	_, seq := s.indexKeys()
	jtis := sameBucketJTIs(t, 3)
	revoke := func(jti string) store.OutboxEntry {
		t.Helper()
		e := testEvent(t)
		r := store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: time.Now().Add(time.Minute), Retain: time.Minute}
		if err := s.Revoke(ctx, r, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	first := revoke(jtis[0])
	v1 := s.rdb.Get(ctx, seq).Val()
	second := revoke(jtis[1])
	if v2 := s.rdb.Get(ctx, seq).Val(); v2 != v1 {
		t.Fatalf("second revocation in the bucket registered again (version %s -> %s)", v1, v2)
	}
	for _, e := range []store.OutboxEntry{first, second} {
		if err := s.AckOutbox(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	// The relay finds the shard empty and closes it at the cached version.
	if got, err := s.PendingOutbox(ctx, time.Now().Add(time.Hour), 100); err != nil || len(got) != 0 {
		t.Fatalf("pending after acks: %d, %v", len(got), err)
	}
	third := revoke(jtis[2])
	if v3 := s.rdb.Get(ctx, seq).Val(); v3 == v1 {
		t.Fatal("revocation into a closed shard queued with the stale registration")
	}
	got, err := s.PendingOutbox(ctx, time.Now().Add(time.Hour), 100)
	if err != nil || len(got) != 1 || got[0].ID != third.ID {
		t.Fatalf("pending after the closed shard was reused: %+v, %v; want only %s", got, err, third.ID)
	}
	if n := s.rdb.Exists(ctx, s.jtiKey(jtis[2])).Val(); n != 1 {
		t.Fatal("the third token's mark is missing")
	}
}

// TestJTIBuckets: the bucket tags are spread, stable and all distinct.
func TestJTIBuckets(t *testing.T) {
	seen := map[string]int{}
	for i := range 100000 {
		seen[jtiTag("jti-"+strconv.Itoa(i))]++
	}
	if len(seen) != jtiBuckets {
		t.Fatalf("%d buckets used of %d", len(seen), jtiBuckets)
	}
	for tag, n := range seen {
		if n < 100000/jtiBuckets/2 || n > 100000/jtiBuckets*2 {
			t.Fatalf("bucket %s holds %d of 100000 jtis", tag, n)
		}
	}
	if jtiTag("a") != jtiTag("a") || jtiBucketTags[0] != "jtis:00" || jtiBucketTags[255] != "jtis:ff" {
		t.Fatal("bucket tags are not stable")
	}
}
