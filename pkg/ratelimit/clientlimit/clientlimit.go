// Package clientlimit applies the per-replica request limits of the
// client-authenticated endpoints (/token, /device_authorization,
// /introspect, /revoke; docs/security.md, "Request rate limits"), so that the
// three services answer them the same way:
//
//   - failed client authentications per client address: every invalid_client
//     answer spends a token from the address's bucket, and an address whose
//     bucket is empty is refused before its request is authenticated, so a
//     secret guesser learns nothing more and costs no more hashing;
//   - requests per authenticated confidential client (client_id), off by
//     default.
//
// Both refuse with 429 Too Many Requests, Retry-After in whole seconds (at
// least 1), Cache-Control: no-store and an RFC 6749 §5.2 error object
// (temporarily_unavailable), and count the refusal in
// valet_rate_limited_total{endpoint,limit}.
//
// The limiters are in memory (*ratelimit.Requests): an answer costs a map
// lookup and a bucket update, never a Redis round trip, so the limits are per
// replica and the cluster-wide limit is the per-replica limit times the
// replicas a client reaches.
package clientlimit

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/ratelimit"
)

// Failures is the per-address failure limiter (*ratelimit.Requests).
type Failures interface {
	// Peek reports whether key has a token left, without taking it, or how
	// long until it has one.
	Peek(key string) (bool, time.Duration)
	// Spend takes a token from key, even when none is left.
	Spend(key string)
}

// Requests is the per-client request limiter (*ratelimit.Requests).
type Requests interface {
	// Allow takes a token from key, or reports how long until one is there.
	Allow(key string) (bool, time.Duration)
}

var (
	_ Failures = (*ratelimit.Requests)(nil)
	_ Requests = (*ratelimit.Requests)(nil)
)

// Limits are the two limits of a service's client-authenticated endpoints.
// A nil field is no limit; the zero Limits limits nothing.
type Limits struct {
	// AuthFailures counts invalid_client answers per client address.
	AuthFailures Failures
	// Requests counts requests per authenticated confidential client.
	Requests Requests
}

// FromConfig builds the limits limits.client_auth_failures_* and
// limits.client_requests_* describe (a rate of 0 leaves that limit nil; a
// burst of 0 is one second's worth), each with opts (a clock in tests).
// Every service builds its own: the limits are per replica.
func FromConfig(l config.Limits, opts ...ratelimit.Option) (Limits, error) {
	var out Limits
	if r := l.ClientAuthFailuresPerSecond; r > 0 {
		f, err := ratelimit.NewRequests(ratelimit.RequestsConfig{Rate: float64(r), Burst: burstOr(l.ClientAuthFailuresBurst, r)}, opts...)
		if err != nil {
			return Limits{}, fmt.Errorf("limits.client_auth_failures_*: %w", err)
		}
		out.AuthFailures = f
	}
	if r := l.ClientRequestsPerSecond; r > 0 {
		q, err := ratelimit.NewRequests(ratelimit.RequestsConfig{Rate: float64(r), Burst: burstOr(l.ClientRequestsBurst, r)}, opts...)
		if err != nil {
			return Limits{}, fmt.Errorf("limits.client_requests_*: %w", err)
		}
		out.Requests = q
	}
	return out, nil
}

func burstOr(burst, rate int) int {
	if burst > 0 {
		return burst
	}
	return rate
}

// Label values of valet_rate_limited_total's limit.
const (
	// LimitAuthFailures is the failed client authentication limit.
	LimitAuthFailures = "client_auth_failures"
	// LimitClientRequests is the per-client request limit.
	LimitClientRequests = "client_requests"
)

// The 429 answers, without their Retry-After.
var (
	errAddrLimited = oautherr.ErrTemporarilyUnavailable.WithStatus(http.StatusTooManyRequests).
			WithDescription("too many failed client authentications from this address; retry later")
	errClientLimited = oautherr.ErrTemporarilyUnavailable.WithStatus(http.StatusTooManyRequests).
				WithDescription("too many requests from this client: its request rate limit is exceeded; retry later")
)

// Metrics holds valet_rate_limited_total, registered once per service
// registry and shared by the service's endpoints.
type Metrics struct {
	limited *prometheus.CounterVec
}

// NewMetrics registers valet_rate_limited_total with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("clientlimit: a registerer is required")
	}
	m := &Metrics{limited: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "valet_rate_limited_total",
		Help: "Requests refused with 429 by the per-replica request limits, by endpoint and limit (client_auth_failures, client_requests).",
	}, []string{"endpoint", "limit"})}
	if err := reg.Register(m.limited); err != nil {
		return nil, fmt.Errorf("clientlimit: register metrics: %w", err)
	}
	return m, nil
}

// Guard applies Limits at one endpoint. A nil *Guard limits nothing. It is
// safe for concurrent use.
type Guard struct {
	endpoint      string
	failures      Failures
	requests      Requests
	addrLimited   prometheus.Counter
	clientLimited prometheus.Counter
	log           *zap.Logger
}

// Guard returns the guard of endpoint (the metric's endpoint label: "token",
// "introspect", ...) applying l, logging refusals at debug level to log (nil:
// none).
func (m *Metrics) Guard(endpoint string, l Limits, log *zap.Logger) *Guard {
	if log == nil {
		log = zap.NewNop()
	}
	return &Guard{
		endpoint: endpoint, failures: l.AuthFailures, requests: l.Requests,
		// Both series exist from the start, at 0, so that rates and alerts
		// need no absent() guard.
		addrLimited:   m.limited.WithLabelValues(endpoint, LimitAuthFailures),
		clientLimited: m.limited.WithLabelValues(endpoint, LimitClientRequests),
		log:           log,
	}
}

// Request is what Admit reads of a request: its client address as pkg/server
// resolves it, believing X-Forwarded-For only from limits.trusted_proxies
// (echo.Context).
type Request interface {
	RealIP() string
}

// Admit is called before a request is authenticated. It returns the key its
// client address counts under (for Answered) and nil, or a 429 when the
// address has no failure left: the request must then be answered with it,
// unauthenticated. With no failure limit it returns "" and nil and reads
// nothing.
func (g *Guard) Admit(r Request) (string, error) {
	if g == nil || g.failures == nil {
		return "", nil
	}
	addr := Addr(r.RealIP())
	ok, wait := g.failures.Peek(addr)
	if ok {
		return addr, nil
	}
	g.addrLimited.Inc()
	if ce := g.log.Check(zap.DebugLevel, "client address rate limited"); ce != nil {
		ce.Write(zap.String("endpoint", g.endpoint), zap.String("limit", LimitAuthFailures),
			zap.String("addr", addr), zap.Duration("retry_after", wait))
	}
	return addr, errAddrLimited.WithRetryAfter(max(wait, time.Second))
}

// Answered counts the answer err given to a request that Admit let through
// from addr: an invalid_client answer spends one of the address's failures.
// Anything else (a success, any other error) is not counted.
func (g *Guard) Answered(addr string, err error) {
	if g == nil || g.failures == nil || err == nil || !errors.Is(err, oautherr.ErrInvalidClient) {
		return
	}
	g.failures.Spend(addr)
}

// Client is called once a request has authenticated as res. It returns nil,
// or a 429 when the client has exceeded its request rate. Public clients
// (method none) are not limited per client: anyone can present a public
// client_id, so a per-client budget would let anyone lock out every user of
// a public app; PKCE, one-time codes and the device flow's slow_down bound
// what they can do instead.
func (g *Guard) Client(res clientauth.Result) error {
	if g == nil || g.requests == nil || res.Client == nil || res.Method == clientauth.MethodNone {
		return nil
	}
	ok, wait := g.requests.Allow(res.Client.ID)
	if ok {
		return nil
	}
	g.clientLimited.Inc()
	if ce := g.log.Check(zap.DebugLevel, "client rate limited"); ce != nil {
		ce.Write(zap.String("endpoint", g.endpoint), zap.String("limit", LimitClientRequests),
			zap.String("client_id", res.Client.ID), zap.Duration("retry_after", wait))
	}
	return errClientLimited.WithRetryAfter(max(wait, time.Second))
}

// Addr returns the key a client address counts under: an IPv4 address as
// it is, an IPv6 address by its /64 (which one subscriber usually holds
// whole, as the login limits count it), anything unparsable as it is.
func Addr(ip string) string {
	if strings.IndexByte(ip, ':') < 0 {
		return ip // IPv4 (or nothing): no parsing on the hot path
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a.Is4In6() {
		return a.Unmap().String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
