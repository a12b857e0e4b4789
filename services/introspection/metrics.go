package introspection

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Result labels of valet_introspection_requests_total besides RFC 6749
// error codes.
const (
	resultActive   = "active"
	resultInactive = "inactive"
)

// metrics are the introspection SLIs (docs/introspection.md).
type metrics struct {
	requests *prometheus.CounterVec
	latency  prometheus.Histogram

	// Children resolved once: the hot path does no label lookup.
	active, inactiveAccess, inactiveRefresh, activeRefresh prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_introspection_requests_total",
			Help: "Introspection requests by token kind (access_token, refresh_token, unknown) and result (active, inactive, or the error code).",
		}, []string{"kind", "result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "valet_introspection_request_duration_seconds",
			Help:    "Introspection endpoint latency, from the request reaching the handler to the response written.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("introspection: register metrics: %w", err)
		}
	}
	m.active = m.requests.WithLabelValues(kindAccess, resultActive)
	m.inactiveAccess = m.requests.WithLabelValues(kindAccess, resultInactive)
	m.activeRefresh = m.requests.WithLabelValues(kindRefresh, resultActive)
	m.inactiveRefresh = m.requests.WithLabelValues(kindRefresh, resultInactive)
	return m, nil
}
