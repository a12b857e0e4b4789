package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
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
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// DefaultCheckerRefreshInterval is how often a Checker refetches JWKS
// untriggered. A Checker follows no key stream, so this bounds how long a
// key removed from JWKS (retired or revoked as compromised) still verifies.
const DefaultCheckerRefreshInterval = 30 * time.Second

// Checker verifies Valet access tokens with the edge's own code — typ, the
// signature with the algorithm bound to the JWKS key, iss, exp, nbf, iat and
// the lifetime bound — but without a stream: it keeps no deny state and
// requires no audience. It is for services that read deny state from the
// store (introspection, revocation, admin APIs) and decide about the
// audience themselves. Build it with NewChecker, Start it, then call Check
// from any number of goroutines; Close stops it.
type Checker struct {
	issuer   string
	skew     time.Duration
	maxLife  int64 // seconds, MaxTokenLifetime plus skew, rounded up
	skewS    int64
	refresh  time.Duration
	now      func() time.Time
	keys     *keyring
	cache    *tokenCache
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	started  atomic.Bool
	starting atomic.Bool
	once     sync.Once
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
	if len(errs) > 0 {
		return nil, fmt.Errorf("edge: invalid checker configuration: %w", errors.Join(errs...))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Checker{
		issuer:  cfg.Issuer,
		skew:    cfg.ClockSkew,
		skewS:   ceilSeconds(cfg.ClockSkew),
		maxLife: ceilSeconds(cfg.MaxTokenLifetime) + ceilSeconds(cfg.ClockSkew),
		refresh: cfg.RefreshInterval,
		now:     cfg.Now,
		cache:   newTokenCache(cfg.CacheSize),
		ctx:     ctx,
		cancel:  cancel,
	}
	c.keys = newKeyring(ctx, cfg.JWKSURL, cfg.HTTPClient, cfg.UnknownKIDInterval, &Observer{})
	return c, nil
}

// Start fetches JWKS and then refetches it in the background until Close.
// It returns the fetch error when JWKS cannot be fetched; the Checker keeps
// retrying in the background, and Check fails with ErrStale (503: cannot
// decide) until a fetch succeeds. Start may be called once.
func (c *Checker) Start(ctx context.Context) error {
	if !c.starting.CompareAndSwap(false, true) {
		return errors.New("edge: Checker.Start called twice")
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
		return fmt.Errorf("edge: initial JWKS fetch: %w", err)
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

// Ready returns nil once JWKS has been fetched, or why not (readiness).
func (c *Checker) Ready() error {
	if !c.started.Load() {
		return errors.New("checker not started")
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

// errNoKeys is the Check error while JWKS cannot be fetched: the token may
// well be valid, so it is not the token's fault (a 503, never "inactive").
var errNoKeys = ErrStale.with("JWKS unavailable")

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
