package redis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/testenv"
)

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster maps keys to slots with
// (cluster spec, "Keys distribution model").
func crc16(b string) uint16 {
	var crc uint16
	for i := 0; i < len(b); i++ {
		crc ^= uint16(b[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slot is the Redis Cluster slot of key: only the first non-empty {tag}
// counts when there is one.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}

func TestSlot(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]uint16{
		"123456789":            12739, // crc16 0x31C3
		"foo":                  12182,
		"{user1000}.following": slot("{user1000}.followers"),
		"user1000":             slot("x{user1000}y"),
		"foo{}{bar}":           crc16("foo{}{bar}") % 16384, // an empty first tag: the whole key
	} {
		if got := slot(key); got != want {
			t.Errorf("slot(%q) = %d, want %d", key, got, want)
		}
	}
	if crc16("123456789") != 0x31C3 {
		t.Fatalf("crc16 check value %#x, want 0x31c3", crc16("123456789"))
	}
}

func testFID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenOf(t testing.TB, kind, fid string) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return kind + "_" + fid + "." + base64.RawURLEncoding.EncodeToString(b)
}

func testEvent(t testing.TB) store.OutboxEntry {
	return store.OutboxEntry{ID: testFID(t), Subject: "valet.family.revoked", Data: []byte(`{}`), CreatedAt: time.Now()}
}

// grantLifecycle writes every kind of key one grant can have: a redeemed
// code, a device authorization, a family rotated twice with grace (so it has
// superseded hashes and a sealed successor). It returns the refresh tokens.
func grantLifecycle(t testing.TB, s *Store, fid string) (first, live string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	code := tokenOf(t, "vac", fid)
	c := store.AuthCode{FID: fid, Hash: sha256.Sum256([]byte(code)), ClientID: "app", Subject: "alice",
		Scopes: []string{"read"}, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := s.CreateAuthCode(ctx, c); err != nil {
		t.Fatal(err)
	}
	// Not a real grant (one fid is a code or a device grant), but it
	// writes every kind of key.
	d := store.DeviceCode{FID: fid, Hash: sha256.Sum256([]byte(tokenOf(t, "vdc", fid))), UserCode: "BCDF-" + fid[:4],
		ClientID: "app", Interval: 5 * time.Second, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
	if err := s.CreateDeviceCode(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RedeemAuthCode(ctx, fid, c.Hash, "app", now, testEvent(t), store.Cutoffs{}); err != nil {
		t.Fatal(err)
	}
	first = tokenOf(t, "vrt", fid)
	f := store.RefreshFamily{FID: fid, ClientID: "app", Subject: "alice", SubjectType: "user", Scopes: []string{"read"},
		Grant: "authorization_code", CreatedAt: now, IdleTimeout: 24 * time.Hour, AbsoluteExpiresAt: now.Add(30 * 24 * time.Hour)}
	if err := s.CreateFamily(ctx, f, sha256.Sum256([]byte(first))); err != nil {
		t.Fatal(err)
	}
	live = first
	for range 2 {
		next := tokenOf(t, "vrt", fid)
		if _, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(live)), ClientID: "app",
			Successor: next, Now: time.Now(), Grace: 10 * time.Second, MaxGraceReplays: 3, ReuseEvent: testEvent(t)}); err != nil {
			t.Fatal(err)
		}
		live = next
	}
	return first, live
}

// scanKeys returns every key under the store's prefix.
func scanKeys(t testing.TB, s *Store) []string {
	t.Helper()
	keys, err := s.rdb.Keys(context.Background(), s.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestGrantKeysShareSlot checks that every key of one grant hashes to the
// slot of {fid}, so that its scripts are single-slot on Redis Cluster, and
// that no key holds a token in clear (MISSION §0.5).
func TestGrantKeysShareSlot(t *testing.T) {
	s, _ := newTestStore(t)
	fid := testFID(t)
	first, live := grantLifecycle(t, s, fid)

	want := slot("{" + fid + "}")
	seen := map[string]bool{}
	for _, key := range scanKeys(t, s) {
		if !strings.Contains(key, "{"+fid+"}") {
			continue
		}
		seen[strings.TrimPrefix(key, s.prefix+"{"+fid+"}:")] = true
		if got := slot(key); got != want {
			t.Errorf("key %s is in slot %d, want %d", key, got, want)
		}
	}
	for _, kind := range []string{"code", "fam", "sup", "succ", "dev"} {
		if !seen[kind] {
			t.Errorf("the lifecycle wrote no %s key (saw %v)", kind, seen)
		}
	}
	k := s.grant(fid)
	for _, key := range []string{k.code, k.fam, k.sup, k.succ, k.rev, k.dev, k.outbox} {
		if slot(key) != want {
			t.Errorf("key %s is not in the family's slot", key)
		}
	}

	// No token in clear anywhere.
	ctx := context.Background()
	for _, key := range scanKeys(t, s) {
		var vals []string
		switch typ := s.rdb.Type(ctx, key).Val(); typ {
		case "string":
			vals = []string{s.rdb.Get(ctx, key).Val()}
		case "hash":
			for f, v := range s.rdb.HGetAll(ctx, key).Val() {
				vals = append(vals, f, v)
			}
		case "set":
			vals = s.rdb.SMembers(ctx, key).Val()
		case "zset":
			vals = s.rdb.ZRange(ctx, key, 0, -1).Val()
		default:
			t.Fatalf("key %s of unexpected type %s", key, typ)
		}
		for _, v := range vals {
			for _, tok := range []string{first, live, strings.SplitN(live, ".", 2)[1]} {
				if strings.Contains(v, tok) {
					t.Errorf("key %s holds a refresh token in clear", key)
				}
			}
		}
	}
}

// TestEverythingExpires checks that every key the grant and revocation
// stores write carries a TTL once the outbox is drained, except the outbox
// index's version counter (one key per prefix).
func TestEverythingExpires(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	fid := testFID(t)
	grantLifecycle(t, s, fid)
	revoked := testFID(t)
	grantLifecycle(t, s, revoked)
	for _, r := range []store.Revocation{
		{Kind: store.RevokeToken, JTI: testFID(t), Expires: time.Now().Add(time.Minute), Retain: time.Minute},
		{Kind: store.RevokeFamily, FID: revoked, Retain: time.Minute},
		{Kind: store.RevokeSubject, SubjectType: "user", Subject: "alice", Cutoff: time.Now(), Retain: time.Minute},
		{Kind: store.RevokeClient, ClientID: "app", Cutoff: time.Now(), Retain: time.Minute},
	} {
		if err := s.Revoke(ctx, r, testEvent(t)); err != nil {
			t.Fatal(err)
		}
	}
	// Drain the outbox as the relay does: entries acked, then a pass that
	// finds the shards empty, closes them (they expire) and drops them
	// from the index.
	pending, err := s.PendingOutbox(ctx, time.Now().Add(time.Hour), 100)
	if err != nil || len(pending) != 4 {
		t.Fatalf("pending: %d entries, %v; want the 4 revocations'", len(pending), err)
	}
	for _, e := range pending {
		if err := s.AckOutbox(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	if rest, err := s.PendingOutbox(ctx, time.Now().Add(time.Hour), 100); err != nil || len(rest) != 0 {
		t.Fatalf("pending after acks: %d entries, %v", len(rest), err)
	}
	shards, seq := s.indexKeys()
	for _, key := range scanKeys(t, s) {
		if key == seq {
			continue
		}
		if key == shards {
			t.Errorf("the index still lists %v after the outbox was drained", s.rdb.ZRange(ctx, shards, 0, -1).Val())
			continue
		}
		if ttl := s.rdb.PTTL(ctx, key).Val(); ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", key, ttl)
		}
	}
}

// TestUnavailable checks that a Redis outage is store.ErrUnavailable, never a
// negative answer, and that the store works again once Redis is back.
func TestUnavailable(t *testing.T) {
	s, srv := newTestStore(t)
	ctx := context.Background()
	fid := testFID(t)
	tok := tokenOf(t, "vrt", fid)
	h := sha256.Sum256([]byte(tok))
	now := time.Now()
	fam := store.RefreshFamily{FID: fid, ClientID: "app", Subject: "alice", SubjectType: "user", CreatedAt: now,
		AbsoluteExpiresAt: now.Add(time.Hour)}
	// An entry the store queued, so that it knows its shard and its ack
	// needs Redis.
	queued := testEvent(t)
	if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: "queued", Expires: now, Retain: time.Minute}, queued); err != nil {
		t.Fatal(err)
	}
	ops := map[string]func() error{
		"CreateFamily": func() error { return s.CreateFamily(ctx, fam, h) },
		"RotateRefresh": func() error {
			_, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: h, ClientID: "app", Successor: tokenOf(t, "vrt", fid), Now: now, ReuseEvent: testEvent(t)})
			return err
		},
		"GetFamily":     func() error { _, err := s.GetFamily(ctx, fid); return err },
		"LookupRefresh": func() error { _, err := s.LookupRefresh(ctx, fid, h); return err },
		"RedeemAuthCode": func() error {
			_, err := s.RedeemAuthCode(ctx, fid, h, "app", now, testEvent(t), store.Cutoffs{})
			return err
		},
		"PollDevice": func() error {
			_, err := s.PollDevice(ctx, store.DevicePoll{FID: fid, Hash: h, ClientID: "app", Now: now, ReuseEvent: testEvent(t)})
			return err
		},
		"LookupUserCode": func() error { _, err := s.LookupUserCode(ctx, "BCDF-GHJK", now); return err },
		"Revoke": func() error {
			return s.Revoke(ctx, store.Revocation{Kind: store.RevokeFamily, FID: fid, Retain: time.Minute}, testEvent(t))
		},
		"DenyState": func() error {
			_, err := s.DenyState(ctx, store.DenyQuery{JTI: "j", FID: fid, SubjectType: "user", Subject: "alice", ClientID: "app"})
			return err
		},
		"PendingOutbox": func() error { _, err := s.PendingOutbox(ctx, now, 10); return err },
		"AckOutbox":     func() error { return s.AckOutbox(ctx, queued.ID) },
	}
	srv.Stop()
	for name, op := range ops {
		if err := op(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
	}
	srv.Start()
	// Persistence is off: the restarted Redis is empty (and has lost the
	// script cache, which Run reloads). The client's pool backs off after
	// failed dials; it must recover on its own within seconds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ops["CreateFamily"]()
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("CreateFamily after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := s.LookupRefresh(ctx, fid, h); err != nil {
		t.Fatalf("LookupRefresh after restart: %v", err)
	}
	if err := ops["RotateRefresh"](); err != nil {
		t.Fatalf("RotateRefresh after restart: %v", err)
	}
	if _, err := s.DenyState(ctx, store.DenyQuery{FID: fid}); err != nil {
		t.Fatalf("DenyState after restart: %v", err)
	}
}

// TestRefusesEviction checks that New refuses a Redis that may evict keys.
func TestRefusesEviction(t *testing.T) {
	s, srv := newTestStore(t)
	ctx := context.Background()
	if err := s.rdb.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	opt, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	if _, err := New(ctx, rdb, testenv.AEAD(t)); err == nil || !strings.Contains(err.Error(), "noeviction") {
		t.Fatalf("New on allkeys-lru: %v, want a refusal naming noeviction", err)
	}
	if err := s.rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, rdb, testenv.AEAD(t)); err != nil {
		t.Fatalf("New on noeviction: %v", err)
	}
}

// TestSuccessorSealedUnderFID checks that a sealed successor opens only with
// its own fid and key.
func TestSuccessorSealedUnderFID(t *testing.T) {
	s, _ := newTestStore(t)
	sealed, err := s.seal("fid-a", "vrt_secret")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.open("fid-a", sealed); err != nil || got != "vrt_secret" {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := s.open("fid-b", sealed); err == nil {
		t.Fatal("a successor opened under another fid")
	}
	other, _ := newTestStore(t)
	if _, err := other.open("fid-a", sealed); err == nil {
		t.Fatal("a successor opened under another key")
	}
	again, _ := s.seal("fid-a", "vrt_secret")
	if string(again) == string(sealed) {
		t.Fatal("two seals of one successor are equal: the nonce is not random")
	}
}

// TestMemoryPerFamily measures what a live family costs in Redis (quoted in
// docs/redis.md): MEMORY USAGE of its keys after creation and after
// rotations.
func TestMemoryPerFamily(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	usage := func(fid string) (total int64, parts map[string]int64) {
		parts = map[string]int64{}
		k := s.grant(fid)
		for name, key := range map[string]string{"fam": k.fam, "sup": k.sup, "succ": k.succ} {
			n, err := s.rdb.MemoryUsage(ctx, key).Result()
			if errors.Is(err, goredis.Nil) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			parts[name] = n
			total += n
		}
		return total, parts
	}
	now := time.Now()
	fid := testFID(t)
	tok := tokenOf(t, "vrt", fid)
	f := store.RefreshFamily{FID: fid, ClientID: "my-mobile-app", Subject: "248289761001", SubjectType: "user",
		Scopes: []string{"openid", "profile", "orders:read", "orders:write"}, Resource: "https://api.example.com",
		Grant: "authorization_code", AuthTime: now, CreatedAt: now, IdleTimeout: 14 * 24 * time.Hour,
		AbsoluteExpiresAt: now.Add(90 * 24 * time.Hour)}
	if err := s.CreateFamily(ctx, f, sha256.Sum256([]byte(tok))); err != nil {
		t.Fatal(err)
	}
	fresh, parts := usage(fid)
	t.Logf("fresh family: %d bytes %v", fresh, parts)
	if fresh > 1024 {
		t.Errorf("a fresh family takes %d bytes, more than 1 KiB", fresh)
	}
	rotate := func(grace time.Duration) {
		next := tokenOf(t, "vrt", fid)
		if _, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(tok)), ClientID: f.ClientID,
			Successor: next, Now: time.Now(), Grace: grace, MaxGraceReplays: 3, ReuseEvent: testEvent(t)}); err != nil {
			t.Fatal(err)
		}
		tok = next
	}
	rotate(10 * time.Second)
	one, parts := usage(fid)
	t.Logf("after 1 rotation (grace window open): %d bytes %v", one, parts)
	for range 9 {
		rotate(0)
	}
	ten, parts := usage(fid)
	t.Logf("after 10 rotations (grace over): %d bytes %v", ten, parts)
	for range 90 {
		rotate(0)
	}
	hundred, parts := usage(fid)
	t.Logf("after 100 rotations: %d bytes %v; per rotation %.0f bytes", hundred, parts, float64(hundred-ten)/90)
	for range 900 {
		rotate(0)
	}
	thousand, parts := usage(fid)
	t.Logf("after 1000 rotations (%d superseded hashes kept): %d bytes %v", keepSuperseded, thousand, parts)
	if thousand > 8192 {
		t.Errorf("a family takes %d bytes after 1000 rotations, more than 8 KiB", thousand)
	}

	// The short-lived records of one grant, for comparison.
	other := testFID(t)
	grantLifecycle(t, s, other)
	for name, key := range map[string]string{"code": s.grant(other).code, "dev": s.grant(other).dev, "ucode": s.userCodeKey("BCDF-" + other[:4])} {
		n, err := s.rdb.MemoryUsage(ctx, key).Result()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s record: %d bytes", name, n)
	}
}

// TestSupersededKept checks the bound on superseded hashes: the latest
// keepSuperseded are recognised as reuse; older ones are only unknown.
func TestSupersededKept(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	now := time.Now()
	fid := testFID(t)
	toks := []string{tokenOf(t, "vrt", fid)}
	f := store.RefreshFamily{FID: fid, ClientID: "app", Subject: "alice", SubjectType: "user", CreatedAt: now,
		AbsoluteExpiresAt: now.Add(time.Hour)}
	if err := s.CreateFamily(ctx, f, sha256.Sum256([]byte(toks[0]))); err != nil {
		t.Fatal(err)
	}
	rotate := func(presented string) error {
		next := tokenOf(t, "vrt", fid)
		_, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(presented)), ClientID: "app",
			Successor: next, Now: time.Now(), ReuseEvent: testEvent(t)})
		if err == nil {
			toks = append(toks, next)
		}
		return err
	}
	for range keepSuperseded + 2 {
		if err := rotate(toks[len(toks)-1]); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.rdb.StrLen(ctx, s.grant(fid).sup).Val(); n != keepSuperseded*sha256.Size {
		t.Fatalf("the ring of superseded hashes holds %d bytes, want %d hashes", n, keepSuperseded)
	}
	if err := rotate(toks[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replay of a token superseded %d rotations ago: %v, want ErrNotFound", len(toks)-1, err)
	}
	if err := rotate(toks[len(toks)-keepSuperseded]); !errors.Is(err, store.ErrReused) {
		t.Fatalf("replay of a token superseded %d rotations ago: %v, want ErrReused", keepSuperseded-1, err)
	}
}
