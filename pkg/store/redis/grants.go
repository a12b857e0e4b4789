package redis

// Authorization codes, refresh families and device codes (store.GrantStore).
// Every key of one grant carries the hash tag {fid} (keys.go); docs/redis.md
// lists them and the scripts (the .lua files) that change them:
//
//	<prefix>{fid}:code    hash: authorization code (code_create, code_redeem)
//	<prefix>{fid}:fam     hash: refresh family (family_create, family_rotate)
//	<prefix>{fid}:sup     string: ring of the latest superseded refresh-token hashes
//	<prefix>{fid}:succ    string: sealed successor of the last rotation (grace)
//	<prefix>{fid}:rev     string: the family is revoked
//	<prefix>{fid}:dev     hash: device authorization (device_*)
//	<prefix>{fid}:outbox  hash: the grant's outbox shard (outbox.go)
//	<prefix>ucode:<code>  string: user code -> fid
//
// Redemptions check the subject and client cut-offs on values read in the
// same round trip as their script (cutoff.go).

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
)

const (
	// defaultDenyRetention covers the largest configurable access-token
	// lifetime (24h) plus the largest clock skew (5m).
	defaultDenyRetention = 24*time.Hour + 5*time.Minute
	// defaultMaxGrantLifetime is the largest configurable refresh-family
	// lifetime.
	defaultMaxGrantLifetime = 8760 * time.Hour
	// reuseWindow is how long a code or device record outlives its expiry:
	// a replay shortly after expiry is still recognised as reuse (and an
	// unused code is ErrExpired rather than ErrNotFound).
	reuseWindow = 10 * time.Minute
	// keepSuperseded is how many superseded refresh-token hashes a family
	// keeps, so that their replay is recognised as reuse. A token superseded
	// longer ago is only unknown (ErrNotFound): keeping them all would grow a
	// family by ~90 bytes per rotation for its whole life (docs/redis.md).
	// 128 keeps the set in Redis's compact listpack encoding.
	keepSuperseded = 128
	// grantSubjectType is the subject type of code and device grants, which
	// are always a user's (events.SubjectUser).
	grantSubjectType = "user"
)

// WithDenyRetention sets how long the deny marks the store writes on its own
// live: the family mark written when a code, device code or refresh token is
// reused, or when a cut-off is found to cover a family. Set it to the replay
// window (maximum access-token lifetime plus skew); the default, 24h5m,
// covers the largest allowed configuration.
func WithDenyRetention(d time.Duration) Option { return func(s *Store) { s.retain = d } }

// WithMaxGrantLifetime sets the longest a grant can live (the refresh
// families' absolute lifetime). Subject and client cut-offs are kept at least
// this long, so that a family created before a cut-off can never come back
// once the cut-off's own retention is over. The default, 8760h, is the
// largest allowed configuration.
func WithMaxGrantLifetime(d time.Duration) Option { return func(s *Store) { s.maxGrant = d } }

// joinScopes joins scopes with spaces; a scope token holds no space (RFC 6749
// §3.3).
func joinScopes(scopes []string) (string, error) {
	for _, sc := range scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n") {
			return "", fmt.Errorf("invalid scope token %q", sc)
		}
	}
	return strings.Join(scopes, " "), nil
}

func splitScopes(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// nowOr returns t, or the current time when t is zero.
func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// CreateAuthCode stores an authorization code (RFC 6749 §4.1.2) until its
// ExpiresAt, plus a short window in which a replay is still recognised.
// ErrAlreadyExists if the fid is taken by a code or a family.
func (s *Store) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	const op = "create auth code"
	if !validFID(c.FID) || c.ClientID == "" || c.Subject == "" || c.CreatedAt.IsZero() || c.ExpiresAt.IsZero() {
		return fmt.Errorf("%s: fid, client, subject, creation and expiry are required", op)
	}
	if !c.ExpiresAt.After(time.Now()) {
		return fmt.Errorf("%s: %w: expires at %s", op, store.ErrExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	scopes, err := joinScopes(c.Scopes)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	k := s.grant(c.FID)
	_, _, err = s.run(ctx, op, codeCreateScript, []string{k.code, k.fam},
		ms(c.ExpiresAt.Add(reuseWindow)),
		"h", string(c.Hash[:]),
		"client", c.ClientID,
		"sub", c.Subject,
		"redirect", c.RedirectURI,
		"cc", c.CodeChallenge,
		"ccm", c.CodeChallengeMethod,
		"scopes", scopes,
		"resource", c.Resource,
		"auth_time", msText(c.AuthTime),
		"created", msText(c.CreatedAt),
		"exp", msText(c.ExpiresAt),
		"used", "0",
	)
	return err
}

// RedeemAuthCode redeems a code once (RFC 6749 §4.1.2, RFC 9700), in
// one script: a second redemption of the right code revokes the family and
// queues reuseEvent (ErrReused); a wrong hash is ErrNotFound and touches
// nothing; another client spends the code (ErrClientMismatch); ErrExpired
// past its expiry; ErrRevoked when the family is revoked or a cut-off of the
// code's subject or of the client covers its creation. The cut-offs are read
// in the script's round trip (the subject's when cut names it, otherwise in
// a second one).
func (s *Store) RedeemAuthCode(ctx context.Context, fid string, h store.Hash, clientID string, now time.Time, reuseEvent store.OutboxEntry, cut store.Cutoffs) (store.AuthCode, error) {
	const op = "redeem auth code"
	if !validFID(fid) {
		return store.AuthCode{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if err := checkEntry(reuseEvent); err != nil {
		return store.AuthCode{}, fmt.Errorf("%s: reuse event: %w", op, err)
	}
	k := s.grant(fid)
	keys := []string{k.code, k.fam, k.sup, k.succ, k.rev, k.outbox}
	hint := cut.Subject
	if cut.SubjectType != "" && cut.SubjectType != grantSubjectType {
		hint = "" // a code is a user's: a hint of another type names nothing
	}
	// The first run carries no event: a rotation or redemption queues one
	// only on reuse, which answers INDEX; the rerun, registered, carries it.
	version, evID, evValue := "0", "", ""
	for range maxIndexRetries {
		reads := s.cutReads(ctx, grantSubjectType, hint, clientID)
		cmd := evalCmd(ctx, codeRedeemScript, keys,
			string(h[:]), clientID, ms(nowOr(now)), s.retain.Milliseconds(), version, evID, evValue)
		if err := s.roundTrip(ctx, reads.with(cmd)...); err != nil {
			return store.AuthCode{}, wrap(op, err)
		}
		status, vals, err := scriptReply(op, cmd)
		switch {
		case status == statusIndex:
			evID, evValue = reuseEvent.ID, entryValue(reuseEvent)
			if version, err = s.register(ctx, op, fid); err != nil {
				return store.AuthCode{}, err
			}
			continue
		case errors.Is(err, store.ErrReused):
			s.remember(reuseEvent.ID, fid)
			return store.AuthCode{}, err
		case err != nil:
			return store.AuthCode{}, err
		case status != statusOK:
			return store.AuthCode{}, unexpected(op, status, vals)
		}
		c, err := decodeCode(op, fid, vals)
		if err != nil {
			return store.AuthCode{}, err
		}
		if err := s.checkCutoffs(ctx, op, fid, reads, grantSubjectType, c.Subject, c.CreatedAt, cut.Skew); err != nil {
			return store.AuthCode{}, err
		}
		return c, nil
	}
	return store.AuthCode{}, errIndexChurn(op)
}

// errIndexChurn is the error of a step whose outbox shard was closed by the
// relay at every attempt to register it (outbox.go): in practice never.
func errIndexChurn(op string) error {
	return fmt.Errorf("%s: %w: the outbox shard could not be registered", op, store.ErrUnavailable)
}

// decodeCode reads the CODE fields of common.lua.
func decodeCode(op, fid string, vals []string) (store.AuthCode, error) {
	f := fields{v: vals}
	c := store.AuthCode{
		FID:                 fid,
		Hash:                f.hash(0),
		ClientID:            f.str(1),
		Subject:             f.str(2),
		RedirectURI:         f.str(3),
		CodeChallenge:       f.str(4),
		CodeChallengeMethod: f.str(5),
		Scopes:              splitScopes(f.str(6)),
		Resource:            f.str(7),
		AuthTime:            f.time(8),
		CreatedAt:           f.time(9),
		ExpiresAt:           f.time(10),
	}
	return c, f.check(op)
}

// CreateFamily starts a refresh family (RFC 6749 §6) whose first refresh
// token hashes to first. It lives until its idle timeout or absolute expiry,
// whichever comes first, each rotation pushing the idle timeout back.
// ErrRevoked if the fid was revoked (a code reused before its first
// redemption finished) or a cut-off of its subject or client, without skew,
// covers its creation (read in the same round trip; the family is then
// revoked at once); ErrAlreadyExists if it exists.
func (s *Store) CreateFamily(ctx context.Context, f store.RefreshFamily, first store.Hash) error {
	const op = "create refresh family"
	if !validFID(f.FID) || f.ClientID == "" || f.Subject == "" || f.SubjectType == "" {
		return fmt.Errorf("%s: fid, client, subject and subject type are required", op)
	}
	if f.CreatedAt.IsZero() || f.AbsoluteExpiresAt.IsZero() || f.IdleTimeout < 0 {
		return fmt.Errorf("%s: creation and absolute expiry are required, idle timeout must not be negative", op)
	}
	scopes, err := joinScopes(f.Scopes)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	expires := f.AbsoluteExpiresAt
	if f.IdleTimeout > 0 && f.CreatedAt.Add(f.IdleTimeout).Before(expires) {
		expires = f.CreatedAt.Add(f.IdleTimeout)
	}
	if !expires.After(time.Now()) {
		return fmt.Errorf("%s: %w: the family would have expired at %s", op, store.ErrExpired, expires.UTC().Format(time.RFC3339))
	}
	gen := f.Generation
	if gen < 1 {
		gen = 1
	}
	k := s.grant(f.FID)
	reads := s.cutReads(ctx, f.SubjectType, f.Subject, f.ClientID)
	cmd := evalCmd(ctx, familyCreateScript, []string{k.fam, k.rev},
		ms(expires),
		"client", f.ClientID,
		"sub", f.Subject,
		"sub_type", f.SubjectType,
		"scopes", scopes,
		"resource", f.Resource,
		"grant", f.Grant,
		"created", msText(f.CreatedAt),
		"auth_time", msText(f.AuthTime),
		"gen", gen,
		"idle", durText(f.IdleTimeout),
		"abs_exp", msText(f.AbsoluteExpiresAt),
		"public", boolText(f.Public),
		"rotated_at", "",
		"cur", string(first[:]),
		"prev", "",
		"grace_n", "0",
		"ttl_at", ms(expires),
	)
	if err := s.roundTrip(ctx, reads.with(cmd)...); err != nil {
		return wrap(op, err)
	}
	if _, _, err := scriptReply(op, cmd); err != nil {
		return err
	}
	return s.checkCutoffs(ctx, op, f.FID, reads, f.SubjectType, f.Subject, f.CreatedAt, 0)
}

// RotateRefresh rotates a family's refresh token (RFC 6749 §6, RFC 9700
// §4.14.2) in one script. The current token is replaced by r.Successor; the
// token superseded last, presented again within r.Grace and at most
// r.MaxGraceReplays times, gets the very same successor back (GraceReplay);
// any other superseded token revokes the family and queues r.ReuseEvent
// (ErrReused). An unknown hash is ErrNotFound and revokes nothing.
// ErrRevoked for a revoked family or one a cut-off covers (it is then marked
// revoked for good), ErrExpired past its idle or absolute expiry,
// ErrClientMismatch for another client, ErrInvalidScope when r.Scopes widens.
// The cut-offs are read in the script's round trip (the subject's when
// r.Cutoffs names it, otherwise in a second one).
func (s *Store) RotateRefresh(ctx context.Context, r store.Rotation) (store.RotationResult, error) {
	const op = "rotate refresh token"
	if !validFID(r.FID) {
		return store.RotationResult{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if r.Successor == "" || r.Grace < 0 {
		return store.RotationResult{}, fmt.Errorf("%s: a successor is required and grace must not be negative", op)
	}
	if err := checkEntry(r.ReuseEvent); err != nil {
		return store.RotationResult{}, fmt.Errorf("%s: reuse event: %w", op, err)
	}
	narrow, scopes := "0", ""
	var err error
	if r.Scopes != nil {
		if scopes, err = joinScopes(r.Scopes); err != nil {
			return store.RotationResult{}, fmt.Errorf("%s: %w", op, err)
		}
		narrow = "1"
	}
	var sealed []byte
	if r.Grace > 0 {
		if sealed, err = s.seal(r.FID, r.Successor); err != nil {
			return store.RotationResult{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	next := sha256.Sum256([]byte(r.Successor))
	k := s.grant(r.FID)
	keys := []string{k.fam, k.sup, k.succ, k.rev, k.outbox}
	// The first run carries no event: a rotation or redemption queues one
	// only on reuse, which answers INDEX; the rerun, registered, carries it.
	version, evID, evValue := "0", "", ""
	for range maxIndexRetries {
		reads := s.cutReads(ctx, r.Cutoffs.SubjectType, r.Cutoffs.Subject, r.ClientID)
		cmd := evalCmd(ctx, familyRotateScript, keys,
			string(r.Presented[:]), r.ClientID, ms(nowOr(r.Now)), string(next[:]), sealed, narrow, scopes,
			r.Grace.Milliseconds(), r.MaxGraceReplays, s.retain.Milliseconds(), version, evID, evValue)
		if err := s.roundTrip(ctx, reads.with(cmd)...); err != nil {
			return store.RotationResult{}, wrap(op, err)
		}
		status, vals, err := scriptReply(op, cmd)
		var res store.RotationResult
		switch {
		case status == statusIndex:
			evID, evValue = r.ReuseEvent.ID, entryValue(r.ReuseEvent)
			if version, err = s.register(ctx, op, r.FID); err != nil {
				return store.RotationResult{}, err
			}
			continue
		case errors.Is(err, store.ErrReused):
			s.remember(r.ReuseEvent.ID, r.FID)
			return store.RotationResult{}, err
		case err != nil:
			return store.RotationResult{}, err
		case status == statusOK:
			if res.Family, err = decodeFamily(op, r.FID, vals); err != nil {
				return store.RotationResult{}, err
			}
			res.RefreshToken = r.Successor
		case status == statusGrace && len(vals) > 1:
			if res.Family, err = decodeFamily(op, r.FID, vals[1:]); err != nil {
				return store.RotationResult{}, err
			}
			if res.RefreshToken, err = s.open(r.FID, []byte(vals[0])); err != nil {
				return store.RotationResult{}, fmt.Errorf("%s: grace replay: %w", op, err)
			}
			res.GraceReplay = true
		default:
			return store.RotationResult{}, unexpected(op, status, vals)
		}
		f := res.Family
		if err := s.checkCutoffs(ctx, op, r.FID, reads, f.SubjectType, f.Subject, f.CreatedAt, r.Cutoffs.Skew); err != nil {
			return store.RotationResult{}, err
		}
		return res, nil
	}
	return store.RotationResult{}, errIndexChurn(op)
}

// famFields is FAM of common.lua, for HMGET outside scripts.
var famFields = []string{"client", "sub", "sub_type", "scopes", "resource", "grant",
	"created", "auth_time", "gen", "idle", "abs_exp", "public",
	"rotated_at", "cur", "prev", "grace_n"}

// decodeFamily reads the FAM fields of common.lua.
func decodeFamily(op, fid string, vals []string) (store.RefreshFamily, error) {
	f := fields{v: vals}
	fam := store.RefreshFamily{
		FID:               fid,
		ClientID:          f.str(0),
		Subject:           f.str(1),
		SubjectType:       f.str(2),
		Scopes:            splitScopes(f.str(3)),
		Resource:          f.str(4),
		Grant:             f.str(5),
		CreatedAt:         f.time(6),
		AuthTime:          f.time(7),
		Generation:        f.int(8),
		IdleTimeout:       f.dur(9),
		AbsoluteExpiresAt: f.time(10),
		Public:            f.str(11) == "1",
	}
	return fam, f.check(op)
}

// readFamily reads a family in two round trips: its record and revoked mark,
// then the cut-offs of its subject and client (named by the record).
func (s *Store) readFamily(ctx context.Context, op, fid string) (store.RefreshFamily, store.Hash, error) {
	if !validFID(fid) {
		return store.RefreshFamily{}, store.Hash{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return store.RefreshFamily{}, store.Hash{}, fmt.Errorf("%s: %w", op, err)
	}
	k := s.grant(fid)
	rev := goredis.NewIntCmd(ctx, "exists", k.rev)
	hmget := make([]any, 0, 2+len(famFields))
	hmget = append(hmget, "hmget", k.fam)
	for _, f := range famFields {
		hmget = append(hmget, f)
	}
	rec := goredis.NewSliceCmd(ctx, hmget...)
	if err := s.roundTrip(ctx, rev, rec); err != nil {
		return store.RefreshFamily{}, store.Hash{}, wrap(op, err)
	}
	for _, c := range []goredis.Cmder{rev, rec} {
		if err := c.Err(); err != nil {
			return store.RefreshFamily{}, store.Hash{}, wrap(op, err)
		}
	}
	if rev.Val() > 0 {
		return store.RefreshFamily{}, store.Hash{}, fmt.Errorf("%s: %w", op, store.ErrRevoked)
	}
	vals := make([]string, len(famFields))
	for i, v := range rec.Val() {
		if str, ok := v.(string); ok {
			vals[i] = str
		}
	}
	if vals[0] == "" {
		return store.RefreshFamily{}, store.Hash{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	fam, err := decodeFamily(op, fid, vals)
	if err != nil {
		return store.RefreshFamily{}, store.Hash{}, err
	}
	f := fields{v: vals}
	cur, lastUsed := f.hash(13), f.time(12)
	if err := f.check(op); err != nil {
		return store.RefreshFamily{}, store.Hash{}, err
	}
	now := time.Now()
	if lastUsed.Before(fam.CreatedAt) {
		lastUsed = fam.CreatedAt
	}
	if !now.Before(fam.AbsoluteExpiresAt) || (fam.IdleTimeout > 0 && !now.Before(lastUsed.Add(fam.IdleTimeout))) {
		return store.RefreshFamily{}, store.Hash{}, fmt.Errorf("%s: %w", op, store.ErrExpired)
	}
	return fam, cur, nil
}

// lookupCutoffs reads the cut-offs of a family's subject and client in one
// round trip: ErrRevoked when one is at or after its creation. Lookups apply
// no skew (they are not given one); the rotation, which is, is the authority.
func (s *Store) lookupCutoffs(ctx context.Context, op string, fam store.RefreshFamily) error {
	sub := s.readCutoff(ctx, s.subjectCutKey(fam.SubjectType, fam.Subject))
	cli := s.readCutoff(ctx, s.clientCutKey(fam.ClientID))
	if err := s.roundTrip(ctx, sub, cli); err != nil {
		return wrap(op, err)
	}
	for _, c := range []*goredis.SliceCmd{sub, cli} {
		cut, err := mgetCutoff(c)
		if err != nil {
			return wrap(op, err)
		}
		if !cut.IsZero() && !fam.CreatedAt.After(cut) {
			return fmt.Errorf("%s: %w: cut-off", op, store.ErrRevoked)
		}
	}
	return nil
}

// GetFamily returns a live family (for the revocation of a refresh token,
// RFC 7009 §2.1): ErrRevoked when it was revoked or a cut-off covers its
// creation, ErrExpired past its idle or absolute expiry, ErrNotFound when
// gone.
func (s *Store) GetFamily(ctx context.Context, fid string) (store.RefreshFamily, error) {
	const op = "get refresh family"
	fam, _, err := s.readFamily(ctx, op, fid)
	if err != nil {
		return store.RefreshFamily{}, err
	}
	if err := s.lookupCutoffs(ctx, op, fam); err != nil {
		return store.RefreshFamily{}, err
	}
	return fam, nil
}

// LookupRefresh returns the live family whose current refresh token hashes to
// h (RFC 7662 introspection, RFC 7009 revocation). A superseded or unknown
// token is ErrNotFound; otherwise as GetFamily.
func (s *Store) LookupRefresh(ctx context.Context, fid string, h store.Hash) (store.RefreshFamily, error) {
	const op = "look up refresh token"
	fam, cur, err := s.readFamily(ctx, op, fid)
	if err != nil {
		return store.RefreshFamily{}, err
	}
	if cur != h {
		return store.RefreshFamily{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if err := s.lookupCutoffs(ctx, op, fam); err != nil {
		return store.RefreshFamily{}, err
	}
	return fam, nil
}

// CreateDeviceCode stores a device authorization (RFC 8628 §3.2), pending,
// and the index from its user code, both until ExpiresAt plus a short window
// in which a replay is still recognised. ErrAlreadyExists when the user code
// or the fid is taken. The index is written first, by its own command, so
// that both steps stay in one Redis Cluster slot each; a failure in between
// leaves an index entry that names nothing and expires.
func (s *Store) CreateDeviceCode(ctx context.Context, d store.DeviceCode) error {
	const op = "create device code"
	if !validFID(d.FID) || d.UserCode == "" || d.ClientID == "" || d.Interval <= 0 || d.CreatedAt.IsZero() || d.ExpiresAt.IsZero() {
		return fmt.Errorf("%s: fid, user code, client, interval, creation and expiry are required", op)
	}
	if d.Status != "" && d.Status != store.DevicePending {
		return fmt.Errorf("%s: a new device authorization is pending, not %q", op, d.Status)
	}
	if !d.ExpiresAt.After(time.Now()) {
		return fmt.Errorf("%s: %w: expires at %s", op, store.ErrExpired, d.ExpiresAt.UTC().Format(time.RFC3339))
	}
	scopes, err := joinScopes(d.Scopes)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	until := d.ExpiresAt.Add(reuseWindow)
	ucode := s.userCodeKey(d.UserCode)
	res, err := s.rdb.SetArgs(ctx, ucode, d.FID, goredis.SetArgs{Mode: "NX", ExpireAt: until}).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return wrap(op, err)
	}
	if res != "OK" {
		return fmt.Errorf("%s: user code: %w", op, store.ErrAlreadyExists)
	}
	k := s.grant(d.FID)
	_, _, err = s.run(ctx, op, deviceCreateScript, []string{k.dev, k.fam},
		ms(until),
		"h", string(d.Hash[:]),
		"ucode", d.UserCode,
		"client", d.ClientID,
		"scopes", scopes,
		"resource", d.Resource,
		"interval", durText(d.Interval),
		"created", msText(d.CreatedAt),
		"exp", msText(d.ExpiresAt),
		"status", string(store.DevicePending),
		"sub", "",
		"auth_time", "",
		"last_poll", "",
		"redeemed", "0",
	)
	if err != nil {
		// The index is ours (SET NX): take it back, best effort.
		_ = s.rdb.Del(context.WithoutCancel(ctx), ucode).Err()
		return err
	}
	return nil
}

// devFields is DEV of common.lua, for HMGET outside scripts.
var devFields = []string{"h", "ucode", "client", "scopes", "resource", "interval",
	"created", "exp", "status", "sub", "auth_time", "last_poll", "redeemed"}

// decodeDevice reads the DEV fields of common.lua.
func decodeDevice(op, fid string, vals []string) (store.DeviceCode, error) {
	f := fields{v: vals}
	d := store.DeviceCode{
		FID:       fid,
		Hash:      f.hash(0),
		UserCode:  f.str(1),
		ClientID:  f.str(2),
		Scopes:    splitScopes(f.str(3)),
		Resource:  f.str(4),
		Interval:  f.dur(5),
		CreatedAt: f.time(6),
		ExpiresAt: f.time(7),
		Status:    store.DeviceStatus(f.str(8)),
		Subject:   f.str(9),
		AuthTime:  f.time(10),
	}
	return d, f.check(op)
}

// LookupUserCode returns the pending device authorization a user code names
// (RFC 8628 §3.3), for the verification page. ErrExpired past its expiry;
// ErrNotFound when unknown or already decided.
func (s *Store) LookupUserCode(ctx context.Context, userCode string, now time.Time) (store.DeviceCode, error) {
	const op = "look up user code"
	if err := ctx.Err(); err != nil {
		return store.DeviceCode{}, fmt.Errorf("%s: %w", op, err)
	}
	fid, err := s.rdb.Get(ctx, s.userCodeKey(userCode)).Result()
	if err != nil {
		return store.DeviceCode{}, wrap(op, err)
	}
	if !validFID(fid) {
		return store.DeviceCode{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	rec, err := s.rdb.HMGet(ctx, s.grant(fid).dev, devFields...).Result()
	if err != nil {
		return store.DeviceCode{}, wrap(op, err)
	}
	vals := make([]string, len(devFields))
	for i, v := range rec {
		if str, ok := v.(string); ok {
			vals[i] = str
		}
	}
	if vals[0] == "" || vals[1] != userCode {
		return store.DeviceCode{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	d, err := decodeDevice(op, fid, vals)
	if err != nil {
		return store.DeviceCode{}, err
	}
	if !nowOr(now).Before(d.ExpiresAt) {
		return store.DeviceCode{}, fmt.Errorf("%s: %w", op, store.ErrExpired)
	}
	if d.Status != store.DevicePending {
		return store.DeviceCode{}, fmt.Errorf("%s: %w: already %s", op, store.ErrNotFound, d.Status)
	}
	return d, nil
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
	_, _, err := s.run(ctx, op, deviceDecideScript, []string{s.grant(fid).dev},
		boolText(approve), subject, msText(authTime), ms(nowOr(now)))
	return err
}

// PollDevice answers one poll of the token endpoint (RFC 8628 §3.4, §3.5) in
// one script: SlowDown (the interval grows by 5 s) when polled faster than
// the interval, pending, denied, or approved, which redeems the code (single
// use). A poll after the redemption revokes the family and queues
// p.ReuseEvent (ErrReused). ErrNotFound for an unknown code, ErrClientMismatch
// for another client, ErrExpired past its expiry, ErrRevoked for a revoked
// family, a client cut-off covering the code, or at redemption a subject
// cut-off of the approver. The client's cut-off is read in the script's
// round trip, and the approver's too when p.Cutoffs names them.
func (s *Store) PollDevice(ctx context.Context, p store.DevicePoll) (store.PollResult, error) {
	const op = "poll device code"
	if !validFID(p.FID) {
		return store.PollResult{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if err := checkEntry(p.ReuseEvent); err != nil {
		return store.PollResult{}, fmt.Errorf("%s: reuse event: %w", op, err)
	}
	k := s.grant(p.FID)
	keys := []string{k.dev, k.fam, k.sup, k.succ, k.rev, k.outbox}
	hint := p.Cutoffs.Subject
	if p.Cutoffs.SubjectType != "" && p.Cutoffs.SubjectType != grantSubjectType {
		hint = ""
	}
	// The first run carries no event: a rotation or redemption queues one
	// only on reuse, which answers INDEX; the rerun, registered, carries it.
	version, evID, evValue := "0", "", ""
	for range maxIndexRetries {
		reads := s.cutReads(ctx, grantSubjectType, hint, p.ClientID)
		cmd := evalCmd(ctx, devicePollScript, keys,
			string(p.Hash[:]), p.ClientID, ms(nowOr(p.Now)), s.retain.Milliseconds(), version, evID, evValue)
		if err := s.roundTrip(ctx, reads.with(cmd)...); err != nil {
			return store.PollResult{}, wrap(op, err)
		}
		status, vals, err := scriptReply(op, cmd)
		var res store.PollResult
		switch {
		case status == statusIndex:
			evID, evValue = p.ReuseEvent.ID, entryValue(p.ReuseEvent)
			if version, err = s.register(ctx, op, p.FID); err != nil {
				return store.PollResult{}, err
			}
			continue
		case errors.Is(err, store.ErrReused):
			s.remember(p.ReuseEvent.ID, p.FID)
			return store.PollResult{}, err
		case err != nil:
			return store.PollResult{}, err
		case status == statusOK:
			res.Status = store.DeviceApproved
		case status == statusPending:
			res.Status = store.DevicePending
		case status == statusSlowDown:
			res.Status, res.SlowDown = store.DevicePending, true
		case status == statusDenied:
			res.Status = store.DeviceDenied
		default:
			return store.PollResult{}, unexpected(op, status, vals)
		}
		if res.Code, err = decodeDevice(op, p.FID, vals); err != nil {
			return store.PollResult{}, err
		}
		// The client's cut-off applies at every poll; the approver's at
		// the redemption, the only poll that hands out a grant.
		sub := ""
		if status == statusOK {
			sub = res.Code.Subject
		}
		if err := s.checkCutoffs(ctx, op, p.FID, reads, grantSubjectType, sub, res.Code.CreatedAt, p.Cutoffs.Skew); err != nil {
			return store.PollResult{}, err
		}
		return res, nil
	}
	return store.PollResult{}, errIndexChurn(op)
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
