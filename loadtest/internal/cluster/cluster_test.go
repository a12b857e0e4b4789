package cluster_test

import (
	"context"
	"testing"

	"github.com/valetauth/valet/loadtest/internal/cluster"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/pkg/users"
)

// TestStartTwiceOnOneRedis: a second harness on the same Redis and prefix
// (what a rerun against REDIS_URL does) replaces the fixtures with new
// secrets and a new password instead of failing.
func TestStartTwiceOnOneRedis(t *testing.T) {
	r := testenv.Redis(t)
	ctx := context.Background()
	var secrets []cluster.Creds
	for range 2 {
		c, err := cluster.Start(ctx, cluster.Options{RedisURL: r.URL, KeyPrefix: r.Prefix,
			UserParams: users.Params{Memory: 64, Time: 1, Threads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, c.Creds)
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	a, b := secrets[0], secrets[1]
	if a.WebClientSecret == b.WebClientSecret || a.ClientSecret == b.ClientSecret || a.Password == b.Password {
		t.Error("the second start reused the first one's secrets")
	}
	if b.TokenURL == "" || b.AuthorizeURL == "" || b.Issuer == "" {
		t.Errorf("endpoints missing: %+v", b)
	}
}
