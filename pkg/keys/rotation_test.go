package keys

import (
	"crypto"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/store"
)

// issued is a token one replica signed during a simulation.
type issued struct {
	kid     string
	raw     []byte
	by      int
	iat     time.Time
	expires time.Time // exp plus clock skew: the last moment an edge accepts it
}

// TestRotationTokensVerifyThroughoutLifetime runs two replicas sharing one
// store and one stream over seven hourly rotations, a minute at a time. At
// every minute both replicas refresh at once while signing, then each
// refreshes once more; they must then agree on the key to sign with. Every
// token signed at any moment must be in the JWKS of every replica at every
// later moment until its exp (+ skew), with the thumbprint it was signed
// under; a rotated-in key must be in every replica's JWKS for the full lead
// time, and announced, before its first signature (MISSION §0.4).
func TestRotationTokensVerifyThroughoutLifetime(t *testing.T) {
	f := newFixture(t)
	// The simulation refreshes once a simulated minute, so replicas sign
	// from views up to a minute old, mid-rotation: retention must cover it.
	f.cfg.MaxStaleness = 2 * time.Minute
	replicas := []*Manager{f.replica(t), f.replica(t)}
	start := f.clk.Now()
	const step = time.Minute
	horizon := 7*f.cfg.RotationInterval + 30*time.Minute

	var (
		tokens      []issued
		mu          sync.Mutex // guards tokens during the concurrent phase
		firstInAll  = map[string]time.Time{}
		firstSigned = map[string]time.Time{}
		maxJWKS     int
	)
	sign := func(r int, now time.Time) {
		m := replicas[r]
		s, err := m.Current()
		if err != nil {
			t.Errorf("replica %d at +%s: %v", r, now.Sub(start), err)
			return
		}
		if !f.pub.has(events.TypeKeyPublished, s.KID()) {
			t.Errorf("replica %d at +%s signs with %s before key.published was acknowledged", r, now.Sub(start), s.KID())
		}
		raw, err := s.Sign(TypeAccessToken, claims(now, f.cfg.MaxTokenLifetime, fmt.Sprintf("%d-%d", r, now.Unix())))
		if err != nil {
			t.Errorf("Sign: %v", err)
			return
		}
		mu.Lock()
		tokens = append(tokens, issued{kid: s.KID(), raw: raw, by: r, iat: now,
			expires: now.Add(f.cfg.MaxTokenLifetime + f.cfg.ClockSkew)})
		if _, ok := firstSigned[s.KID()]; !ok {
			firstSigned[s.KID()] = now
		}
		mu.Unlock()
	}

	for now := start; now.Before(start.Add(horizon)); now = f.clk.Now() {
		// Both replicas refresh at once, and sign meanwhile.
		var wg sync.WaitGroup
		for r, m := range replicas {
			wg.Go(func() {
				if err := m.Refresh(t.Context()); err != nil {
					t.Errorf("replica %d refresh at +%s: %v", r, now.Sub(start), err)
				}
			})
			if now != start {
				wg.Go(func() { sign(r, now) })
			}
		}
		wg.Wait()
		// One more refresh each: now they agree.
		for _, m := range replicas {
			refresh(t, m)
		}
		a, b := current(t, replicas[0]).KID(), current(t, replicas[1]).KID()
		if a != b {
			t.Fatalf("at +%s replicas sign with %s and %s", now.Sub(start), a, b)
		}

		sets := []jwk.Set{jwksOf(t, replicas[0]), jwksOf(t, replicas[1])}
		if joined(kidsOf(sets[0])) != joined(kidsOf(sets[1])) {
			t.Fatalf("at +%s replicas serve different JWKS: %v and %v", now.Sub(start), kidsOf(sets[0]), kidsOf(sets[1]))
		}
		maxJWKS = max(maxJWKS, sets[0].Len())
		for _, kid := range kidsOf(sets[0]) {
			if _, ok := firstInAll[kid]; !ok {
				firstInAll[kid] = now
			}
		}
		// Every live token's key is served, unchanged, by every replica.
		for _, tok := range tokens {
			if now.After(tok.expires) {
				continue
			}
			for r, set := range sets {
				checkServes(t, set, tok, fmt.Sprintf("replica %d at +%s", r, now.Sub(start)))
			}
			// Verify the signature itself at the first and last moment of its life.
			if now.Equal(tok.iat) || now.Add(step).After(tok.expires) {
				if _, err := jws.Verify(tok.raw, jws.WithKeySet(sets[tok.by^1])); err != nil {
					t.Fatalf("token of %s signed at +%s does not verify at +%s: %v", tok.kid, tok.iat.Sub(start), now.Sub(start), err)
				}
			}
		}
		for r := range replicas {
			sign(r, now)
		}
		f.clk.Advance(step)
	}

	signedKids := make([]string, 0, len(firstSigned))
	for kid := range firstSigned {
		signedKids = append(signedKids, kid)
	}
	slices.SortFunc(signedKids, func(a, b string) int { return firstSigned[a].Compare(firstSigned[b]) })
	if len(signedKids) < 8 {
		t.Fatalf("%d keys signed over %s, want the bootstrap key and 7 rotations", len(signedKids), horizon)
	}
	for _, kid := range signedKids[1:] {
		if lead := firstSigned[kid].Sub(firstInAll[kid]); lead < f.cfg.PublishLeadTime {
			t.Errorf("key %s signed %s after every replica served it, want at least the lead time %s", kid, lead, f.cfg.PublishLeadTime)
		}
	}
	if maxJWKS > 3 {
		t.Errorf("JWKS grew to %d keys; want at most the active, a successor and one retiring key", maxJWKS)
	}
	if got := len(f.st.inState(store.KeyRetired)); got < 6 {
		t.Errorf("%d keys retired, want the rotated-out keys", got)
	}
	checkStream(t, f)
	t.Logf("%d tokens, %d keys signed, JWKS at most %d keys, %d events", len(tokens), len(signedKids), maxJWKS, len(f.pub.events()))
}

// checkServes fails t unless set holds tok's key with its kid as RFC 7638
// thumbprint.
func checkServes(t *testing.T, set jwk.Set, tok issued, where string) {
	t.Helper()
	k, ok := set.LookupKeyID(tok.kid)
	if !ok {
		t.Fatalf("%s: JWKS lacks %s, which signed a token at %s still live until %s", where, tok.kid, tok.iat, tok.expires)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil || base64.RawURLEncoding.EncodeToString(tp) != tok.kid {
		t.Fatalf("%s: JWKS key %s has another thumbprint", where, tok.kid)
	}
}

// TestReplicasBootstrapRace starts four replicas at once on an empty store,
// many times over. Whatever they interleave, none signs with a key whose
// key.published was not acknowledged, each refreshes once more and they all
// sign with the same key, there is exactly one active key, and the stream
// states every key's stage.
func TestReplicasBootstrapRace(t *testing.T) {
	for trial := range 25 {
		f := newFixture(t)
		replicas := make([]*Manager, 4)
		for i := range replicas {
			replicas[i] = f.replica(t)
		}
		var wg sync.WaitGroup
		for _, m := range replicas {
			wg.Go(func() {
				if err := m.Refresh(t.Context()); err != nil {
					t.Errorf("trial %d: Refresh: %v", trial, err)
				}
				for range 20 { // sign while the others still move keys
					if s, err := m.Current(); err == nil && !f.pub.has(events.TypeKeyPublished, s.KID()) {
						t.Errorf("trial %d: signs with unannounced %s", trial, s.KID())
					}
				}
			})
		}
		wg.Wait()
		for _, m := range replicas {
			refresh(t, m)
		}
		want := current(t, replicas[0]).KID()
		for i, m := range replicas {
			if got := current(t, m).KID(); got != want {
				t.Fatalf("trial %d: replica %d signs with %s, replica 0 with %s", trial, i, got, want)
			}
		}
		if active := f.st.inState(store.KeyActive); len(active) != 1 || active[0] != want {
			t.Fatalf("trial %d: active keys %v, want %s", trial, active, want)
		}
		if pub := f.st.inState(store.KeyPublished); len(pub) != 0 {
			t.Fatalf("trial %d: race losers %v left as successors", trial, pub)
		}
		checkStream(t, f)
	}
}

// TestScheduledRotationRace: two replicas that find the rotation due at the
// same moment create one successor between them (the claim), or, if both
// got through, leave exactly one.
func TestScheduledRotationRace(t *testing.T) {
	for trial := range 25 {
		f := newFixture(t)
		a, b := f.replica(t), f.replica(t)
		refresh(t, a)
		refresh(t, b)
		f.clk.Advance(f.cfg.RotationInterval - f.cfg.PublishLeadTime)
		var wg sync.WaitGroup
		for _, m := range []*Manager{a, b} {
			wg.Go(func() {
				if err := m.Refresh(t.Context()); err != nil {
					t.Errorf("Refresh: %v", err)
				}
			})
		}
		wg.Wait()
		refresh(t, a)
		refresh(t, b)
		if pub := f.st.inState(store.KeyPublished); len(pub) != 1 {
			t.Fatalf("trial %d: published successors %v, want one", trial, pub)
		}
		checkStream(t, f)
	}
}

// checkStream checks the key events as a latest-per-kid stream sees them:
// key.activated never comes before key.published, and the latest event per
// kid states the key's stored stage. After a bootstrap race exactly one key
// may be published (none, unless a successor was due).
func checkStream(t *testing.T, f *fixture) {
	t.Helper()
	f.pub.mu.Lock()
	byKID := map[string][]events.Type{}
	for _, p := range f.pub.log {
		if !p.dupe {
			byKID[p.kid] = append(byKID[p.kid], p.typ)
		}
	}
	f.pub.mu.Unlock()
	keys, _ := f.st.ListKeys(t.Context())
	for _, k := range keys {
		seq := byKID[k.KID]
		if k.State == store.KeyPublished && !announced(k) {
			if len(seq) != 0 && seq[len(seq)-1] != events.TypeKeyRetired {
				t.Fatalf("unannounced key %s has events %v", k.KID, seq)
			}
			continue
		}
		if len(seq) == 0 {
			t.Fatalf("key %s (%s) was never announced", k.KID, k.State)
		}
		// A duplicate dropped before it was announced gets key.retired
		// first: harmless (edges drop a kid they do not know), and it covers
		// a key.published acknowledged just before a crash.
		if seq[0] == events.TypeKeyActivated {
			t.Fatalf("key %s: first event key.activated (events %v)", k.KID, seq)
		}
		want := map[store.KeyState]events.Type{
			store.KeyPublished: events.TypeKeyPublished,
			store.KeyActive:    events.TypeKeyActivated,
			store.KeyRetiring:  events.TypeKeyActivated,
			store.KeyRetired:   events.TypeKeyRetired,
			store.KeyRevoked:   events.TypeKeyRevoked,
		}[k.State]
		if last := seq[len(seq)-1]; last != want {
			t.Fatalf("key %s is %s but the stream's latest event for it is %s (events %v)", k.KID, k.State, last, seq)
		}
		if i := slices.Index(seq, events.TypeKeyActivated); i >= 0 && i < slices.Index(seq, events.TypeKeyPublished) {
			t.Fatalf("key %s activated before published: %v", k.KID, seq)
		}
	}
}

// TestRestateAfterLostRace forces the interleaving the key stream cannot
// survive without restating: replica A publishes key.activated for the
// successor, but before its event lands replica B revokes that successor
// (B's compare-and-set and B's key.revoked both come first). A's event is
// then the latest on the stream for a revoked key; A's compare-and-set
// fails, and A must restate the key's actual stage.
func TestRestateAfterLostRace(t *testing.T) {
	f := newFixture(t)
	a, b := f.replica(t), f.replica(t)
	refresh(t, a)
	old := current(t, a).KID()
	f.clk.Advance(f.cfg.RotationInterval - f.cfg.PublishLeadTime)
	refresh(t, a)
	succ := f.st.inState(store.KeyPublished)[0]
	f.clk.Advance(f.cfg.PublishLeadTime)

	var fired bool
	f.pub.onPublish = func(e events.Event) {
		if e.Type == events.TypeKeyActivated && events.KeyID(e.Payload) == succ && !fired {
			fired = true
			if err := b.Revoke(t.Context(), succ, "compromised"); err != nil {
				t.Errorf("B revokes: %v", err)
			}
		}
	}
	if err := a.Refresh(t.Context()); err != nil {
		t.Fatalf("A refresh: %v", err)
	}
	if !fired {
		t.Fatal("the race was not staged")
	}
	got := f.pub.events()
	i := slices.Index(got, "key.revoked "+succ)
	j := slices.Index(got, "key.activated "+succ)
	if i < 0 || j < i {
		t.Fatalf("staging failed: events %v", got)
	}
	if f.pub.latest(succ) != events.TypeKeyRevoked {
		t.Fatalf("latest event for the revoked key is %s (events %v)", f.pub.latest(succ), got)
	}
	if k := f.st.get(t, succ); k.State != store.KeyRevoked {
		t.Fatalf("successor is %s, want revoked", k.State)
	}
	if s := current(t, a); s.KID() != old {
		t.Fatalf("A signs with %s, want the old key %s", s.KID(), old)
	}
	if slices.Contains(kidsOf(jwksOf(t, a)), succ) {
		t.Fatal("A still serves the revoked successor")
	}
	checkStream(t, f)
}
