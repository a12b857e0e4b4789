package introspection_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit/clientlimittest"
	"github.com/valetauth/valet/pkg/servicetest"
)

// The per-replica request limits at /introspect (pkg/ratelimit/clientlimit,
// docs/security.md "Request rate limits"), through the real service: the
// limits add no Redis round trip, so only the answers are checked here.

// introspectFrom introspects tok from address xff (none: the peer) as user
// with pass (Basic), or by client_id alone when pass is empty.
func (h *harness) introspectFrom(xff, tok, user, pass string) response {
	h.t.Helper()
	v := url.Values{"token": {tok}}
	authz := servicetest.ClientAuth(v, user, pass)
	return servicetest.PostForm(h.t, h.url, v.Encode(), "X-Forwarded-For", xff, "Authorization", authz)
}

// wantActive checks a 200 with the token active.
func wantActive(t *testing.T, what string, r response) {
	t.Helper()
	if r.Status != http.StatusOK || !r.Bool("active") {
		t.Fatalf("%s: %d %s, want an active token", what, r.Status, r.Raw)
	}
}

func wantInvalidClient(t *testing.T, what string, r response) {
	t.Helper()
	if r.Status != http.StatusUnauthorized || r.Code() != "invalid_client" {
		t.Fatalf("%s: %d %s, want 401 invalid_client", what, r.Status, r.Raw)
	}
}

// TestIntrospectClientAuthFailureLimit: wrong secrets (and a public client,
// which may not introspect: invalid_client too) from one address empty its
// bucket; the right secret from it is then 429, unauthenticated; another
// address is unaffected; after the refill the right secret works.
func TestIntrospectClientAuthFailureLimit(t *testing.T) {
	clk := clientlimittest.NewClock()
	h := newHarnessWith(t, servicetest.ProxiedLimits(t, clk, func(l *config.Limits) { l.ClientAuthFailuresPerSecond, l.ClientAuthFailuresBurst = 1, 3 }))
	tok := h.Mint(claims())
	right := h.Secrets[clientA]
	const guesser, neighbour = "192.0.2.50", "192.0.2.51"
	wantInvalidClient(t, "wrong secret", h.introspectFrom(guesser, tok, clientA, "wrong"))
	wantInvalidClient(t, "wrong secret again", h.introspectFrom(guesser, tok, clientB, "wrong"))
	wantInvalidClient(t, "public client", h.introspectFrom(guesser, tok, pubClient, ""))
	servicetest.Want429(t, "right secret from the guesser", h.introspectFrom(guesser, tok, clientA, right), "1", clientlimittest.AddrLimited)
	wantActive(t, "another address", h.introspectFrom(neighbour, tok, clientA, right))
	wantActive(t, "the proxy itself", h.introspectFrom("", tok, clientA, right))
	clk.Advance(time.Second)
	wantActive(t, "after the refill", h.introspectFrom(guesser, tok, clientA, right))
	if n := clientlimittest.Limited(t, h.reg, "introspect", clientlimit.LimitAuthFailures); n != 1 {
		t.Fatalf("valet_rate_limited_total = %v, want 1", n)
	}
}

// TestIntrospectClientRequestLimit: the (burst+1)-th request of a client is
// 429 naming the client limit; another client is not affected.
func TestIntrospectClientRequestLimit(t *testing.T) {
	clk := clientlimittest.NewClock()
	h := newHarnessWith(t, servicetest.ProxiedLimits(t, clk, func(l *config.Limits) { l.ClientRequestsPerSecond, l.ClientRequestsBurst = 2, 5 }))
	tok := h.Mint(claims())
	for range 5 {
		wantActive(t, "within the burst", h.introspectFrom("", tok, clientA, h.Secrets[clientA]))
	}
	servicetest.Want429(t, "burst+1", h.introspectFrom("", tok, clientA, h.Secrets[clientA]), "1", clientlimittest.ClientLimited)
	wantActive(t, "another client", h.introspectFrom("", tok, rsAPI, h.Secrets[rsAPI]))
	clk.Advance(500 * time.Millisecond)
	wantActive(t, "a token earned", h.introspectFrom("", tok, clientA, h.Secrets[clientA]))
	servicetest.Want429(t, "and spent", h.introspectFrom("", tok, clientA, h.Secrets[clientA]), "1", clientlimittest.ClientLimited)
	if n := clientlimittest.Limited(t, h.reg, "introspect", clientlimit.LimitClientRequests); n != 2 {
		t.Fatalf("valet_rate_limited_total = %v, want 2", n)
	}
}

// TestIntrospectDefaultLimitsNeverLimitCorrectClient: with the defaults, a
// correct caller introspecting concurrently past every burst is never
// refused.
func TestIntrospectDefaultLimitsNeverLimitCorrectClient(t *testing.T) {
	h := newHarness(t)
	tok := h.Mint(claims())
	for range 5 {
		wantInvalidClient(t, "a neighbour's wrong secret", h.introspectFrom("", tok, clientB, "wrong"))
	}
	body := url.Values{"token": {tok}}.Encode()
	clientlimittest.AllOK(t, h.url, body, servicetest.Basic(clientA, h.Secrets[clientA]), 4, 50)
	if n := clientlimittest.Limited(t, h.reg, "introspect", clientlimit.LimitAuthFailures) + clientlimittest.Limited(t, h.reg, "introspect", clientlimit.LimitClientRequests); n != 0 {
		t.Fatalf("valet_rate_limited_total = %v, want 0", n)
	}
}
