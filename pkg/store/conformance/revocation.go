package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// revocationTests cover deny state, cut-offs and the outbox.
var revocationTests = []subtest{
	{"Revoke/Token", testRevokeToken},
	{"Replay/WritesDenyStateOnly", testReplay},
	{"Revoke/Family", testRevokeFamily},
	{"Revoke/Subject", testRevokeSubject},
	{"Revoke/Client", testRevokeClient},
	{"Revoke/CutoffNeverMovesBackwards", testCutoffMonotonic},
	{"Revoke/CutoffOutlivesRetain", testCutoffOutlivesRetain},
	{"Revoke/Idempotent", testRevokeIdempotent},
	{"Revoke/MarksExpire", testRevokeMarksExpire},
	{"Revoke/RefusesIncomplete", testRevokeIncomplete},
	{"Revoke/ContextCanceled", testRevokeCanceled},
	{"DenyState/Missing", testDenyMissing},
	{"DenyState/EitherSubjectType", testDenyEitherSubjectType},
	{"Outbox/PendingAndAck", testOutbox},
}

func deny(t *testing.T, s store.Store, q store.DenyQuery) store.Deny {
	t.Helper()
	d, err := s.DenyState(t.Context(), q)
	noErr(t, "deny state", err)
	return d
}

func testRevokeToken(t *testing.T, s store.Store) {
	now := time.Now()
	jti, other := randomID(t), randomID(t)
	e := event(t, now)
	noErr(t, "revoke token", s.Revoke(t.Context(), store.Revocation{
		Kind: store.RevokeToken, JTI: jti, Expires: now.Add(5 * time.Minute), Retain: time.Minute,
	}, e))
	if d := deny(t, s, store.DenyQuery{JTI: jti}); !d.JTIRevoked || d.FamilyRevoked {
		t.Fatalf("deny state of the revoked jti: %+v", d)
	}
	if d := deny(t, s, store.DenyQuery{JTI: other}); d.JTIRevoked {
		t.Fatal("another jti reads as revoked")
	}
	if !queued(t, s, e.ID) {
		t.Fatal("event not queued with the revocation")
	}
}

func testRevokeFamily(t *testing.T, s store.Store) {
	now := time.Now()
	f, tok := createFamily(t, s, now)
	c, codeTok := createCode(t, s, now, now)
	d, devTok := createDevice(t, s, now, now)
	e := event(t, now)
	noErr(t, "revoke family", s.Revoke(t.Context(), store.Revocation{Kind: store.RevokeFamily, FID: f.FID, Reason: "admin", Retain: time.Hour}, e))
	revokeFamily(t, s, c.FID)
	revokeFamily(t, s, d.FID)
	if got := deny(t, s, store.DenyQuery{FID: f.FID}); !got.FamilyRevoked {
		t.Fatalf("deny state of the revoked family: %+v", got)
	}
	if got := deny(t, s, store.DenyQuery{FID: randomID(t)}); got.FamilyRevoked {
		t.Fatal("another family reads as revoked")
	}
	if !queued(t, s, e.ID) {
		t.Fatal("event not queued with the revocation")
	}
	_, err := s.RotateRefresh(t.Context(), rotation(t, f, tok, now))
	wantErr(t, "rotate a revoked family", err, store.ErrRevoked)
	_, err = s.GetFamily(t.Context(), f.FID)
	wantErr(t, "get a revoked family", err, store.ErrRevoked)
	_, err = redeem(t, s, c, codeTok, now)
	wantErr(t, "redeem the code of a revoked family", err, store.ErrRevoked)
	_, err = poll(t, s, d, devTok, now)
	wantErr(t, "poll the device code of a revoked family", err, store.ErrRevoked)
}

func testRevokeSubject(t *testing.T, s store.Store) {
	cut := time.Now().Add(-time.Minute)
	revokeSubject(t, s, subAlice, cut)
	d := deny(t, s, store.DenyQuery{SubjectType: userType, Subject: subAlice, ClientID: clientA})
	if !sameMS(d.SubjectCutoff, cut) || !d.ClientCutoff.IsZero() || d.JTIRevoked || d.FamilyRevoked {
		t.Fatalf("deny state after a subject cut-off at %s: %+v", cut, d)
	}
	if d := deny(t, s, store.DenyQuery{SubjectType: userType, Subject: subBob}); !d.SubjectCutoff.IsZero() {
		t.Fatal("another subject has a cut-off")
	}
	if d := deny(t, s, store.DenyQuery{SubjectType: "client", Subject: subAlice}); !d.SubjectCutoff.IsZero() {
		t.Fatal("a client subject of the same name has the user's cut-off")
	}
}

func testRevokeClient(t *testing.T, s store.Store) {
	cut := time.Now().Add(-time.Minute)
	revokeClient(t, s, clientA, cut)
	d := deny(t, s, store.DenyQuery{SubjectType: userType, Subject: subAlice, ClientID: clientA})
	if !sameMS(d.ClientCutoff, cut) || !d.SubjectCutoff.IsZero() {
		t.Fatalf("deny state after a client cut-off at %s: %+v", cut, d)
	}
	if d := deny(t, s, store.DenyQuery{ClientID: clientB}); !d.ClientCutoff.IsZero() {
		t.Fatal("another client has a cut-off")
	}
}

func testCutoffMonotonic(t *testing.T, s store.Store) {
	now := time.Now()
	revokeSubject(t, s, subAlice, now)
	revokeSubject(t, s, subAlice, now.Add(-time.Hour))
	if d := deny(t, s, store.DenyQuery{SubjectType: userType, Subject: subAlice}); !sameMS(d.SubjectCutoff, now) {
		t.Fatalf("an earlier cut-off moved it back to %s", d.SubjectCutoff)
	}
	revokeSubject(t, s, subAlice, now.Add(time.Hour))
	if d := deny(t, s, store.DenyQuery{SubjectType: userType, Subject: subAlice}); !sameMS(d.SubjectCutoff, now.Add(time.Hour)) {
		t.Fatalf("a later cut-off did not replace it: %s", d.SubjectCutoff)
	}
	revokeClient(t, s, clientA, now)
	revokeClient(t, s, clientA, now.Add(-time.Hour))
	if d := deny(t, s, store.DenyQuery{ClientID: clientA}); !sameMS(d.ClientCutoff, now) {
		t.Fatalf("an earlier client cut-off moved it back to %s", d.ClientCutoff)
	}
}

// A cut-off kills the families created before it for as long as they could
// live, not only for the access tokens' Retain.
func testCutoffOutlivesRetain(t *testing.T, s store.Store) {
	now := time.Now()
	f, tok := createFamily(t, s, now.Add(-time.Hour))
	noErr(t, "revoke subject", s.Revoke(t.Context(), store.Revocation{
		Kind: store.RevokeSubject, SubjectType: userType, Subject: subAlice, Cutoff: now.Add(-time.Minute), Retain: 200 * time.Millisecond,
	}, event(t, now)))
	time.Sleep(1200 * time.Millisecond)
	_, err := s.RotateRefresh(t.Context(), rotation(t, f, tok, time.Now()))
	wantErr(t, "rotate a family the cut-off covered, after the cut-off's Retain", err, store.ErrRevoked)
}

func testRevokeIdempotent(t *testing.T, s store.Store) {
	now := time.Now()
	f, _ := createFamily(t, s, now)
	e := event(t, now)
	r := store.Revocation{Kind: store.RevokeFamily, FID: f.FID, Reason: "admin", Retain: time.Hour}
	noErr(t, "revoke", s.Revoke(t.Context(), r, e))
	noErr(t, "revoke again", s.Revoke(t.Context(), r, e))
	if d := deny(t, s, store.DenyQuery{FID: f.FID}); !d.FamilyRevoked {
		t.Fatal("family not revoked")
	}
	n := 0
	for _, p := range pending(t, s) {
		if p.ID == e.ID {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the event is queued %d times, want once (same id)", n)
	}
	jti := randomID(t)
	tr := store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: now.Add(time.Hour), Retain: time.Minute}
	noErr(t, "revoke token", s.Revoke(t.Context(), tr, event(t, now)))
	noErr(t, "revoke token again", s.Revoke(t.Context(), tr, event(t, now)))
	if d := deny(t, s, store.DenyQuery{JTI: jti}); !d.JTIRevoked {
		t.Fatal("jti not revoked")
	}
}

func testRevokeMarksExpire(t *testing.T, s store.Store) {
	now := time.Now()
	jti, fid := randomID(t), randomID(t)
	noErr(t, "revoke a token expiring now", s.Revoke(t.Context(), store.Revocation{
		Kind: store.RevokeToken, JTI: jti, Expires: now, Retain: 200 * time.Millisecond,
	}, event(t, now)))
	noErr(t, "revoke a family briefly", s.Revoke(t.Context(), store.Revocation{
		Kind: store.RevokeFamily, FID: fid, Retain: 200 * time.Millisecond,
	}, event(t, now)))
	time.Sleep(2500 * time.Millisecond)
	if d := deny(t, s, store.DenyQuery{JTI: jti, FID: fid}); d.JTIRevoked || d.FamilyRevoked {
		t.Fatalf("marks outlived their retention: %+v", d)
	}
}

func testRevokeIncomplete(t *testing.T, s store.Store) {
	now := time.Now()
	e := event(t, now)
	for name, r := range map[string]store.Revocation{
		"token without jti":       {Kind: store.RevokeToken, Expires: now, Retain: time.Minute},
		"family without fid":      {Kind: store.RevokeFamily, Retain: time.Minute},
		"subject without subject": {Kind: store.RevokeSubject, SubjectType: userType, Cutoff: now, Retain: time.Minute},
		"client without client":   {Kind: store.RevokeClient, Cutoff: now, Retain: time.Minute},
		"subject without cut-off": {Kind: store.RevokeSubject, SubjectType: userType, Subject: subAlice, Retain: time.Minute},
		"unknown kind":            {Kind: "everything", Retain: time.Minute},
		"without retain":          {Kind: store.RevokeToken, JTI: "x", Expires: now},
	} {
		if err := s.Revoke(t.Context(), r, e); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := s.Revoke(t.Context(), store.Revocation{Kind: store.RevokeToken, JTI: "x", Expires: now, Retain: time.Minute}, store.OutboxEntry{}); err == nil {
		t.Error("a revocation without its event was accepted")
	}
	if got := pending(t, s); len(got) != 0 {
		t.Fatalf("refused revocations queued %d events", len(got))
	}
}

func testRevokeCanceled(t *testing.T, s store.Store) {
	now := time.Now()
	jti := randomID(t)
	err := s.Revoke(canceled(t), store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: now.Add(time.Hour), Retain: time.Minute}, event(t, now))
	wantErr(t, "revoke with a canceled context", err, context.Canceled)
	if d := deny(t, s, store.DenyQuery{JTI: jti}); d.JTIRevoked {
		t.Fatal("a canceled revocation wrote deny state")
	}
	if len(pending(t, s)) != 0 {
		t.Fatal("a canceled revocation queued an event")
	}
	_, err = s.DenyState(canceled(t), store.DenyQuery{JTI: jti})
	wantErr(t, "deny state with a canceled context", err, context.Canceled)
	_, err = s.PendingOutbox(canceled(t), now, 10)
	wantErr(t, "pending outbox with a canceled context", err, context.Canceled)
	wantErr(t, "ack with a canceled context", s.AckOutbox(canceled(t), "x"), context.Canceled)
}

func testDenyMissing(t *testing.T, s store.Store) {
	d := deny(t, s, store.DenyQuery{JTI: randomID(t), FID: randomID(t), SubjectType: userType, Subject: subAlice, ClientID: clientA})
	if d != (store.Deny{}) {
		t.Fatalf("deny state of nothing revoked: %+v", d)
	}
	if d := deny(t, s, store.DenyQuery{}); d != (store.Deny{}) {
		t.Fatalf("deny state of an empty query: %+v", d)
	}
}

func testOutbox(t *testing.T, s store.Store) {
	now := time.Now()
	var es []store.OutboxEntry
	for i := range 3 {
		e := event(t, now.Add(time.Duration(i-3)*time.Minute)) // -3m, -2m, -1m
		e.Subject = "valet.token.revoked"
		e.Data = []byte("payload with spaces\nand a newline " + e.ID)
		es = append(es, e)
		noErr(t, "revoke", s.Revoke(t.Context(), store.Revocation{
			Kind: store.RevokeToken, JTI: randomID(t), Expires: now.Add(time.Hour), Retain: time.Minute,
		}, e))
	}
	same := func(got, want store.OutboxEntry) bool {
		return got.ID == want.ID && got.Subject == want.Subject && string(got.Data) == string(want.Data) && sameMS(got.CreatedAt, want.CreatedAt)
	}
	got, err := s.PendingOutbox(t.Context(), now.Add(-90*time.Second), 10)
	noErr(t, "pending", err)
	if len(got) != 2 || !same(got[0], es[0]) || !same(got[1], es[1]) {
		t.Fatalf("pending older than 90s: %+v, want the two oldest in order", got)
	}
	got, err = s.PendingOutbox(t.Context(), now, 1)
	noErr(t, "pending, limit 1", err)
	if len(got) != 1 || !same(got[0], es[0]) {
		t.Fatalf("pending with limit 1: %+v", got)
	}
	noErr(t, "ack", s.AckOutbox(t.Context(), es[0].ID))
	noErr(t, "ack again", s.AckOutbox(t.Context(), es[0].ID))
	noErr(t, "ack an unknown id", s.AckOutbox(t.Context(), "unknown"))
	got, err = s.PendingOutbox(t.Context(), now, 10)
	noErr(t, "pending after ack", err)
	if len(got) != 2 || !same(got[0], es[1]) || !same(got[1], es[2]) {
		t.Fatalf("pending after ack: %+v", got)
	}
	got, err = s.PendingOutbox(t.Context(), now, 0)
	noErr(t, "pending, limit 0", err)
	if len(got) != 0 {
		t.Fatalf("limit 0 returned %d", len(got))
	}
}

// testDenyEitherSubjectType: a query without a subject type reads both
// namespaces' cut-offs and reports the later one, since an access token
// does not say whether its sub is a user or a client.
func testDenyEitherSubjectType(t *testing.T, s store.Store) {
	now := time.Now()
	revokeSubject(t, s, subAlice, now.Add(-time.Hour))
	noErr(t, "revoke client subject", s.Revoke(t.Context(), store.Revocation{
		Kind: store.RevokeSubject, SubjectType: "client", Subject: subAlice, Cutoff: now, Retain: time.Hour,
	}, event(t, now)))
	if d := deny(t, s, store.DenyQuery{Subject: subAlice}); !sameMS(d.SubjectCutoff, now) {
		t.Fatalf("either type: cut-off %s, want the later one %s", d.SubjectCutoff, now)
	}
	revokeSubject(t, s, subBob, now)
	if d := deny(t, s, store.DenyQuery{Subject: subBob}); !sameMS(d.SubjectCutoff, now) {
		t.Fatalf("either type, user only: cut-off %s, want %s", d.SubjectCutoff, now)
	}
	if d := deny(t, s, store.DenyQuery{Subject: "nobody"}); !d.SubjectCutoff.IsZero() {
		t.Fatal("a subject without cut-off has one")
	}
}

func testReplay(t *testing.T, s store.Store) {
	now := time.Now()
	jti := randomID(t)
	f, _ := createFamily(t, s, now.Add(-time.Second))
	fid := f.FID
	for _, r := range []store.Revocation{
		{Kind: store.RevokeToken, JTI: jti, Expires: now.Add(5 * time.Minute), Retain: time.Minute},
		{Kind: store.RevokeFamily, FID: fid, Reason: "refresh_reuse", Retain: time.Minute},
		{Kind: store.RevokeSubject, SubjectType: userType, Subject: subAlice, Cutoff: now, Retain: time.Minute},
		{Kind: store.RevokeClient, ClientID: "replayed-client", Cutoff: now, Retain: time.Minute},
	} {
		noErr(t, "replay "+string(r.Kind), s.Replay(t.Context(), r))
	}
	d := deny(t, s, store.DenyQuery{JTI: jti, FID: fid, SubjectType: userType, Subject: subAlice, ClientID: "replayed-client"})
	if !d.JTIRevoked || !d.FamilyRevoked || d.SubjectCutoff.IsZero() || d.ClientCutoff.IsZero() {
		t.Fatalf("deny state after replay: %+v", d)
	}
	if got := pending(t, s); len(got) != 0 {
		t.Fatalf("replay queued %d events; its events are in the stream already", len(got))
	}
}
