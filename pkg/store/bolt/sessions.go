package bolt

// Login sessions and remembered consents (store.SessionStore). A session is
// JSON under its cookie's hash until its ExpiresAt; a consent is JSON under
// the length-prefixed (subject, client, resource) until its ttl is over. Both
// are read in one transaction with the cut-offs that can revoke them.

import (
	"context"
	"fmt"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// subjectTypeUser is the subject type of a login session and of a consent
// (events.SubjectUser).
const subjectTypeUser = "user"

// sessionRecord is the stored JSON of a store.Session; the hash is the key.
type sessionRecord struct {
	Subject   string    `json:"sub"`
	Name      string    `json:"name,omitempty"`
	AuthTime  time.Time `json:"auth_time"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	CSRF      []byte    `json:"csrf"`
}

// consentRecord is the stored JSON of a store.Consent.
type consentRecord struct {
	Subject   string    `json:"sub"`
	ClientID  string    `json:"client_id"`
	Resource  string    `json:"resource"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
}

func consentKey(subject, clientID, resource string) []byte {
	return tupleKey(subject, clientID, resource)
}

// CreateSession stores sess until its ExpiresAt. It returns
// store.ErrAlreadyExists if a live session with that hash exists, and an
// error when the subject, creation time or expiry is missing (cut-offs
// compare against CreatedAt).
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	const op = "create session"
	if sess.Subject == "" {
		return fmt.Errorf("%s: no subject", op)
	}
	if sess.CreatedAt.IsZero() || sess.ExpiresAt.UnixMilli() <= 0 {
		return fmt.Errorf("%s: creation time and expiry are required", op)
	}
	rec := sessionRecord{
		Subject: sess.Subject, Name: sess.Name, AuthTime: sess.AuthTime.UTC(), CreatedAt: sess.CreatedAt.UTC(),
		ExpiresAt: sess.ExpiresAt.UTC(), CSRF: sess.CSRF,
	}
	return s.update(ctx, op, func(t *txn) error {
		if t.has(bSessions, sess.Hash[:]) {
			return store.ErrAlreadyExists
		}
		t.putJSON(bSessions, sess.Hash[:], expiryMS(sess.ExpiresAt), rec)
		return nil
	})
}

// GetSession returns the session whose cookie hashes to h. It returns
// store.ErrNotFound when there is none (never created, deleted or expired)
// and store.ErrRevoked when the user's subject cut-off plus skew is at or
// after the session's CreatedAt.
func (s *Store) GetSession(ctx context.Context, h store.Hash, skew time.Duration) (store.Session, error) {
	var r sessionRecord
	err := s.view(ctx, "get session", func(t *txn) error {
		if !t.getJSON(bSessions, h[:], &r) {
			return store.ErrNotFound
		}
		if covered(r.CreatedAt.UnixMilli(), t.subjectCutoff(subjectTypeUser, r.Subject), skew) {
			return fmt.Errorf("subject cut-off: %w", store.ErrRevoked)
		}
		return nil
	})
	if err != nil {
		return store.Session{}, err
	}
	return store.Session{Hash: h, Subject: r.Subject, Name: r.Name, AuthTime: r.AuthTime, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, CSRF: r.CSRF}, nil
}

// DeleteSession ends a session (logout); an unknown session succeeds.
func (s *Store) DeleteSession(ctx context.Context, h store.Hash) error {
	return s.update(ctx, "delete session", func(t *txn) error {
		t.del(bSessions, h[:])
		return nil
	})
}

// PutConsent remembers c for ttl, replacing an earlier consent of the same
// subject, client and resource. It returns an error when the subject,
// client or creation time is missing or ttl is not positive.
func (s *Store) PutConsent(ctx context.Context, c store.Consent, ttl time.Duration) error {
	const op = "put consent"
	if c.Subject == "" || c.ClientID == "" || c.CreatedAt.IsZero() {
		return fmt.Errorf("%s: subject, client id and creation time are required", op)
	}
	if ttl <= 0 {
		return fmt.Errorf("%s: ttl %v is not positive", op, ttl)
	}
	key := consentKey(c.Subject, c.ClientID, c.Resource)
	if len(key) > maxKeyLen {
		return fmt.Errorf("%s: subject, client id and resource take %d bytes, at most %d", op, len(key), maxKeyLen)
	}
	rec := consentRecord{Subject: c.Subject, ClientID: c.ClientID, Resource: c.Resource, Scopes: c.Scopes, CreatedAt: c.CreatedAt.UTC()}
	return s.update(ctx, op, func(t *txn) error {
		t.putJSON(bConsents, key, t.now+max(ttl.Milliseconds(), 1), rec)
		return nil
	})
}

// GetConsent returns the consent of subject to clientID at resource. It
// returns store.ErrNotFound when there is none (never given, deleted or
// expired) and store.ErrRevoked when the user's subject cut-off or the
// client's cut-off, plus skew, is at or after its CreatedAt.
func (s *Store) GetConsent(ctx context.Context, subject, clientID, resource string, skew time.Duration) (store.Consent, error) {
	var r consentRecord
	err := s.view(ctx, "get consent", func(t *txn) error {
		if !t.getJSON(bConsents, consentKey(subject, clientID, resource), &r) {
			return store.ErrNotFound
		}
		created := r.CreatedAt.UnixMilli()
		if covered(created, t.subjectCutoff(subjectTypeUser, subject), skew) {
			return fmt.Errorf("subject cut-off: %w", store.ErrRevoked)
		}
		if covered(created, t.clientCutoff(clientID), skew) {
			return fmt.Errorf("client cut-off: %w", store.ErrRevoked)
		}
		return nil
	})
	if err != nil {
		return store.Consent{}, err
	}
	return store.Consent{Subject: r.Subject, ClientID: r.ClientID, Resource: r.Resource, Scopes: r.Scopes, CreatedAt: r.CreatedAt}, nil
}

// DeleteConsent forgets a consent; an unknown one succeeds.
func (s *Store) DeleteConsent(ctx context.Context, subject, clientID, resource string) error {
	return s.update(ctx, "delete consent", func(t *txn) error {
		t.del(bConsents, consentKey(subject, clientID, resource))
		return nil
	})
}
