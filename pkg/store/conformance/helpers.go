package conformance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// Fixture values shared by the grant and revocation cases.
const (
	clientA  = "client-a"
	clientB  = "client-b"
	subAlice = "alice"
	subBob   = "bob"
	userType = "user" // events.SubjectUser
	// eventSubject is the NATS subject of the fixture events.
	eventSubject = "valet.family.revoked"
)

// randomID returns 16 random bytes in unpadded base64url, the shape of a
// family id or a jti (docs/tokens.md).
func randomID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// newToken returns an opaque token of kind ("vrt", "vac", "vdc") in family
// fid with a fresh 256-bit secret.
func newToken(t testing.TB, kind, fid string) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return kind + "_" + fid + "." + base64.RawURLEncoding.EncodeToString(b)
}

// hashOf is what stores keep of a token: the SHA-256 of the whole string.
func hashOf(tok string) store.Hash { return sha256.Sum256([]byte(tok)) }

// event returns a fresh outbox entry, created at now.
func event(t testing.TB, now time.Time) store.OutboxEntry {
	t.Helper()
	id := randomID(t)
	return store.OutboxEntry{ID: id, Subject: eventSubject, Data: []byte(`{"id":"` + id + `"}`), CreatedAt: now}
}

// canceled returns a context that is already canceled.
func canceled(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// wantErr fails unless errors.Is(err, want).
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// wantOneOf fails unless err is one of wants.
func wantOneOf(t testing.TB, what string, err error, wants ...error) {
	t.Helper()
	for _, w := range wants {
		if errors.Is(err, w) {
			return
		}
	}
	t.Fatalf("%s: got error %v, want one of %v", what, err, wants)
}

// noErr fails on any error.
func noErr(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sameMS reports whether two times agree to the millisecond, the precision
// stores keep.
func sameMS(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	return a.UnixMilli() == b.UnixMilli()
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// pending returns every outbox entry.
func pending(t testing.TB, s store.Store) []store.OutboxEntry {
	t.Helper()
	out, err := s.PendingOutbox(t.Context(), time.Now().Add(24*time.Hour), 10000)
	noErr(t, "pending outbox", err)
	return out
}

// queued reports whether the outbox holds the entry with id.
func queued(t testing.TB, s store.Store, id string) bool {
	t.Helper()
	for _, e := range pending(t, s) {
		if e.ID == id {
			return true
		}
	}
	return false
}

// newCode builds an authorization code of clientA for alice, created at
// created and valid for a minute from now; tok is the code itself.
func newCode(t testing.TB, created, now time.Time) (c store.AuthCode, tok string) {
	t.Helper()
	fid := randomID(t)
	tok = newToken(t, "vac", fid)
	return store.AuthCode{
		FID:                 fid,
		Hash:                hashOf(tok),
		ClientID:            clientA,
		RedirectURI:         "https://app.example.com/cb",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		Scopes:              []string{"read", "write"},
		Resource:            "https://api.example.com",
		Subject:             subAlice,
		AuthTime:            created.Add(-time.Minute),
		CreatedAt:           created,
		ExpiresAt:           now.Add(time.Minute),
	}, tok
}

// createCode stores newCode's code.
func createCode(t testing.TB, s store.Store, created, now time.Time) (store.AuthCode, string) {
	t.Helper()
	c, tok := newCode(t, created, now)
	noErr(t, "create auth code", s.CreateAuthCode(t.Context(), c))
	return c, tok
}

// redeem redeems a code as its client, with alice's subject as the cut-off
// hint, skew 0.
func redeem(t testing.TB, s store.Store, c store.AuthCode, tok string, now time.Time) (store.AuthCode, error) {
	t.Helper()
	return s.RedeemAuthCode(t.Context(), c.FID, hashOf(tok), c.ClientID, now, event(t, now),
		store.Cutoffs{SubjectType: userType, Subject: c.Subject, ClientID: c.ClientID})
}

// newFamily builds a family of clientA for alice, created at created, with a
// day of idle timeout and a week of absolute lifetime; tok is its first
// refresh token.
func newFamily(t testing.TB, fid string, created time.Time) (store.RefreshFamily, string) {
	t.Helper()
	if fid == "" {
		fid = randomID(t)
	}
	return store.RefreshFamily{
		FID:               fid,
		ClientID:          clientA,
		Subject:           subAlice,
		SubjectType:       userType,
		Scopes:            []string{"read", "write", "admin"},
		Resource:          "https://api.example.com",
		Grant:             "authorization_code",
		AuthTime:          created.Add(-time.Minute),
		CreatedAt:         created,
		IdleTimeout:       24 * time.Hour,
		AbsoluteExpiresAt: created.Add(7 * 24 * time.Hour),
		Generation:        1,
	}, newToken(t, "vrt", fid)
}

// createFamily stores newFamily's family.
func createFamily(t testing.TB, s store.Store, created time.Time) (store.RefreshFamily, string) {
	t.Helper()
	f, tok := newFamily(t, "", created)
	noErr(t, "create family", s.CreateFamily(t.Context(), f, hashOf(tok)))
	return f, tok
}

// rotation asks to rotate presented to a fresh successor at now, without
// grace, with the family's own subject as the cut-off hint.
func rotation(t testing.TB, f store.RefreshFamily, presented string, now time.Time) store.Rotation {
	t.Helper()
	return store.Rotation{
		FID:        f.FID,
		Presented:  hashOf(presented),
		ClientID:   f.ClientID,
		Successor:  newToken(t, "vrt", f.FID),
		Now:        now,
		ReuseEvent: event(t, now),
		Cutoffs:    store.Cutoffs{SubjectType: f.SubjectType, Subject: f.Subject, ClientID: f.ClientID},
	}
}

// withGrace sets a rotation's grace window and replay cap.
func withGrace(r store.Rotation, grace time.Duration, replays int) store.Rotation {
	r.Grace, r.MaxGraceReplays = grace, replays
	return r
}

// newDevice builds a pending device authorization of clientA created at
// created, valid for ten minutes from now, polled every 5 s.
func newDevice(t testing.TB, created, now time.Time) (store.DeviceCode, string) {
	t.Helper()
	fid := randomID(t)
	tok := newToken(t, "vdc", fid)
	return store.DeviceCode{
		FID:       fid,
		Hash:      hashOf(tok),
		UserCode:  "BCDF-" + fid[:4],
		ClientID:  clientA,
		Scopes:    []string{"read"},
		Resource:  "https://api.example.com",
		Interval:  5 * time.Second,
		CreatedAt: created,
		ExpiresAt: now.Add(10 * time.Minute),
		Status:    store.DevicePending,
	}, tok
}

// createDevice stores newDevice's authorization.
func createDevice(t testing.TB, s store.Store, created, now time.Time) (store.DeviceCode, string) {
	t.Helper()
	d, tok := newDevice(t, created, now)
	noErr(t, "create device code", s.CreateDeviceCode(t.Context(), d))
	return d, tok
}

// poll polls a device code as its client at now, without a subject hint.
func poll(t testing.TB, s store.Store, d store.DeviceCode, tok string, now time.Time) (store.PollResult, error) {
	t.Helper()
	return s.PollDevice(t.Context(), store.DevicePoll{
		FID: d.FID, Hash: hashOf(tok), ClientID: d.ClientID, Now: now,
		ReuseEvent: event(t, now), Cutoffs: store.Cutoffs{ClientID: d.ClientID},
	})
}

// revokeSubject sets a cut-off for a user at cut.
func revokeSubject(t testing.TB, s store.Store, subject string, cut time.Time) {
	t.Helper()
	noErr(t, "revoke subject", s.Revoke(t.Context(), store.Revocation{
		Kind: store.RevokeSubject, SubjectType: userType, Subject: subject, Cutoff: cut, Retain: time.Hour,
	}, event(t, cut)))
}

// revokeClient sets a cut-off for a client at cut.
func revokeClient(t testing.TB, s store.Store, clientID string, cut time.Time) {
	t.Helper()
	noErr(t, "revoke client", s.Revoke(t.Context(), store.Revocation{
		Kind: store.RevokeClient, ClientID: clientID, Cutoff: cut, Retain: time.Hour,
	}, event(t, cut)))
}

// revokeFamily revokes a family.
func revokeFamily(t testing.TB, s store.Store, fid string) {
	t.Helper()
	noErr(t, "revoke family", s.Revoke(t.Context(), store.Revocation{
		Kind: store.RevokeFamily, FID: fid, Reason: "admin", Retain: time.Hour,
	}, event(t, time.Now())))
}
