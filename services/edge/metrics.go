package edge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/edge"
)

// metrics are the authorizer's valet_edge_* series (docs/gateway.md,
// "Forward auth": metrics).
type metrics struct {
	decisions *prometheus.CounterVec
	// known holds the counter of every reason with its fixed status, so
	// the request path does no label lookup.
	known map[string]prometheus.Counter

	revocationDelay *prometheus.HistogramVec
	keyDelay        prometheus.Histogram
	jwksFetches     *prometheus.CounterVec
	jwksDuration    prometheus.Histogram
	streamErrors    *prometheus.CounterVec
}

// delayBuckets span a healthy propagation (sub-millisecond) to a stale
// edge catching up (tens of seconds).
var delayBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_edge_decisions_total",
			Help: "Forward-auth decisions by HTTP status and reason (ok, a pkg/edge rejection reason, no_token, invalid_request, bad_request, no_route).",
		}, []string{"code", "reason"}),
		revocationDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "valet_edge_revocation_propagation_seconds",
			Help:    "Time from a live revocation event's time to its application at this edge, by event type.",
			Buckets: delayBuckets,
		}, []string{"type"}),
		keyDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "valet_edge_key_propagation_seconds",
			Help:    "Time from a live key announcement's time to the key being usable at this edge.",
			Buckets: delayBuckets,
		}),
		jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_edge_jwks_fetches_total",
			Help: "JWKS fetches by result (ok or error: unreachable, mismatch with the key stream, ignored entries).",
		}, []string{"result"}),
		jwksDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "valet_edge_jwks_fetch_duration_seconds",
			Help:    "JWKS fetch latency.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		streamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_edge_stream_errors_total",
			Help: "Errors of the stream consumers, by stream and kind (transient or stale).",
		}, []string{"stream", "kind"}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.revocationDelay, m.keyDelay, m.jwksFetches, m.jwksDuration, m.streamErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("edge: register metrics: %w", err)
		}
	}
	m.known = map[string]prometheus.Counter{
		edge.ReasonOK:        m.decisions.WithLabelValues("200", edge.ReasonOK),
		ReasonNoToken:        m.decisions.WithLabelValues("401", ReasonNoToken),
		ReasonNoRoute:        m.decisions.WithLabelValues("403", ReasonNoRoute),
		ReasonInvalidRequest: m.decisions.WithLabelValues("400", ReasonInvalidRequest),
		ReasonBadRequest:     m.decisions.WithLabelValues("400", ReasonBadRequest),
		edge.ReasonError:     m.decisions.WithLabelValues("503", edge.ReasonError),
	}
	for reason, res := range byReason {
		m.known[reason] = m.decisions.WithLabelValues(strconv.Itoa(res.status), reason)
	}
	return m, nil
}

// decided counts one decision.
func (m *metrics) decided(status int, reason string) {
	if c, ok := m.known[reason]; ok {
		c.Inc()
		return
	}
	m.decisions.WithLabelValues(strconv.Itoa(status), reason).Inc()
}

// observer returns the pkg/edge hooks feeding these metrics and the log.
func (m *metrics) observer(log *zap.Logger) edge.Observer {
	return edge.Observer{
		OnRevocationApplied: func(t events.Type, at time.Time, replay bool) {
			if !replay && !at.IsZero() {
				m.revocationDelay.WithLabelValues(string(t)).Observe(max(0, time.Since(at).Seconds()))
			}
		},
		OnKeyLearned: func(kid string, at time.Time) {
			m.keyDelay.Observe(max(0, time.Since(at).Seconds()))
			log.Info("signing key learned", zap.String("kid", kid))
		},
		OnJWKSFetch: func(took time.Duration, err error) {
			m.jwksDuration.Observe(took.Seconds())
			if err != nil {
				m.jwksFetches.WithLabelValues("error").Inc()
				log.Warn("JWKS fetch", zap.Error(err))
				return
			}
			m.jwksFetches.WithLabelValues("ok").Inc()
		},
		OnStreamError: func(stream string, err error) {
			if errors.Is(err, bus.ErrStale) {
				m.streamErrors.WithLabelValues(stream, "stale").Inc()
				log.Error("event stream stale: failing closed until it is followed again", zap.String("stream", stream), zap.Error(err))
				return
			}
			m.streamErrors.WithLabelValues(stream, "transient").Inc()
			log.Warn("event stream", zap.String("stream", stream), zap.Error(err))
		},
	}
}

// statusCollector exports edge.Status at scrape time: whether the edge is
// current, how long since it last proved it, stream lag, heartbeat age and
// deny-state sizes.
type statusCollector struct {
	status func() edge.Status

	current, sinceCurrent, lag, pending, heartbeatAge, deny, knownKeys, revokedKeys, cached *prometheus.Desc
}

func newStatusCollector(status func() edge.Status) *statusCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &statusCollector{
		status:       status,
		current:      d("valet_edge_current", "1 when the edge is current and can accept tokens, 0 while it fails closed."),
		sinceCurrent: d("valet_edge_seconds_since_current", "Seconds since the revocation stream last proved current (nothing pending); the edge fails closed past the staleness bound."),
		lag:          d("valet_edge_stream_lag_seconds", "Now minus the time of the last event applied, by stream.", "stream"),
		pending:      d("valet_edge_stream_pending", "Events the stream held beyond the last applied, by stream.", "stream"),
		heartbeatAge: d("valet_edge_heartbeat_age_seconds", "Now minus the time of the last heartbeat applied."),
		deny:         d("valet_edge_deny_entries", "Deny-state entries by kind (jti, family, subject, client).", "kind"),
		knownKeys:    d("valet_edge_known_keys", "Signing keys tokens can be verified with."),
		revokedKeys:  d("valet_edge_revoked_keys", "Signing keys revoked as compromised."),
		cached:       d("valet_edge_cached_tokens", "Verified tokens in the cache."),
	}
}

// Describe implements prometheus.Collector.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.current, c.sinceCurrent, c.lag, c.pending, c.heartbeatAge, c.deny, c.knownKeys, c.revokedKeys, c.cached} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	cur := 0.0
	if st.Current {
		cur = 1
	}
	g(c.current, cur)
	if lc := st.Revocations.LastCurrent; !lc.IsZero() {
		g(c.sinceCurrent, time.Since(lc).Seconds())
	}
	for _, s := range []edge.StreamStatus{st.Revocations, st.Keys} {
		if !s.LastEvent.IsZero() {
			g(c.lag, s.Lag.Seconds(), s.Stream)
		}
		g(c.pending, float64(s.Pending), s.Stream)
	}
	if !st.Revocations.LastHeartbeat.IsZero() {
		g(c.heartbeatAge, st.Revocations.HeartbeatAge.Seconds())
	}
	g(c.deny, float64(st.Deny.JTIs), "jti")
	g(c.deny, float64(st.Deny.Families), "family")
	g(c.deny, float64(st.Deny.Subjects), "subject")
	g(c.deny, float64(st.Deny.Clients), "client")
	g(c.knownKeys, float64(st.KnownKeys))
	g(c.revokedKeys, float64(st.RevokedKeys))
	g(c.cached, float64(st.CachedTokens))
}

// upstreamMetrics are the reverse proxy's valet_edge_upstream_* series,
// registered only in reverse-proxy mode.
type upstreamMetrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	// byCode caches the counter of each status code (int), so that the
	// request path does no label hashing.
	byCode sync.Map
	// failures are the counters of exchanges without an answer.
	errored, timedOut, canceled prometheus.Counter
}

// Labels of valet_edge_upstream_requests_total for exchanges the upstream
// did not answer.
const (
	upstreamError    = "error"
	upstreamTimeout  = "timeout"
	upstreamCanceled = "canceled"
)

func newUpstreamMetrics(reg prometheus.Registerer) (*upstreamMetrics, error) {
	m := &upstreamMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_edge_upstream_requests_total",
			Help: "Requests the reverse proxy passed to the upstream, by the upstream's HTTP status, or error (no answer: refused, reset, or a chunked request body over the limit; answered 502 or 413), timeout (answered 504) or canceled (the client went away first).",
		}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "valet_edge_upstream_duration_seconds",
			Help:    "Time from passing a request to the upstream to its response headers (streamed bodies excluded).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("edge: register metrics: %w", err)
		}
	}
	m.errored = m.requests.WithLabelValues(upstreamError)
	m.timedOut = m.requests.WithLabelValues(upstreamTimeout)
	m.canceled = m.requests.WithLabelValues(upstreamCanceled)
	return m, nil
}

// answered counts an exchange the upstream answered with code after took.
func (m *upstreamMetrics) answered(code int, took time.Duration) {
	m.duration.Observe(took.Seconds())
	if c, ok := m.byCode.Load(code); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c, _ := m.byCode.LoadOrStore(code, m.requests.WithLabelValues(strconv.Itoa(code)))
	c.(prometheus.Counter).Inc()
}

// failed counts an exchange the upstream did not answer.
func (m *upstreamMetrics) failed(ctx context.Context, err error) {
	switch {
	case ctx.Err() != nil:
		m.canceled.Inc()
	case isTimeout(err):
		m.timedOut.Inc()
	default:
		m.errored.Inc()
	}
}
