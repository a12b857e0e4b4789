package redis

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/testenv"
)

// newTestServer starts a redis-server for one test.
func newTestServer(t testing.TB) *testenv.RedisServer {
	t.Helper()
	return testenv.Redis(t)
}

// newStoreOn builds a Store with opts on srv, with a pool large enough for
// the contention benchmarks.
func newStoreOn(t testing.TB, srv *testenv.RedisServer, opts ...Option) *Store {
	t.Helper()
	opt, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize = 128
	rdb := goredis.NewClient(opt)
	s, err := New(context.Background(), rdb, testenv.AEAD(t), append([]Option{WithPrefix(srv.Prefix)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// near fails unless got is within a second of want.
func near(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if d := got - want; d < -time.Second || d > time.Second {
		t.Errorf("%s: TTL %s, want about %s", what, got, want)
	}
}

// TestDenyStateTTLs checks how long each kind of deny state lives.
func TestDenyStateTTLs(t *testing.T) {
	srv := newTestServer(t)
	s := newStoreOn(t, srv, WithDenyRetention(20*time.Minute), WithMaxGrantLifetime(90*24*time.Hour))
	ctx := context.Background()
	now := time.Now()

	jti := testFID(t)
	if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: now.Add(5 * time.Minute), Retain: 15 * time.Minute}, testEvent(t)); err != nil {
		t.Fatal(err)
	}
	near(t, "jti mark (exp + retain)", s.rdb.PTTL(ctx, s.jtiKey(jti)).Val(), 20*time.Minute)
	// A second revocation with an earlier exp never shortens the mark.
	if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: now, Retain: time.Minute}, testEvent(t)); err != nil {
		t.Fatal(err)
	}
	near(t, "jti mark after a shorter revocation", s.rdb.PTTL(ctx, s.jtiKey(jti)).Val(), 20*time.Minute)

	fid := testFID(t)
	if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeFamily, FID: fid, Retain: 15 * time.Minute}, testEvent(t)); err != nil {
		t.Fatal(err)
	}
	near(t, "family mark (retain)", s.rdb.PTTL(ctx, s.grant(fid).rev).Val(), 15*time.Minute)

	if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeSubject, SubjectType: "user", Subject: "alice", Cutoff: now, Retain: 15 * time.Minute}, testEvent(t)); err != nil {
		t.Fatal(err)
	}
	near(t, "subject cut-off (max grant lifetime)", s.rdb.PTTL(ctx, s.subjectCutKey("user", "alice")).Val(), 90*24*time.Hour)

	// A mark written by reuse detection lives the store's deny retention.
	reused := testFID(t)
	first, _ := grantLifecycle(t, s, reused)
	if _, err := s.RotateRefresh(ctx, store.Rotation{FID: reused, Presented: sha256.Sum256([]byte(first)), ClientID: "app",
		Successor: tokenOf(t, "vrt", reused), Now: time.Now(), ReuseEvent: testEvent(t)}); err == nil {
		t.Fatal("replay of generation 1 succeeded")
	}
	near(t, "reuse mark (deny retention)", s.rdb.PTTL(ctx, s.grant(reused).rev).Val(), 20*time.Minute)
	near(t, "superseded hashes after reuse", s.rdb.PTTL(ctx, s.grant(reused).sup).Val(), 20*time.Minute)
	if n := s.rdb.Exists(ctx, s.grant(reused).fam, s.grant(reused).succ).Val(); n != 0 {
		t.Errorf("%d family records left after reuse", n)
	}
}

// TestOutboxKeysShareSlot: each revocation's deny state and its outbox shard
// are written by one script, so they must share a slot, whatever the ids
// hold; so must the index keys (outbox_register.lua).
func TestOutboxKeysShareSlot(t *testing.T) {
	s, _ := newTestStore(t)
	shards, seq := s.indexKeys()
	if slot(shards) != slot(seq) {
		t.Fatalf("%s and %s are in different slots", shards, seq)
	}
	for _, id := range []string{"plain", "with}brace", "{tagged}", "}{", "a:b", "", "sp ace", "{}"} {
		for name, pair := range map[string][2]string{
			"jti":     {s.jtiKey(id), s.shardKey(jtiTag(id))},
			"subject": {s.subjectCutKey("user", id), s.shardKey(subjectTag("user", id))},
			"client":  {s.clientCutKey(id), s.shardKey(clientTag(id))},
		} {
			if slot(pair[0]) != slot(pair[1]) {
				t.Errorf("%s %q: %s and %s are in different slots", name, id, pair[0], pair[1])
			}
		}
	}
	if s.subjectCutKey("user", "a:b") == s.subjectCutKey("user:a", "b") {
		t.Error("subject keys collide across the type separator")
	}
}

// TestNewRefusesBadRetention checks New's validation of the options.
func TestNewRefusesBadRetention(t *testing.T) {
	srv := newTestServer(t)
	for name, o := range map[string]Option{
		"zero deny retention":     WithDenyRetention(0),
		"negative grant lifetime": WithMaxGrantLifetime(-time.Hour),
		"prefix with a brace":     WithPrefix("valet{x}:"),
	} {
		opt, err := goredis.ParseURL(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		rdb := goredis.NewClient(opt)
		if _, err := New(context.Background(), rdb, testenv.AEAD(t), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
		_ = rdb.Close()
	}
}

// TestMemoryPerRevocation measures what deny state costs in Redis (quoted in
// docs/redis.md): MEMORY USAGE of each kind of mark and of an outbox entry.
func TestMemoryPerRevocation(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	now := time.Now()
	jti, fid := testFID(t), testFID(t)
	data := make([]byte, 320) // a typical encoded revocation event
	for i := range data {
		data[i] = 'x'
	}
	for _, r := range []store.Revocation{
		{Kind: store.RevokeToken, JTI: jti, Expires: now.Add(5 * time.Minute), Retain: 15 * time.Minute},
		{Kind: store.RevokeFamily, FID: fid, Retain: 15 * time.Minute},
		{Kind: store.RevokeSubject, SubjectType: "user", Subject: "248289761001", Cutoff: now, Retain: 15 * time.Minute},
		{Kind: store.RevokeClient, ClientID: "my-mobile-app", Cutoff: now, Retain: 15 * time.Minute},
	} {
		e := store.OutboxEntry{ID: testFID(t), Subject: "valet.token.revoked", Data: data, CreatedAt: now}
		if err := s.Revoke(ctx, r, e); err != nil {
			t.Fatal(err)
		}
	}
	shards, _ := s.indexKeys()
	usage := func(name, key string) {
		t.Helper()
		n, err := s.rdb.MemoryUsage(ctx, key).Result()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %d bytes", name, n)
	}
	for name, key := range map[string]string{
		"jti mark":                       s.jtiKey(jti),
		"family mark":                    s.grant(fid).rev,
		"subject cutoff":                 s.subjectCutKey("user", "248289761001"),
		"client cutoff":                  s.clientCutKey("my-mobile-app"),
		"outbox index (4 shards)":        shards,
		"outbox shard (1 entry)":         s.shardKey(jtiTag(jti)),
		"outbox shard (family, 1 entry)": s.grant(fid).outbox,
	} {
		usage(name, key)
	}
	// Once relayed: the shard keeps only its close version, for
	// closedShardTTL, and the index forgets it.
	got, err := s.PendingOutbox(ctx, now.Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if err := s.AckOutbox(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PendingOutbox(ctx, now.Add(time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	usage("closed outbox shard", s.shardKey(jtiTag(jti)))
}
