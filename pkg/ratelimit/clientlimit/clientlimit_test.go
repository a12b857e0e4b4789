package clientlimit_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit/clientlimittest"
	"github.com/valetauth/valet/pkg/store"
)

// ip is a Request from one address.
type ip string

func (a ip) RealIP() string { return string(a) }

func TestAddr(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"ipv4", "203.0.113.7", "203.0.113.7"},
		{"ipv6 per /64", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"same /64", "2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"ipv4-mapped", "::ffff:198.51.100.1", "198.51.100.1"},
		{"zoned", "fe80::1%eth0", "fe80::/64"},
		{"garbage kept", "not:an:address", "not:an:address"},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := clientlimit.Addr(tt.in); got != tt.want {
				t.Fatalf("Addr(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFromConfig(t *testing.T) {
	def := config.Default().Limits
	l, err := clientlimit.FromConfig(def)
	if err != nil {
		t.Fatal(err)
	}
	if l.AuthFailures == nil || l.Requests != nil {
		t.Fatalf("defaults: failure limit %v, client limit %v; want on and off", l.AuthFailures, l.Requests)
	}
	off := def
	off.ClientAuthFailuresPerSecond = 0
	if l, _ := clientlimit.FromConfig(off); l.AuthFailures != nil || l.Requests != nil {
		t.Fatal("a rate of 0 did not turn the failure limit off")
	}
	// A burst of 0 is one second's worth.
	clk := clientlimittest.NewClock()
	on := def
	on.ClientRequestsPerSecond = 3
	l, err = clientlimit.FromConfig(on, ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ok, _ := l.Requests.Allow("c"); !ok {
			t.Fatalf("request %d of the default burst refused", i+1)
		}
	}
	if ok, _ := l.Requests.Allow("c"); ok {
		t.Fatal("burst 0 allowed more than one second's worth")
	}
}

// guard returns a guard on fresh limiters (failures: 1/s, burst 3;
// requests: 2/s, burst 2) and the registry it counts in.
func guard(t *testing.T, clk *clientlimittest.Clock) (*clientlimit.Guard, *prometheus.Registry) {
	t.Helper()
	f, err := ratelimit.NewRequests(ratelimit.RequestsConfig{Rate: 1, Burst: 3}, ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	q, err := ratelimit.NewRequests(ratelimit.RequestsConfig{Rate: 2, Burst: 2}, ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := clientlimit.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientlimit.NewMetrics(reg); err == nil {
		t.Fatal("the metric registered twice in one registry")
	}
	return m.Guard("token", clientlimit.Limits{AuthFailures: f, Requests: q}, nil), reg
}

// written is what oautherr.Write puts on the wire for err.
func written(t *testing.T, err error) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	oautherr.Write(rec, err)
	return rec
}

func want429(t *testing.T, err error, retryAfter, desc string) {
	t.Helper()
	if err == nil {
		t.Fatal("not limited")
	}
	rec := written(t, err)
	clientlimittest.Want429(t, "answer", rec.Code, rec.Header(), rec.Body.String(), retryAfter, desc)
}

// TestGuardFailures: invalid_client answers spend the address's failures;
// other answers do not; an empty address is refused before authentication
// with Retry-After rounded up to whole seconds; other addresses and the
// same address after the refill go ahead.
func TestGuardFailures(t *testing.T) {
	clk := clientlimittest.NewClock()
	g, reg := guard(t, clk)
	const a = "203.0.113.9"
	for range 5 { // neither successes nor other errors count
		addr, err := g.Admit(ip(a))
		if err != nil {
			t.Fatal(err)
		}
		g.Answered(addr, nil)
		g.Answered(addr, oautherr.ErrInvalidRequest)
		g.Answered(addr, oautherr.ErrTemporarilyUnavailable)
	}
	for range 3 {
		addr, err := g.Admit(ip(a))
		if err != nil {
			t.Fatalf("refused within the burst: %v", err)
		}
		g.Answered(addr, oautherr.ErrInvalidClient.WithChallenge("Basic"))
	}
	_, err := g.Admit(ip(a))
	want429(t, err, "1", clientlimittest.AddrLimited)
	clk.Advance(300 * time.Millisecond)
	_, err = g.Admit(ip(a))
	want429(t, err, "1", clientlimittest.AddrLimited) // 0.7 s left: rounded up
	if _, err := g.Admit(ip("203.0.113.10")); err != nil {
		t.Fatalf("another address refused: %v", err)
	}
	clk.Advance(700 * time.Millisecond)
	if _, err := g.Admit(ip(a)); err != nil {
		t.Fatalf("refused after the refill: %v", err)
	}
	if n := (clientlimittest.Limited(t, reg, "token", clientlimit.LimitAuthFailures)); n != 2 {
		t.Fatalf("valet_rate_limited_total = %v, want 2", n)
	}
}

// TestGuardIPv6PerPrefix: addresses of one /64 share their failures.
func TestGuardIPv6PerPrefix(t *testing.T) {
	clk := clientlimittest.NewClock()
	g, _ := guard(t, clk)
	for i := range 3 {
		addr, _ := g.Admit(ip("2001:db8::" + string(rune('1'+i))))
		g.Answered(addr, oautherr.ErrInvalidClient)
	}
	_, err := g.Admit(ip("2001:db8::ffff"))
	want429(t, err, "1", clientlimittest.AddrLimited)
	if _, err := g.Admit(ip("2001:db8:0:1::1")); err != nil {
		t.Fatalf("another /64 refused: %v", err)
	}
}

// TestGuardClient: confidential clients have a request budget each; public
// clients have none.
func TestGuardClient(t *testing.T) {
	clk := clientlimittest.NewClock()
	g, reg := guard(t, clk)
	conf := clientauth.Result{Client: &store.Client{ID: "svc-a", Type: store.Confidential}, Method: clientauth.MethodBasic}
	other := clientauth.Result{Client: &store.Client{ID: "svc-b", Type: store.Confidential}, Method: clientauth.MethodPost}
	pub := clientauth.Result{Client: &store.Client{ID: "cli", Type: store.Public}, Method: clientauth.MethodNone}
	for i := range 2 {
		if err := g.Client(conf); err != nil {
			t.Fatalf("request %d of the burst refused: %v", i+1, err)
		}
	}
	want429(t, g.Client(conf), "1", clientlimittest.ClientLimited)
	if err := g.Client(other); err != nil {
		t.Fatalf("another client refused: %v", err)
	}
	for range 10 {
		if err := g.Client(pub); err != nil {
			t.Fatalf("a public client was limited: %v", err)
		}
	}
	clk.Advance(500 * time.Millisecond)
	if err := g.Client(conf); err != nil {
		t.Fatalf("refused after a token was earned: %v", err)
	}
	if n := (clientlimittest.Limited(t, reg, "token", clientlimit.LimitClientRequests)); n != 1 {
		t.Fatalf("valet_rate_limited_total = %v, want 1", n)
	}
}

// TestNoLimits: a nil guard and a guard without limiters let everything
// through and read nothing.
func TestNoLimits(t *testing.T) {
	m, err := clientlimit.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	res := clientauth.Result{Client: &store.Client{ID: "svc-a"}, Method: clientauth.MethodBasic}
	for _, g := range []*clientlimit.Guard{nil, m.Guard("revoke", clientlimit.Limits{}, nil)} {
		for range 100 {
			addr, err := g.Admit(ip("203.0.113.1"))
			if err != nil || addr != "" {
				t.Fatalf("Admit = %q, %v", addr, err)
			}
			g.Answered(addr, oautherr.ErrInvalidClient)
			if err := g.Client(res); err != nil {
				t.Fatal(err)
			}
		}
	}
}
