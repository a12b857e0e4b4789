package conformance

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// grantTests cover authorization codes, refresh families and device codes.
var grantTests = []subtest{
	{"AuthCode/Missing", testCodeMissing},
	{"AuthCode/Duplicate", testCodeDuplicate},
	{"AuthCode/RoundTrip", testCodeRoundTrip},
	{"AuthCode/Expired", testCodeExpired},
	{"AuthCode/NotFoundExpiredRevokedToldApart", testCodeToldApart},
	{"AuthCode/ForgedHashRevokesNothing", testCodeForgedHash},
	{"AuthCode/ReuseRevokesFamily", testCodeReuse},
	{"AuthCode/ReuseBeforeFamilyCreated", testCodeReuseBeforeFamily},
	{"AuthCode/ClientMismatchSpendsCode", testCodeClientMismatch},
	{"AuthCode/Cutoffs", testCodeCutoffs},
	{"AuthCode/ContextCanceled", testCodeCanceled},

	{"Family/Missing", testFamilyMissing},
	{"Family/Duplicate", testFamilyDuplicate},
	{"Family/RoundTrip", testFamilyRoundTrip},
	{"Family/Expiry", testFamilyExpiry},
	{"Family/RotationChain", testRotationChain},
	{"Family/GraceReplay", testGraceReplay},
	{"Family/GraceCappedByMaxReplays", testGraceCap},
	{"Family/GraceCappedByWindow", testGraceWindow},
	{"Family/GraceZeroDisables", testGraceZero},
	{"Family/OlderGenerationReuse", testOlderGenerationReuse},
	{"Family/ForgedHashRevokesNothing", testRefreshForgedHash},
	{"Family/ClientMismatch", testRefreshClientMismatch},
	{"Family/ScopeNarrowing", testScopeNarrowing},
	{"Family/Cutoffs", testFamilyCutoffs},
	{"Family/CutoffHintsNeverChangeTheAnswer", testFamilyCutoffHints},
	{"Family/CreateAfterRevoke", testFamilyCreateAfterRevoke},
	{"Family/ContextCanceled", testFamilyCanceled},

	{"Device/Missing", testDeviceMissing},
	{"Device/Duplicate", testDeviceDuplicate},
	{"Device/RoundTrip", testDeviceRoundTrip},
	{"Device/SlowDown", testDeviceSlowDown},
	{"Device/Denied", testDeviceDenied},
	{"Device/Expired", testDeviceExpired},
	{"Device/ForgedHashRevokesNothing", testDeviceForgedHash},
	{"Device/ClientMismatch", testDeviceClientMismatch},
	{"Device/Cutoffs", testDeviceCutoffs},
	{"Device/ContextCanceled", testDeviceCanceled},
}

// concurrencyTests are the contention cases.
var concurrencyTests = []subtest{
	{"Concurrent/CodeRedemption", testConcurrentCodeRedemption},
	{"Concurrent/RotationWithGrace", testConcurrentRotationGrace},
	{"Concurrent/RotationGraceCapped", testConcurrentRotationGraceCapped},
	{"Concurrent/RotationWithoutGrace", testConcurrentRotationNoGrace},
	{"Concurrent/DevicePoll", testConcurrentDevicePoll},
}

// contenders is how many goroutines race for one credential.
const contenders = 50

// ---- authorization codes (RFC 6749 §4.1.2) ----

func testCodeMissing(t *testing.T, s store.Store) {
	now := time.Now()
	c, tok := newCode(t, now, now)
	_, err := redeem(t, s, c, tok, now)
	wantErr(t, "redeem a code never stored", err, store.ErrNotFound)
	if got := pending(t, s); len(got) != 0 {
		t.Fatalf("outbox after a miss: %d entries, want none", len(got))
	}
}

func testCodeDuplicate(t *testing.T, s store.Store) {
	now := time.Now()
	c, _ := createCode(t, s, now, now)
	c2, _ := newCode(t, now, now)
	c2.FID = c.FID
	wantErr(t, "create a code with a taken fid", s.CreateAuthCode(t.Context(), c2), store.ErrAlreadyExists)
}

func testCodeRoundTrip(t *testing.T, s store.Store) {
	now := time.Now()
	c, tok := createCode(t, s, now, now)
	got, err := redeem(t, s, c, tok, now)
	noErr(t, "redeem", err)
	if got.FID != c.FID || got.Hash != c.Hash || got.ClientID != c.ClientID || got.RedirectURI != c.RedirectURI ||
		got.CodeChallenge != c.CodeChallenge || got.CodeChallengeMethod != c.CodeChallengeMethod ||
		!sameStrings(got.Scopes, c.Scopes) || got.Resource != c.Resource || got.Subject != c.Subject ||
		!sameMS(got.AuthTime, c.AuthTime) || !sameMS(got.CreatedAt, c.CreatedAt) || !sameMS(got.ExpiresAt, c.ExpiresAt) {
		t.Fatalf("redeemed code differs:\n got %+v\nwant %+v", got, c)
	}
}

func testCodeExpired(t *testing.T, s store.Store) {
	now := time.Now()
	c, tok := createCode(t, s, now, now)
	_, err := redeem(t, s, c, tok, c.ExpiresAt)
	wantErr(t, "redeem at its expiry", err, store.ErrExpired)
	_, err = redeem(t, s, c, tok, c.ExpiresAt.Add(time.Minute))
	wantErr(t, "redeem after its expiry", err, store.ErrExpired)
}

func testCodeToldApart(t *testing.T, s store.Store) {
	now := time.Now()
	missing, missingTok := newCode(t, now, now)
	expired, expiredTok := createCode(t, s, now, now)
	revoked, revokedTok := createCode(t, s, now, now)
	revokeFamily(t, s, revoked.FID)

	_, err := redeem(t, s, missing, missingTok, now)
	wantErr(t, "missing code", err, store.ErrNotFound)
	_, err = redeem(t, s, expired, expiredTok, now.Add(2*time.Minute))
	wantErr(t, "expired code", err, store.ErrExpired)
	_, err = redeem(t, s, revoked, revokedTok, now)
	wantErr(t, "code of a revoked family", err, store.ErrRevoked)
	for _, e := range []error{store.ErrNotFound, store.ErrExpired} {
		if errors.Is(err, e) {
			t.Fatalf("revoked code also reads as %v", e)
		}
	}
}

func testCodeForgedHash(t *testing.T, s store.Store) {
	now := time.Now()
	c, tok := createCode(t, s, now, now)
	forged := newToken(t, "vac", c.FID) // right fid (public), wrong secret
	_, err := redeem(t, s, c, forged, now)
	wantErr(t, "redeem a forged code", err, store.ErrNotFound)
	_, err = redeem(t, s, c, forged, now)
	wantErr(t, "redeem a forged code again", err, store.ErrNotFound)

	if got := pending(t, s); len(got) != 0 {
		t.Fatalf("a forged code queued %d events", len(got))
	}
	if _, err := redeem(t, s, c, tok, now); err != nil {
		t.Fatalf("the real code after forgeries: %v", err)
	}
	f, first := newFamily(t, c.FID, now)
	noErr(t, "create the family", s.CreateFamily(t.Context(), f, hashOf(first)))
	d, err := s.DenyState(t.Context(), store.DenyQuery{FID: c.FID})
	noErr(t, "deny state", err)
	if d.FamilyRevoked {
		t.Fatal("a forged code revoked the family")
	}
}

func testCodeReuse(t *testing.T, s store.Store) {
	now := time.Now()
	c, tok := createCode(t, s, now, now)
	_, err := redeem(t, s, c, tok, now)
	noErr(t, "first redemption", err)
	f, first := newFamily(t, c.FID, now)
	noErr(t, "create the family of the first redemption", s.CreateFamily(t.Context(), f, hashOf(first)))

	ev := event(t, now)
	_, err = s.RedeemAuthCode(t.Context(), c.FID, hashOf(tok), c.ClientID, now, ev, store.Cutoffs{})
	wantErr(t, "second redemption", err, store.ErrReused)
	if !queued(t, s, ev.ID) {
		t.Fatal("the reuse event is not in the outbox")
	}
	_, err = s.RotateRefresh(t.Context(), rotation(t, f, first, now))
	wantErr(t, "rotate the family of a reused code", err, store.ErrRevoked)
	_, err = s.GetFamily(t.Context(), f.FID)
	wantErr(t, "get the family of a reused code", err, store.ErrRevoked)
	_, err = s.LookupRefresh(t.Context(), f.FID, hashOf(first))
	wantErr(t, "look up its refresh token", err, store.ErrRevoked)
	d, err := s.DenyState(t.Context(), store.DenyQuery{FID: f.FID})
	noErr(t, "deny state", err)
	if !d.FamilyRevoked {
		t.Fatal("deny state: family not revoked after code reuse")
	}
	_, err = redeem(t, s, c, tok, now)
	wantErr(t, "third redemption", err, store.ErrReused)
}

func testCodeReuseBeforeFamily(t *testing.T, s store.Store) {
	now := time.Now()
	c, tok := createCode(t, s, now, now)
	_, err := redeem(t, s, c, tok, now)
	noErr(t, "first redemption", err)
	_, err = redeem(t, s, c, tok, now)
	wantErr(t, "second redemption before the family exists", err, store.ErrReused)
	f, first := newFamily(t, c.FID, now)
	wantErr(t, "create the family after the reuse", s.CreateFamily(t.Context(), f, hashOf(first)), store.ErrRevoked)
}

func testCodeClientMismatch(t *testing.T, s store.Store) {
	now := time.Now()
	c, tok := createCode(t, s, now, now)
	_, err := s.RedeemAuthCode(t.Context(), c.FID, hashOf(tok), clientB, now, event(t, now), store.Cutoffs{})
	wantErr(t, "redeem as another client", err, store.ErrClientMismatch)
	_, err = redeem(t, s, c, tok, now)
	wantErr(t, "redeem as its client after the mismatch spent it", err, store.ErrReused)
}

func testCodeCutoffs(t *testing.T, s store.Store) {
	now := time.Now()
	cut := now.Add(-30 * time.Minute)
	old, oldTok := createCode(t, s, now.Add(-time.Hour), now)
	withinSkew, withinSkewTok := createCode(t, s, cut.Add(20*time.Second), now)
	fresh, freshTok := createCode(t, s, now.Add(-time.Minute), now)
	bobs, bobsTok := newCode(t, now.Add(-time.Hour), now)
	bobs.Subject = subBob
	noErr(t, "create bob's code", s.CreateAuthCode(t.Context(), bobs))
	clientOld, clientOldTok := newCode(t, now.Add(-time.Hour), now)
	clientOld.ClientID, clientOld.Subject = clientB, subBob
	noErr(t, "create client-b's code", s.CreateAuthCode(t.Context(), clientOld))
	revokeSubject(t, s, subAlice, cut)
	revokeClient(t, s, clientB, cut)

	redeemWith := func(c store.AuthCode, tok string, cuts store.Cutoffs) error {
		_, err := s.RedeemAuthCode(t.Context(), c.FID, hashOf(tok), c.ClientID, now, event(t, now), cuts)
		return err
	}
	skew := store.Cutoffs{Skew: time.Minute}
	// The subject hint is only a hint: none, wrong and right all get the same answer.
	wantErr(t, "code created before the subject cut-off, no hint", redeemWith(old, oldTok, skew), store.ErrRevoked)
	wrongHint := store.Cutoffs{SubjectType: userType, Subject: subBob, Skew: time.Minute}
	wantErr(t, "code created before the subject cut-off, wrong hint", redeemWith(old, oldTok, wrongHint), store.ErrRevoked)
	rightHint := store.Cutoffs{SubjectType: userType, Subject: subAlice, Skew: time.Minute}
	wantErr(t, "code created before the subject cut-off, right hint", redeemWith(old, oldTok, rightHint), store.ErrRevoked)
	wantErr(t, "code created within skew after the cut-off", redeemWith(withinSkew, withinSkewTok, skew), store.ErrRevoked)
	wantErr(t, "code created before the client cut-off", redeemWith(clientOld, clientOldTok, skew), store.ErrRevoked)
	noErr(t, "code created after the cut-off plus skew", redeemWith(fresh, freshTok, skew))
	noErr(t, "code of another subject", redeemWith(bobs, bobsTok, skew))
}

func testCodeCanceled(t *testing.T, s store.Store) {
	now := time.Now()
	c, tok := createCode(t, s, now, now)
	_, err := s.RedeemAuthCode(canceled(t), c.FID, hashOf(tok), c.ClientID, now, event(t, now), store.Cutoffs{})
	wantErr(t, "redeem with a canceled context", err, context.Canceled)
	_, err = redeem(t, s, c, tok, now)
	noErr(t, "redeem after the canceled attempt (it must not have spent the code)", err)

	c2, _ := newCode(t, now, now)
	wantErr(t, "create with a canceled context", s.CreateAuthCode(canceled(t), c2), context.Canceled)
	_, err = redeem(t, s, c2, "", now)
	wantErr(t, "the code created with a canceled context", err, store.ErrNotFound)
}

// ---- refresh families (RFC 6749 §6, RFC 9700 §4.14.2) ----

func testFamilyMissing(t *testing.T, s store.Store) {
	now := time.Now()
	f, tok := newFamily(t, "", now)
	_, err := s.GetFamily(t.Context(), f.FID)
	wantErr(t, "get a missing family", err, store.ErrNotFound)
	_, err = s.LookupRefresh(t.Context(), f.FID, hashOf(tok))
	wantErr(t, "look up a missing family", err, store.ErrNotFound)
	_, err = s.RotateRefresh(t.Context(), rotation(t, f, tok, now))
	wantErr(t, "rotate a missing family", err, store.ErrNotFound)
}

func testFamilyDuplicate(t *testing.T, s store.Store) {
	now := time.Now()
	f, _ := createFamily(t, s, now)
	wantErr(t, "create a family twice", s.CreateFamily(t.Context(), f, hashOf(newToken(t, "vrt", f.FID))), store.ErrAlreadyExists)
}

func sameFamily(t *testing.T, what string, got, want store.RefreshFamily) {
	t.Helper()
	if got.FID != want.FID || got.ClientID != want.ClientID || got.Subject != want.Subject ||
		got.SubjectType != want.SubjectType || !sameStrings(got.Scopes, want.Scopes) || got.Resource != want.Resource ||
		got.Grant != want.Grant || !sameMS(got.AuthTime, want.AuthTime) || !sameMS(got.CreatedAt, want.CreatedAt) ||
		got.IdleTimeout != want.IdleTimeout || !sameMS(got.AbsoluteExpiresAt, want.AbsoluteExpiresAt) ||
		got.Generation != want.Generation || got.Public != want.Public {
		t.Fatalf("%s: family differs:\n got %+v\nwant %+v", what, got, want)
	}
}

func testFamilyRoundTrip(t *testing.T, s store.Store) {
	now := time.Now()
	f, tok := newFamily(t, "", now)
	f.Public = true
	noErr(t, "create", s.CreateFamily(t.Context(), f, hashOf(tok)))
	got, err := s.GetFamily(t.Context(), f.FID)
	noErr(t, "get", err)
	sameFamily(t, "get", got, f)
	got, err = s.LookupRefresh(t.Context(), f.FID, hashOf(tok))
	noErr(t, "look up", err)
	sameFamily(t, "look up", got, f)
	_, err = s.LookupRefresh(t.Context(), f.FID, hashOf(newToken(t, "vrt", f.FID)))
	wantErr(t, "look up another token of the fid", err, store.ErrNotFound)
}

func testFamilyExpiry(t *testing.T, s store.Store) {
	now := time.Now()
	// Past the absolute expiry and past the idle timeout, as the caller's
	// clock tells the store.
	abs, absTok := createFamily(t, s, now)
	_, err := s.RotateRefresh(t.Context(), rotation(t, abs, absTok, abs.AbsoluteExpiresAt.Add(time.Second)))
	wantOneOf(t, "rotate past the absolute expiry", err, store.ErrExpired, store.ErrNotFound)
	idle, idleTok := createFamily(t, s, now)
	_, err = s.RotateRefresh(t.Context(), rotation(t, idle, idleTok, now.Add(idle.IdleTimeout+time.Second)))
	wantOneOf(t, "rotate past the idle timeout", err, store.ErrExpired, store.ErrNotFound)

	// Gone for real once its lifetime is over. Its clock starts now, not
	// at the top: on a loaded box the steps above can take longer than a
	// short lifetime.
	born := time.Now()
	short, shortTok := newFamily(t, "", born)
	short.AbsoluteExpiresAt = born.Add(time.Second)
	noErr(t, "create a short-lived family", s.CreateFamily(t.Context(), short, hashOf(shortTok)))
	noErr(t, "look it up at once", func() error { _, err := s.LookupRefresh(t.Context(), short.FID, hashOf(shortTok)); return err }())
	time.Sleep(time.Until(born.Add(2200 * time.Millisecond)))
	_, err = s.LookupRefresh(t.Context(), short.FID, hashOf(shortTok))
	wantOneOf(t, "look up after its lifetime", err, store.ErrExpired, store.ErrNotFound)
	_, err = s.RotateRefresh(t.Context(), rotation(t, short, shortTok, time.Now()))
	wantOneOf(t, "rotate after its lifetime", err, store.ErrExpired, store.ErrNotFound)
}

func testRotationChain(t *testing.T, s store.Store) {
	now := time.Now()
	f, tok := createFamily(t, s, now)
	var old []string
	for gen := int64(2); gen <= 6; gen++ {
		now = now.Add(time.Minute)
		r := withGrace(rotation(t, f, tok, now), 10*time.Second, 3)
		res, err := s.RotateRefresh(t.Context(), r)
		noErr(t, "rotate", err)
		if res.GraceReplay || res.RefreshToken != r.Successor || res.Family.Generation != gen {
			t.Fatalf("generation %d: got %+v, want the successor at generation %d", gen, res, gen)
		}
		old, tok = append(old, tok), r.Successor
	}
	got, err := s.LookupRefresh(t.Context(), f.FID, hashOf(tok))
	noErr(t, "look up the live token", err)
	if got.Generation != 6 {
		t.Fatalf("generation %d, want 6", got.Generation)
	}
	for _, o := range old {
		_, err := s.LookupRefresh(t.Context(), f.FID, hashOf(o))
		wantErr(t, "look up a superseded token", err, store.ErrNotFound)
	}
}

func testGraceReplay(t *testing.T, s store.Store) {
	now := time.Now()
	f, first := createFamily(t, s, now)
	r := withGrace(rotation(t, f, first, now), 10*time.Second, 3)
	res, err := s.RotateRefresh(t.Context(), r)
	noErr(t, "rotate", err)

	replay := withGrace(rotation(t, f, first, now.Add(2*time.Second)), 10*time.Second, 3)
	got, err := s.RotateRefresh(t.Context(), replay)
	noErr(t, "grace replay", err)
	if !got.GraceReplay || got.RefreshToken != res.RefreshToken {
		t.Fatalf("grace replay: GraceReplay=%v, token same=%v; want the identical successor", got.GraceReplay, got.RefreshToken == res.RefreshToken)
	}
	if got.Family.Generation != 2 {
		t.Fatalf("grace replay moved the generation to %d", got.Family.Generation)
	}
	_, err = s.LookupRefresh(t.Context(), f.FID, hashOf(replay.Successor))
	wantErr(t, "the replay's own successor", err, store.ErrNotFound)
	live, err := s.LookupRefresh(t.Context(), f.FID, hashOf(res.RefreshToken))
	noErr(t, "the family's one live token", err)
	if live.Generation != 2 {
		t.Fatalf("live generation %d, want 2", live.Generation)
	}
	if len(pending(t, s)) != 0 {
		t.Fatal("a grace replay queued an event")
	}
	next := withGrace(rotation(t, f, res.RefreshToken, now.Add(time.Minute)), 10*time.Second, 3)
	res2, err := s.RotateRefresh(t.Context(), next)
	noErr(t, "rotate on after the replay", err)
	if res2.Family.Generation != 3 {
		t.Fatalf("generation %d, want 3", res2.Family.Generation)
	}
}

func testGraceCap(t *testing.T, s store.Store) {
	now := time.Now()
	f, first := createFamily(t, s, now)
	res, err := s.RotateRefresh(t.Context(), withGrace(rotation(t, f, first, now), 10*time.Second, 2))
	noErr(t, "rotate", err)
	for i := range 2 {
		got, err := s.RotateRefresh(t.Context(), withGrace(rotation(t, f, first, now.Add(time.Second)), 10*time.Second, 2))
		noErr(t, "replay within the cap", err)
		if !got.GraceReplay || got.RefreshToken != res.RefreshToken {
			t.Fatalf("replay %d: not the identical successor", i+1)
		}
	}
	r := withGrace(rotation(t, f, first, now.Add(time.Second)), 10*time.Second, 2)
	_, err = s.RotateRefresh(t.Context(), r)
	wantErr(t, "replay over the cap", err, store.ErrReused)
	if !queued(t, s, r.ReuseEvent.ID) {
		t.Fatal("reuse event not queued")
	}
	_, err = s.LookupRefresh(t.Context(), f.FID, hashOf(res.RefreshToken))
	wantErr(t, "the successor after reuse", err, store.ErrRevoked)
}

func testGraceWindow(t *testing.T, s store.Store) {
	now := time.Now()
	f, first := createFamily(t, s, now)
	res, err := s.RotateRefresh(t.Context(), withGrace(rotation(t, f, first, now), 10*time.Second, 3))
	noErr(t, "rotate", err)
	r := withGrace(rotation(t, f, first, now.Add(11*time.Second)), 10*time.Second, 3)
	_, err = s.RotateRefresh(t.Context(), r)
	wantErr(t, "replay after the grace window", err, store.ErrReused)
	if !queued(t, s, r.ReuseEvent.ID) {
		t.Fatal("reuse event not queued")
	}
	_, err = s.RotateRefresh(t.Context(), rotation(t, f, res.RefreshToken, now.Add(12*time.Second)))
	wantErr(t, "rotate the successor after reuse", err, store.ErrRevoked)
}

func testGraceZero(t *testing.T, s store.Store) {
	now := time.Now()
	f, first := createFamily(t, s, now)
	_, err := s.RotateRefresh(t.Context(), rotation(t, f, first, now))
	noErr(t, "rotate without grace", err)
	_, err = s.RotateRefresh(t.Context(), rotation(t, f, first, now))
	wantErr(t, "immediate replay without grace", err, store.ErrReused)
	d, err := s.DenyState(t.Context(), store.DenyQuery{FID: f.FID})
	noErr(t, "deny state", err)
	if !d.FamilyRevoked {
		t.Fatal("family not revoked")
	}
}

func testOlderGenerationReuse(t *testing.T, s store.Store) {
	now := time.Now()
	f, t1 := createFamily(t, s, now)
	r2 := withGrace(rotation(t, f, t1, now), 10*time.Second, 3)
	_, err := s.RotateRefresh(t.Context(), r2)
	noErr(t, "rotate 1->2", err)
	r3 := withGrace(rotation(t, f, r2.Successor, now.Add(time.Second)), 10*time.Second, 3)
	_, err = s.RotateRefresh(t.Context(), r3)
	noErr(t, "rotate 2->3", err)

	// t1 is two generations old: within any grace window, still reuse.
	r := withGrace(rotation(t, f, t1, now.Add(2*time.Second)), 10*time.Second, 3)
	_, err = s.RotateRefresh(t.Context(), r)
	wantErr(t, "replay generation 1", err, store.ErrReused)
	if !queued(t, s, r.ReuseEvent.ID) {
		t.Fatal("reuse event not queued")
	}
	_, err = s.RotateRefresh(t.Context(), rotation(t, f, r3.Successor, now.Add(3*time.Second)))
	wantErr(t, "rotate the live token of the revoked family", err, store.ErrRevoked)
	_, err = s.RotateRefresh(t.Context(), rotation(t, f, t1, now.Add(3*time.Second)))
	wantErr(t, "replay generation 1 again", err, store.ErrReused)
	_, err = s.GetFamily(t.Context(), f.FID)
	wantErr(t, "get the revoked family", err, store.ErrRevoked)
}

func testRefreshForgedHash(t *testing.T, s store.Store) {
	now := time.Now()
	f, first := createFamily(t, s, now)
	_, err := s.RotateRefresh(t.Context(), rotation(t, f, newToken(t, "vrt", f.FID), now))
	wantErr(t, "rotate a forged token", err, store.ErrNotFound)
	if len(pending(t, s)) != 0 {
		t.Fatal("a forged token queued an event")
	}
	_, err = s.RotateRefresh(t.Context(), rotation(t, f, first, now))
	noErr(t, "rotate the real token after the forgery", err)
}

func testRefreshClientMismatch(t *testing.T, s store.Store) {
	now := time.Now()
	f, first := createFamily(t, s, now)
	r := rotation(t, f, first, now)
	r.ClientID = clientB
	_, err := s.RotateRefresh(t.Context(), r)
	wantErr(t, "rotate as another client", err, store.ErrClientMismatch)
	_, err = s.RotateRefresh(t.Context(), rotation(t, f, first, now))
	noErr(t, "rotate as its client (a mismatch revokes nothing)", err)
}

func testScopeNarrowing(t *testing.T, s store.Store) {
	now := time.Now()
	f, tok := createFamily(t, s, now) // read write admin
	r := rotation(t, f, tok, now)
	r.Scopes = []string{"read", "write"}
	res, err := s.RotateRefresh(t.Context(), r)
	noErr(t, "narrow", err)
	if !sameStrings(res.Family.Scopes, []string{"read", "write"}) {
		t.Fatalf("scopes %v after narrowing", res.Family.Scopes)
	}
	tok = r.Successor

	wide := rotation(t, f, tok, now.Add(time.Minute))
	wide.Scopes = []string{"read", "admin"}
	_, err = s.RotateRefresh(t.Context(), wide)
	wantErr(t, "widen back to a dropped scope", err, store.ErrInvalidScope)
	got, err := s.LookupRefresh(t.Context(), f.FID, hashOf(tok))
	noErr(t, "the token after a refused widening is still live", err)
	if got.Generation != 2 || !sameStrings(got.Scopes, []string{"read", "write"}) {
		t.Fatalf("a refused widening changed the family: %+v", got)
	}

	keep := rotation(t, f, tok, now.Add(2*time.Minute))
	res, err = s.RotateRefresh(t.Context(), keep)
	noErr(t, "rotate without scopes", err)
	if !sameStrings(res.Family.Scopes, []string{"read", "write"}) {
		t.Fatalf("scopes %v after a rotation that asked for none", res.Family.Scopes)
	}
}

func testFamilyCutoffs(t *testing.T, s store.Store) {
	now := time.Now()
	cut := now.Add(-30 * time.Minute)
	old, oldTok := createFamily(t, s, now.Add(-time.Hour))
	withinSkew, withinSkewTok := createFamily(t, s, cut.Add(20*time.Second))
	fresh, freshTok := createFamily(t, s, now.Add(-10*time.Minute))
	clientOld, clientOldTok := newFamily(t, "", now.Add(-time.Hour))
	clientOld.ClientID, clientOld.Subject = clientB, subBob
	noErr(t, "create client-b's family", s.CreateFamily(t.Context(), clientOld, hashOf(clientOldTok)))
	revokeSubject(t, s, subAlice, cut)
	revokeClient(t, s, clientB, cut)

	rot := func(f store.RefreshFamily, tok string) error {
		r := rotation(t, f, tok, now)
		r.Cutoffs.Skew = time.Minute
		_, err := s.RotateRefresh(t.Context(), r)
		return err
	}
	wantErr(t, "family created before the subject cut-off", rot(old, oldTok), store.ErrRevoked)
	wantErr(t, "family created within skew after the cut-off", rot(withinSkew, withinSkewTok), store.ErrRevoked)
	wantErr(t, "family created before the client cut-off", rot(clientOld, clientOldTok), store.ErrRevoked)
	noErr(t, "family created after the cut-off plus skew", rot(fresh, freshTok))
	_, err := s.GetFamily(t.Context(), old.FID)
	wantErr(t, "get a family the cut-off covers", err, store.ErrRevoked)
	_, err = s.LookupRefresh(t.Context(), clientOld.FID, hashOf(clientOldTok))
	wantErr(t, "look up a family the client cut-off covers", err, store.ErrRevoked)

	late, lateTok := newFamily(t, "", cut.Add(-time.Second))
	wantErr(t, "create a family dated before the cut-off", s.CreateFamily(t.Context(), late, hashOf(lateTok)), store.ErrRevoked)
}

func testFamilyCutoffHints(t *testing.T, s store.Store) {
	now := time.Now()
	cut := now.Add(-30 * time.Minute)
	g, gTok := createFamily(t, s, now.Add(-time.Hour))
	revokeSubject(t, s, subAlice, cut)
	for _, hint := range []store.Cutoffs{
		{},
		{SubjectType: userType, Subject: subBob},
		{SubjectType: "client", Subject: subAlice},
		{SubjectType: userType, Subject: subAlice},
	} {
		r := rotation(t, g, gTok, now)
		r.Cutoffs = hint
		_, err := s.RotateRefresh(t.Context(), r)
		wantErr(t, "rotate a covered family with hint "+hint.SubjectType+":"+hint.Subject, err, store.ErrRevoked)
	}
	// An unrelated family rotates whatever the hint says.
	h, hTok := newFamily(t, "", now)
	h.Subject = subBob
	noErr(t, "create bob's family", s.CreateFamily(t.Context(), h, hashOf(hTok)))
	r := rotation(t, h, hTok, now)
	r.Cutoffs = store.Cutoffs{SubjectType: userType, Subject: subAlice}
	_, err := s.RotateRefresh(t.Context(), r)
	noErr(t, "rotate bob's family with alice as the hint", err)
}

func testFamilyCreateAfterRevoke(t *testing.T, s store.Store) {
	now := time.Now()
	f, tok := newFamily(t, "", now)
	revokeFamily(t, s, f.FID)
	wantErr(t, "create a revoked family", s.CreateFamily(t.Context(), f, hashOf(tok)), store.ErrRevoked)
}

func testFamilyCanceled(t *testing.T, s store.Store) {
	now := time.Now()
	f, first := createFamily(t, s, now)
	_, err := s.RotateRefresh(canceled(t), rotation(t, f, first, now))
	wantErr(t, "rotate with a canceled context", err, context.Canceled)
	got, err := s.LookupRefresh(t.Context(), f.FID, hashOf(first))
	noErr(t, "the first token after the canceled rotation", err)
	if got.Generation != 1 {
		t.Fatalf("a canceled rotation moved the generation to %d", got.Generation)
	}
	_, err = s.GetFamily(canceled(t), f.FID)
	wantErr(t, "get with a canceled context", err, context.Canceled)
	g, gTok := newFamily(t, "", now)
	wantErr(t, "create with a canceled context", s.CreateFamily(canceled(t), g, hashOf(gTok)), context.Canceled)
	_, err = s.GetFamily(t.Context(), g.FID)
	wantErr(t, "the family created with a canceled context", err, store.ErrNotFound)
}

// ---- device authorization (RFC 8628) ----

func testDeviceMissing(t *testing.T, s store.Store) {
	now := time.Now()
	d, tok := newDevice(t, now, now)
	_, err := s.LookupUserCode(t.Context(), d.UserCode, now)
	wantErr(t, "look up a missing user code", err, store.ErrNotFound)
	_, err = poll(t, s, d, tok, now)
	wantErr(t, "poll a missing device code", err, store.ErrNotFound)
	wantErr(t, "decide a missing authorization", s.DecideDevice(t.Context(), d.FID, true, subAlice, now, now), store.ErrNotFound)
}

func testDeviceDuplicate(t *testing.T, s store.Store) {
	now := time.Now()
	d, _ := createDevice(t, s, now, now)
	sameFID, _ := newDevice(t, now, now)
	sameFID.FID = d.FID
	wantErr(t, "create with a taken fid", s.CreateDeviceCode(t.Context(), sameFID), store.ErrAlreadyExists)
	sameUser, _ := newDevice(t, now, now)
	sameUser.UserCode = d.UserCode
	wantErr(t, "create with a taken user code", s.CreateDeviceCode(t.Context(), sameUser), store.ErrAlreadyExists)
	// The loser left nothing behind: the user code still names the first.
	got, err := s.LookupUserCode(t.Context(), d.UserCode, now)
	noErr(t, "look up", err)
	if got.FID != d.FID {
		t.Fatalf("user code names %s, want %s", got.FID, d.FID)
	}
}

func testDeviceRoundTrip(t *testing.T, s store.Store) {
	now := time.Now()
	d, tok := createDevice(t, s, now, now)
	got, err := s.LookupUserCode(t.Context(), d.UserCode, now)
	noErr(t, "look up the user code", err)
	if got.FID != d.FID || got.Hash != d.Hash || got.UserCode != d.UserCode || got.ClientID != d.ClientID ||
		!sameStrings(got.Scopes, d.Scopes) || got.Resource != d.Resource || got.Interval != d.Interval ||
		!sameMS(got.CreatedAt, d.CreatedAt) || !sameMS(got.ExpiresAt, d.ExpiresAt) || got.Status != store.DevicePending {
		t.Fatalf("looked-up device code differs:\n got %+v\nwant %+v", got, d)
	}
	res, err := poll(t, s, d, tok, now)
	noErr(t, "poll while pending", err)
	if res.Status != store.DevicePending || res.SlowDown {
		t.Fatalf("pending poll: %+v", res)
	}
	authTime := now.Add(time.Second)
	noErr(t, "approve", s.DecideDevice(t.Context(), d.FID, true, subAlice, authTime, now.Add(time.Second)))
	_, err = s.LookupUserCode(t.Context(), d.UserCode, now)
	wantErr(t, "look up a decided user code", err, store.ErrNotFound)
	wantErr(t, "approve twice", s.DecideDevice(t.Context(), d.FID, true, subBob, authTime, now.Add(time.Second)), store.ErrConflict)

	res, err = poll(t, s, d, tok, now.Add(6*time.Second))
	noErr(t, "poll after approval", err)
	if res.Status != store.DeviceApproved || res.Code.Subject != subAlice || !sameMS(res.Code.AuthTime, authTime) || res.Code.FID != d.FID {
		t.Fatalf("approved poll: %+v", res)
	}

	ev := event(t, now)
	_, err = s.PollDevice(t.Context(), store.DevicePoll{FID: d.FID, Hash: hashOf(tok), ClientID: d.ClientID, Now: now.Add(12 * time.Second), ReuseEvent: ev})
	wantErr(t, "poll after redemption", err, store.ErrReused)
	if !queued(t, s, ev.ID) {
		t.Fatal("reuse event not queued")
	}
	f, first := newFamily(t, d.FID, now)
	wantErr(t, "create the family after the device code's reuse", s.CreateFamily(t.Context(), f, hashOf(first)), store.ErrRevoked)
}

func testDeviceSlowDown(t *testing.T, s store.Store) {
	now := time.Now()
	d, tok := createDevice(t, s, now, now)
	res, err := poll(t, s, d, tok, now)
	noErr(t, "first poll", err)
	if res.SlowDown || res.Status != store.DevicePending {
		t.Fatalf("first poll: %+v", res)
	}
	res, err = poll(t, s, d, tok, now.Add(time.Second))
	noErr(t, "fast poll", err)
	if !res.SlowDown || res.Status != store.DevicePending || res.Code.Interval != d.Interval+5*time.Second {
		t.Fatalf("fast poll: SlowDown=%v status=%s interval=%s; want slow_down with %s", res.SlowDown, res.Status, res.Code.Interval, d.Interval+5*time.Second)
	}
	res, err = poll(t, s, d, tok, now.Add(8*time.Second))
	noErr(t, "poll slower than the old interval, faster than the new", err)
	if !res.SlowDown || res.Code.Interval != d.Interval+10*time.Second {
		t.Fatalf("second fast poll: %+v", res)
	}
	res, err = poll(t, s, d, tok, now.Add(30*time.Second))
	noErr(t, "poll at the new interval", err)
	if res.SlowDown || res.Status != store.DevicePending {
		t.Fatalf("slow poll: %+v", res)
	}
}

func testDeviceDenied(t *testing.T, s store.Store) {
	now := time.Now()
	d, tok := createDevice(t, s, now, now)
	noErr(t, "deny", s.DecideDevice(t.Context(), d.FID, false, "", time.Time{}, now))
	wantErr(t, "approve after denial", s.DecideDevice(t.Context(), d.FID, true, subAlice, now, now), store.ErrConflict)
	res, err := poll(t, s, d, tok, now)
	noErr(t, "poll", err)
	if res.Status != store.DeviceDenied {
		t.Fatalf("poll after denial: %+v", res)
	}
}

func testDeviceExpired(t *testing.T, s store.Store) {
	now := time.Now()
	d, tok := createDevice(t, s, now, now)
	later := d.ExpiresAt.Add(time.Second)
	_, err := s.LookupUserCode(t.Context(), d.UserCode, later)
	wantErr(t, "look up an expired user code", err, store.ErrExpired)
	wantErr(t, "approve an expired authorization", s.DecideDevice(t.Context(), d.FID, true, subAlice, later, later), store.ErrExpired)
	_, err = poll(t, s, d, tok, later)
	wantErr(t, "poll an expired device code", err, store.ErrExpired)
}

func testDeviceForgedHash(t *testing.T, s store.Store) {
	now := time.Now()
	d, tok := createDevice(t, s, now, now)
	noErr(t, "approve", s.DecideDevice(t.Context(), d.FID, true, subAlice, now, now))
	_, err := poll(t, s, d, newToken(t, "vdc", d.FID), now)
	wantErr(t, "poll a forged device code", err, store.ErrNotFound)
	if len(pending(t, s)) != 0 {
		t.Fatal("a forged device code queued an event")
	}
	res, err := poll(t, s, d, tok, now)
	noErr(t, "poll the real code", err)
	if res.Status != store.DeviceApproved {
		t.Fatalf("poll: %+v", res)
	}
}

func testDeviceClientMismatch(t *testing.T, s store.Store) {
	now := time.Now()
	d, tok := createDevice(t, s, now, now)
	noErr(t, "approve", s.DecideDevice(t.Context(), d.FID, true, subAlice, now, now))
	other := d
	other.ClientID = clientB
	_, err := poll(t, s, other, tok, now)
	wantErr(t, "poll as another client", err, store.ErrClientMismatch)
	res, err := poll(t, s, d, tok, now)
	noErr(t, "poll as its client", err)
	if res.Status != store.DeviceApproved {
		t.Fatalf("poll: %+v", res)
	}
}

func testDeviceCutoffs(t *testing.T, s store.Store) {
	now := time.Now()
	cut := now.Add(-30 * time.Minute)
	old, oldTok := createDevice(t, s, now.Add(-time.Hour), now)
	withinSkew, withinSkewTok := createDevice(t, s, cut.Add(20*time.Second), now)
	fresh, freshTok := createDevice(t, s, now.Add(-time.Minute), now)
	clientOld, clientOldTok := newDevice(t, now.Add(-time.Hour), now)
	clientOld.ClientID = clientB
	noErr(t, "create client-b's device code", s.CreateDeviceCode(t.Context(), clientOld))
	for _, d := range []store.DeviceCode{old, withinSkew, fresh} {
		noErr(t, "approve", s.DecideDevice(t.Context(), d.FID, true, subAlice, now, now))
	}
	revokeSubject(t, s, subAlice, cut)
	revokeClient(t, s, clientB, cut)

	pollSkew := func(d store.DeviceCode, tok string, hint string) error {
		_, err := s.PollDevice(t.Context(), store.DevicePoll{
			FID: d.FID, Hash: hashOf(tok), ClientID: d.ClientID, Now: now, ReuseEvent: event(t, now),
			Cutoffs: store.Cutoffs{SubjectType: userType, Subject: hint, Skew: time.Minute},
		})
		return err
	}
	wantErr(t, "device code created before the approver's cut-off, no hint", pollSkew(old, oldTok, ""), store.ErrRevoked)
	wantErr(t, "same, wrong hint", pollSkew(old, oldTok, subBob), store.ErrRevoked)
	wantErr(t, "device code created within skew after the cut-off", pollSkew(withinSkew, withinSkewTok, subAlice), store.ErrRevoked)
	wantErr(t, "pending device code created before the client cut-off", pollSkew(clientOld, clientOldTok, ""), store.ErrRevoked)
	noErr(t, "device code created after the cut-off plus skew", pollSkew(fresh, freshTok, ""))
}

func testDeviceCanceled(t *testing.T, s store.Store) {
	now := time.Now()
	d, tok := createDevice(t, s, now, now)
	noErr(t, "approve", s.DecideDevice(t.Context(), d.FID, true, subAlice, now, now))
	_, err := s.PollDevice(canceled(t), store.DevicePoll{FID: d.FID, Hash: hashOf(tok), ClientID: d.ClientID, Now: now, ReuseEvent: event(t, now)})
	wantErr(t, "poll with a canceled context", err, context.Canceled)
	res, err := poll(t, s, d, tok, now)
	noErr(t, "poll after the canceled attempt (it must not have redeemed)", err)
	if res.Status != store.DeviceApproved {
		t.Fatalf("poll: %+v", res)
	}
	e, _ := newDevice(t, now, now)
	wantErr(t, "create with a canceled context", s.CreateDeviceCode(canceled(t), e), context.Canceled)
	_, err = s.LookupUserCode(t.Context(), e.UserCode, now)
	wantErr(t, "the device code created with a canceled context", err, store.ErrNotFound)
}

// ---- contention ----

func testConcurrentCodeRedemption(t *testing.T, s store.Store) {
	now := time.Now()
	c, tok := createCode(t, s, now, now)
	events := make([]store.OutboxEntry, contenders)
	errs := make([]error, contenders)
	var wg sync.WaitGroup
	for i := range contenders {
		events[i] = event(t, now)
		wg.Go(func() {
			_, errs[i] = s.RedeemAuthCode(t.Context(), c.FID, hashOf(tok), c.ClientID, time.Now(), events[i], store.Cutoffs{})
		})
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, store.ErrReused):
			t.Fatalf("redeemer %d: %v, want success or ErrReused", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d redemptions succeeded, want exactly 1", winners)
	}
	f, first := newFamily(t, c.FID, now)
	wantErr(t, "create the winner's family", s.CreateFamily(t.Context(), f, hashOf(first)), store.ErrRevoked)
	d, err := s.DenyState(t.Context(), store.DenyQuery{FID: c.FID})
	noErr(t, "deny state", err)
	if !d.FamilyRevoked {
		t.Fatal("family not revoked after contended redemption")
	}
	wantQueuedFrom(t, s, events)
}

// wantQueuedFrom fails unless the outbox holds at least one of events and
// nothing else.
func wantQueuedFrom(t *testing.T, s store.Store, events []store.OutboxEntry) {
	t.Helper()
	got := pending(t, s)
	if len(got) == 0 {
		t.Fatal("no reuse event queued")
	}
	for _, e := range got {
		if !slices.ContainsFunc(events, func(w store.OutboxEntry) bool {
			return w.ID == e.ID && w.Subject == e.Subject && string(w.Data) == string(e.Data)
		}) {
			t.Fatalf("outbox holds %q, not one of the reuse events", e.ID)
		}
	}
}

// rotateAll runs one rotation of presented per goroutine, each with its own
// successor.
func rotateAll(t *testing.T, s store.Store, f store.RefreshFamily, presented string, grace time.Duration, replays int) ([]store.Rotation, []store.RotationResult, []error) {
	t.Helper()
	rs := make([]store.Rotation, contenders)
	res := make([]store.RotationResult, contenders)
	errs := make([]error, contenders)
	var wg sync.WaitGroup
	for i := range contenders {
		rs[i] = withGrace(rotation(t, f, presented, time.Now()), grace, replays)
		wg.Go(func() {
			r := rs[i]
			r.Now = time.Now()
			res[i], errs[i] = s.RotateRefresh(t.Context(), r)
		})
	}
	wg.Wait()
	return rs, res, errs
}

// tally checks each outcome and returns the winner's successor and the
// counts of grace replays and reuses.
func tally(t *testing.T, rs []store.Rotation, res []store.RotationResult, errs []error) (successor string, graces, reuses int) {
	t.Helper()
	winners := 0
	for i := range rs {
		switch {
		case errs[i] == nil && !res[i].GraceReplay:
			winners++
			successor = rs[i].Successor
			if res[i].RefreshToken != rs[i].Successor {
				t.Fatalf("rotation %d won but returned another token", i)
			}
		case errs[i] == nil:
			graces++
		case errors.Is(errs[i], store.ErrReused):
			reuses++
		default:
			t.Fatalf("rotation %d: %v", i, errs[i])
		}
	}
	if winners != 1 {
		t.Fatalf("%d rotations won, want exactly 1", winners)
	}
	for i := range rs {
		if errs[i] == nil && res[i].RefreshToken != successor {
			t.Fatalf("rotation %d holds a second live successor", i)
		}
	}
	return successor, graces, reuses
}

func testConcurrentRotationGrace(t *testing.T, s store.Store) {
	f, first := createFamily(t, s, time.Now())
	rs, res, errs := rotateAll(t, s, f, first, time.Minute, contenders)
	successor, graces, reuses := tally(t, rs, res, errs)
	if graces != contenders-1 || reuses != 0 {
		t.Fatalf("%d grace replays and %d reuses, want %d and 0", graces, reuses, contenders-1)
	}
	got, err := s.LookupRefresh(t.Context(), f.FID, hashOf(successor))
	noErr(t, "the one live token", err)
	if got.Generation != 2 {
		t.Fatalf("generation %d, want 2", got.Generation)
	}
	_, err = s.LookupRefresh(t.Context(), f.FID, hashOf(first))
	wantErr(t, "the superseded token", err, store.ErrNotFound)
	for i := range rs {
		if rs[i].Successor != successor {
			_, err := s.LookupRefresh(t.Context(), f.FID, hashOf(rs[i].Successor))
			wantErr(t, "a losing successor", err, store.ErrNotFound)
		}
	}
}

func testConcurrentRotationGraceCapped(t *testing.T, s store.Store) {
	f, first := createFamily(t, s, time.Now())
	const replays = 3
	rs, res, errs := rotateAll(t, s, f, first, time.Minute, replays)
	successor, graces, reuses := tally(t, rs, res, errs)
	if graces != replays || reuses != contenders-1-replays {
		t.Fatalf("%d grace replays and %d reuses, want %d and %d", graces, reuses, replays, contenders-1-replays)
	}
	_, err := s.LookupRefresh(t.Context(), f.FID, hashOf(successor))
	wantErr(t, "the successor of a family revoked for reuse", err, store.ErrRevoked)
}

func testConcurrentRotationNoGrace(t *testing.T, s store.Store) {
	f, first := createFamily(t, s, time.Now())
	rs, res, errs := rotateAll(t, s, f, first, 0, 0)
	successor, graces, reuses := tally(t, rs, res, errs)
	if graces != 0 || reuses != contenders-1 {
		t.Fatalf("%d grace replays and %d reuses, want 0 and %d", graces, reuses, contenders-1)
	}
	_, err := s.LookupRefresh(t.Context(), f.FID, hashOf(successor))
	wantErr(t, "the successor of a family revoked for reuse", err, store.ErrRevoked)
	_, err = s.RotateRefresh(t.Context(), rotation(t, f, successor, time.Now()))
	wantErr(t, "rotate the successor", err, store.ErrRevoked)
	events := make([]store.OutboxEntry, len(rs))
	for i := range rs {
		events[i] = rs[i].ReuseEvent
	}
	wantQueuedFrom(t, s, events)
}

func testConcurrentDevicePoll(t *testing.T, s store.Store) {
	now := time.Now()
	d, tok := createDevice(t, s, now, now)
	noErr(t, "approve", s.DecideDevice(t.Context(), d.FID, true, subAlice, now, now))
	errs := make([]error, contenders)
	res := make([]store.PollResult, contenders)
	var wg sync.WaitGroup
	for i := range contenders {
		wg.Go(func() {
			res[i], errs[i] = s.PollDevice(t.Context(), store.DevicePoll{
				FID: d.FID, Hash: hashOf(tok), ClientID: d.ClientID, Now: time.Now(),
				ReuseEvent: store.OutboxEntry{ID: randomID(t), Subject: eventSubject, Data: []byte("{}"), CreatedAt: now},
			})
		})
	}
	wg.Wait()
	redeemed := 0
	for i, err := range errs {
		switch {
		case err == nil && res[i].Status == store.DeviceApproved:
			redeemed++
		case errors.Is(err, store.ErrReused):
		default:
			t.Fatalf("poll %d: %+v, %v; want a redemption or ErrReused", i, res[i], err)
		}
	}
	if redeemed != 1 {
		t.Fatalf("%d polls redeemed the device code, want exactly 1", redeemed)
	}
}
