package redis

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/conformance"
	"github.com/valetauth/valet/pkg/testenv"
)

// TestCluster runs the conformance suite, contention cases included, and the
// relay's drain against a real three-node Redis Cluster (testenv.RedisCluster),
// through go-redis's cluster client. Every subtest gets its own key prefix
// on the one cluster. Redis Cluster refuses a script whose keys span slots
// (CROSSSLOT), and the hash tags spread grants, deny state and the outbox
// index over the three nodes.
func TestCluster(t *testing.T) {
	c := testenv.RedisCluster(t)
	newStore := func(t *testing.T) store.Store {
		rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
		s, err := New(context.Background(), rdb, testenv.AEAD(t), WithPrefix(c.Prefix+testFID(t)[:8]+":"))
		if err != nil {
			t.Fatalf("New on a cluster client: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	conformance.RunTests(t, newStore)
	conformance.RunConcurrencyTests(t, newStore)
	t.Run("RelayDrain", func(t *testing.T) { relayDrain(t, newStore(t)) })
	t.Run("KeysSpreadOverNodes", func(t *testing.T) {
		s := newStore(t).(*Store)
		grantLifecycle(t, s, testFID(t))
		for i := range 8 {
			if err := s.Revoke(context.Background(), store.Revocation{Kind: store.RevokeToken, JTI: testFID(t),
				Expires: time.Now().Add(time.Minute), Retain: time.Minute}, testEvent(t)); err != nil {
				t.Fatalf("revoke %d: %v", i, err)
			}
		}
		rdb := s.rdb.(*goredis.ClusterClient)
		var nodes atomic.Int32 // ForEachMaster calls back concurrently
		if err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
			keys, err := m.Keys(ctx, s.prefix+"*").Result()
			if len(keys) > 0 {
				nodes.Add(1)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if nodes := nodes.Load(); nodes < 2 {
			t.Fatalf("the store's keys live on %d node(s): the test proves nothing about cross-slot safety", nodes)
		}
	})
}
