package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
)

// Verifier verifies RFC 9068 access tokens locally and rejects the revoked
// ones. Build it with New, call Start once, then Verify from any number of
// goroutines; Close stops it.
type Verifier struct {
	issuer   string
	audience string
	skew     time.Duration
	skewS    int64 // skew in whole seconds, rounded up
	maxLifeS int64 // MaxTokenLifetime in whole seconds, rounded up
	bound    time.Duration
	window   time.Duration
	sweep    time.Duration
	refresh  time.Duration
	now      func() time.Time
	obs      *Observer

	keys        *keyring
	deny        *denyState
	cache       *tokenCache
	revocations *follower
	keyEvents   *follower

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	starting  atomic.Bool
	started   atomic.Bool
	closeOnce sync.Once
}

// New returns a Verifier for cfg, or an error naming every invalid setting.
// It does no I/O: Start fetches JWKS and follows the streams.
func New(cfg Config, opts ...Option) (*Verifier, error) {
	s := &settings{
		prefix:          bus.DefaultPrefix,
		skew:            DefaultClockSkew,
		bound:           DefaultStalenessBound,
		cacheSize:       DefaultCacheSize,
		unknownInterval: DefaultUnknownKIDInterval,
		refreshInterval: DefaultJWKSRefreshInterval,
		sweepInterval:   DefaultSweepInterval,
		client:          &http.Client{Timeout: fetchTimeout},
		now:             time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	if s.replayWindow == 0 {
		s.replayWindow = cfg.MaxTokenLifetime + s.skew
	}
	if err := validate(cfg, s); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	obs := s.obs
	v := &Verifier{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		skew:     s.skew,
		skewS:    ceilSeconds(s.skew),
		maxLifeS: ceilSeconds(cfg.MaxTokenLifetime),
		bound:    s.bound,
		window:   s.replayWindow,
		sweep:    s.sweepInterval,
		refresh:  s.refreshInterval,
		now:      s.now,
		obs:      &obs,
		deny:     newDenyState(s.skew, cfg.MaxTokenLifetime),
		cache:    newTokenCache(s.cacheSize),
		ctx:      ctx,
		cancel:   cancel,
	}
	v.keys = newKeyring(ctx, cfg.JWKSURL, s.client, s.unknownInterval, v.obs)
	v.keys.onDrop = v.cache.dropKID
	v.revocations = &follower{
		stream: bus.StreamName(s.prefix, events.StreamRevocations),
		js:     cfg.JetStream,
		start: func() []bus.ConsumerOption {
			// The stream stores events by the server's clock, not ours.
			return []bus.ConsumerOption{bus.WithStartTime(time.Now().Add(-v.window))}
		},
		resume: true,
		apply:  v.applyRevocation,
		now:    v.now,
		obs:    v.obs,
	}
	v.keyEvents = &follower{
		stream: bus.StreamName(s.prefix, events.StreamKeys),
		js:     cfg.JetStream,
		// The key stream keeps the latest event per kid; replaying them all
		// again after a failure is idempotent and cheap.
		start: func() []bus.ConsumerOption { return []bus.ConsumerOption{bus.WithLastPerSubject()} },
		apply: func(e events.Event, _ bus.Meta, r *run) { v.keys.apply(e, r.ready.Load()) },
		now:   v.now,
		obs:   v.obs,
	}
	return v, nil
}

// Start fetches JWKS and starts following the revocation and key streams,
// JWKS refreshes and sweeps in the background until Close. It returns an
// error, and the edge stays closed, when JWKS cannot be fetched: an edge
// without keys verifies nothing. Verify fails with ErrStale until the
// streams are replayed and a heartbeat proves the edge current; WaitCurrent
// waits for that.
func (v *Verifier) Start(ctx context.Context) error {
	if !v.starting.CompareAndSwap(false, true) {
		return errors.New("edge: Start called twice")
	}
	if err := v.keys.refresh(ctx); err != nil && !errors.Is(err, errJWKSMismatch) {
		v.starting.Store(false)
		return fmt.Errorf("edge: initial JWKS fetch: %w", err)
	}
	v.started.Store(true)
	v.wg.Go(func() { v.keys.loop(v.ctx, v.refresh) })
	v.wg.Go(func() { v.revocations.loop(v.ctx) })
	v.wg.Go(func() { v.keyEvents.loop(v.ctx) })
	v.wg.Go(v.sweepLoop)
	return nil
}

// Close stops the background work and waits for it. Verify then fails with
// ErrStale. It always returns nil.
func (v *Verifier) Close() error {
	v.closeOnce.Do(func() {
		v.cancel()
		v.started.Store(false)
		v.wg.Wait()
	})
	return nil
}

// WaitCurrent waits until the edge is current (Verify can succeed) or ctx
// ends, and returns ctx's error in the latter case, for readiness at start.
func (v *Verifier) WaitCurrent(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !v.current(v.now()) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("edge: not current: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Verify returns the claims of token when it is a valid, unrevoked access
// token for this edge's issuer and audience, or an *Error saying why not
// (errors.Is with the Err sentinels; ReasonOf for a metric label). ctx bounds
// the JWKS refetch a token with an unknown kid may trigger.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	return v.VerifyScopes(ctx, token)
}

// VerifyScopes is Verify, and also requires every one of scopes in the
// token's scope claim (ErrInsufficientScope otherwise, RFC 6750 §3.1).
func (v *Verifier) VerifyScopes(ctx context.Context, token string, scopes ...string) (Claims, error) {
	e, err := v.verify(ctx, token, scopes)
	if v.obs.OnDecision != nil {
		v.obs.OnDecision(ReasonOf(err))
	}
	if err != nil {
		return Claims{}, err
	}
	return e.claims.clone(), nil
}

// Details of ErrRevoked, allocated once.
var revokedBy = map[string]error{
	"jti":     ErrRevoked.with("by jti"),
	"family":  ErrRevoked.with("refresh family revoked"),
	"subject": ErrRevoked.with("subject cut-off"),
	"client":  ErrRevoked.with("client cut-off"),
}

// verify is the hot path, top to bottom: currency, the cache (or a full
// verification of a new token), then the checks no cache may skip.
func (v *Verifier) verify(ctx context.Context, token string, scopes []string) (*cacheEntry, error) {
	now := v.now()
	// 1. Fail closed unless the deny state and keys are current.
	if !v.current(now) {
		return nil, ErrStale
	}
	if len(token) == 0 || len(token) > maxTokenBytes {
		return nil, ErrMalformed.with("empty or longer than 16 KiB")
	}

	// 2. A cached token skips the signature check, and only that, while
	//    its key is still the one the current key set has for its kid.
	ks := v.keys.current()
	k := keyOf(token)
	e := v.cache.get(&k)
	if e != nil && ks.keys[e.claims.KeyID] != e.key {
		v.cache.remove(&k)
		e = nil
	}
	if e == nil {
		var err error
		if e, err = v.verifyNew(ctx, token, ks); err != nil {
			return nil, err
		}
		v.cache.put(&k, e, now.Unix()-v.skewS)
	}

	// 3. Time (RFC 7519 §4.1.4, §4.1.5), with the skew allowance.
	if err := checkTimes(e, now, v.skew); err != nil {
		return nil, err
	}

	// 4. The deny state: jti, family, subject and client cut-offs.
	if by := v.deny.denied(e.jti, e.claims.FID, e.claims.Subject, e.claims.ClientID, e.iat); by != "" {
		return nil, revokedBy[by]
	}

	// 5. Scopes (RFC 6750 §3.1): last, so that 403 only ever answers a
	//    token that is otherwise valid.
	for _, s := range scopes {
		if !e.claims.HasScope(s) {
			return nil, ErrInsufficientScope
		}
	}
	return e, nil
}

// b64 decodes JWS segments: unpadded base64url with canonical trailing bits.
var b64 = base64.RawURLEncoding.Strict()

// verifyNew verifies a token the cache does not hold: verifyJWS, then the
// audience this edge protects (RFC 9068 §4).
func (v *Verifier) verifyNew(ctx context.Context, token string, ks *keySet) (*cacheEntry, error) {
	e, err := verifyJWS(ctx, token, v.keys, ks, v.issuer, v.maxLifeS+v.skewS)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(e.claims.Audience, v.audience) {
		return nil, ErrWrongAudience
	}
	return e, nil
}

// checkTimes applies the checks no cache may skip to a verified token: exp,
// nbf and iat against now with the skew allowance (RFC 7519 §4.1.4, §4.1.5).
// A token issued in the future could dodge a cut-off: it is refused too.
func checkTimes(e *cacheEntry, now time.Time, skew time.Duration) error {
	if !now.Before(e.claims.ExpiresAt.Add(skew)) {
		return ErrExpired
	}
	if e.nbf != 0 && now.Before(e.claims.NotBefore.Add(-skew)) {
		return ErrNotYetValid
	}
	if e.claims.IssuedAt.After(now.Add(skew)) {
		return ErrNotYetValid.with("iat in the future")
	}
	return nil
}

// verifyJWS is the verification the Verifier and the Checker share, for a
// token no cache holds: its compact JWS form, header (typ, alg, crit),
// the signature with the algorithm bound to its key (kr refetches JWKS,
// rate-limited, for an unknown kid), and the claims that do not depend on
// time or on the audience: iss and the lifetime, which may not exceed
// maxLife seconds (RFC 9068 §4).
func verifyJWS(ctx context.Context, token string, kr *keyring, ks *keySet, issuer string, maxLife int64) (*cacheEntry, error) {
	// Compact JWS: exactly three segments (a JWE has five).
	h := strings.IndexByte(token, '.')
	if h < 0 {
		return nil, ErrMalformed.with("not a compact JWS")
	}
	p := strings.IndexByte(token[h+1:], '.')
	if p < 0 {
		return nil, ErrMalformed.with("not a compact JWS")
	}
	p += h + 1
	if strings.IndexByte(token[p+1:], '.') >= 0 {
		return nil, ErrMalformed.with("not a compact JWS")
	}

	// Header: typ, alg, kid.
	raw, err := b64.DecodeString(token[:h])
	if err != nil {
		return nil, ErrMalformed.with("header is not base64url")
	}
	var hdr header
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil, ErrMalformed.with("header is not a JSON object")
	}
	if hdr.Crit != nil {
		return nil, ErrMalformed.with("critical header extensions are not supported")
	}
	if !acceptedType(hdr.Typ) {
		return nil, ErrWrongType
	}
	if !allowedAlg(hdr.Alg) {
		return nil, ErrBadAlgorithm
	}

	// Key: a revoked kid is refused even when a stale JWKS still serves
	// it; an unknown one may be a new key, worth a (rate-limited) refetch.
	if _, revoked := ks.revoked[hdr.Kid]; revoked {
		return nil, ErrKeyRevoked
	}
	key := ks.keys[hdr.Kid]
	if key == nil && hdr.Kid != "" {
		kr.refreshForUnknown(ctx)
		ks = kr.current()
		if _, revoked := ks.revoked[hdr.Kid]; revoked {
			return nil, ErrKeyRevoked
		}
		key = ks.keys[hdr.Kid]
	}
	if key == nil {
		return nil, ErrUnknownKID
	}
	// The key's alg, from its JWK, is the only one it verifies with.
	if hdr.Alg != key.alg {
		return nil, ErrBadAlgorithm.with("alg differs from the key's")
	}

	// Signature over the signing input, exactly as received.
	sig, err := b64.DecodeString(token[p+1:])
	if err != nil {
		return nil, ErrMalformed.with("signature is not base64url")
	}
	if !key.verify(token[:p], sig) {
		return nil, ErrBadSignature
	}

	// Claims: parsed once, into a small struct.
	raw, err = b64.DecodeString(token[h+1 : p])
	if err != nil {
		return nil, ErrMalformed.with("payload is not base64url")
	}
	var w wireClaims
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, ErrMalformed.with("payload is not a JSON claims set")
	}
	c, iat, exp, nbf, err := parsedClaims(&w, hdr.Kid)
	if err != nil {
		return nil, ErrMalformed.wrap(err)
	}
	if c.Issuer != issuer {
		return nil, ErrWrongIssuer
	}
	// Revocations are replayed for MaxTokenLifetime: a token living longer
	// could outlive the record of its revocation.
	if exp-iat > maxLife {
		return nil, ErrLifetime
	}
	return &cacheEntry{claims: c, key: key, jti: hashJTI(c.JTI), iat: iat, exp: exp, nbf: nbf}, nil
}

// current reports whether the edge may verify at now: keys fetched, the key
// stream caught up, and the revocation stream current — it applied an event
// with nothing pending behind it (a heartbeat at least) within the bound.
func (v *Verifier) current(now time.Time) bool {
	if !v.started.Load() {
		return false
	}
	r := v.revocations.state.Load()
	if r == nil || r.stale.Load() {
		return false
	}
	lc := r.lastCurrent.Load()
	if lc == 0 || now.UnixNano()-lc > int64(v.bound) {
		return false
	}
	k := v.keyEvents.state.Load()
	return k != nil && !k.stale.Load() && k.ready.Load()
}

// applyRevocation is the revocation stream's handler.
func (v *Verifier) applyRevocation(e events.Event, m bus.Meta, r *run) {
	if !r.started {
		// The first event of a replay says how many follow it.
		r.started = true
		v.deny.reserve(int(min(m.Pending, maxReserve)) + 1)
	}
	if v.deny.apply(e, v.now()) && v.obs.OnRevocationApplied != nil {
		v.obs.OnRevocationApplied(e.Type, e.Time, !r.ready.Load())
	}
}

func (v *Verifier) sweepLoop() {
	t := time.NewTicker(v.sweep)
	defer t.Stop()
	for {
		select {
		case <-v.ctx.Done():
			return
		case <-t.C:
			v.sweepNow()
		}
	}
}

// sweepNow drops deny entries and cached tokens that can no longer matter.
func (v *Verifier) sweepNow() {
	now := v.now()
	v.deny.sweep(now)
	v.cache.sweep(now.Unix() - v.skewS)
}

// Status is a snapshot of the edge, for readiness probes, metrics and the
// "revocation not enforced (edge stale)" runbook.
type Status struct {
	// Current is true when Verify can succeed.
	Current bool
	// Revocations and Keys are the two stream consumers.
	Revocations StreamStatus
	Keys        StreamStatus
	// Deny counts the deny state's entries.
	Deny DenySizes
	// KnownKeys is how many keys tokens can be verified with; RevokedKeys
	// how many kids are revoked.
	KnownKeys   int
	RevokedKeys int
	// CachedTokens is how many verified tokens the cache holds.
	CachedTokens int
	// JWKSFetched is when JWKS was last fetched successfully; JWKSError is
	// the last fetch's problem, nil when it was clean.
	JWKSFetched time.Time
	JWKSError   error
}

// Status returns a snapshot of the edge. It takes locks: call it for probes
// and metrics, not per request.
func (v *Verifier) Status() Status {
	now := v.now()
	st := Status{
		Current:      v.current(now),
		Revocations:  v.revocations.status(now),
		Keys:         v.keyEvents.status(now),
		Deny:         v.deny.sizes(),
		CachedTokens: v.cache.len(),
	}
	st.Revocations.Current = v.started.Load() && !st.Revocations.Stale && !st.Revocations.LastCurrent.IsZero() &&
		now.Sub(st.Revocations.LastCurrent) <= v.bound
	st.Keys.Current = v.started.Load() && !st.Keys.Stale && st.Keys.CaughtUp
	st.KnownKeys, st.RevokedKeys, st.JWKSFetched, st.JWKSError = v.keys.status()
	return st
}
