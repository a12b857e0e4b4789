package edge

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/valetauth/valet/events"
)

// The JWS algorithms the edge verifies (RFC 7518 §3.1, RFC 8037 §3.1): the
// ones Valet's issuers sign with. "none", every HMAC algorithm and anything
// else are refused before a key is even looked up.
const (
	algES256 = "ES256"
	algEdDSA = "EdDSA"
	algRS256 = "RS256"
)

func allowedAlg(alg string) bool {
	return alg == algES256 || alg == algEdDSA || alg == algRS256
}

// Limits on fetching JWKS.
const (
	maxJWKSBytes  = 1 << 20
	fetchTimeout  = 10 * time.Second
	minRetryWait  = 100 * time.Millisecond
	maxRetryWait  = 30 * time.Second
	minRSAKeyBits = 2048
)

// verifyKey is one public key from JWKS, bound to the one algorithm its JWK
// names: a token is verified with key.alg and only if its header says the
// same, so no header can pick another algorithm for the key.
type verifyKey struct {
	kid        string
	alg        string
	thumbprint string // RFC 7638 SHA-256, base64url
	ec         *ecdsa.PublicKey
	ed         ed25519.PublicKey
	rsa        *rsa.PublicKey
}

// verify reports whether sig is k's signature over the JWS signing input.
func (k *verifyKey) verify(input string, sig []byte) bool {
	switch k.alg {
	case algES256:
		// RFC 7518 §3.4: R and S, 32 bytes each, not DER.
		if len(sig) != 64 {
			return false
		}
		d := sha256.Sum256([]byte(input))
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.ec, d[:], r, s)
	case algEdDSA:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, []byte(input), sig)
	case algRS256:
		d := sha256.Sum256([]byte(input))
		return rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, d[:], sig) == nil
	}
	return false
}

// toVerifyKey accepts a JWK only if it is a public signing key with a kid
// and an allowed alg that fits its type: EC P-256 for ES256, Ed25519 for
// EdDSA, RSA of at least 2048 bits for RS256.
func toVerifyKey(k jwk.Key) (*verifyKey, error) {
	kid := k.KeyID()
	if kid == "" {
		return nil, errors.New("a JWK has no kid")
	}
	switch k.(type) {
	case jwk.ECDSAPrivateKey, jwk.RSAPrivateKey, jwk.OKPPrivateKey, jwk.SymmetricKey:
		return nil, fmt.Errorf("JWK %q is private or symmetric key material", kid)
	}
	if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return nil, fmt.Errorf("JWK %q has use %q, not sig", kid, u)
	}
	vk := &verifyKey{kid: kid, alg: k.Algorithm().String()}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return nil, fmt.Errorf("JWK %q: %w", kid, err)
	}
	ok := false
	switch vk.alg {
	case algES256:
		vk.ec, ok = raw.(*ecdsa.PublicKey)
		ok = ok && vk.ec.Curve == elliptic.P256()
	case algEdDSA:
		vk.ed, ok = raw.(ed25519.PublicKey)
		ok = ok && len(vk.ed) == ed25519.PublicKeySize
	case algRS256:
		vk.rsa, ok = raw.(*rsa.PublicKey)
		ok = ok && vk.rsa.N.BitLen() >= minRSAKeyBits
	default:
		return nil, fmt.Errorf("JWK %q has alg %q; want ES256, EdDSA or RS256", kid, vk.alg)
	}
	if !ok {
		return nil, fmt.Errorf("JWK %q is not a valid %s public key", kid, vk.alg)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("JWK %q thumbprint: %w", kid, err)
	}
	vk.thumbprint = base64.RawURLEncoding.EncodeToString(tp)
	return vk, nil
}

// parseJWKS returns the usable keys of a JWK Set by kid, and what was wrong
// with the others. A kid that appears twice is dropped: it is ambiguous.
func parseJWKS(body []byte) (map[string]*verifyKey, []error, error) {
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, nil, fmt.Errorf("parse JWKS: %w", err)
	}
	keys := make(map[string]*verifyKey, set.Len())
	dup := map[string]bool{}
	var problems []error
	for i := range set.Len() {
		k, _ := set.Key(i)
		vk, err := toVerifyKey(k)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if _, seen := keys[vk.kid]; seen || dup[vk.kid] {
			dup[vk.kid] = true
			delete(keys, vk.kid)
			problems = append(problems, fmt.Errorf("kid %q appears more than once", vk.kid))
			continue
		}
		keys[vk.kid] = vk
	}
	return keys, problems, nil
}

// keySet is the immutable set Verify reads: the keys it may verify with, and
// the kids revoked as compromised, which it never accepts again.
type keySet struct {
	keys    map[string]*verifyKey
	revoked map[string]struct{}
}

// pin is what the key stream says about a kid: JWKS must serve a key with
// this alg and RFC 7638 thumbprint under it.
type pin struct {
	alg, thumbprint string
}

// errJWKSMismatch is returned by a refresh after which a kid announced on the
// key stream is missing from JWKS or differs from its announcement (the
// "JWKS mismatch after rotation" failure): the key stays unusable, and the
// refresher retries with backoff.
var errJWKSMismatch = errors.New("JWKS does not match the key stream")

// keyring learns keys from the issuer's JWKS over HTTP(S) and combines them
// with the key stream: announcements pin a kid's thumbprint, retirements drop
// it, revocations deny it forever. Key material never comes from the stream.
type keyring struct {
	url         string
	client      *http.Client
	minInterval time.Duration // between refetches caused by unknown kids
	obs         *Observer
	ctx         context.Context // bounds every fetch; cancelled by Close

	set atomic.Pointer[keySet]

	mu        sync.Mutex
	fetched   map[string]*verifyKey // usable keys of the last JWKS fetched
	pins      map[string]pin
	retired   map[string]struct{}
	revoked   map[string]struct{}
	waiting   map[string]time.Time // announced kids not yet usable → event time
	fetchedAt time.Time            // last successful fetch
	lastErr   error                // of the last fetch, nil after a clean one

	// A single fetch is in flight at a time; callers join it.
	fmu       sync.Mutex
	call      *fetchCall
	lastStart time.Time

	kick chan struct{}

	// onDrop, when set, is told a kid whose tokens can no longer verify
	// (newly retired or revoked on the key stream), so that tokens cached
	// under it are dropped at once rather than on their next lookup. It is
	// set before the stream is followed and called outside the locks.
	onDrop func(kid string)
}

type fetchCall struct {
	done chan struct{}
	err  error
}

func newKeyring(ctx context.Context, url string, client *http.Client, minInterval time.Duration, obs *Observer) *keyring {
	r := &keyring{
		url: url, client: client, minInterval: minInterval, obs: obs, ctx: ctx,
		fetched: map[string]*verifyKey{},
		pins:    map[string]pin{},
		retired: map[string]struct{}{},
		revoked: map[string]struct{}{},
		waiting: map[string]time.Time{},
		kick:    make(chan struct{}, 1),
	}
	r.set.Store(&keySet{keys: map[string]*verifyKey{}, revoked: map[string]struct{}{}})
	return r
}

// current returns the key set Verify uses now.
func (r *keyring) current() *keySet { return r.set.Load() }

// refresh fetches JWKS, or joins the fetch in flight, and waits for it (or
// ctx). It returns the fetch error, errJWKSMismatch (wrapped) when the fetch
// succeeded but left an announced kid unusable, or ctx's error.
func (r *keyring) refresh(ctx context.Context) error {
	r.fmu.Lock()
	c := r.call
	if c == nil {
		c = r.startLocked()
	}
	r.fmu.Unlock()
	return r.wait(ctx, c)
}

// refreshForUnknown is refresh for a token naming an unknown kid: anyone can
// send such tokens, so it starts a fetch only if none started within
// minInterval (joining one in flight is free), and waits for it or ctx.
func (r *keyring) refreshForUnknown(ctx context.Context) {
	r.fmu.Lock()
	c := r.call
	if c == nil {
		if time.Since(r.lastStart) < r.minInterval {
			r.fmu.Unlock()
			return
		}
		c = r.startLocked()
	}
	r.fmu.Unlock()
	_ = r.wait(ctx, c)
}

func (r *keyring) startLocked() *fetchCall {
	c := &fetchCall{done: make(chan struct{})}
	r.call = c
	r.lastStart = time.Now()
	go r.run(c)
	return c
}

func (r *keyring) wait(ctx context.Context, c *fetchCall) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run performs one fetch for c and installs its keys. c.err is what calls
// for a retry (a failed fetch, an announced kid left unusable); unusable
// JWKS entries are only reported.
func (r *keyring) run(c *fetchCall) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.ctx, fetchTimeout)
	keys, problems, err := r.fetch(ctx)
	cancel()
	report := err
	if err == nil {
		err = r.install(keys)
		report = err
		if len(problems) > 0 {
			report = errors.Join(err, fmt.Errorf("JWKS: %d unusable keys ignored: %w", len(problems), errors.Join(problems...)))
		}
	}
	r.mu.Lock()
	r.lastErr = report
	r.mu.Unlock()
	if r.obs.OnJWKSFetch != nil {
		r.obs.OnJWKSFetch(time.Since(start), report)
	}
	r.fmu.Lock()
	r.call = nil
	r.fmu.Unlock()
	c.err = err
	close(c.done)
}

// fetch GETs and parses JWKS.
func (r *keyring) fetch(ctx context.Context) (map[string]*verifyKey, []error, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBytes))
		return nil, nil, fmt.Errorf("fetch JWKS: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("fetch JWKS: larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}

// install makes keys the fetched JWKS and returns errJWKSMismatch when an
// announced kid is still unusable. An unchanged key keeps its identity, so
// tokens cached under it stay cached.
func (r *keyring) install(keys map[string]*verifyKey) error {
	r.mu.Lock()
	for kid, k := range keys {
		if old := r.fetched[kid]; old != nil && old.alg == k.alg && old.thumbprint == k.thumbprint {
			keys[kid] = old
		}
	}
	r.fetched = keys
	r.fetchedAt = time.Now()
	learned := r.rebuildLocked()
	err := r.unmetLocked()
	r.mu.Unlock()
	r.learned(learned)
	return err
}

// unmetLocked returns errJWKSMismatch naming the first announced kid (in
// sort order) that JWKS lacks or serves with another thumbprint or alg.
func (r *keyring) unmetLocked() error {
	for _, kid := range slices.Sorted(maps.Keys(r.pins)) {
		p := r.pins[kid]
		k := r.fetched[kid]
		switch {
		case k == nil:
			return fmt.Errorf("%w: announced kid %q is not in JWKS", errJWKSMismatch, kid)
		case k.thumbprint != p.thumbprint:
			return fmt.Errorf("%w: kid %q has thumbprint %s in JWKS, %s on the stream", errJWKSMismatch, kid, k.thumbprint, p.thumbprint)
		case k.alg != p.alg:
			return fmt.Errorf("%w: kid %q has alg %s in JWKS, %s on the stream", errJWKSMismatch, kid, k.alg, p.alg)
		}
	}
	return nil
}

type learnedKey struct {
	kid string
	at  time.Time
}

// rebuildLocked publishes the key set: fetched keys that are neither revoked
// nor retired and that match their announcement, if any. It returns the
// awaited kids that became usable.
func (r *keyring) rebuildLocked() []learnedKey {
	keys := make(map[string]*verifyKey, len(r.fetched))
	for kid, k := range r.fetched {
		if _, ok := r.revoked[kid]; ok {
			continue
		}
		if _, ok := r.retired[kid]; ok {
			continue
		}
		if p, ok := r.pins[kid]; ok && (p.thumbprint != k.thumbprint || p.alg != k.alg) {
			continue
		}
		keys[kid] = k
	}
	r.set.Store(&keySet{keys: keys, revoked: maps.Clone(r.revoked)})
	var learned []learnedKey
	for kid, at := range r.waiting {
		if keys[kid] != nil {
			learned = append(learned, learnedKey{kid, at})
			delete(r.waiting, kid)
		}
	}
	return learned
}

func (r *keyring) learned(ls []learnedKey) {
	if r.obs.OnKeyLearned == nil {
		return
	}
	for _, l := range ls {
		r.obs.OnKeyLearned(l.kid, l.at)
	}
}

// apply applies a key-stream event. live is false during the initial replay:
// only live announcements are reported to OnKeyLearned. Every key event is a
// signal to refetch JWKS (key material never comes from the stream): an
// announced kid that JWKS does not serve yet is fetched now, and a retired or
// revoked kid leaves the key set at once and then JWKS is refetched, so that
// the fetched set matches the stream too.
func (r *keyring) apply(e events.Event, live bool) {
	kid := events.KeyID(e.Payload)
	if kid == "" {
		return
	}
	var p pin
	switch k := e.Payload.(type) {
	case *events.KeyPublished:
		p = pin{alg: k.Alg, thumbprint: k.Thumbprint}
	case *events.KeyActivated:
		p = pin{alg: k.Alg, thumbprint: k.Thumbprint}
	}
	r.mu.Lock()
	needFetch, dropped := false, false
	switch e.Payload.(type) {
	case *events.KeyPublished, *events.KeyActivated:
		if _, ok := r.revoked[kid]; ok {
			break // a revoked kid is never trusted again
		}
		r.pins[kid] = p
		delete(r.retired, kid)
		if live {
			r.waiting[kid] = e.Time
		}
		k := r.fetched[kid]
		needFetch = k == nil || k.thumbprint != p.thumbprint || k.alg != p.alg
	case *events.KeyRetired:
		_, was := r.retired[kid]
		r.retired[kid] = struct{}{}
		delete(r.pins, kid)
		delete(r.waiting, kid)
		needFetch, dropped = live, !was
	case *events.KeyRevoked:
		_, was := r.revoked[kid]
		r.revoked[kid] = struct{}{}
		delete(r.pins, kid)
		delete(r.waiting, kid)
		needFetch, dropped = live, !was
	}
	learned := r.rebuildLocked()
	r.mu.Unlock()
	r.learned(learned)
	if dropped && r.onDrop != nil {
		r.onDrop(kid)
	}
	if needFetch {
		r.trigger()
	}
}

// trigger asks the refresher loop for a fetch now.
func (r *keyring) trigger() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// loop refetches JWKS when triggered, every interval, and with backoff while
// a fetch fails or leaves an announced kid unusable, until ctx ends.
func (r *keyring) loop(ctx context.Context, interval time.Duration) {
	periodic := time.NewTimer(interval)
	defer periodic.Stop()
	var (
		retry  *time.Timer
		retryC <-chan time.Time
		wait   time.Duration
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-periodic.C:
		case <-retryC:
		}
		err := r.refresh(ctx)
		if ctx.Err() != nil {
			return
		}
		periodic.Reset(interval)
		if retry != nil {
			retry.Stop()
		}
		if err == nil {
			wait, retryC = 0, nil
			continue
		}
		wait = min(max(2*wait, minRetryWait), maxRetryWait)
		retry = time.NewTimer(wait)
		retryC = retry.C
	}
}

// keyStatus is the keyring's part of Status.
func (r *keyring) status() (known, revoked int, fetchedAt time.Time, lastErr error) {
	s := r.current()
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(s.keys), len(s.revoked), r.fetchedAt, r.lastErr
}
