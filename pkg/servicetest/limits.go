package servicetest

import (
	"testing"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit/clientlimittest"
)

// ProxiedLimits returns a harness's hook for the request limits of a
// service behind a trusted proxy at 127.0.0.1, so that X-Forwarded-For
// names each test client's address: it sets the proxy, lets set change
// the limits, and builds them on clk, whose refills the test times.
func ProxiedLimits(t testing.TB, clk *clientlimittest.Clock, set func(*config.Limits)) func(*config.Config) clientlimit.Limits {
	return func(cfg *config.Config) clientlimit.Limits {
		cfg.Limits.TrustedProxies = "127.0.0.1"
		set(&cfg.Limits)
		return clientlimittest.Limits(t, cfg.Limits, clk)
	}
}

// Want429 fails t unless r is the 429 of a request limit with Retry-After
// retryAfter and the description desc, as the wire contract states it.
func Want429(t testing.TB, what string, r Response, retryAfter, desc string) {
	t.Helper()
	clientlimittest.Want429(t, what, r.Status, r.Header, r.Raw, retryAfter, desc)
}
