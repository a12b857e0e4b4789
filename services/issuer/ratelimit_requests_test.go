package issuer_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit/clientlimittest"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/services/issuer"
)

// The per-replica request limits at /token and /device_authorization
// (pkg/ratelimit/clientlimit, docs/security.md "Request rate limits"),
// through the real handler on the harness's Redis and JetStream.

// defaultClientLimits are the limits cmd/issuer builds from the default
// configuration; the base harness runs with them, so that every test of
// the package shows a correct client is never limited by the defaults.
func defaultClientLimits(t testing.TB) clientlimit.Limits {
	t.Helper()
	l, err := clientlimit.FromConfig(config.Default().Limits)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// limitedIssuer starts one more issuer (user grants and device flow on) on
// a's store, keys and cache, behind a trusted proxy at 127.0.0.1 (so that
// X-Forwarded-For names the client address), with limits built from lim on
// clk; it returns its URL and metrics registry.
func limitedIssuer(t *testing.T, a *authHarness, lim config.Limits, clk *clientlimittest.Clock) (string, *prometheus.Registry) {
	t.Helper()
	lim.TrustedProxies = "127.0.0.1"
	limits := clientlimittest.Limits(t, lim, clk)
	saved := *a.cfg
	a.cfg.Limits = lim
	reg := prometheus.NewRegistry()
	_, u := startDeviceIssuer(t, a.harness, reg, func(d *issuer.Deps) { d.ClientLimits = limits })
	*a.cfg = saved
	return u, reg
}

var ccForm = url.Values{"grant_type": {"client_credentials"}}

// TestTokenClientAuthFailureLimit: wrong secrets from one address empty its
// bucket; the next request from it, even with the right secret, is 429
// before authentication; another address is not affected; the failures
// also close /device_authorization to that address (one limiter per
// replica); once the bucket refills, the right secret works.
func TestTokenClientAuthFailureLimit(t *testing.T) {
	a := newDeviceHarness(t)
	clk := clientlimittest.NewClock()
	lim := a.cfg.Limits
	lim.ClientAuthFailuresPerSecond, lim.ClientAuthFailuresBurst = 1, 5
	u, reg := limitedIssuer(t, a, lim, clk)
	const guesser, neighbour = "203.0.113.66", "203.0.113.67"

	for i := range 5 {
		servicetest.WantStatus(t, "wrong secret", a.postFrom(u, "/token", guesser, ccForm, clientA, "wrong-"+string(rune('a'+i))), 401, "invalid_client")
	}
	servicetest.Want429(t, "right secret from the guesser", a.postFrom(u, "/token", guesser, ccForm, clientA, a.secretA), "1", clientlimittest.AddrLimited)
	servicetest.Want429(t, "device authorization from the guesser", a.postFrom(u, "/device_authorization", guesser,
		url.Values{"client_id": {tvID}, "scope": {"read"}}, "", ""), "1", clientlimittest.AddrLimited)
	servicetest.WantStatus(t, "another address", a.postFrom(u, "/token", neighbour, ccForm, clientA, a.secretA), 200, "")
	servicetest.WantStatus(t, "the proxy itself", a.postFrom(u, "/token", "", ccForm, clientA, a.secretA), 200, "")

	clk.Advance(999 * time.Millisecond)
	servicetest.Want429(t, "1ms before the refill", a.postFrom(u, "/token", guesser, ccForm, clientA, a.secretA), "1", clientlimittest.AddrLimited)
	clk.Advance(time.Millisecond)
	servicetest.WantStatus(t, "after the refill", a.postFrom(u, "/token", guesser, ccForm, clientA, a.secretA), 200, "")
	// Successes are not counted: the one token earned is still there for a
	// wrong secret, which then spends it.
	servicetest.WantStatus(t, "one more wrong secret", a.postFrom(u, "/token", guesser, ccForm, clientA, "nope"), 401, "invalid_client")
	servicetest.Want429(t, "spent again", a.postFrom(u, "/token", guesser, ccForm, clientA, a.secretA), "1", clientlimittest.AddrLimited)

	if n := clientlimittest.Limited(t, reg, "token", clientlimit.LimitAuthFailures); n != 3 {
		t.Fatalf("valet_rate_limited_total{endpoint=token} = %v, want 3", n)
	}
	if n := clientlimittest.Limited(t, reg, "device_authorization", clientlimit.LimitAuthFailures); n != 1 {
		t.Fatalf("valet_rate_limited_total{endpoint=device_authorization} = %v, want 1", n)
	}
}

// TestDeviceAuthorizationClientAuthFailureLimit: unknown clients at
// /device_authorization spend the address's failures as wrong secrets do
// at /token.
func TestDeviceAuthorizationClientAuthFailureLimit(t *testing.T) {
	a := newDeviceHarness(t)
	clk := clientlimittest.NewClock()
	lim := a.cfg.Limits
	lim.ClientAuthFailuresPerSecond, lim.ClientAuthFailuresBurst = 1, 3
	u, _ := limitedIssuer(t, a, lim, clk)
	const guesser = "2001:db8:aa:bb::1"
	start := url.Values{"client_id": {tvID}, "scope": {"read"}}
	for range 3 {
		servicetest.WantStatus(t, "unknown client", a.postFrom(u, "/device_authorization", guesser,
			url.Values{"client_id": {"no-such-tv"}}, "", ""), 401, "invalid_client")
	}
	// The same /64 is the same address.
	servicetest.Want429(t, "same /64", a.postFrom(u, "/device_authorization", "2001:db8:aa:bb::ffff", start, "", ""), "1", clientlimittest.AddrLimited)
	servicetest.Want429(t, "token from the same /64", a.postFrom(u, "/token", "2001:db8:aa:bb::2", ccForm, clientA, a.secretA), "1", clientlimittest.AddrLimited)
	servicetest.WantStatus(t, "another /64", a.postFrom(u, "/device_authorization", "2001:db8:aa:bc::1", start, "", ""), 200, "")
	clk.Advance(time.Second)
	servicetest.WantStatus(t, "after the refill", a.postFrom(u, "/device_authorization", guesser, start, "", ""), 200, "")
}

// TestTokenClientRequestLimit: with a per-client limit, the (burst+1)-th
// request of a burst is 429 and names the client limit; another client
// and public clients are not affected; a token is earned back at the rate.
func TestTokenClientRequestLimit(t *testing.T) {
	a := newDeviceHarness(t)
	secretB := a.CreateClient(store.Client{ID: "svc-b", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{apiID: {"read"}}, DefaultResource: apiID})
	a.eventually("svc-b cached", func() bool { _, err := a.cache.Client(t.Context(), "svc-b"); return err == nil })
	clk := clientlimittest.NewClock()
	lim := a.cfg.Limits
	lim.ClientRequestsPerSecond, lim.ClientRequestsBurst = 2, 4
	u, reg := limitedIssuer(t, a, lim, clk)

	for i := range 4 {
		servicetest.WantStatus(t, "within the burst "+string(rune('1'+i)), a.postFrom(u, "/token", "", ccForm, clientA, a.secretA), 200, "")
	}
	servicetest.Want429(t, "burst+1", a.postFrom(u, "/token", "", ccForm, clientA, a.secretA), "1", clientlimittest.ClientLimited)
	servicetest.WantStatus(t, "another client", a.postFrom(u, "/token", "", ccForm, "svc-b", secretB), 200, "")
	for range 6 { // public clients have no per-client budget
		servicetest.WantStatus(t, "public client", a.postFrom(u, "/device_authorization", "", url.Values{"client_id": {tvID}, "scope": {"read"}}, "", ""), 200, "")
	}
	// A refused client is not a failed authentication: the address is fine.
	for range 3 {
		servicetest.Want429(t, "still limited", a.postFrom(u, "/token", "", ccForm, clientA, a.secretA), "1", clientlimittest.ClientLimited)
	}
	servicetest.WantStatus(t, "another client, same address", a.postFrom(u, "/token", "", ccForm, "svc-b", secretB), 200, "")
	clk.Advance(500 * time.Millisecond)
	servicetest.WantStatus(t, "a token earned", a.postFrom(u, "/token", "", ccForm, clientA, a.secretA), 200, "")
	servicetest.Want429(t, "and spent", a.postFrom(u, "/token", "", ccForm, clientA, a.secretA), "1", clientlimittest.ClientLimited)
	if n := clientlimittest.Limited(t, reg, "token", clientlimit.LimitClientRequests); n != 5 {
		t.Fatalf("valet_rate_limited_total{limit=client_requests} = %v, want 5", n)
	}
	if n := clientlimittest.Limited(t, reg, "token", clientlimit.LimitAuthFailures); n != 0 {
		t.Fatalf("valet_rate_limited_total{limit=client_auth_failures} = %v, want 0", n)
	}
}

// TestTokenDefaultLimitsNeverLimitCorrectClient: with the default limits (as
// cmd/issuer builds them), a correct client issuing concurrently far past
// the failure burst is never refused, even after a few failures of its
// neighbours on the same address.
func TestTokenDefaultLimitsNeverLimitCorrectClient(t *testing.T) {
	h := newHarness(t) // the base harness runs with defaultClientLimits
	for range 10 {
		r := h.post(ccForm, clientA, "wrong")
		servicetest.WantStatus(t, "a neighbour's wrong secret", r, 401, "invalid_client")
	}
	clientlimittest.AllOK(t, h.url+"/token", ccForm.Encode(), servicetest.Basic(clientA, h.secretA), 8, 40)
	if n := servicetest.Counter(h.t, h.reg, "valet_rate_limited_total"); n != 0 {
		t.Fatalf("valet_rate_limited_total = %v, want 0", n)
	}
}
