package keys

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/store"
)

func TestNewValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(c *Config)
	}{
		{"no source", func(c *Config) { c.Source = "" }},
		{"alg none", func(c *Config) { c.Algorithm = "none" }},
		{"alg HS256", func(c *Config) { c.Algorithm = "HS256" }},
		{"no rotation interval", func(c *Config) { c.RotationInterval = 0 }},
		{"lead as long as the rotation", func(c *Config) { c.PublishLeadTime = c.RotationInterval }},
		{"negative lead", func(c *Config) { c.PublishLeadTime = -time.Second }},
		{"no token lifetime", func(c *Config) { c.MaxTokenLifetime = 0 }},
		{"negative skew", func(c *Config) { c.ClockSkew = -time.Second }},
		{"refresh slower than half the lead", func(c *Config) { c.RefreshInterval = 6 * time.Minute }},
		{"staleness below the refresh interval", func(c *Config) { c.MaxStaleness = time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.modify(&cfg)
			if _, err := New(cfg, newMemStore(), newRecorder(), testRing(t)); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
	cfg := testConfig()
	cfg.Algorithm, cfg.RefreshInterval = "", 0
	m, err := New(cfg, newMemStore(), newRecorder(), testRing(t))
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	if m.cfg.Algorithm != ES256 || m.cfg.RefreshInterval != DefaultRefreshInterval || m.cfg.MaxStaleness != 30*time.Second {
		t.Fatalf("defaults: %+v", m.cfg)
	}
	if m.MaxAge() != 5*time.Minute {
		t.Fatalf("MaxAge = %s, want 5m (half the 10m lead)", m.MaxAge())
	}
	if _, err := New(testConfig(), nil, newRecorder(), testRing(t)); err == nil {
		t.Fatal("New accepted a nil store")
	}
}

// TestBootstrapPublishesBeforeSigning: on an empty store the first key is
// in this replica's JWKS and its key.published acknowledged before it can
// sign; it then signs at once (no token can exist yet).
func TestBootstrapPublishesBeforeSigning(t *testing.T) {
	f := newFixture(t)
	m := f.replica(t)
	var checked []events.Type
	f.pub.onPublish = func(e events.Event) {
		kid := events.KeyID(e.Payload)
		if s, err := m.Current(); err == nil {
			t.Errorf("%s for %s: replica already signs with %s", e.Type, kid, s.KID())
		}
		if e.Type == events.TypeKeyPublished {
			b, err := m.JWKS()
			if err != nil || !strings.Contains(string(b), kid) {
				t.Errorf("key.published for %s before it is in this replica's JWKS (%s, %v)", kid, b, err)
			}
			if k := f.st.get(t, kid); k.State != store.KeyPublished {
				t.Errorf("key.published for a key in state %s", k.State)
			}
		}
		checked = append(checked, e.Type)
	}
	refresh(t, m)
	s := current(t, m)
	if want := []string{"key.published " + s.KID(), "key.activated " + s.KID()}; joined(f.pub.events()) != joined(want) {
		t.Fatalf("events %v, want %v", f.pub.events(), want)
	}
	if len(checked) != 2 {
		t.Fatalf("onPublish saw %v", checked)
	}
	if kids := kidsOf(jwksOf(t, m)); joined(kids) != s.KID() {
		t.Fatalf("JWKS %v, want the one key", kids)
	}
	k := f.st.get(t, s.KID())
	if k.State != store.KeyActive || !k.ActivateAt.Equal(f.clk.Now()) {
		t.Fatalf("stored %s activating %s, want active now", k.State, k.ActivateAt)
	}
	ev := f.pub.log[0].ev.Payload.(*events.KeyPublished)
	if ev.Thumbprint != s.KID() || ev.Alg != ES256 || ev.JWKSURI != f.cfg.JWKSURI || ev.NotBefore != f.clk.Now().Unix() {
		t.Fatalf("key.published payload %+v", ev)
	}
	if f.pub.log[0].ev.ID != events.DeterministicID(events.TypeKeyPublished, s.KID(), "1") {
		t.Fatal("key.published id is not deterministic by kid and record version")
	}
}

// TestNoKeyIs503: a replica that never loaded keys, or whose view is older
// than MaxStaleness, neither signs nor serves JWKS, with an error an HTTP
// layer maps to 503; Signer recovers on its own when the store returns.
func TestNoKeyIs503(t *testing.T) {
	f := newFixture(t)
	down := errors.Join(store.ErrUnavailable, errors.New("dial tcp: connection refused"))
	storeDown := true
	f.st.listErr = func() error {
		if storeDown {
			return down
		}
		return nil
	}
	m := f.replica(t)
	if err := m.Refresh(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Refresh with the store down: err = %v", err)
	}
	is503 := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrNoSigningKey) || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: err = %v, want ErrNoSigningKey and store.ErrUnavailable", what, err)
		}
	}
	_, err := m.Current()
	is503("Current before any load", err)
	_, err = m.JWKS()
	is503("JWKS before any load", err)
	_, err = m.Signer(t.Context())
	is503("Signer with the store down", err)
	is503("Ready", m.Ready())

	storeDown = false
	f.clk.Advance(minOnDemandRefresh)
	s, err := m.Signer(t.Context())
	if err != nil {
		t.Fatalf("Signer once the store is back: %v", err)
	}

	storeDown = true
	f.clk.Advance(m.cfg.MaxStaleness)
	if got := current(t, m); got.KID() != s.KID() {
		t.Fatal("a view exactly MaxStaleness old should still sign")
	}
	f.clk.Advance(time.Millisecond)
	_, err = m.Current()
	is503("Current with a stale view", err)
	_, err = m.JWKS()
	is503("JWKS with a stale view", err)
}

// TestPublishFailureBlocksActivation: no key signs before its key.published
// is acknowledged; the current key keeps signing meanwhile; once the stream
// is back the successor gets its full lead time.
func TestPublishFailureBlocksActivation(t *testing.T) {
	t.Run("bootstrap", func(t *testing.T) {
		f := newFixture(t)
		f.pub.setFail(func(events.Event) error { return errNATSDown })
		m := f.replica(t)
		if err := m.Refresh(t.Context()); !errors.Is(err, errNATSDown) {
			t.Fatalf("Refresh: err = %v, want the publish error", err)
		}
		if _, err := m.Current(); !errors.Is(err, ErrNoSigningKey) {
			t.Fatalf("signs with an unannounced key: %v", err)
		}
		pub := f.st.inState(store.KeyPublished)
		if len(pub) != 1 || len(f.st.inState(store.KeyActive)) != 0 {
			t.Fatalf("store: published %v, active %v", pub, f.st.inState(store.KeyActive))
		}
		if k := f.st.get(t, pub[0]); announced(k) {
			t.Fatal("key recorded as announced though its event failed")
		}
		got := testutil.ToFloat64(m.met.publishFailures.WithLabelValues("key.published"))
		if got != 1 {
			t.Fatalf("publish failures = %v, want 1", got)
		}
		// Another refresh with the stream still down does not advance either.
		f.clk.Advance(time.Minute)
		_ = m.Refresh(t.Context())
		if _, err := m.Current(); err == nil {
			t.Fatal("signs with an unannounced key after a second refresh")
		}

		f.pub.setFail(nil)
		refresh(t, m)
		if s := current(t, m); s.KID() != pub[0] {
			t.Fatalf("signs with %s, want the key created during the outage %s", s.KID(), pub[0])
		}
	})

	t.Run("scheduled successor", func(t *testing.T) {
		f := newFixture(t)
		m := f.replica(t)
		refresh(t, m)
		old := current(t, m).KID()

		f.pub.setFail(func(e events.Event) error {
			if e.Type == events.TypeKeyPublished {
				return errNATSDown
			}
			return nil
		})
		f.clk.Advance(f.cfg.RotationInterval - f.cfg.PublishLeadTime) // successor due
		if err := m.Refresh(t.Context()); !errors.Is(err, errNATSDown) {
			t.Fatalf("Refresh: err = %v", err)
		}
		succ := f.st.inState(store.KeyPublished)
		if len(succ) != 1 {
			t.Fatalf("published %v, want one successor", succ)
		}
		if kids := kidsOf(jwksOf(t, m)); len(kids) != 2 {
			t.Fatalf("JWKS %v, want the active key and the successor", kids)
		}
		// Well past when the successor would have signed: the old key signs on.
		f.clk.Advance(2 * f.cfg.PublishLeadTime)
		_ = m.Refresh(t.Context())
		if s := current(t, m); s.KID() != old {
			t.Fatalf("signs with %s, want the old key %s while the successor is unannounced", s.KID(), old)
		}
		if f.pub.has(events.TypeKeyActivated, succ[0]) {
			t.Fatal("successor activated without being announced")
		}

		f.pub.setFail(nil)
		back := f.clk.Now()
		refresh(t, m)
		k := f.st.get(t, succ[0])
		if !k.ActivateAt.Equal(back.Add(f.cfg.PublishLeadTime)) || k.State != store.KeyPublished {
			t.Fatalf("successor %s activating %s, want published with the full lead from %s", k.State, k.ActivateAt, back)
		}
		if current(t, m).KID() != old {
			t.Fatal("successor signs before its lead time")
		}
		f.clk.Advance(f.cfg.PublishLeadTime)
		refresh(t, m)
		if current(t, m).KID() != succ[0] {
			t.Fatal("successor not active after its lead time")
		}
		if k := f.st.get(t, old); k.State != store.KeyRetiring {
			t.Fatalf("old key %s, want retiring", k.State)
		}
	})

	t.Run("activation event", func(t *testing.T) {
		f := newFixture(t)
		m := f.replica(t)
		refresh(t, m)
		old := current(t, m).KID()
		f.clk.Advance(f.cfg.RotationInterval - f.cfg.PublishLeadTime)
		refresh(t, m)
		succ := f.st.inState(store.KeyPublished)[0]
		f.pub.setFail(func(e events.Event) error {
			if e.Type == events.TypeKeyActivated {
				return errNATSDown
			}
			return nil
		})
		f.clk.Advance(f.cfg.PublishLeadTime)
		if err := m.Refresh(t.Context()); !errors.Is(err, errNATSDown) {
			t.Fatalf("Refresh: err = %v", err)
		}
		if current(t, m).KID() != old || f.st.get(t, succ).State != store.KeyPublished {
			t.Fatal("activation advanced although key.activated failed")
		}
		f.pub.setFail(nil)
		refresh(t, m)
		if current(t, m).KID() != succ {
			t.Fatal("successor not active once the stream is back")
		}
	})
}

func TestRotate(t *testing.T) {
	t.Run("with lead time", func(t *testing.T) {
		f := newFixture(t)
		m := f.replica(t)
		refresh(t, m)
		old := current(t, m).KID()
		kid, err := m.Rotate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if current(t, m).KID() != old {
			t.Fatal("Rotate made the new key sign before its lead time")
		}
		if !slices.Contains(kidsOf(jwksOf(t, m)), kid) || !f.pub.has(events.TypeKeyPublished, kid) {
			t.Fatal("rotated key not in JWKS or not announced")
		}
		// A second Rotate supersedes the pending successor, which leaves.
		kid2, err := m.Rotate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if f.st.get(t, kid).State != store.KeyRetired || !f.pub.has(events.TypeKeyRetired, kid) {
			t.Fatal("superseded successor not retired")
		}
		if f.pub.has(events.TypeKeyActivated, kid) {
			t.Fatal("superseded successor was activated")
		}
		f.clk.Advance(f.cfg.PublishLeadTime)
		refresh(t, m)
		if current(t, m).KID() != kid2 {
			t.Fatal("rotated key not active after the lead time")
		}
	})

	t.Run("immediate", func(t *testing.T) {
		f := newFixture(t)
		m := f.replica(t)
		refresh(t, m)
		old := current(t, m).KID()
		kid, err := m.RotateNow(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if current(t, m).KID() != kid {
			t.Fatal("RotateNow: the new key does not sign at once")
		}
		k := f.st.get(t, old)
		if k.State != store.KeyRetiring || !k.RetireAt.Equal(f.clk.Now().Add(m.cfg.retention())) {
			t.Fatalf("old key %s retiring at %s", k.State, k.RetireAt)
		}
		tail := f.pub.events()[2:]
		if want := []string{"key.published " + kid, "key.activated " + kid}; joined(tail) != joined(want) {
			t.Fatalf("events %v, want %v", tail, want)
		}
		if kids := kidsOf(jwksOf(t, m)); len(kids) != 2 {
			t.Fatalf("JWKS %v, want the new and the retiring key", kids)
		}
	})
}

func TestRevoke(t *testing.T) {
	t.Run("active key", func(t *testing.T) {
		f := newFixture(t)
		m, other := f.replica(t), f.replica(t)
		refresh(t, m)
		refresh(t, other)
		if _, err := m.Rotate(t.Context()); err != nil { // a pending successor
			t.Fatal(err)
		}
		pending := f.st.inState(store.KeyPublished)[0]
		victim := current(t, m).KID()
		n := len(f.pub.events())
		f.pub.onPublish = func(e events.Event) {
			if e.Type != events.TypeKeyRevoked {
				return
			}
			// When the event goes out the key is already gone locally.
			if slices.Contains(kidsOf(jwksOf(t, m)), victim) {
				t.Error("revoked key still in this replica's JWKS when key.revoked is published")
			}
			if s, err := m.Current(); err == nil && s.KID() == victim {
				t.Error("replica still signs with the revoked key")
			}
		}
		if err := m.Revoke(t.Context(), victim, "compromised"); err != nil {
			t.Fatal(err)
		}
		repl := current(t, m).KID()
		if repl == victim || repl == pending {
			t.Fatalf("replacement %s, want a fresh key (victim %s, pending successor %s)", repl, victim, pending)
		}
		got := f.pub.events()[n:]
		if got[0] != "key.revoked "+victim {
			t.Fatalf("first event after revoke %s, want key.revoked", got[0])
		}
		if !slices.Contains(got, "key.published "+repl) || !slices.Contains(got, "key.activated "+repl) ||
			!slices.Contains(got, "key.retired "+pending) {
			t.Fatalf("events after revoke %v", got)
		}
		if slices.Index(got, "key.published "+repl) > slices.Index(got, "key.activated "+repl) {
			t.Fatalf("replacement activated before published: %v", got)
		}
		rev := f.pub.log[n].ev.Payload.(*events.KeyRevoked)
		if rev.Reason != "compromised" {
			t.Fatalf("key.revoked reason %q", rev.Reason)
		}
		k := f.st.get(t, victim)
		if k.State != store.KeyRevoked || len(k.Sealed) != 0 || k.KEKID != "" || !revocationAnnounced(k) {
			t.Fatalf("stored revoked key: %s, %d sealed bytes, KEK %q", k.State, len(k.Sealed), k.KEKID)
		}
		// The other replica drops it on its next refresh and signs with the replacement.
		refresh(t, other)
		if slices.Contains(kidsOf(jwksOf(t, other)), victim) || current(t, other).KID() != repl {
			t.Fatal("other replica still serves or signs with the revoked key after a refresh")
		}
		checkPublicOnly(t, must(other.JWKS()))
		// Revoking again re-publishes the same event (deduplicated), no error.
		if err := m.Revoke(t.Context(), victim, "compromised"); err != nil {
			t.Fatal(err)
		}
		if current(t, m).KID() != repl {
			t.Fatal("revoking a revoked key rotated again")
		}
		// Retired and revoked keys never come back, even after they are deleted.
		f.clk.Advance(f.cfg.DeleteAfter + DefaultDeleteAfter)
		refresh(t, m)
		if f.pub.latest(victim) != events.TypeKeyRevoked {
			t.Fatalf("latest event for the revoked key is %s", f.pub.latest(victim))
		}
	})

	t.Run("retiring key", func(t *testing.T) {
		f := newFixture(t)
		m := f.replica(t)
		refresh(t, m)
		old := current(t, m).KID()
		repl, err := m.RotateNow(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Revoke(t.Context(), old, ""); err != nil {
			t.Fatal(err)
		}
		if current(t, m).KID() != repl || len(f.st.inState(store.KeyPublished)) != 0 {
			t.Fatal("revoking a retiring key should not rotate")
		}
		if slices.Contains(kidsOf(jwksOf(t, m)), old) {
			t.Fatal("revoked key still in JWKS")
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		f := newFixture(t)
		m := f.replica(t)
		refresh(t, m)
		if err := m.Revoke(t.Context(), "no-such-kid", ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want store.ErrNotFound", err)
		}
	})

	t.Run("stream down", func(t *testing.T) {
		f := newFixture(t)
		m, other := f.replica(t), f.replica(t)
		refresh(t, m)
		victim := current(t, m).KID()
		f.pub.setFail(func(events.Event) error { return errNATSDown })
		if err := m.Revoke(t.Context(), victim, "compromised"); !errors.Is(err, errNATSDown) {
			t.Fatalf("Revoke with the stream down: err = %v, want the publish error", err)
		}
		if slices.Contains(kidsOf(jwksOf(t, m)), victim) {
			t.Fatal("revoked key still in JWKS while the stream is down")
		}
		if _, err := m.Current(); !errors.Is(err, ErrNoSigningKey) {
			t.Fatal("signs although no replacement could be announced")
		}
		// Any replica completes the revocation once the stream is back.
		f.pub.setFail(nil)
		refresh(t, other)
		got := f.pub.events()
		if got[2] != "key.revoked "+victim {
			t.Fatalf("events %v, want key.revoked first after the outage", got)
		}
		repl := current(t, other).KID()
		refresh(t, m)
		if current(t, m).KID() != repl || repl == victim {
			t.Fatal("replicas disagree on the replacement")
		}
	})
}

// TestRetiredKeysLeaveAndAreDeleted follows one key to the end: retiring
// for max token lifetime + skew (+ staleness), retired with key.retired,
// deleted DeleteAfter later.
func TestRetiredKeysLeaveAndAreDeleted(t *testing.T) {
	f := newFixture(t)
	f.cfg.DeleteAfter = time.Hour
	m := f.replica(t)
	refresh(t, m)
	old := current(t, m).KID()
	if _, err := m.RotateNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(m.cfg.retention() - time.Second)
	refresh(t, m)
	if !slices.Contains(kidsOf(jwksOf(t, m)), old) {
		t.Fatal("retiring key left JWKS before its tokens expired")
	}
	f.clk.Advance(time.Second)
	refresh(t, m)
	if slices.Contains(kidsOf(jwksOf(t, m)), old) || f.pub.latest(old) != events.TypeKeyRetired {
		t.Fatal("retired key still in JWKS or key.retired missing")
	}
	if k := f.st.get(t, old); len(k.Sealed) != 0 {
		t.Fatal("retired key keeps its private half")
	}
	f.clk.Advance(time.Hour)
	refresh(t, m)
	if slices.Contains(f.st.inState(store.KeyRetired), old) {
		t.Fatal("retired key not deleted after DeleteAfter")
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewPedanticRegistry()
	m := f.replica(t, WithRegisterer(reg))
	refresh(t, m)
	if _, err := m.RotateNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		`active`:   1,
		`retiring`: 1,
	} {
		if got := testutil.ToFloat64(m.met.byState.WithLabelValues(name)); got != want {
			t.Errorf("valet_keys_in_state{state=%q} = %v, want %v", name, got, want)
		}
	}
	if got := testutil.ToFloat64(m.met.rotations); got != 2 {
		t.Errorf("rotations = %v, want 2 (bootstrap and RotateNow)", got)
	}
	if got := testutil.ToFloat64(m.met.lastRotation); got != float64(f.clk.Now().Unix()) {
		t.Errorf("last rotation = %v", got)
	}
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n == 0 {
		t.Fatalf("gather: %d series, %v", n, err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) != 0 {
		t.Fatalf("metric lint: %v %v", problems, err)
	}
	if _, err := New(f.cfg, f.st, f.pub, f.ring, WithRegisterer(reg)); err == nil {
		t.Fatal("registering twice on one registry should fail")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestInvalidStoredKeysAreIgnored: a record whose kid is not its key's
// thumbprint, or whose "public" JWK holds a private key, is never served,
// never signs and never counts as a successor.
func TestInvalidStoredKeysAreIgnored(t *testing.T) {
	f := newFixture(t)
	m := f.replica(t)
	refresh(t, m)
	good := f.st.get(t, current(t, m).KID())

	priv, err := current(t, m).JWK()
	if err != nil {
		t.Fatal(err)
	}
	privJSON := must(json.Marshal(priv))
	for _, bad := range []store.SigningKey{
		{KID: "not-the-thumbprint", PublicJWK: good.PublicJWK},
		{KID: good.KID + "x", PublicJWK: []byte(`{"kty":"EC"}`)},
		{KID: "private-as-public", PublicJWK: privJSON},
	} {
		bad.Alg, bad.State, bad.CreatedAt = ES256, store.KeyPublished, f.clk.Now().Add(time.Second)
		bad.ActivateAt = bad.CreatedAt
		if err := f.st.CreateKey(t.Context(), bad); err != nil {
			t.Fatal(err)
		}
	}
	f.clk.Advance(2 * time.Second)
	refresh(t, m)
	raw := must(m.JWKS())
	checkPublicOnly(t, raw)
	if kids := kidsOf(jwksOf(t, m)); joined(kids) != good.KID {
		t.Fatalf("JWKS %v, want only %s", kids, good.KID)
	}
	if got := testutil.ToFloat64(m.met.invalid); got != 3 {
		t.Fatalf("valet_keys_invalid = %v, want 3", got)
	}
	if current(t, m).KID() != good.KID || f.st.get(t, "private-as-public").State != store.KeyPublished {
		t.Fatal("an invalid key took part in the lifecycle")
	}
}

// TestRunAndNotify: Run loads at once, and Notify makes it reload without
// waiting for the interval (a key event seen on the stream).
func TestRunAndNotify(t *testing.T) {
	f := newFixture(t)
	f.cfg.RefreshInterval = time.Minute // only Notify can make it reload in time
	m, other := f.replica(t), f.replica(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("the first load", func() bool { return m.Ready() == nil })
	refresh(t, other)
	kid, err := other.RotateNow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m.Notify()
	waitFor("the rotated key", func() bool { s, err := m.Current(); return err == nil && s.KID() == kid })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v, want nil on cancel", err)
	}
}
