package bolt

// Authorization codes, refresh families and device codes (store.GrantStore).
// Each step mirrors one script of the Redis backend (pkg/store/redis/*.lua,
// docs/redis.md) and runs as one function in one read-write transaction, so
// every check and write of a step — cut-offs, the family mark, the reuse
// event in the outbox — is atomic. A step reads the grant's own subject and
// client from the record in the same transaction: the hints of
// store.Cutoffs are never needed.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

const (
	// reuseWindow is how long a code or device record outlives its expiry:
	// a replay shortly after expiry is still recognised as reuse (and an
	// unused code is ErrExpired rather than ErrNotFound).
	reuseWindow = 10 * time.Minute
	// keepSuperseded is how many superseded refresh-token hashes a family
	// keeps so that their replay is recognised as reuse; a token superseded
	// longer ago is only unknown (ErrNotFound). Same bound as Redis.
	keepSuperseded = 128
	// grantSubjectType is the subject type of code and device grants, which
	// are always a user's (events.SubjectUser).
	grantSubjectType = "user"
	// maxFIDLen bounds a family id (22 characters in practice,
	// docs/tokens.md).
	maxFIDLen = 128
)

// codeRec is a stored authorization code. Times are Unix ms (0 for none),
// the precision of the Redis backend.
type codeRec struct {
	Hash     []byte   `json:"h"`
	Client   string   `json:"client"`
	Sub      string   `json:"sub"`
	Redirect string   `json:"redirect"`
	CC       string   `json:"cc"`
	CCM      string   `json:"ccm"`
	Scopes   []string `json:"scopes"`
	Resource string   `json:"resource"`
	AuthTime int64    `json:"auth_time"`
	Created  int64    `json:"created"`
	Exp      int64    `json:"exp"`
	Used     bool     `json:"used"`
}

// famRec is a stored refresh family: Cur hashes its live refresh token, Prev
// the one that token superseded (for the grace rule).
type famRec struct {
	Client    string   `json:"client"`
	Sub       string   `json:"sub"`
	SubType   string   `json:"sub_type"`
	Scopes    []string `json:"scopes"`
	Resource  string   `json:"resource"`
	Grant     string   `json:"grant"`
	Created   int64    `json:"created"`
	AuthTime  int64    `json:"auth_time"`
	Gen       int64    `json:"gen"`
	IdleMS    int64    `json:"idle_ms"`
	AbsExp    int64    `json:"abs_exp"`
	Public    bool     `json:"public"`
	RotatedAt int64    `json:"rotated_at"`
	Cur       []byte   `json:"cur"`
	Prev      []byte   `json:"prev"`
	GraceN    int      `json:"grace_n"`
}

// devRec is a stored device authorization.
type devRec struct {
	Hash       []byte   `json:"h"`
	UserCode   string   `json:"ucode"`
	Client     string   `json:"client"`
	Scopes     []string `json:"scopes"`
	Resource   string   `json:"resource"`
	IntervalMS int64    `json:"interval_ms"`
	Created    int64    `json:"created"`
	Exp        int64    `json:"exp"`
	Status     string   `json:"status"`
	Sub        string   `json:"sub"`
	AuthTime   int64    `json:"auth_time"`
	LastPoll   int64    `json:"last_poll"`
	Redeemed   bool     `json:"redeemed"`
}

// validFID reports whether fid can name a grant: not empty, bounded, and —
// as in the Redis backend, where it is a hash tag — without braces.
func validFID(fid string) bool {
	return fid != "" && len(fid) <= maxFIDLen && !strings.ContainsAny(fid, "{}")
}

// checkScopes refuses scope tokens that are empty or hold white space (RFC
// 6749 §3.3), as the Redis backend does.
func checkScopes(scopes []string) error {
	for _, sc := range scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n") {
			return fmt.Errorf("invalid scope token %q", sc)
		}
	}
	return nil
}

// checkEvent refuses an outbox entry without an id, or without a NATS
// subject (which holds no white space).
func checkEvent(e store.OutboxEntry) error {
	if e.ID == "" || e.Subject == "" || strings.ContainsAny(e.Subject, " \t\r\n") {
		return fmt.Errorf("outbox entry needs an id and a NATS subject without spaces (id %q, subject %q)", e.ID, e.Subject)
	}
	if len(e.ID) > maxKeyLen {
		return fmt.Errorf("outbox entry id of %d bytes, at most %d", len(e.ID), maxKeyLen)
	}
	return nil
}

// msOf is t in Unix ms, 0 for the zero time.
func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// timeOf is the inverse of msOf.
func timeOf(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// nowOr returns t in Unix ms, or the clock's now when t is zero.
func (s *Store) nowOr(t time.Time) int64 {
	if t.IsZero() {
		return s.now().UnixMilli()
	}
	return t.UnixMilli()
}

// covered tells whether a grant created at created (ms) dies by a cut-off
// (ms, 0 for none): created <= cut-off + skew.
func covered(created, cut int64, skew time.Duration) bool {
	return cut != 0 && created <= cut+skew.Milliseconds()
}

// mark sets a family's revoked mark that lives at least ttl; it never
// shortens one.
func (t *txn) mark(fid string, ttl time.Duration) {
	until := t.now + max(ttl.Milliseconds(), 1)
	if exp, ok := t.expiry(bFamilyMarks, []byte(fid)); ok && (exp == 0 || exp >= until) {
		return
	}
	t.put(bFamilyMarks, []byte(fid), until, nil)
}

func (t *txn) revoked(fid string) bool { return t.has(bFamilyMarks, []byte(fid)) }

// dropFamily deletes a family's records: the family, its superseded hashes
// and its sealed successor.
func (t *txn) dropFamily(fid string) {
	t.del(bFamilies, []byte(fid))
	t.del(bSuperseded, []byte(fid))
	t.del(bSuccessors, []byte(fid))
}

// reuse is the reuse branch of code and device redemption: unless the family
// is revoked already (its event then queued), mark it and queue the reuse
// event; drop its records either way.
func (t *txn) reuse(fid string, retain time.Duration, e store.OutboxEntry) {
	if !t.revoked(fid) {
		t.mark(fid, retain)
		t.queue(e)
	}
	t.dropFamily(fid)
}

// CreateAuthCode stores an authorization code (RFC 6749 §4.1.2) until its
// ExpiresAt, plus a short window in which a replay is still recognised.
// ErrAlreadyExists if the fid is taken by a code or a family.
func (s *Store) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	const op = "create auth code"
	if !validFID(c.FID) || c.ClientID == "" || c.Subject == "" || c.CreatedAt.IsZero() || c.ExpiresAt.IsZero() {
		return fmt.Errorf("%s: fid, client, subject, creation and expiry are required", op)
	}
	if !c.ExpiresAt.After(s.now()) {
		return fmt.Errorf("%s: %w: expires at %s", op, store.ErrExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := checkScopes(c.Scopes); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	rec := codeRec{
		Hash: c.Hash[:], Client: c.ClientID, Sub: c.Subject, Redirect: c.RedirectURI,
		CC: c.CodeChallenge, CCM: c.CodeChallengeMethod, Scopes: c.Scopes, Resource: c.Resource,
		AuthTime: msOf(c.AuthTime), Created: msOf(c.CreatedAt), Exp: msOf(c.ExpiresAt),
	}
	return s.update(ctx, op, func(t *txn) error {
		key := []byte(c.FID)
		if t.has(bCodes, key) || t.has(bFamilies, key) {
			return store.ErrAlreadyExists
		}
		t.putJSON(bCodes, key, expiryMS(c.ExpiresAt.Add(reuseWindow)), rec)
		return nil
	})
}

// RedeemAuthCode redeems a code once (RFC 6749 §4.1.2, RFC 9700) in one
// step: a second redemption of the right code revokes the family and queues
// reuseEvent (ErrReused); a wrong hash is ErrNotFound and touches nothing;
// another client spends the code (ErrClientMismatch); ErrExpired past its
// expiry; ErrRevoked when the family is revoked or a cut-off of the code's
// own subject or client covers its creation (cut's hints are not needed).
func (s *Store) RedeemAuthCode(ctx context.Context, fid string, h store.Hash, clientID string, now time.Time, reuseEvent store.OutboxEntry, cut store.Cutoffs) (store.AuthCode, error) {
	const op = "redeem auth code"
	if !validFID(fid) {
		return store.AuthCode{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if err := checkEvent(reuseEvent); err != nil {
		return store.AuthCode{}, fmt.Errorf("%s: reuse event: %w", op, err)
	}
	at := s.nowOr(now)
	var c codeRec
	err := s.update(ctx, op, func(t *txn) error {
		key := []byte(fid)
		c = codeRec{}
		if !t.getJSON(bCodes, key, &c) {
			if t.revoked(fid) {
				return store.ErrRevoked
			}
			return store.ErrNotFound
		}
		// A wrong secret with a valid fid is only not found: the fid is public.
		if !bytes.Equal(c.Hash, h[:]) {
			return store.ErrNotFound
		}
		exp, _ := t.expiry(bCodes, key)
		if c.Used {
			// Reuse: revoke whatever the first redemption issued.
			t.reuse(fid, s.retain, reuseEvent)
			return store.ErrReused
		}
		if c.Client != clientID {
			// Another client: the code is spent (RFC 6749 §4.1.3).
			c.Used = true
			t.putJSON(bCodes, key, exp, c)
			return store.ErrClientMismatch
		}
		if at >= c.Exp {
			return store.ErrExpired
		}
		if t.revoked(fid) {
			return store.ErrRevoked
		}
		if covered(c.Created, t.cutoff(grantSubjectType, c.Sub, c.Client), cut.Skew) {
			return store.ErrRevoked
		}
		c.Used = true
		t.putJSON(bCodes, key, exp, c)
		return nil
	})
	if err != nil {
		return store.AuthCode{}, err
	}
	out := store.AuthCode{
		FID: fid, ClientID: c.Client, RedirectURI: c.Redirect, CodeChallenge: c.CC, CodeChallengeMethod: c.CCM,
		Scopes: c.Scopes, Resource: c.Resource, Subject: c.Sub,
		AuthTime: timeOf(c.AuthTime), CreatedAt: timeOf(c.Created), ExpiresAt: timeOf(c.Exp),
	}
	copy(out.Hash[:], c.Hash)
	return out, nil
}

// CreateFamily starts a refresh family (RFC 6749 §6) whose first refresh
// token hashes to first. It lives until its idle timeout or absolute expiry,
// whichever comes first, each rotation pushing the idle timeout back.
// ErrRevoked if the fid was revoked (a code reused before its first
// redemption finished) or a cut-off of its subject or client, without skew,
// covers its creation; ErrAlreadyExists if it exists.
func (s *Store) CreateFamily(ctx context.Context, f store.RefreshFamily, first store.Hash) error {
	const op = "create refresh family"
	if !validFID(f.FID) || f.ClientID == "" || f.Subject == "" || f.SubjectType == "" {
		return fmt.Errorf("%s: fid, client, subject and subject type are required", op)
	}
	if f.CreatedAt.IsZero() || f.AbsoluteExpiresAt.IsZero() || f.IdleTimeout < 0 {
		return fmt.Errorf("%s: creation and absolute expiry are required, idle timeout must not be negative", op)
	}
	if err := checkScopes(f.Scopes); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	expires := f.AbsoluteExpiresAt
	if f.IdleTimeout > 0 && f.CreatedAt.Add(f.IdleTimeout).Before(expires) {
		expires = f.CreatedAt.Add(f.IdleTimeout)
	}
	if !expires.After(s.now()) {
		return fmt.Errorf("%s: %w: the family would have expired at %s", op, store.ErrExpired, expires.UTC().Format(time.RFC3339))
	}
	rec := famRec{
		Client: f.ClientID, Sub: f.Subject, SubType: f.SubjectType, Scopes: f.Scopes, Resource: f.Resource,
		Grant: f.Grant, Created: msOf(f.CreatedAt), AuthTime: msOf(f.AuthTime), Gen: max(f.Generation, 1),
		IdleMS: f.IdleTimeout.Milliseconds(), AbsExp: msOf(f.AbsoluteExpiresAt), Public: f.Public, Cur: first[:],
	}
	return s.update(ctx, op, func(t *txn) error {
		key := []byte(f.FID)
		if t.revoked(f.FID) {
			return store.ErrRevoked
		}
		if t.has(bFamilies, key) {
			return store.ErrAlreadyExists
		}
		if covered(rec.Created, t.cutoff(rec.SubType, rec.Sub, rec.Client), 0) {
			return store.ErrRevoked
		}
		t.putJSON(bFamilies, key, expiryMS(expires), rec)
		return nil
	})
}

// rotation outcomes besides the sentinels.
const (
	rotated = iota + 1
	graced
)

// RotateRefresh rotates a family's refresh token (RFC 6749 §6, RFC 9700
// §4.14.2) in one step. The current token is replaced by r.Successor; the
// token superseded last, presented again within r.Grace and at most
// r.MaxGraceReplays times, gets the very same successor back (GraceReplay);
// any other superseded token revokes the family and queues r.ReuseEvent
// (ErrReused). An unknown hash is ErrNotFound and revokes nothing.
// ErrRevoked for a revoked family or one a cut-off of its own subject or
// client covers (it is then marked revoked for good), ErrExpired past its
// idle or absolute expiry, ErrClientMismatch for another client,
// ErrInvalidScope when r.Scopes widens (nothing changes then).
func (s *Store) RotateRefresh(ctx context.Context, r store.Rotation) (store.RotationResult, error) {
	const op = "rotate refresh token"
	if !validFID(r.FID) {
		return store.RotationResult{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if r.Successor == "" || r.Grace < 0 {
		return store.RotationResult{}, fmt.Errorf("%s: a successor is required and grace must not be negative", op)
	}
	if err := checkEvent(r.ReuseEvent); err != nil {
		return store.RotationResult{}, fmt.Errorf("%s: reuse event: %w", op, err)
	}
	if err := checkScopes(r.Scopes); err != nil {
		return store.RotationResult{}, fmt.Errorf("%s: %w", op, err)
	}
	var sealed []byte
	if r.Grace > 0 {
		var err error
		if sealed, err = s.seal(r.FID, r.Successor); err != nil {
			return store.RotationResult{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	next := sha256.Sum256([]byte(r.Successor))
	now := s.nowOr(r.Now)
	var (
		f       famRec
		outcome int
		replay  []byte
	)
	err := s.update(ctx, op, func(t *txn) error {
		key := []byte(r.FID)
		f, outcome, replay = famRec{}, 0, nil
		used, _ := t.get(bSuperseded, key)
		if t.revoked(r.FID) {
			// Revoked. A superseded token is still told apart as reuse.
			if superseded(used, r.Presented[:]) {
				return store.ErrReused
			}
			return store.ErrRevoked
		}
		if !t.getJSON(bFamilies, key, &f) {
			return store.ErrNotFound
		}
		var kind string
		switch {
		case bytes.Equal(r.Presented[:], f.Cur):
			kind = "cur"
		case bytes.Equal(r.Presented[:], f.Prev):
			kind = "prev"
		case superseded(used, r.Presented[:]):
			kind = "used"
		default:
			// A forged secret with a valid fid: not found, nothing revoked.
			return store.ErrNotFound
		}
		if f.Client != r.ClientID {
			return store.ErrClientMismatch
		}
		last := max(f.Created, f.RotatedAt)
		if now >= f.AbsExp || (f.IdleMS > 0 && now >= last+f.IdleMS) {
			return store.ErrExpired
		}
		if covered(f.Created, t.cutoff(f.SubType, f.Sub, f.Client), r.Cutoffs.Skew) {
			// Make the cut-off's verdict permanent for this family.
			t.mark(r.FID, s.retain)
			t.dropFamily(r.FID)
			return store.ErrRevoked
		}
		famExp, _ := t.expiry(bFamilies, key)
		if kind == "prev" && r.Grace > 0 && now-f.RotatedAt <= r.Grace.Milliseconds() && f.GraceN < r.MaxGraceReplays {
			if sealedPrev, ok := t.get(bSuccessors, key); ok {
				f.GraceN++
				t.putJSON(bFamilies, key, famExp, f)
				replay, outcome = append([]byte(nil), sealedPrev...), graced
				return nil
			}
		}
		if kind != "cur" {
			// Reuse of a superseded token: revoke the family. The superseded
			// hashes stay as long as the mark, so that later replays are
			// still reuse.
			t.mark(r.FID, s.retain)
			t.queue(r.ReuseEvent)
			t.del(bFamilies, key)
			t.del(bSuccessors, key)
			if len(used) > 0 {
				t.put(bSuperseded, key, t.now+max(s.retain.Milliseconds(), 1), append([]byte(nil), used...))
			}
			return store.ErrReused
		}
		// Rotation.
		scopes := f.Scopes
		if r.Scopes != nil {
			for _, sc := range r.Scopes {
				if !contains(f.Scopes, sc) {
					return store.ErrInvalidScope
				}
			}
			scopes = r.Scopes
		}
		expires := f.AbsExp
		if f.IdleMS > 0 {
			expires = min(expires, now+f.IdleMS)
		}
		expires = max(expires, 1)
		// Keep the latest keepSuperseded hashes: drop the oldest first.
		if n := len(used) / sha256.Size; n >= keepSuperseded {
			used = used[(n-keepSuperseded+1)*sha256.Size:]
		}
		kept := make([]byte, 0, len(used)+sha256.Size)
		kept = append(append(kept, used...), f.Cur...)
		f.Prev, f.Cur = f.Cur, next[:]
		f.Gen++
		f.RotatedAt = now
		f.GraceN = 0
		f.Scopes = scopes
		t.putJSON(bFamilies, key, expires, f)
		t.put(bSuperseded, key, expires, kept)
		if sealed != nil {
			t.put(bSuccessors, key, t.now+r.Grace.Milliseconds()+1000, sealed)
		} else {
			t.del(bSuccessors, key)
		}
		outcome = rotated
		return nil
	})
	if err != nil {
		return store.RotationResult{}, err
	}
	res := store.RotationResult{Family: f.family(r.FID), RefreshToken: r.Successor}
	if outcome == graced {
		succ, err := s.open(r.FID, replay)
		if err != nil {
			return store.RotationResult{}, fmt.Errorf("%s: grace replay: %w", op, err)
		}
		res.RefreshToken, res.GraceReplay = succ, true
	}
	return res, nil
}

// superseded reports whether h is one of the hashes in used.
func superseded(used, h []byte) bool {
	for i := 0; i+sha256.Size <= len(used); i += sha256.Size {
		if bytes.Equal(used[i:i+sha256.Size], h) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (f famRec) family(fid string) store.RefreshFamily {
	return store.RefreshFamily{
		FID: fid, ClientID: f.Client, Subject: f.Sub, SubjectType: f.SubType, Scopes: f.Scopes,
		Resource: f.Resource, Grant: f.Grant, AuthTime: timeOf(f.AuthTime), CreatedAt: timeOf(f.Created),
		IdleTimeout: time.Duration(f.IdleMS) * time.Millisecond, AbsoluteExpiresAt: timeOf(f.AbsExp),
		Generation: f.Gen, Public: f.Public,
	}
}

// readFamily reads a live family in one read transaction: ErrRevoked when
// its mark is set or a cut-off of its own subject or client (without skew:
// none is given) is at or after its creation, ErrExpired past its idle or
// absolute expiry by the store's clock, ErrNotFound when gone. When h is not
// nil, a family whose live token does not hash to it is ErrNotFound.
func (s *Store) readFamily(ctx context.Context, op, fid string, h *store.Hash) (store.RefreshFamily, error) {
	if !validFID(fid) {
		return store.RefreshFamily{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	var f famRec
	err := s.view(ctx, op, func(t *txn) error {
		if t.revoked(fid) {
			return store.ErrRevoked
		}
		if !t.getJSON(bFamilies, []byte(fid), &f) {
			return store.ErrNotFound
		}
		last := max(f.Created, f.RotatedAt)
		if t.now >= f.AbsExp || (f.IdleMS > 0 && t.now >= last+f.IdleMS) {
			return store.ErrExpired
		}
		if h != nil && !bytes.Equal(f.Cur, h[:]) {
			return store.ErrNotFound
		}
		if covered(f.Created, t.cutoff(f.SubType, f.Sub, f.Client), 0) {
			return fmt.Errorf("%w: cut-off", store.ErrRevoked)
		}
		return nil
	})
	if err != nil {
		return store.RefreshFamily{}, err
	}
	return f.family(fid), nil
}

// GetFamily returns a live family (for the revocation of a refresh token,
// RFC 7009 §2.1): ErrRevoked when it was revoked or a cut-off covers its
// creation, ErrExpired past its idle or absolute expiry, ErrNotFound when
// gone.
func (s *Store) GetFamily(ctx context.Context, fid string) (store.RefreshFamily, error) {
	return s.readFamily(ctx, "get refresh family", fid, nil)
}

// LookupRefresh returns the live family whose current refresh token hashes to
// h (RFC 7662 introspection, RFC 7009 revocation). A superseded or unknown
// token is ErrNotFound; otherwise as GetFamily.
func (s *Store) LookupRefresh(ctx context.Context, fid string, h store.Hash) (store.RefreshFamily, error) {
	return s.readFamily(ctx, "look up refresh token", fid, &h)
}

// CreateDeviceCode stores a device authorization (RFC 8628 §3.2), pending,
// and the index from its user code, both until ExpiresAt plus a short window
// in which a replay is still recognised, in one step. ErrAlreadyExists when
// the user code or the fid is taken; nothing is written then.
func (s *Store) CreateDeviceCode(ctx context.Context, d store.DeviceCode) error {
	const op = "create device code"
	if !validFID(d.FID) || d.UserCode == "" || d.ClientID == "" || d.Interval <= 0 || d.CreatedAt.IsZero() || d.ExpiresAt.IsZero() {
		return fmt.Errorf("%s: fid, user code, client, interval, creation and expiry are required", op)
	}
	if len(d.UserCode) > maxKeyLen {
		return fmt.Errorf("%s: user code of %d bytes, at most %d", op, len(d.UserCode), maxKeyLen)
	}
	if d.Status != "" && d.Status != store.DevicePending {
		return fmt.Errorf("%s: a new device authorization is pending, not %q", op, d.Status)
	}
	if !d.ExpiresAt.After(s.now()) {
		return fmt.Errorf("%s: %w: expires at %s", op, store.ErrExpired, d.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := checkScopes(d.Scopes); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	rec := devRec{
		Hash: d.Hash[:], UserCode: d.UserCode, Client: d.ClientID, Scopes: d.Scopes, Resource: d.Resource,
		IntervalMS: d.Interval.Milliseconds(), Created: msOf(d.CreatedAt), Exp: msOf(d.ExpiresAt),
		Status: string(store.DevicePending),
	}
	until := expiryMS(d.ExpiresAt.Add(reuseWindow))
	return s.update(ctx, op, func(t *txn) error {
		key := []byte(d.FID)
		if t.has(bUserCodes, []byte(d.UserCode)) {
			return fmt.Errorf("user code: %w", store.ErrAlreadyExists)
		}
		if t.has(bDevices, key) || t.has(bFamilies, key) {
			return store.ErrAlreadyExists
		}
		t.put(bUserCodes, []byte(d.UserCode), until, []byte(d.FID))
		t.putJSON(bDevices, key, until, rec)
		return nil
	})
}

func (d devRec) device(fid string) store.DeviceCode {
	out := store.DeviceCode{
		FID: fid, UserCode: d.UserCode, ClientID: d.Client, Scopes: d.Scopes, Resource: d.Resource,
		Interval: time.Duration(d.IntervalMS) * time.Millisecond, CreatedAt: timeOf(d.Created),
		ExpiresAt: timeOf(d.Exp), Status: store.DeviceStatus(d.Status), Subject: d.Sub, AuthTime: timeOf(d.AuthTime),
	}
	copy(out.Hash[:], d.Hash)
	return out
}

// LookupUserCode returns the pending device authorization a user code names
// (RFC 8628 §3.3), for the verification page. ErrExpired past its expiry;
// ErrNotFound when unknown or already decided.
func (s *Store) LookupUserCode(ctx context.Context, userCode string, now time.Time) (store.DeviceCode, error) {
	const op = "look up user code"
	at := s.nowOr(now)
	var (
		fid string
		d   devRec
	)
	err := s.view(ctx, op, func(t *txn) error {
		v, ok := t.get(bUserCodes, []byte(userCode))
		if !ok || !validFID(string(v)) {
			return store.ErrNotFound
		}
		fid = string(v)
		if !t.getJSON(bDevices, v, &d) || d.UserCode != userCode {
			return store.ErrNotFound
		}
		if at >= d.Exp {
			return store.ErrExpired
		}
		if d.Status != string(store.DevicePending) {
			return fmt.Errorf("%w: already %s", store.ErrNotFound, d.Status)
		}
		return nil
	})
	if err != nil {
		return store.DeviceCode{}, err
	}
	return d.device(fid), nil
}

// DecideDevice approves (for subject, authenticated at authTime) or denies a
// pending device authorization (RFC 8628 §3.3). ErrNotFound when unknown,
// ErrExpired past its expiry, ErrConflict when it was already decided.
func (s *Store) DecideDevice(ctx context.Context, fid string, approve bool, subject string, authTime, now time.Time) error {
	const op = "decide device authorization"
	if !validFID(fid) {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if approve && subject == "" {
		return fmt.Errorf("%s: an approval needs a subject", op)
	}
	at := s.nowOr(now)
	return s.update(ctx, op, func(t *txn) error {
		key := []byte(fid)
		var d devRec
		if !t.getJSON(bDevices, key, &d) {
			return store.ErrNotFound
		}
		if at >= d.Exp {
			return store.ErrExpired
		}
		if d.Status != string(store.DevicePending) {
			return store.ErrConflict
		}
		if approve {
			d.Status, d.Sub, d.AuthTime = string(store.DeviceApproved), subject, msOf(authTime)
		} else {
			d.Status = string(store.DeviceDenied)
		}
		exp, _ := t.expiry(bDevices, key)
		t.putJSON(bDevices, key, exp, d)
		return nil
	})
}

// PollDevice answers one poll of the token endpoint (RFC 8628 §3.4, §3.5) in
// one step: SlowDown (the interval grows by 5 s) when polled faster than the
// interval, pending, denied, or approved, which redeems the code (single
// use). A poll after the redemption revokes the family and queues
// p.ReuseEvent (ErrReused). ErrNotFound for an unknown code,
// ErrClientMismatch for another client, ErrExpired past its expiry,
// ErrRevoked for a revoked family, a client cut-off covering the code, or at
// redemption a subject cut-off of the approver.
func (s *Store) PollDevice(ctx context.Context, p store.DevicePoll) (store.PollResult, error) {
	const op = "poll device code"
	if !validFID(p.FID) {
		return store.PollResult{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if err := checkEvent(p.ReuseEvent); err != nil {
		return store.PollResult{}, fmt.Errorf("%s: reuse event: %w", op, err)
	}
	now := s.nowOr(p.Now)
	var (
		d   devRec
		res store.PollResult
	)
	err := s.update(ctx, op, func(t *txn) error {
		key := []byte(p.FID)
		d, res = devRec{}, store.PollResult{}
		if !t.getJSON(bDevices, key, &d) {
			if t.revoked(p.FID) {
				return store.ErrRevoked
			}
			return store.ErrNotFound
		}
		if !bytes.Equal(d.Hash, p.Hash[:]) {
			return store.ErrNotFound
		}
		if d.Redeemed {
			t.reuse(p.FID, s.retain, p.ReuseEvent)
			return store.ErrReused
		}
		if d.Client != p.ClientID {
			return store.ErrClientMismatch
		}
		if now >= d.Exp {
			return store.ErrExpired
		}
		if t.revoked(p.FID) {
			return store.ErrRevoked
		}
		// The client's cut-off applies at every poll; the subject's once
		// there is one.
		if covered(d.Created, t.clientCutoff(d.Client), p.Cutoffs.Skew) {
			return store.ErrRevoked
		}
		exp, _ := t.expiry(bDevices, key)
		switch d.Status {
		case string(store.DevicePending):
			last := d.LastPoll
			d.LastPoll = now
			res.Status = store.DevicePending
			if last > 0 && now-last < d.IntervalMS {
				d.IntervalMS += 5000
				res.SlowDown = true
			}
			t.putJSON(bDevices, key, exp, d)
			return nil
		case string(store.DeviceApproved):
		default:
			res.Status = store.DeviceDenied
			return nil
		}
		if covered(d.Created, t.cutoff(grantSubjectType, d.Sub, d.Client), p.Cutoffs.Skew) {
			return store.ErrRevoked
		}
		d.Redeemed = true
		t.putJSON(bDevices, key, exp, d)
		res.Status = store.DeviceApproved
		return nil
	})
	if err != nil {
		return store.PollResult{}, err
	}
	res.Code = d.device(p.FID)
	return res, nil
}

// seal encrypts a refresh-token successor for the grace window: a random
// nonce, then the AEAD ciphertext with the fid as associated data.
func (s *Store) seal(fid, successor string) ([]byte, error) {
	n := s.aead.NonceSize()
	out := make([]byte, n, n+len(successor)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("seal successor: %w", err)
	}
	return s.aead.Seal(out, out[:n], []byte(successor), []byte(fid)), nil
}

// open decrypts what seal produced for fid.
func (s *Store) open(fid string, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return "", errors.New("open successor: sealed value too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(fid))
	if err != nil {
		return "", fmt.Errorf("open successor (was it sealed under another key?): %w", err)
	}
	return string(plain), nil
}
