package keys

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/valetauth/valet/pkg/store"
)

// metrics are the valet_keys_* series of one Manager.
type metrics struct {
	byState         *prometheus.GaugeVec
	invalid         prometheus.Gauge
	rotations       prometheus.Counter
	lastRotation    prometheus.Gauge
	publishFailures *prometheus.CounterVec
	refreshFailures prometheus.Counter
	unsealFailures  prometheus.Counter
	viewAge         prometheus.GaugeFunc
}

var allStates = []store.KeyState{store.KeyPublished, store.KeyActive, store.KeyRetiring, store.KeyRetired, store.KeyRevoked}

func newMetrics(m *Manager) *metrics {
	met := &metrics{
		byState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "valet_keys_in_state",
			Help: "Signing keys in the store by lifecycle state, as of this replica's last refresh.",
		}, []string{"state"}),
		invalid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valet_keys_invalid",
			Help: "Stored signing keys whose public JWK is unusable (left out of JWKS, never signing).",
		}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valet_keys_rotations_total",
			Help: "Signing keys this replica activated (scheduled, on-demand, bootstrap and emergency rotations).",
		}),
		lastRotation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valet_keys_last_rotation_timestamp_seconds",
			Help: "When the newest active signing key started signing (Unix seconds), as of this replica's last refresh.",
		}),
		publishFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_keys_publish_failures_total",
			Help: "Key events that could not be published; the lifecycle step waits for the next refresh.",
		}, []string{"type"}),
		refreshFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valet_keys_refresh_failures_total",
			Help: "Refreshes that could not list the signing keys from the store.",
		}),
		unsealFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valet_keys_unseal_failures_total",
			Help: "Attempts to open an active signing key that failed on this replica (unknown or wrong key-encryption key).",
		}),
	}
	met.viewAge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "valet_keys_view_age_seconds",
		Help: "Age of this replica's view of the signing keys; past keys.MaxStaleness it stops signing.",
	}, func() float64 {
		v := m.view.Load()
		if v == nil {
			return -1
		}
		return m.now().Sub(v.loaded).Seconds()
	})
	for _, s := range allStates {
		met.byState.WithLabelValues(string(s))
	}
	return met
}

func (met *metrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{met.byState, met.invalid, met.rotations, met.lastRotation,
		met.publishFailures, met.refreshFailures, met.unsealFailures, met.viewAge} {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

// observe records a view's counts.
func (met *metrics) observe(counts map[store.KeyState]int, invalid int, lastRotation time.Time) {
	for _, s := range allStates {
		met.byState.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
	met.invalid.Set(float64(invalid))
	if !lastRotation.IsZero() {
		met.lastRotation.Set(float64(lastRotation.UnixNano()) / 1e9)
	}
}
