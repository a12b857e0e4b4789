package testenv

import (
	"strings"
	"testing"
)

// TestRedisCluster checks that the harness's cluster is one: every node
// serves, all slots are assigned, and a node redirects a key it does not
// own.
func TestRedisCluster(t *testing.T) {
	c := RedisCluster(t)
	if len(c.Addrs) != clusterNodes {
		t.Fatalf("%d nodes, want %d", len(c.Addrs), clusterNodes)
	}
	moved := 0
	for _, addr := range c.Addrs {
		info, err := command(addr, "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
			t.Fatalf("%s: %v %s", addr, err, info)
		}
		// "{a}", "{b}" and "{c}" hash to slots 15495, 3300 and 7365: the
		// three nodes own one each, so every node redirects two of them.
		for _, key := range []string{c.Prefix + "{a}", c.Prefix + "{b}", c.Prefix + "{c}"} {
			if _, err := command(addr, "SET", key, "1"); err != nil && strings.Contains(err.Error(), "MOVED") {
				moved++
			}
		}
	}
	if moved != 2*clusterNodes {
		t.Fatalf("%d MOVED redirections, want %d: the slots are not spread over the nodes", moved, 2*clusterNodes)
	}
}
