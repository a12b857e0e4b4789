package revocation

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of valet_revocation_requests_total.
const (
	// kinds
	kindRefresh = "refresh_token"
	kindAccess  = "access_token"
	kindUnknown = "unknown"
	kindFamily  = "family"
	kindSubject = "subject"
	kindClient  = "client"
	kindToken   = "token"
	// results besides RFC 6749 error codes
	resultRevoked = "revoked"
	resultIgnored = "ignored" // unknown, foreign, expired or garbage: 200, nothing done
)

// metrics are the service's indicators (docs/revocation.md).
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_revocation_requests_total",
			Help: "Revocation requests by endpoint (revoke, admin), kind of token or handle, and result (revoked, ignored, or the error code).",
		}, []string{"endpoint", "kind", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "valet_revocation_request_duration_seconds",
			Help:    "Revocation endpoint latency, from the request reaching the handler to the response written (after the PubAck).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"endpoint"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("revocation: register metrics: %w", err)
		}
	}
	return m, nil
}
