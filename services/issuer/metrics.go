package issuer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/valetauth/valet/pkg/store"
)

// Grant type values (RFC 6749 §4, RFC 8628 §3.4) and the label of every
// other grant_type value, so that metric label values stay a fixed set
// whatever clients send.
const (
	grantClientCredentials = "client_credentials"
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	grantOther             = "other"
)

// grantLabel returns the metric label of a grant_type value.
func grantLabel(g string) string {
	switch g {
	case grantClientCredentials, grantAuthorizationCode, grantRefreshToken, grantDeviceCode:
		return g
	}
	return grantOther
}

// metrics are the token endpoint's service-level indicators (docs/issuer.md).
type metrics struct {
	issued       *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	pkceFailures prometheus.Counter

	// Children resolved once, so the hot path does no label lookup.
	ccIssued  prometheus.Counter
	ccLatency prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_tokens_issued_total",
			Help: "Access tokens issued at /token, by grant type and client type.",
		}, []string{"grant", "client_type"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "valet_token_request_duration_seconds",
			Help:    "Token endpoint latency by grant type, from the request reaching the handler to the response written.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"grant"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_token_errors_total",
			Help: "Token endpoint error responses by grant type and RFC 6749 error code.",
		}, []string{"grant", "error"}),
		pkceFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valet_pkce_failures_total",
			Help: "Authorization code redemptions refused because the PKCE verifier was missing or wrong.",
		}),
	}
	for _, c := range []prometheus.Collector{m.issued, m.latency, m.errors, m.pkceFailures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("issuer: register metrics: %w", err)
		}
	}
	m.ccIssued = m.issued.WithLabelValues(grantClientCredentials, string(store.Confidential))
	m.ccLatency = m.latency.WithLabelValues(grantClientCredentials)
	return m, nil
}
