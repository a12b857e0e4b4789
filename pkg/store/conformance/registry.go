package conformance

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// registryTests cover clients, resource servers, signing keys, sessions and
// consents. The cases live in registry_clients.go, registry_keys.go and
// registry_sessions.go.
var registryTests = concat(clientTests, resourceServerTests, keyTests, sessionTests, consentTests,
	[]subtest{{"Registry/ContextCanceled", testRegistryCanceled}})

func concat(groups ...[]subtest) []subtest {
	var out []subtest
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// registryNow returns the current time in UTC, truncated to the millisecond
// so that a backend keeping milliseconds round-trips it exactly.
func registryNow() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// refused fails t unless err reports invalid input: an error, but neither an
// outage nor one of the lookup sentinels.
func refused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want a validation error", what)
	}
	for _, s := range []error{store.ErrUnavailable, store.ErrNotFound, store.ErrAlreadyExists, store.ErrConflict} {
		if errors.Is(err, s) {
			t.Fatalf("%s: got %v, want a validation error", what, err)
		}
	}
}

// sameRecord fails t unless got and want are equal once norm has made times
// UTC and empty slices and maps nil: a backend need not keep time zones or
// tell nil from empty.
func sameRecord[T any](t *testing.T, what string, got, want T, norm func(T) T) {
	t.Helper()
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func normStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// oneWinner runs n attempts at once and checks that exactly one succeeds and
// every other fails with store.ErrConflict. It returns the winner's index.
func oneWinner(t *testing.T, n int, attempt func(i int) error) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = attempt(i)
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("attempts %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("attempt %d: got %v, want success or %v", i, err, store.ErrConflict)
		}
	}
	if winner < 0 {
		t.Fatalf("none of %d attempts won", n)
	}
	return winner
}

// revokeSubjectOfType sets a cut-off at cut for subject of subjectType
// ("user" or "client"), through the store's revoke primitive.
func revokeSubjectOfType(t *testing.T, s store.Store, subjectType, subject string, cut time.Time) {
	t.Helper()
	noErr(t, "revoke subject", s.Revoke(t.Context(), store.Revocation{
		Kind: store.RevokeSubject, SubjectType: subjectType, Subject: subject, Cutoff: cut, Retain: time.Hour,
	}, event(t, cut)))
}

// testRegistryCanceled checks that a canceled context is reported as itself,
// not as an outage or a negative answer, and that nothing is written.
func testRegistryCanceled(t *testing.T, s store.Store) {
	ctx := canceled(t)
	now := registryNow()
	h := hashOf("session")
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"CreateClient", func() error { return s.CreateClient(ctx, store.Client{ID: "app", Type: store.Public}) }},
		{"GetClient", func() error { _, err := s.GetClient(ctx, "app"); return err }},
		{"ListClients", func() error { _, err := s.ListClients(ctx); return err }},
		{"CreateResourceServer", func() error {
			return s.CreateResourceServer(ctx, store.ResourceServer{ID: "https://api.example.com/"})
		}},
		{"CreateKey", func() error {
			return s.CreateKey(ctx, store.SigningKey{KID: "k1", Alg: "ES256", State: store.KeyPublished, CreatedAt: now})
		}},
		{"ListKeys", func() error { _, err := s.ListKeys(ctx); return err }},
		{"CreateSession", func() error {
			return s.CreateSession(ctx, store.Session{Hash: h, Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		}},
		{"GetSession", func() error { _, err := s.GetSession(ctx, h, 0); return err }},
		{"PutConsent", func() error {
			return s.PutConsent(ctx, store.Consent{Subject: "alice", ClientID: "app", CreatedAt: now}, time.Hour)
		}},
		{"GetConsent", func() error { _, err := s.GetConsent(ctx, "alice", "app", "", 0); return err }},
	} {
		wantErr(t, tc.name, tc.call(), context.Canceled)
	}
	live := t.Context()
	_, err := s.GetClient(live, "app")
	wantErr(t, "get client created under a canceled context", err, store.ErrNotFound)
	_, err = s.GetSession(live, h, 0)
	wantErr(t, "get session created under a canceled context", err, store.ErrNotFound)
	_, err = s.GetConsent(live, "alice", "app", "", 0)
	wantErr(t, "get consent put under a canceled context", err, store.ErrNotFound)
	if keys, err := s.ListKeys(live); err != nil || len(keys) != 0 {
		t.Fatalf("list keys: %d keys, error %v; want none", len(keys), err)
	}
}
