package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// sessionTests cover login sessions (store.SessionStore).
var sessionTests = []subtest{
	{"Session/Missing", testSessionMissing},
	{"Session/RoundTripAndLogout", testSessionRoundTrip},
	{"Session/Duplicate", testSessionDuplicate},
	{"Session/Expiry", testSessionExpiry},
	{"Session/SubjectCutoff", testSessionCutoff},
	{"Session/RefusesInvalid", testSessionValidation},
}

// consentTests cover remembered consents (store.SessionStore).
var consentTests = []subtest{
	{"Consent/Missing", testConsentMissing},
	{"Consent/RoundTripReplaceDelete", testConsentRoundTrip},
	{"Consent/SeparatorsInIDsDoNotCollide", testConsentNoCollision},
	{"Consent/Expiry", testConsentExpiry},
	{"Consent/SubjectAndClientCutoffs", testConsentCutoff},
	{"Consent/RefusesInvalid", testConsentValidation},
}

// expiryTTL is the lifetime of records the expiry cases wait out: short, yet
// long enough to read the record back first on a loaded machine.
const expiryTTL = 1500 * time.Millisecond

func testSession(seed, subject string, created time.Time) store.Session {
	return store.Session{
		Hash:      hashOf(seed),
		Subject:   subject,
		Name:      "name-of-" + subject,
		AuthTime:  created.Add(-time.Second),
		CreatedAt: created,
		ExpiresAt: created.Add(8 * time.Hour),
		CSRF:      []byte("hash-of-the-csrf-secret........."),
	}
}

func normSession(s store.Session) store.Session {
	s.AuthTime, s.CreatedAt, s.ExpiresAt = s.AuthTime.UTC(), s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	s.CSRF = normBytes(s.CSRF)
	return s
}

func testSessionMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetSession(ctx, hashOf("nobody"), 0)
	wantErr(t, "get unknown session", err, store.ErrNotFound)
	noErr(t, "delete unknown session", s.DeleteSession(ctx, hashOf("nobody")))
}

func testSessionRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	sess := testSession("session-1", "alice", now)
	sess.AuthTime = sess.AuthTime.In(time.FixedZone("CET", 3600))
	noErr(t, "create session", s.CreateSession(ctx, sess))
	other := testSession("session-2", "alice", now)
	noErr(t, "create a second session", s.CreateSession(ctx, other))

	got, err := s.GetSession(ctx, sess.Hash, 5*time.Second)
	noErr(t, "get session", err)
	sameRecord(t, "session read back", got, sess, normSession)

	noErr(t, "delete session (logout)", s.DeleteSession(ctx, sess.Hash))
	_, err = s.GetSession(ctx, sess.Hash, 0)
	wantErr(t, "get session after logout", err, store.ErrNotFound)
	noErr(t, "delete session again", s.DeleteSession(ctx, sess.Hash))
	got, err = s.GetSession(ctx, other.Hash, 0)
	noErr(t, "get the other session", err)
	sameRecord(t, "the other session", got, other, normSession)
}

func testSessionDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	sess := testSession("session-1", "alice", registryNow())
	noErr(t, "create session", s.CreateSession(ctx, sess))
	impostor := sess
	impostor.Subject = "mallory"
	wantErr(t, "create a session with the same hash", s.CreateSession(ctx, impostor), store.ErrAlreadyExists)
	got, err := s.GetSession(ctx, sess.Hash, 0)
	noErr(t, "get session", err)
	sameRecord(t, "session after a refused duplicate", got, sess, normSession)
}

func testSessionExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	start := time.Now()
	sess := testSession("short", "alice", registryNow())
	sess.ExpiresAt = start.Add(expiryTTL)
	noErr(t, "create session", s.CreateSession(ctx, sess))
	if _, err := s.GetSession(ctx, sess.Hash, 0); time.Since(start) < expiryTTL/2 {
		noErr(t, "get session before it expires", err)
	}
	time.Sleep(time.Until(sess.ExpiresAt) + 250*time.Millisecond)
	_, err := s.GetSession(ctx, sess.Hash, 0)
	wantErr(t, "get session after ExpiresAt", err, store.ErrNotFound)
}

// testSessionCutoff checks that a session created at or before a user's
// subject cut-off plus skew is revoked, and that nothing else is.
func testSessionCutoff(t *testing.T, s store.Store) {
	created := registryNow().Add(-time.Minute)
	tests := []struct {
		name string
		// cutType and cutOf name whose subject cut-off is written; cutAt
		// is relative to the session's CreatedAt.
		cutType, cutOf string
		cutAt          time.Duration
		skew           time.Duration
		want           error
	}{
		{"cut-off after creation", userType, "", time.Second, 0, store.ErrRevoked},
		{"cut-off at creation", userType, "", 0, 0, store.ErrRevoked},
		{"cut-off before creation", userType, "", -10 * time.Second, 5 * time.Second, nil},
		{"cut-off before creation within skew", userType, "", -2 * time.Second, 5 * time.Second, store.ErrRevoked},
		{"another user's cut-off", userType, "someone-else", time.Second, time.Minute, nil},
		{"a client subject of the same name", "client", "", time.Second, time.Minute, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			subject := fmt.Sprintf("user-%d:x", i)
			sess := testSession(fmt.Sprintf("session-%d", i), subject, created)
			noErr(t, "create session", s.CreateSession(ctx, sess))
			cutOf := tc.cutOf
			if cutOf == "" {
				cutOf = subject
			}
			revokeSubjectOfType(t, s, tc.cutType, cutOf, created.Add(tc.cutAt))
			got, err := s.GetSession(ctx, sess.Hash, tc.skew)
			if tc.want != nil {
				wantErr(t, "get session", err, tc.want)
				return
			}
			noErr(t, "get session", err)
			sameRecord(t, "live session", got, sess, normSession)
		})
	}
}

func testSessionValidation(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	for _, tc := range []struct {
		name   string
		modify func(s *store.Session)
	}{
		{"no subject", func(s *store.Session) { s.Subject = "" }},
		{"no creation time", func(s *store.Session) { s.CreatedAt = time.Time{} }},
		{"no expiry", func(s *store.Session) { s.ExpiresAt = time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := testSession("session-"+tc.name, "alice", now)
			tc.modify(&sess)
			refused(t, "create session", s.CreateSession(ctx, sess))
			_, err := s.GetSession(ctx, sess.Hash, 0)
			wantErr(t, "get refused session", err, store.ErrNotFound)
		})
	}
}

func testConsent(subject, clientID, resource string, created time.Time) store.Consent {
	return store.Consent{
		Subject:   subject,
		ClientID:  clientID,
		Resource:  resource,
		Scopes:    []string{"invoice:read", "offline_access"},
		CreatedAt: created,
	}
}

func normConsent(c store.Consent) store.Consent {
	c.CreatedAt = c.CreatedAt.UTC()
	c.Scopes = normStrings(c.Scopes)
	return c
}

func testConsentMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetConsent(ctx, "alice", "app", "https://api.example.com/", 0)
	wantErr(t, "get unknown consent", err, store.ErrNotFound)
	noErr(t, "delete unknown consent", s.DeleteConsent(ctx, "alice", "app", "https://api.example.com/"))
}

func testConsentRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	const api = "https://api.example.com/"
	c := testConsent("alice", "app", api, now.In(time.FixedZone("EST", -5*3600)))
	noErr(t, "put consent", s.PutConsent(ctx, c, time.Hour))
	got, err := s.GetConsent(ctx, "alice", "app", api, 0)
	noErr(t, "get consent", err)
	sameRecord(t, "consent read back", got, c, normConsent)

	for _, other := range []struct{ sub, client, res string }{
		{"bob", "app", api}, {"alice", "other-app", api}, {"alice", "app", "https://other.example.com/"}, {"alice", "app", ""},
	} {
		_, err := s.GetConsent(ctx, other.sub, other.client, other.res, 0)
		wantErr(t, fmt.Sprintf("get consent of %q to %q at %q", other.sub, other.client, other.res), err, store.ErrNotFound)
	}

	wider := c
	wider.Scopes = []string{"invoice:read", "invoice:write"}
	wider.CreatedAt = now.Add(time.Second)
	noErr(t, "put a wider consent", s.PutConsent(ctx, wider, time.Hour))
	got, err = s.GetConsent(ctx, "alice", "app", api, 0)
	noErr(t, "get replaced consent", err)
	sameRecord(t, "replaced consent", got, wider, normConsent)

	noErr(t, "delete consent", s.DeleteConsent(ctx, "alice", "app", api))
	_, err = s.GetConsent(ctx, "alice", "app", api, 0)
	wantErr(t, "get deleted consent", err, store.ErrNotFound)
	noErr(t, "delete consent again", s.DeleteConsent(ctx, "alice", "app", api))
}

// testConsentNoCollision stores consents whose subject, client and resource
// would run together if joined with a separator they contain.
func testConsentNoCollision(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	consents := []store.Consent{
		testConsent("a:b", "c", "urn:r", now),
		testConsent("a", "b:c", "urn:r", now),
		testConsent("a", "b", "c:urn:r", now),
		testConsent("a", "b:c:urn:r", "", now),
		testConsent("{a}", "b", "urn:r", now),
		testConsent("a%3Ab", "c", "urn:r", now),
		testConsent("a b", "c", "urn:r", now),
		testConsent("a+b", "c", "urn:r", now),
	}
	for i := range consents {
		consents[i].Scopes = []string{fmt.Sprintf("scope-%d", i)}
		noErr(t, "put consent", s.PutConsent(ctx, consents[i], time.Hour))
	}
	for _, c := range consents {
		got, err := s.GetConsent(ctx, c.Subject, c.ClientID, c.Resource, 0)
		noErr(t, fmt.Sprintf("get consent of %q to %q at %q", c.Subject, c.ClientID, c.Resource), err)
		sameRecord(t, "consent", got, c, normConsent)
	}
}

func testConsentExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	start := time.Now()
	c := testConsent("alice", "app", "https://api.example.com/", registryNow())
	noErr(t, "put consent", s.PutConsent(ctx, c, expiryTTL))
	if _, err := s.GetConsent(ctx, c.Subject, c.ClientID, c.Resource, 0); time.Since(start) < expiryTTL/2 {
		noErr(t, "get consent before it expires", err)
	}
	time.Sleep(time.Until(start.Add(expiryTTL)) + 250*time.Millisecond)
	_, err := s.GetConsent(ctx, c.Subject, c.ClientID, c.Resource, 0)
	wantErr(t, "get consent after its ttl", err, store.ErrNotFound)
}

// testConsentCutoff checks that a consent given at or before the user's
// subject cut-off or the client's cut-off, plus skew, is revoked.
func testConsentCutoff(t *testing.T, s store.Store) {
	created := registryNow().Add(-time.Minute)
	const (
		bySubject = "subject"
		byClient  = "client"
	)
	tests := []struct {
		name string
		// by says which cut-off is written: the consent's subject's, its
		// client's, or (other set) someone else's; cutAt is relative to
		// the consent's CreatedAt.
		by    string
		other bool
		cutAt time.Duration
		skew  time.Duration
		want  error
	}{
		{"subject cut-off after consent", bySubject, false, time.Second, 0, store.ErrRevoked},
		{"subject cut-off at consent", bySubject, false, 0, 0, store.ErrRevoked},
		{"subject cut-off before consent", bySubject, false, -10 * time.Second, 5 * time.Second, nil},
		{"subject cut-off before consent within skew", bySubject, false, -2 * time.Second, 5 * time.Second, store.ErrRevoked},
		{"another subject's cut-off", bySubject, true, time.Second, time.Minute, nil},
		{"client cut-off after consent", byClient, false, time.Second, 0, store.ErrRevoked},
		{"client cut-off at consent", byClient, false, 0, 0, store.ErrRevoked},
		{"client cut-off before consent", byClient, false, -10 * time.Second, 5 * time.Second, nil},
		{"client cut-off before consent within skew", byClient, false, -2 * time.Second, 5 * time.Second, store.ErrRevoked},
		{"another client's cut-off", byClient, true, time.Second, time.Minute, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			c := testConsent(fmt.Sprintf("user-%d", i), fmt.Sprintf("app-%d", i), "https://api.example.com/", created)
			noErr(t, "put consent", s.PutConsent(ctx, c, time.Hour))
			subject, client := c.Subject, c.ClientID
			if tc.other {
				subject, client = subject+"-other", client+"-other"
			}
			if tc.by == bySubject {
				revokeSubject(t, s, subject, created.Add(tc.cutAt))
			} else {
				revokeClient(t, s, client, created.Add(tc.cutAt))
			}
			got, err := s.GetConsent(ctx, c.Subject, c.ClientID, c.Resource, tc.skew)
			if tc.want != nil {
				wantErr(t, "get consent", err, tc.want)
				return
			}
			noErr(t, "get consent", err)
			sameRecord(t, "live consent", got, c, normConsent)
		})
	}
}

func testConsentValidation(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	for _, tc := range []struct {
		name string
		c    store.Consent
		ttl  time.Duration
	}{
		{"zero ttl", testConsent("alice", "app", "urn:r", now), 0},
		{"negative ttl", testConsent("alice", "app", "urn:r", now), -time.Hour},
		{"no subject", testConsent("", "app", "urn:r", now), time.Hour},
		{"no client", testConsent("alice", "", "urn:r", now), time.Hour},
		{"no creation time", testConsent("alice", "app", "urn:r", time.Time{}), time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, "put consent", s.PutConsent(ctx, tc.c, tc.ttl))
			_, err := s.GetConsent(ctx, tc.c.Subject, tc.c.ClientID, tc.c.Resource, 0)
			wantErr(t, "get refused consent", err, store.ErrNotFound)
		})
	}
}
