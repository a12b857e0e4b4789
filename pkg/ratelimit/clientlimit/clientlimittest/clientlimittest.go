// Package clientlimittest holds what the services' tests of the request
// limits (pkg/ratelimit/clientlimit) share: a clock moved by hand, the check
// of a 429 answer as the wire contract states it, and the refusal counter.
// It is imported by tests only.
package clientlimittest

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
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

// Limits builds the limits l describes on clk, as the services' mains build
// them from the configuration, failing t when l is refused.
func Limits(t testing.TB, l config.Limits, clk *Clock) clientlimit.Limits {
	t.Helper()
	out, err := clientlimit.FromConfig(l, ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// AllOK posts body (form-encoded, with the Authorization header authz) to
// url from goroutines goroutines, each perRoutine times at once, and fails t
// unless every answer is 200: a correct client is never limited, even under
// concurrency.
func AllOK(t testing.TB, url, body, authz string, goroutines, perRoutine int) {
	t.Helper()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range goroutines {
		wg.Go(func() {
			for range perRoutine {
				req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				if err != nil {
					bad.Add(1)
					continue
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", authz)
				res, err := http.DefaultClient.Do(req)
				if err != nil || res.StatusCode != http.StatusOK {
					bad.Add(1)
				}
				if res != nil {
					_ = res.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d of %d correct requests were not 200", n, goroutines*perRoutine)
	}
}

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
