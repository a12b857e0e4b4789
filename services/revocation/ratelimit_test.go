package revocation_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit/clientlimittest"
	"github.com/valetauth/valet/pkg/servicetest"
)

// The per-replica request limits at /revoke (pkg/ratelimit/clientlimit,
// docs/security.md "Request rate limits"), through the real service.

// revokeFrom posts a garbage token (200, nothing done, when authenticated)
// to /revoke from address xff (none: the peer) as user with pass (Basic),
// or as a public client by client_id when pass is empty.
func (h *harness) revokeFrom(xff, user, pass string) response {
	h.t.Helper()
	v := url.Values{"token": {"garbage"}}
	authz := servicetest.ClientAuth(v, user, pass)
	return servicetest.PostForm(h.t, h.revoke, v.Encode(), "X-Forwarded-For", xff, "Authorization", authz)
}

// TestRevokeClientAuthFailureLimit: wrong secrets from one address empty its
// bucket; then even the right secret from it is 429, unauthenticated;
// another address is unaffected; after the refill the right secret works.
func TestRevokeClientAuthFailureLimit(t *testing.T) {
	clk := clientlimittest.NewClock()
	h := newHarnessWith(t, servicetest.ProxiedLimits(t, clk, func(l *config.Limits) { l.ClientAuthFailuresPerSecond, l.ClientAuthFailuresBurst = 2, 4 }))
	const guesser, neighbour = "198.51.100.20", "198.51.100.21"
	right := h.Secrets[clientA]
	for range 3 {
		servicetest.WantStatus(t, "wrong secret", h.revokeFrom(guesser, clientA, "wrong"), 401, "invalid_client")
	}
	servicetest.WantStatus(t, "unknown client", h.revokeFrom(guesser, "nobody", ""), 401, "invalid_client")
	servicetest.Want429(t, "right secret from the guesser", h.revokeFrom(guesser, clientA, right), "1", clientlimittest.AddrLimited)
	servicetest.WantStatus(t, "another address", h.revokeFrom(neighbour, clientA, right), 200, "")
	servicetest.WantStatus(t, "the proxy itself", h.revokeFrom("", clientA, right), 200, "")
	clk.Advance(500 * time.Millisecond) // one token at 2/s
	servicetest.WantStatus(t, "after the refill", h.revokeFrom(guesser, clientA, right), 200, "")
	if n := clientlimittest.Limited(t, h.reg, "revoke", clientlimit.LimitAuthFailures); n != 1 {
		t.Fatalf("valet_rate_limited_total = %v, want 1", n)
	}
}

// TestRevokeClientRequestLimit: the (burst+1)-th request of a client is 429
// naming the client limit; other clients, and public clients, are not
// limited.
func TestRevokeClientRequestLimit(t *testing.T) {
	clk := clientlimittest.NewClock()
	h := newHarnessWith(t, servicetest.ProxiedLimits(t, clk, func(l *config.Limits) { l.ClientRequestsPerSecond, l.ClientRequestsBurst = 1, 3 }))
	for range 3 {
		servicetest.WantStatus(t, "within the burst", h.revokeFrom("", clientA, h.Secrets[clientA]), 200, "")
	}
	servicetest.Want429(t, "burst+1", h.revokeFrom("", clientA, h.Secrets[clientA]), "1", clientlimittest.ClientLimited)
	servicetest.WantStatus(t, "another client", h.revokeFrom("", clientB, h.Secrets[clientB]), 200, "")
	for range 5 {
		servicetest.WantStatus(t, "public client", h.revokeFrom("", pubClient, ""), 200, "")
	}
	clk.Advance(time.Second)
	servicetest.WantStatus(t, "after a second", h.revokeFrom("", clientA, h.Secrets[clientA]), 200, "")
	if n := clientlimittest.Limited(t, h.reg, "revoke", clientlimit.LimitClientRequests); n != 1 {
		t.Fatalf("valet_rate_limited_total = %v, want 1", n)
	}
}

// TestRevokeDefaultLimitsNeverLimitCorrectClient: with the defaults, a
// correct client revoking concurrently past every burst is never refused.
func TestRevokeDefaultLimitsNeverLimitCorrectClient(t *testing.T) {
	h := newHarness(t)
	for range 5 {
		servicetest.WantStatus(t, "a neighbour's wrong secret", h.revokeFrom("", clientB, "wrong"), 401, "invalid_client")
	}
	clientlimittest.AllOK(t, h.revoke, "token=garbage", servicetest.Basic(clientA, h.Secrets[clientA]), 4, 50)
	if n := clientlimittest.Limited(t, h.reg, "revoke", clientlimit.LimitAuthFailures) + clientlimittest.Limited(t, h.reg, "revoke", clientlimit.LimitClientRequests); n != 0 {
		t.Fatalf("valet_rate_limited_total = %v, want 0", n)
	}
}
