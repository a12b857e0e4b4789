package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/store"
)

// Store is what the Manager needs of the key store: store.KeyStore, which
// every backend implements and pkg/store/conformance checks.
type Store interface {
	RewrapStore
	// CreateKey stores a new key with Version 1; store.ErrAlreadyExists if
	// the kid is taken.
	CreateKey(ctx context.Context, k store.SigningKey) error
	// DeleteKey removes a retired or revoked key; store.ErrNotFound if gone.
	DeleteKey(ctx context.Context, kid string) error
}

var _ Store = store.KeyStore(nil)

// Publisher publishes a key event and returns once JetStream has
// acknowledged it (a duplicate id is success). pkg/bus.Publisher does this;
// PublisherFunc adapts its two-result Publish.
type Publisher interface {
	Publish(ctx context.Context, e events.Event) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, e events.Event) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, e events.Event) error { return f(ctx, e) }

// Defaults of Config.
const (
	// DefaultRefreshInterval is how often replicas reload the key ring.
	DefaultRefreshInterval = 5 * time.Second
	// DefaultDeleteAfter is how long a retired or revoked key's record
	// (public part only) is kept after it left JWKS, for audit.
	DefaultDeleteAfter = 24 * time.Hour
	// maxJWKSMaxAge caps the Cache-Control max-age of JWKS.
	maxJWKSMaxAge = 5 * time.Minute
	// maxSteps bounds the lifecycle steps of one refresh; what is left is
	// done by the next one.
	maxSteps = 16
	// minOnDemandRefresh spaces the refreshes Signer triggers when it has no
	// key, so that requests during a store outage do not hammer the store.
	minOnDemandRefresh = time.Second
)

// Config is the key policy every issuer replica shares (config keys.* and
// tokens.*).
type Config struct {
	// Source is the issuer identifier, the source of key events.
	Source string
	// JWKSURI is the issuer's JWKS URL, carried in key.published (optional).
	JWKSURI string
	// Algorithm is the JWS algorithm of new keys: ES256 (default), EdDSA or
	// RS256. Existing keys keep theirs.
	Algorithm string
	// RotationInterval is how long each key signs before its successor takes
	// over.
	RotationInterval time.Duration
	// PublishLeadTime is how long a successor is in JWKS and announced before
	// it signs anything. It must cover JWKS caches: at least twice
	// RefreshInterval, and MaxAge is at most half of it.
	PublishLeadTime time.Duration
	// MaxTokenLifetime is the longest access-token lifetime
	// (tokens.max_access_token_lifetime).
	MaxTokenLifetime time.Duration
	// ClockSkew is the clock-skew allowance (tokens.clock_skew).
	ClockSkew time.Duration
	// RefreshInterval is how often Run reloads the ring. Default
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	// MaxStaleness is how old a replica's view may grow (the store
	// unreachable) before it stops signing and serving JWKS. A retiring key
	// stays in JWKS this much longer. Default 6 × RefreshInterval.
	MaxStaleness time.Duration
	// DeleteAfter is how long retired and revoked keys stay in the store
	// after they left JWKS. Default DefaultDeleteAfter.
	DeleteAfter time.Duration
}

// retention returns how long a key stays in JWKS after it stopped being the
// newest active key: a replica with a stale view may still sign with it for
// MaxStaleness, and that token lives MaxTokenLifetime, plus the skew.
func (c Config) retention() time.Duration {
	return c.MaxStaleness + c.MaxTokenLifetime + c.ClockSkew
}

func (c *Config) validate() error {
	if c.Algorithm == "" {
		c.Algorithm = ES256
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.MaxStaleness == 0 {
		c.MaxStaleness = 6 * c.RefreshInterval
	}
	if c.DeleteAfter == 0 {
		c.DeleteAfter = DefaultDeleteAfter
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("keys: "+format, args...)) }
	if c.Source == "" {
		add("Source (the issuer identifier) is required")
	}
	if !supported(c.Algorithm) {
		add("algorithm %q is not one of ES256, EdDSA, RS256", c.Algorithm)
	}
	if c.RotationInterval <= 0 {
		add("RotationInterval must be positive")
	}
	if c.PublishLeadTime < 0 || c.PublishLeadTime >= c.RotationInterval {
		add("PublishLeadTime %s must be at least 0 and shorter than RotationInterval %s", c.PublishLeadTime, c.RotationInterval)
	}
	if c.MaxTokenLifetime <= 0 {
		add("MaxTokenLifetime must be positive")
	}
	if c.ClockSkew < 0 {
		add("ClockSkew must not be negative")
	}
	if c.RefreshInterval < 0 || c.MaxStaleness < c.RefreshInterval || c.DeleteAfter < 0 {
		add("RefreshInterval must be positive, MaxStaleness at least RefreshInterval, DeleteAfter not negative")
	}
	if c.PublishLeadTime > 0 && c.RefreshInterval > c.PublishLeadTime/2 {
		add("RefreshInterval %s must be at most half of PublishLeadTime %s, or replicas serve a new key's JWKS too late", c.RefreshInterval, c.PublishLeadTime)
	}
	return errors.Join(errs...)
}

// ErrNoSigningKey is returned by Current and Signer when this replica has no
// key it may sign with: nothing loaded yet (the store down at start), the
// view older than MaxStaleness, the active key not announced yet, or its
// private key unopenable here. The error also matches store.ErrUnavailable,
// so HTTP layers answer 503 temporarily_unavailable (MISSION §0.6).
var ErrNoSigningKey = errors.New("keys: no usable signing key")

// unavailableError matches ErrNoSigningKey and store.ErrUnavailable.
type unavailableError struct{ why string }

func (e *unavailableError) Error() string   { return "keys: no usable signing key: " + e.why }
func (e *unavailableError) Unwrap() []error { return []error{ErrNoSigningKey, store.ErrUnavailable} }

func unavailable(format string, args ...any) error {
	return &unavailableError{why: fmt.Sprintf(format, args...)}
}

// Option configures New.
type Option func(*Manager)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(m *Manager) { m.now = now } }

// WithLogger sets the logger. Key ids and states are logged, never key
// material.
func WithLogger(l *zap.Logger) Option { return func(m *Manager) { m.log = l } }

// WithRegisterer registers the valet_keys_* metrics with reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(m *Manager) { m.reg = reg } }

// Manager is one issuer replica's view of the signing key ring that every
// replica shares through the store, and the driver of the keys' lifecycle
// (published → active → retiring → retired; revoked). Replicas agree through
// the store's compare-and-set; every event that lets a key sign is
// acknowledged by the stream before the state change (MISSION §0.4). Signing
// reads one atomic pointer and takes no lock.
type Manager struct {
	cfg  Config
	st   Store
	pub  Publisher
	ring *KEKRing
	now  func() time.Time
	log  *zap.Logger
	reg  prometheus.Registerer
	met  *metrics

	// mu serializes refreshes and lifecycle operations of this replica, and
	// guards the caches below.
	mu      sync.Mutex
	signers map[string]*Signer // decrypted active keys, by kid
	publics map[string]parsed  // parsed public JWKs, by kid
	jwksKey string             // the kids of the JWKS last built
	jwks    []byte
	failed  map[string]string // kid → last unseal or parse error logged
	newest  time.Time         // the latest CreatedAt, or active ActivateAt, listed

	view    atomic.Pointer[view]
	gen     atomic.Uint64 // completed refresh attempts
	lastTry atomic.Int64  // unix nanos of the last on-demand refresh
	kick    chan struct{}
}

// parsed is a stored public JWK, checked.
type parsed struct {
	raw        []byte
	key        jwk.Key
	thumbprint string
	err        error
}

// view is what one refresh loaded: immutable once installed.
type view struct {
	loaded time.Time
	// signers are the active keys this replica can sign with, newest
	// ActivateAt first.
	signers []*Signer
	jwks    []byte
}

// New returns a Manager for cfg, or an error when cfg is invalid or a
// dependency is missing. It loads nothing: call Refresh (or Run) before
// signing; until then Current returns ErrNoSigningKey.
func New(cfg Config, st Store, pub Publisher, ring *KEKRing, opts ...Option) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if st == nil || pub == nil || ring == nil {
		return nil, errors.New("keys: New needs a store, a publisher and a key-encryption key ring")
	}
	m := &Manager{
		cfg: cfg, st: st, pub: pub, ring: ring, now: time.Now, log: zap.NewNop(),
		signers: map[string]*Signer{}, publics: map[string]parsed{}, failed: map[string]string{},
		kick: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(m)
	}
	m.met = newMetrics(m)
	if m.reg != nil {
		if err := m.met.register(m.reg); err != nil {
			return nil, fmt.Errorf("keys: register metrics: %w", err)
		}
	}
	return m, nil
}

// Current returns the key to sign with right now: the newest active key
// whose ActivateAt has passed, from this replica's last view. It does no I/O
// and takes no lock. It returns an error matching ErrNoSigningKey and
// store.ErrUnavailable (503) when there is none or the view is older than
// MaxStaleness.
func (m *Manager) Current() (*Signer, error) {
	v := m.view.Load()
	if v == nil {
		return nil, unavailable("signing keys not loaded yet")
	}
	now := m.now()
	if age := now.Sub(v.loaded); age > m.cfg.MaxStaleness {
		return nil, unavailable("signing keys last loaded %s ago", age.Round(time.Millisecond))
	}
	for _, s := range v.signers {
		if !s.activateAt.After(now) {
			return s, nil
		}
	}
	return nil, unavailable("no active signing key")
}

// Signer is Current, except that a replica with no usable key first tries
// one refresh (shared by concurrent callers, at most once a second), so that
// a replica started while the store was down recovers on the first request.
func (m *Manager) Signer(ctx context.Context) (*Signer, error) {
	if s, err := m.Current(); err == nil {
		return s, nil
	}
	gen := m.gen.Load()
	m.mu.Lock()
	now := m.now().UnixNano()
	if m.gen.Load() == gen && now-m.lastTry.Load() >= int64(minOnDemandRefresh) {
		m.lastTry.Store(now)
		if err := m.refreshLocked(ctx); err != nil {
			m.log.Warn("on-demand signing key refresh failed", zap.Error(err))
		}
	}
	m.mu.Unlock()
	return m.Current()
}

// Ready returns nil when this replica can sign, and Current's error
// otherwise (for /readyz).
func (m *Manager) Ready() error {
	_, err := m.Current()
	return err
}

// JWKS returns the JSON JWK Set (RFC 7517 §5) of every key in the published,
// active and retiring states, public parts only, as built by the last
// refresh; callers must not modify it. It returns an error matching
// ErrNoSigningKey and store.ErrUnavailable (503) before the first load and
// once the view is older than MaxStaleness: a stale set may still hold a
// revoked key.
func (m *Manager) JWKS() ([]byte, error) {
	v := m.view.Load()
	if v == nil {
		return nil, unavailable("signing keys not loaded yet")
	}
	if age := m.now().Sub(v.loaded); age > m.cfg.MaxStaleness {
		return nil, unavailable("signing keys last loaded %s ago", age.Round(time.Millisecond))
	}
	return v.jwks, nil
}

// MaxAge returns the Cache-Control max-age for JWKS responses: half the
// publish lead time, at most 5 minutes, so that a cache that fetched JWKS
// just before a key was published still learns it before the key signs.
func (m *Manager) MaxAge() time.Duration {
	return min(m.cfg.PublishLeadTime/2, maxJWKSMaxAge)
}

// Notify asks Run to refresh at once, e.g. when the issuer sees a key event
// on the stream published by another replica. It never blocks.
func (m *Manager) Notify() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run refreshes now and then every RefreshInterval (or on Notify) until ctx
// ends, logging failures; the replica keeps its last view meanwhile. It
// returns nil when ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.RefreshInterval)
	defer t.Stop()
	for {
		if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("signing key refresh failed; keeping the last view", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.kick:
		}
	}
}

// Rewrap re-seals every stored key under the active key-encryption key
// (KEKRing.Rewrap) and returns how many it re-sealed.
func (m *Manager) Rewrap(ctx context.Context) (int, error) {
	return m.ring.Rewrap(ctx, m.st)
}

// install builds and publishes the view of keys, loaded at loaded. It runs
// under mu.
func (m *Manager) install(keys []store.SigningKey, loaded time.Time) {
	var (
		inJWKS  []parsed
		kidsKey bytes.Buffer
		actives []store.SigningKey
		counts  = map[store.KeyState]int{}
		invalid int
		seen    = make(map[string]bool, len(keys))
	)
	for _, k := range keys {
		seen[k.KID] = true
		counts[k.State]++
		if k.CreatedAt.After(m.newest) {
			m.newest = k.CreatedAt
		}
		if k.State == store.KeyActive && k.ActivateAt.After(m.newest) {
			m.newest = k.ActivateAt
		}
		p := m.parse(k)
		if p.err != nil {
			invalid++
			continue
		}
		switch k.State {
		case store.KeyActive:
			actives = append(actives, k)
			fallthrough
		case store.KeyPublished, store.KeyRetiring:
			inJWKS = append(inJWKS, p)
			kidsKey.WriteString(k.KID)
			kidsKey.WriteByte(' ')
		}
	}
	for kid := range m.publics {
		if !seen[kid] {
			delete(m.publics, kid)
		}
	}
	if kidsKey.String() != m.jwksKey || m.jwks == nil {
		m.jwks, m.jwksKey = m.buildJWKS(inJWKS), kidsKey.String()
	}

	sort.SliceStable(actives, func(i, j int) bool { return newerActive(actives[i], actives[j]) })
	signers := make([]*Signer, 0, len(actives))
	keep := make(map[string]bool, len(actives))
	var lastRotation time.Time
	for _, k := range actives {
		keep[k.KID] = true
		if k.ActivateAt.After(lastRotation) {
			lastRotation = k.ActivateAt
		}
		if s := m.signer(k); s != nil {
			signers = append(signers, s)
		}
	}
	for kid := range m.signers {
		if !keep[kid] {
			delete(m.signers, kid)
		}
	}
	for kid := range m.failed {
		if !seen[kid] {
			delete(m.failed, kid)
		}
	}
	m.view.Store(&view{loaded: loaded, signers: signers, jwks: m.jwks})
	m.met.observe(counts, invalid, lastRotation)
}

// buildJWKS marshals the set of public keys. A key jwx cannot add or
// marshal is left out (and was logged by parse).
func (m *Manager) buildJWKS(keys []parsed) []byte {
	set := jwk.NewSet()
	for _, p := range keys {
		if err := set.AddKey(p.key); err != nil {
			m.log.Error("signing key left out of JWKS", zap.String("kid", p.key.KeyID()), zap.Error(err))
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		m.log.Error("cannot encode JWKS; serving an empty set", zap.Error(err))
		return []byte(`{"keys":[]}`)
	}
	return b
}

// parse returns the checked public JWK of k, cached by kid and bytes.
func (m *Manager) parse(k store.SigningKey) parsed {
	if p, ok := m.publics[k.KID]; ok && bytes.Equal(p.raw, k.PublicJWK) {
		return p
	}
	key, tp, err := parsePublic(k)
	p := parsed{raw: bytes.Clone(k.PublicJWK), key: key, thumbprint: tp, err: err}
	m.publics[k.KID] = p
	if err != nil {
		m.log.Error("stored signing key is invalid; it is left out of JWKS and never signs",
			zap.String("kid", k.KID), zap.String("state", string(k.State)), zap.Error(err))
	}
	return p
}

// signer returns the decrypted signer of active key k, decrypting it once.
// It returns nil, logging once per key and error, when the key cannot be
// opened here (its KEK not in this replica's ring, a tampered blob).
func (m *Manager) signer(k store.SigningKey) *Signer {
	if s, ok := m.signers[k.KID]; ok && s.activateAt.Equal(k.ActivateAt) {
		return s
	}
	if s, ok := m.signers[k.KID]; ok {
		// Same key, new ActivateAt (an emergency activation moved it).
		s = newSigner(s.kid, s.alg, k.ActivateAt, s.priv)
		m.signers[k.KID] = s
		return s
	}
	priv, err := unseal(m.ring, k, m.publics[k.KID].key)
	if err != nil {
		m.met.unsealFailures.Inc()
		if m.failed[k.KID] != err.Error() {
			m.failed[k.KID] = err.Error()
			m.log.Error("cannot open the active signing key on this replica; it cannot sign",
				zap.String("kid", k.KID), zap.String("kek_id", k.KEKID), zap.Error(err))
		}
		return nil
	}
	delete(m.failed, k.KID)
	s := newSigner(k.KID, k.Alg, k.ActivateAt, priv)
	m.signers[k.KID] = s
	return s
}

// newerActive orders active keys newest first: the latest ActivateAt, then
// the latest CreatedAt, then the greatest kid. Every replica orders alike.
func newerActive(a, b store.SigningKey) bool {
	if !a.ActivateAt.Equal(b.ActivateAt) {
		return a.ActivateAt.After(b.ActivateAt)
	}
	return newerCreated(a, b)
}

// newerCreated orders keys by CreatedAt, newest first, then kid.
func newerCreated(a, b store.SigningKey) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.KID > b.KID
}
