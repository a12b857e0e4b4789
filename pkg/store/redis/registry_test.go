package redis

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/testenv"
)

// TestRegistryKeySchema checks the keys docs/redis.md describes: each
// registry record is in its index's Redis Cluster slot whatever its id (slot
// is in grants_test.go), the index follows create and delete, and sessions
// and consents carry TTLs.
func TestRegistryKeySchema(t *testing.T) {
	s, srv := newTestStore(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)

	type record struct {
		name, id string
		rec, idx string
		create   func() error
		remove   func() error
	}
	for _, r := range []record{
		{
			name: "client", id: "tenant:{a}:svc}{",
			rec: srv.Key("{clients}:tenant:{a}:svc}{"), idx: srv.Key("{clients}"),
			create: func() error {
				return s.CreateClient(ctx, store.Client{ID: "tenant:{a}:svc}{", Type: store.Public})
			},
			remove: func() error { return s.DeleteClient(ctx, "tenant:{a}:svc}{") },
		},
		{
			name: "resource server", id: "urn:x:{y}",
			rec: srv.Key("{resources}:urn:x:{y}"), idx: srv.Key("{resources}"),
			create: func() error {
				return s.CreateResourceServer(ctx, store.ResourceServer{ID: "urn:x:{y}"})
			},
			remove: func() error { return s.DeleteResourceServer(ctx, "urn:x:{y}") },
		},
		{
			name: "signing key", id: "k1",
			rec: srv.Key("{keys}:k1"), idx: srv.Key("{keys}"),
			create: func() error {
				return s.CreateKey(ctx, store.SigningKey{KID: "k1", Alg: "ES256", State: store.KeyPublished, CreatedAt: now})
			},
			remove: func() error { return s.DeleteKey(ctx, "k1") },
		},
	} {
		t.Run(r.name, func(t *testing.T) {
			if slot(r.rec) != slot(r.idx) {
				t.Fatalf("record %q and index %q are in different slots", r.rec, r.idx)
			}
			if err := r.create(); err != nil {
				t.Fatalf("create: %v", err)
			}
			data, err := s.rdb.Get(ctx, r.rec).Bytes()
			if err != nil {
				t.Fatalf("read %s: %v", r.rec, err)
			}
			// updateRecord reads "version" from the JSON.
			var v struct{ Version int64 }
			if err := json.Unmarshal(data, &v); err != nil || v.Version != 1 {
				t.Fatalf("%s holds %s, want JSON with version 1", r.rec, data)
			}
			if _, err := s.rdb.ZScore(ctx, r.idx, r.id).Result(); err != nil {
				t.Fatalf("%q not in index %s: %v", r.id, r.idx, err)
			}
			if err := r.remove(); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if n, err := s.rdb.Exists(ctx, r.rec, r.idx).Result(); err != nil || n != 0 {
				t.Fatalf("after delete, %d of record and index remain (%v)", n, err)
			}
		})
	}

	t.Run("signing key index score", func(t *testing.T) {
		if err := s.CreateKey(ctx, store.SigningKey{KID: "k2", Alg: "ES256", State: store.KeyPublished, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		score, err := s.rdb.ZScore(ctx, srv.Key("{keys}"), "k2").Result()
		if err != nil || int64(score) != now.UnixMilli() {
			t.Fatalf("k2 scored %v (%v), want CreatedAt %d", score, err, now.UnixMilli())
		}
	})

	t.Run("session", func(t *testing.T) {
		h := store.Hash{0xde, 0xad, 0xbe, 0xef}
		exp := time.Now().Add(time.Hour)
		if err := s.CreateSession(ctx, store.Session{Hash: h, Subject: "alice", CreatedAt: now, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		key := srv.Key("sess:deadbeef" + strings.Repeat("00", 28))
		ttl, err := s.rdb.PTTL(ctx, key).Result()
		if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("%s has TTL %v (%v), want about an hour", key, ttl, err)
		}
	})

	t.Run("consent", func(t *testing.T) {
		c := store.Consent{Subject: "{a}:b c", ClientID: "app:1", Resource: "https://api.example.com/", CreatedAt: now}
		if err := s.PutConsent(ctx, c, time.Hour); err != nil {
			t.Fatal(err)
		}
		key := srv.Key("consent:%7Ba%7D%3Ab+c:app%3A1:https%3A%2F%2Fapi.example.com%2F")
		ttl, err := s.rdb.PTTL(ctx, key).Result()
		if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("%s has TTL %v (%v), want about an hour", key, ttl, err)
		}
		if strings.ContainsAny(strings.TrimPrefix(key, srv.Prefix), "{}") {
			t.Fatalf("consent key %q has a hash tag", key)
		}
	})
}

// TestRegistryCorruptCutoff checks that a cut-off Valet cannot read makes
// sessions and consents unavailable, never valid.
func TestRegistryCorruptCutoff(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := t.Context()
	now := time.Now().UTC()
	h := store.Hash{1}
	if err := s.CreateSession(ctx, store.Session{Hash: h, Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutConsent(ctx, store.Consent{Subject: "bob", ClientID: "app", CreatedAt: now}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{s.subjectCutKey("user", "alice"), s.clientCutKey("app")} {
		if err := s.rdb.Set(ctx, k, "not-a-time", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GetSession(ctx, h, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("session under a corrupt cut-off: got %v, want %v", err, store.ErrUnavailable)
	}
	if _, err := s.GetConsent(ctx, "bob", "app", "", 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("consent under a corrupt cut-off: got %v, want %v", err, store.ErrUnavailable)
	}
}

// TestRegistryOutage checks that every registry operation reports
// store.ErrUnavailable, not a negative answer, while Redis is down.
func TestRegistryOutage(t *testing.T) {
	t.Setenv("REDIS_URL", "") // a private server, which the test may stop
	srv := testenv.Redis(t)
	opt, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries, opt.DialerRetries = -1, 1 // fail at once rather than back off
	s, err := New(t.Context(), goredis.NewClient(opt), testenv.AEAD(t), WithPrefix(srv.Prefix))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Now().UTC()
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"CreateClient", func() error { return s.CreateClient(ctx, store.Client{ID: "a", Type: store.Public}) }},
		{"GetClient", func() error { _, err := s.GetClient(ctx, "a"); return err }},
		{"UpdateClient", func() error {
			_, err := s.UpdateClient(ctx, store.Client{ID: "a", Type: store.Public, Version: 1})
			return err
		}},
		{"DeleteClient", func() error { return s.DeleteClient(ctx, "a") }},
		{"ListClients", func() error { _, err := s.ListClients(ctx); return err }},
		{"GetResourceServer", func() error { _, err := s.GetResourceServer(ctx, "urn:a"); return err }},
		{"ListKeys", func() error { _, err := s.ListKeys(ctx); return err }},
		{"CreateSession", func() error {
			return s.CreateSession(ctx, store.Session{Subject: "a", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		}},
		{"GetSession", func() error { _, err := s.GetSession(ctx, store.Hash{}, 0); return err }},
		{"DeleteSession", func() error { return s.DeleteSession(ctx, store.Hash{}) }},
		{"PutConsent", func() error {
			return s.PutConsent(ctx, store.Consent{Subject: "a", ClientID: "b", CreatedAt: now}, time.Hour)
		}},
		{"GetConsent", func() error { _, err := s.GetConsent(ctx, "a", "b", "", 0); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("got %v, want %v", err, store.ErrUnavailable)
			}
		})
	}
}
