package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
)

// CheckerConfig configures a Checker.
type CheckerConfig struct {
	// Issuer is the exact iss every token must carry.
	Issuer string
	// JWKSURL is the issuer's JWKS, fetched over HTTPS (plain HTTP only for
	// a loopback host), refetched every RefreshInterval and, rate-limited,
	// when a token names an unknown kid — exactly as the edge does.
	JWKSURL string
	// MaxTokenLifetime is the longest access-token lifetime of the cluster;
	// tokens claiming a longer one (beyond the skew) are refused.
	MaxTokenLifetime time.Duration
	// ClockSkew is the allowance applied to exp, nbf and iat. Default
	// DefaultClockSkew; at most 5 minutes.
	ClockSkew time.Duration
	// CacheSize is how many verified tokens are cached by SHA-256 of the
	// token, skipping only their signature check; 0 selects
	// DefaultCacheSize, a negative value disables the cache.
	CacheSize int
	// RefreshInterval is how often JWKS is refetched without a trigger.
	// Default DefaultCheckerRefreshInterval.
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between two JWKS fetches caused
	// by unknown kids. Default DefaultUnknownKIDInterval.
	UnknownKIDInterval time.Duration
	// HTTPClient fetches JWKS. Default a client with a 10 s timeout.
	HTTPClient *http.Client
	// JetStream, when set, is the connection the Checker follows the
	// cluster's key stream on, exactly as the edge does: every key event
	// is a signal to refetch JWKS at once (key material never comes from
	// the stream); a kid named by key.retired or key.revoked stops
	// verifying the moment the event arrives, and the tokens cached under
	// it are dropped; a revoked kid never verifies again, even if a stale
	// JWKS still serves it (MISSION §0 invariant 4). Check fails with
	// ErrStale until the stream's replay is done. Without a JetStream only
	// RefreshInterval bounds how long a key removed from JWKS verifies.
	JetStream JetStream
	// SubjectPrefix is the subject prefix of the cluster's streams, used
	// with JetStream. Default bus.DefaultPrefix ("valet").
	SubjectPrefix string
	// Observer receives the JWKS and key-stream signals (OnJWKSFetch,
	// OnKeyLearned, OnStreamError); a Checker never calls OnDecision or
	// OnRevocationApplied.
	Observer Observer
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// DefaultCheckerRefreshInterval is how often a Checker refetches JWKS
// untriggered. For a Checker without a JetStream it bounds how long a key
// removed from JWKS (retired or revoked as compromised) still verifies; one
// that follows the key stream learns of it within milliseconds.
const DefaultCheckerRefreshInterval = 30 * time.Second

// Checker verifies Valet access tokens with the edge's own code — typ, the
// signature with the algorithm bound to the JWKS key, iss, exp, nbf, iat and
// the lifetime bound — but without the revocation stream: it keeps no deny
// state and requires no audience. Given a JetStream, it follows the key
// stream as the edge does. It is for services that read deny state from the
// store (introspection, revocation, admin APIs) and decide about the
// audience themselves. Build it with NewChecker, Start it, then call Check
// from any number of goroutines; Close stops it.
type Checker struct {
	issuer  string
	skew    time.Duration
	maxLife int64 // seconds, MaxTokenLifetime plus skew, rounded up
	skewS   int64
	refresh time.Duration
	now     func() time.Time
	obs     *Observer
	keys    *keyring
	cache   *tokenCache
	// keyEvents follows the key stream; nil without a JetStream.
	keyEvents *follower
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	started   atomic.Bool
	starting  atomic.Bool
	once      sync.Once
}

// NewChecker returns a Checker for cfg, or an error naming every invalid
// setting. It does no I/O: Start fetches JWKS.
func NewChecker(cfg CheckerConfig) (*Checker, error) {
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultCheckerRefreshInterval
	}
	if cfg.UnknownKIDInterval == 0 {
		cfg.UnknownKIDInterval = DefaultUnknownKIDInterval
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = bus.DefaultPrefix
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("Issuer is required"))
	}
	if cfg.MaxTokenLifetime <= 0 {
		errs = append(errs, errors.New("MaxTokenLifetime is required"))
	}
	if cfg.ClockSkew < 0 || cfg.ClockSkew > 5*time.Minute {
		errs = append(errs, fmt.Errorf("clock skew %s must be within 0..5m", cfg.ClockSkew))
	}
	if cfg.RefreshInterval < 0 || cfg.UnknownKIDInterval < 0 {
		errs = append(errs, errors.New("JWKS intervals must not be negative"))
	}
	if err := checkJWKSURL(cfg.JWKSURL); err != nil {
		errs = append(errs, err)
	}
	if !validPrefix(cfg.SubjectPrefix) {
		errs = append(errs, fmt.Errorf("subject prefix %q must be one token of [A-Za-z0-9_-]", cfg.SubjectPrefix))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("edge: invalid checker configuration: %w", errors.Join(errs...))
	}
	ctx, cancel := context.WithCancel(context.Background())
	obs := cfg.Observer
	c := &Checker{
		issuer:  cfg.Issuer,
		skew:    cfg.ClockSkew,
		skewS:   ceilSeconds(cfg.ClockSkew),
		maxLife: ceilSeconds(cfg.MaxTokenLifetime) + ceilSeconds(cfg.ClockSkew),
		refresh: cfg.RefreshInterval,
		now:     cfg.Now,
		obs:     &obs,
		cache:   newTokenCache(cfg.CacheSize),
		ctx:     ctx,
		cancel:  cancel,
	}
	c.keys = newKeyring(ctx, cfg.JWKSURL, cfg.HTTPClient, cfg.UnknownKIDInterval, c.obs)
	c.keys.onDrop = c.cache.dropKID
	if cfg.JetStream != nil {
		c.keyEvents = &follower{
			stream: bus.StreamName(cfg.SubjectPrefix, events.StreamKeys),
			js:     cfg.JetStream,
			// The key stream keeps the latest event per kid: replaying it
			// all again after a failure is idempotent and cheap.
			start: func() []bus.ConsumerOption { return []bus.ConsumerOption{bus.WithLastPerSubject()} },
			apply: func(e events.Event, _ bus.Meta, r *run) { c.keys.apply(e, r.ready.Load()) },
			now:   cfg.Now,
			obs:   c.obs,
		}
	}
	return c, nil
}

// Start fetches JWKS and then refetches it in the background until Close;
// with a JetStream it also follows the key stream and waits, within ctx, for
// its replay. It returns the fetch error when JWKS cannot be fetched, or
// ctx's error when the replay did not finish in time; the Checker keeps
// trying in the background either way, and Check fails with ErrStale (503:
// cannot decide) until it has both. Start may be called once.
func (c *Checker) Start(ctx context.Context) error {
	if !c.starting.CompareAndSwap(false, true) {
		return errors.New("edge: Checker.Start called twice")
	}
	if c.keyEvents != nil {
		// Before the fetch, so that its replay overlaps the fetch.
		c.wg.Go(func() { c.keyEvents.loop(c.ctx) })
	}
	err := c.keys.refresh(ctx)
	c.started.Store(true)
	c.wg.Go(func() { c.keys.loop(c.ctx, c.refresh) })
	c.wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-t.C:
				c.cache.sweep(c.now().Unix() - c.skewS)
			}
		}
	})
	if err != nil {
		c.keys.trigger()
		// A kid announced on the stream but not served yet is retried in
		// the background; the keys JWKS does serve are usable.
		if !errors.Is(err, errJWKSMismatch) {
			return fmt.Errorf("edge: initial JWKS fetch: %w", err)
		}
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for c.keyStreamErr() != nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("edge: key stream not replayed: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Close stops the background refetches. It always returns nil.
func (c *Checker) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.started.Store(false)
		c.wg.Wait()
	})
	return nil
}

// Ready returns nil once JWKS has been fetched and, with a JetStream, the
// key stream replayed and not stale; otherwise why not (readiness).
func (c *Checker) Ready() error {
	if !c.started.Load() {
		return errors.New("checker not started")
	}
	if c.keyEvents != nil {
		st := c.keyEvents.status(c.now())
		switch {
		case st.Stale:
			return fmt.Errorf("key stream stale: %w", st.Err)
		case !st.CaughtUp:
			return errors.New("key stream not replayed yet")
		}
	}
	_, _, fetched, err := c.keys.status()
	if fetched.IsZero() {
		if err == nil {
			err = errors.New("JWKS not fetched yet")
		}
		return err
	}
	return nil
}

// Check errors that are not the token's fault (a 503, never "inactive"):
// JWKS cannot be fetched, or the key stream is not followed yet or stale,
// so a revoked kid could pass.
var (
	errNoKeys      = ErrStale.with("JWKS unavailable")
	errKeysBehind  = ErrStale.with("key stream not replayed")
	errKeysStalled = ErrStale.with("key stream stale")
)

// keyStreamErr returns nil when the key stream is not followed, or is
// replayed and not stale; otherwise the Check error.
func (c *Checker) keyStreamErr() error {
	if c.keyEvents == nil {
		return nil
	}
	r := c.keyEvents.state.Load()
	switch {
	case r == nil || !r.ready.Load():
		return errKeysBehind
	case r.stale.Load():
		return errKeysStalled
	}
	return nil
}

// Check returns the claims of token when it is an access token of this
// issuer that verifies now, or an *Error saying why not (errors.Is with the
// Err sentinels). It checks what the edge's Verify checks except the
// audience, scopes and deny state, which are the caller's. An error
// matching ErrStale (StatusCode 503) means the keys could not be fetched:
// the caller must not answer as if the token were invalid. ctx bounds the
// JWKS refetch an unknown kid may trigger.
func (c *Checker) Check(ctx context.Context, token string) (Claims, error) {
	e, err := c.check(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	return e.claims.clone(), nil
}

func (c *Checker) check(ctx context.Context, token string) (*cacheEntry, error) {
	if !c.started.Load() {
		return nil, errNoKeys
	}
	if err := c.keyStreamErr(); err != nil {
		return nil, err
	}
	now := c.now()
	if len(token) == 0 || len(token) > maxTokenBytes {
		return nil, ErrMalformed.with("empty or longer than 16 KiB")
	}
	// A cached token skips the signature check, and only that, while its
	// key is still the one the current key set has for its kid.
	ks := c.keys.current()
	k := keyOf(token)
	e := c.cache.get(&k)
	if e != nil && ks.keys[e.claims.KeyID] != e.key {
		c.cache.remove(&k)
		e = nil
	}
	if e == nil {
		var err error
		e, err = verifyJWS(ctx, token, c.keys, ks, c.issuer, c.maxLife)
		if err != nil {
			if errors.Is(err, ErrUnknownKID) && c.keysUnavailable() {
				return nil, errNoKeys
			}
			return nil, err
		}
		c.cache.put(&k, e, now.Unix()-c.skewS)
	}
	if err := checkTimes(e, now, c.skew); err != nil {
		return nil, err
	}
	return e, nil
}

// keysUnavailable reports whether no JWKS fetch ever succeeded or the last
// one attempted failed (or is still running): an unknown kid then proves
// nothing about the token.
func (c *Checker) keysUnavailable() bool {
	r := c.keys
	r.fmu.Lock()
	lastStart, inFlight := r.lastStart, r.call != nil
	r.fmu.Unlock()
	r.mu.Lock()
	fetched := r.fetchedAt
	r.mu.Unlock()
	return fetched.IsZero() || inFlight || fetched.Before(lastStart)
}
