package revocation_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit/clientlimittest"
)

// The per-replica request limits at /revoke (pkg/ratelimit/clientlimit,
// docs/security.md "Request rate limits"), through the real service.

// limitedHarness is the harness with /revoke behind a trusted proxy at
// 127.0.0.1 (X-Forwarded-For names the client) and limits from set on clk.
func limitedHarness(t *testing.T, clk *clientlimittest.Clock, set func(*config.Limits)) *harness {
	t.Helper()
	return newHarnessWith(t, func(cfg *config.Config) clientlimit.Limits {
		cfg.Limits.TrustedProxies = "127.0.0.1"
		set(&cfg.Limits)
		return clientlimittest.Limits(t, cfg.Limits, clk)
	})
}

// revokeFrom posts a garbage token (200, nothing done, when authenticated)
// to /revoke from address xff (none: the peer) as user with pass (Basic),
// or as a public client by client_id when pass is empty.
func (h *harness) revokeFrom(xff, user, pass string) response {
	h.t.Helper()
	v := url.Values{"token": {"garbage"}}
	if pass == "" {
		v.Set("client_id", user)
	}
	req, err := http.NewRequest(http.MethodPost, h.revoke, strings.NewReader(v.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	if pass != "" {
		req.Header.Set("Authorization", basic(user, pass))
	}
	return do(h.t, req)
}

func want429(t *testing.T, what string, r response, retryAfter, desc string) {
	t.Helper()
	clientlimittest.Want429(t, what, r.Status, r.Header, r.Raw, retryAfter, desc)
}

func wantStatus(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.Status != status || r.code() != code {
		t.Fatalf("%s: %d %q, want %d %q: %s", what, r.Status, r.code(), status, code, r.Raw)
	}
}

// TestRevokeClientAuthFailureLimit: wrong secrets from one address empty its
// bucket; then even the right secret from it is 429, unauthenticated;
// another address is unaffected; after the refill the right secret works.
func TestRevokeClientAuthFailureLimit(t *testing.T) {
	clk := clientlimittest.NewClock()
	h := limitedHarness(t, clk, func(l *config.Limits) { l.ClientAuthFailuresPerSecond, l.ClientAuthFailuresBurst = 2, 4 })
	const guesser, neighbour = "198.51.100.20", "198.51.100.21"
	right := h.secrets[clientA]
	for range 3 {
		wantStatus(t, "wrong secret", h.revokeFrom(guesser, clientA, "wrong"), 401, "invalid_client")
	}
	wantStatus(t, "unknown client", h.revokeFrom(guesser, "nobody", ""), 401, "invalid_client")
	want429(t, "right secret from the guesser", h.revokeFrom(guesser, clientA, right), "1", clientlimittest.AddrLimited)
	wantStatus(t, "another address", h.revokeFrom(neighbour, clientA, right), 200, "")
	wantStatus(t, "the proxy itself", h.revokeFrom("", clientA, right), 200, "")
	clk.Advance(500 * time.Millisecond) // one token at 2/s
	wantStatus(t, "after the refill", h.revokeFrom(guesser, clientA, right), 200, "")
	if n := clientlimittest.Limited(t, h.reg, "revoke", clientlimit.LimitAuthFailures); n != 1 {
		t.Fatalf("valet_rate_limited_total = %v, want 1", n)
	}
}

// TestRevokeClientRequestLimit: the (burst+1)-th request of a client is 429
// naming the client limit; other clients, and public clients, are not
// limited.
func TestRevokeClientRequestLimit(t *testing.T) {
	clk := clientlimittest.NewClock()
	h := limitedHarness(t, clk, func(l *config.Limits) { l.ClientRequestsPerSecond, l.ClientRequestsBurst = 1, 3 })
	for range 3 {
		wantStatus(t, "within the burst", h.revokeFrom("", clientA, h.secrets[clientA]), 200, "")
	}
	want429(t, "burst+1", h.revokeFrom("", clientA, h.secrets[clientA]), "1", clientlimittest.ClientLimited)
	wantStatus(t, "another client", h.revokeFrom("", clientB, h.secrets[clientB]), 200, "")
	for range 5 {
		wantStatus(t, "public client", h.revokeFrom("", pubClient, ""), 200, "")
	}
	clk.Advance(time.Second)
	wantStatus(t, "after a second", h.revokeFrom("", clientA, h.secrets[clientA]), 200, "")
	if n := clientlimittest.Limited(t, h.reg, "revoke", clientlimit.LimitClientRequests); n != 1 {
		t.Fatalf("valet_rate_limited_total = %v, want 1", n)
	}
}

// TestRevokeDefaultLimitsNeverLimitCorrectClient: with the defaults, a
// correct client revoking concurrently past every burst is never refused.
func TestRevokeDefaultLimitsNeverLimitCorrectClient(t *testing.T) {
	h := newHarness(t)
	for range 5 {
		wantStatus(t, "a neighbour's wrong secret", h.revokeFrom("", clientB, "wrong"), 401, "invalid_client")
	}
	clientlimittest.AllOK(t, h.revoke, "token=garbage", basic(clientA, h.secrets[clientA]), 4, 50)
	if n := clientlimittest.Limited(t, h.reg, "revoke", clientlimit.LimitAuthFailures) + clientlimittest.Limited(t, h.reg, "revoke", clientlimit.LimitClientRequests); n != 0 {
		t.Fatalf("valet_rate_limited_total = %v, want 0", n)
	}
}
