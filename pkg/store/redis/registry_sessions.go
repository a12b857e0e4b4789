package redis

// Login sessions and remembered consents (store.SessionStore). Each is one
// key with a TTL; neither is indexed, so they need no hash tag:
//
//	<prefix>sess:<hex(hash)>                    string: sessionRecord JSON, expires at ExpiresAt
//	<prefix>consent:<esc(sub)>:<esc(client)>:<esc(resource)>
//	                                            string: consentRecord JSON, expires after the ttl
//
// esc is url.QueryEscape: it escapes ':', '{' and '}', so a component can
// neither split into two nor form a hash tag. Both kinds are checked against
// the cut-offs that revocation.go writes:
//
//	<prefix>cut:sub:user:<sub>   decimal Unix ms: the user's subject cut-off
//	<prefix>cut:client:<id>      decimal Unix ms: the client's cut-off

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
)

// subjectTypeUser is the subject type of a login session and of a consent
// (events.SubjectUser).
const subjectTypeUser = "user"

func (s *Store) sessionKey(h store.Hash) string { return s.key("sess", hex.EncodeToString(h[:])) }

func (s *Store) consentKey(subject, clientID, resource string) string {
	return s.key("consent", url.QueryEscape(subject), url.QueryEscape(clientID), url.QueryEscape(resource))
}

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

// CreateSession stores sess until its ExpiresAt. It returns
// store.ErrAlreadyExists if a session with that hash exists, and an error
// when the subject, creation time or expiry is missing (cut-offs compare
// against CreatedAt).
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	const op = "create session"
	if sess.Subject == "" {
		return fmt.Errorf("%s: no subject", op)
	}
	if sess.CreatedAt.IsZero() || sess.ExpiresAt.UnixMilli() <= 0 {
		return fmt.Errorf("%s: creation time and expiry are required", op)
	}
	data, err := json.Marshal(sessionRecord{
		Subject:   sess.Subject,
		Name:      sess.Name,
		AuthTime:  sess.AuthTime.UTC(),
		CreatedAt: sess.CreatedAt.UTC(),
		ExpiresAt: sess.ExpiresAt.UTC(),
		CSRF:      sess.CSRF,
	})
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	err = s.rdb.SetArgs(ctx, s.sessionKey(sess.Hash), data, goredis.SetArgs{Mode: "NX", ExpireAt: sess.ExpiresAt}).Err()
	if errors.Is(err, goredis.Nil) {
		return fmt.Errorf("%s: %w", op, store.ErrAlreadyExists)
	}
	return wrap(op, err)
}

// GetSession returns the session whose cookie hashes to h. It returns
// store.ErrNotFound when there is none (never created, deleted or expired)
// and store.ErrRevoked when the user's subject cut-off plus skew is at or
// after the session's CreatedAt.
//
// It takes two round trips: the cut-off's key depends on the subject, which
// only the session record holds, and the two keys are in different slots on
// Redis Cluster, so one script cannot read both.
func (s *Store) GetSession(ctx context.Context, h store.Hash, skew time.Duration) (store.Session, error) {
	const op = "get session"
	data, err := s.rdb.Get(ctx, s.sessionKey(h)).Bytes()
	if err != nil {
		return store.Session{}, wrap(op, err)
	}
	var r sessionRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return store.Session{}, malformed(op, err)
	}
	cut := s.rdb.Get(ctx, s.subjectCutKey(subjectTypeUser, r.Subject))
	revoked, err := coveredBy(r.CreatedAt, skew, cut)
	if err != nil {
		return store.Session{}, wrap(op+": read subject cut-off", err)
	}
	if revoked {
		return store.Session{}, fmt.Errorf("%s: subject cut-off: %w", op, store.ErrRevoked)
	}
	return store.Session{
		Hash:      h,
		Subject:   r.Subject,
		Name:      r.Name,
		AuthTime:  r.AuthTime,
		CreatedAt: r.CreatedAt,
		ExpiresAt: r.ExpiresAt,
		CSRF:      r.CSRF,
	}, nil
}

// DeleteSession ends a session (logout); an unknown session succeeds.
func (s *Store) DeleteSession(ctx context.Context, h store.Hash) error {
	return wrap("delete session", s.rdb.Del(ctx, s.sessionKey(h)).Err())
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
	data, err := json.Marshal(consentRecord{
		Subject:   c.Subject,
		ClientID:  c.ClientID,
		Resource:  c.Resource,
		Scopes:    c.Scopes,
		CreatedAt: c.CreatedAt.UTC(),
	})
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	return wrap(op, s.rdb.Set(ctx, s.consentKey(c.Subject, c.ClientID, c.Resource), data, ttl).Err())
}

// GetConsent returns the consent of subject to clientID at resource. It
// returns store.ErrNotFound when there is none (never given, deleted or
// expired) and store.ErrRevoked when the user's subject cut-off or the
// client's cut-off, plus skew, is at or after its CreatedAt. The consent and
// both cut-offs are read in one pipelined round trip.
func (s *Store) GetConsent(ctx context.Context, subject, clientID, resource string, skew time.Duration) (store.Consent, error) {
	const op = "get consent"
	pipe := s.rdb.Pipeline()
	rec := pipe.Get(ctx, s.consentKey(subject, clientID, resource))
	subCut := pipe.Get(ctx, s.subjectCutKey(subjectTypeUser, subject))
	cliCut := pipe.Get(ctx, s.clientCutKey(clientID))
	// Exec reports the first failed command; a missing key (redis.Nil) is
	// an answer, and each command is checked below.
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return store.Consent{}, wrap(op, err)
	}

	data, err := rec.Bytes()
	if err != nil {
		return store.Consent{}, wrap(op, err)
	}
	var r consentRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return store.Consent{}, malformed(op, err)
	}
	for _, cut := range []struct {
		what string
		cmd  *goredis.StringCmd
	}{{"subject cut-off", subCut}, {"client cut-off", cliCut}} {
		revoked, err := coveredBy(r.CreatedAt, skew, cut.cmd)
		if err != nil {
			return store.Consent{}, wrap(op+": read "+cut.what, err)
		}
		if revoked {
			return store.Consent{}, fmt.Errorf("%s: %s: %w", op, cut.what, store.ErrRevoked)
		}
	}
	return store.Consent{
		Subject:   r.Subject,
		ClientID:  r.ClientID,
		Resource:  r.Resource,
		Scopes:    r.Scopes,
		CreatedAt: r.CreatedAt,
	}, nil
}

// DeleteConsent forgets a consent; an unknown one succeeds.
func (s *Store) DeleteConsent(ctx context.Context, subject, clientID, resource string) error {
	return wrap("delete consent", s.rdb.Del(ctx, s.consentKey(subject, clientID, resource)).Err())
}

// coveredBy reports whether the cut-off cut read (revocation.go's format, or
// no key) covers a record created at createdAt: createdAt is at or before
// the cut-off plus skew. A value it cannot read is an error, never "no
// cut-off": an unreadable revocation fails closed.
func coveredBy(createdAt time.Time, skew time.Duration, cut *goredis.StringCmd) (bool, error) {
	c, err := cutoffValue(cut)
	if err != nil || c.IsZero() {
		return false, err
	}
	return ms(createdAt) <= ms(c)+skew.Milliseconds(), nil
}
