// Package clientlimittest holds what the services' tests of the request
// limits (pkg/ratelimit/clientlimit) share: a clock moved by hand, the check
// of a 429 answer as the wire contract states it, and the refusal counter.
// It is imported by tests only.
package clientlimittest

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The error descriptions of the two 429 answers, as clients read them
// (docs/security.md, "Request rate limits").
const (
	AddrLimited   = "too many failed client authentications from this address; retry later"
	ClientLimited = "too many requests from this client: its request rate limit is exceeded; retry later"
)

// Clock is the limiters' clock, moved by hand so that refills happen exactly
// when a test says (ratelimit.WithClock(c.Now)).
type Clock struct{ ns atomic.Int64 }

// NewClock returns a clock at the current time.
func NewClock() *Clock {
	c := &Clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Want429 fails t unless an answer (status, header, body) is a rate-limited
// one: 429, Retry-After retryAfter (whole seconds), Cache-Control no-store,
// and the RFC 6749 error object temporarily_unavailable with desc.
func Want429(t testing.TB, what string, status int, h http.Header, body string, retryAfter, desc string) {
	t.Helper()
	if status != http.StatusTooManyRequests {
		t.Fatalf("%s: status %d, want 429: %s", what, status, body)
	}
	if got := h.Get("Retry-After"); got != retryAfter {
		t.Fatalf("%s: Retry-After %q, want %q", what, got, retryAfter)
	}
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Fatalf("%s: Cache-Control %q, want no-store", what, got)
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != "temporarily_unavailable" || e.Description != desc {
		t.Fatalf("%s: body %s, want temporarily_unavailable with %q", what, body, desc)
	}
}

// Limited returns valet_rate_limited_total{endpoint,limit} in reg, failing
// t when the series does not exist.
func Limited(t testing.TB, reg prometheus.Gatherer, endpoint, limit string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "valet_rate_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["endpoint"] == endpoint && got["limit"] == limit {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no valet_rate_limited_total{endpoint=%q,limit=%q}", endpoint, limit)
	return 0
}
