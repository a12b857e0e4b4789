package redis

// Deny state and the outbox (store.RevocationStore):
//
//	<prefix>{jtis:<bucket>}:rev:<jti> string: the access token is revoked
//	<prefix>{fid}:rev                 string: the family is revoked (grants.go)
//	<prefix>{sub:<type>:<sub>}:cut    string: subject cut-off, Unix ms
//	<prefix>{client:<id>}:cut         string: client cut-off, Unix ms
//	<prefix>{<tag>}:outbox            hash: the outbox shard of each of them (outbox.go)
//
// Revoke writes the deny state and the outbox entry in one script, in the
// slot of the deny state's tag (keys.go).

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/store"
)

// Revoke writes r's deny state and queues e in the outbox in one script, so
// that a revocation is never written without its event nor the reverse
// (MISSION §0.2, §0.7). A token's mark lives until its exp plus r.Retain; a
// family's mark r.Retain, and its records are deleted so that nothing under
// the fid can be redeemed again; a cut-off replaces an earlier one, never a
// later one, and lives at least r.Retain and the maximum grant lifetime
// (WithMaxGrantLifetime). Revoking again succeeds and queues e again. The
// entry's shard is registered in the outbox index first (outbox.go): one
// round trip when the store registered it recently, two otherwise.
func (s *Store) Revoke(ctx context.Context, r store.Revocation, e store.OutboxEntry) error {
	if e.IsZero() {
		return fmt.Errorf("revoke %s: a revocation needs its event", r.Kind)
	}
	return s.revoke(ctx, r, e)
}

// Replay writes r's deny state and queues nothing (store.RevocationStore).
func (s *Store) Replay(ctx context.Context, r store.Revocation) error {
	return s.revoke(ctx, r, store.OutboxEntry{})
}

// revoke is Revoke and Replay: a zero e queues nothing.
func (s *Store) revoke(ctx context.Context, r store.Revocation, e store.OutboxEntry) error {
	op := "revoke " + string(r.Kind)
	var ev outboxEntry // a zero entry queues nothing (replay)
	if !e.IsZero() {
		var err error
		if ev, err = outboxArgs(e); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if r.Retain <= 0 {
		return fmt.Errorf("%s: retain must be positive", op)
	}
	var (
		tag  string
		sc   *goredis.Script
		keys []string
		args []any
	)
	switch r.Kind {
	case store.RevokeToken:
		if r.JTI == "" {
			return fmt.Errorf("%s: jti is required", op)
		}
		until := nowOr(r.Expires).Add(r.Retain)
		if floor := time.Now().Add(time.Second); until.Before(floor) {
			until = floor // the token is long dead; keep the mark a moment anyway
		}
		tag = jtiTag(r.JTI)
		sc, keys, args = revokeTokenScript, []string{s.jtiKey(r.JTI), s.shardKey(tag)}, []any{ms(until)}
	case store.RevokeFamily:
		if !validFID(r.FID) {
			return fmt.Errorf("%s: invalid fid %q", op, r.FID)
		}
		k := s.grant(r.FID)
		tag = r.FID
		sc, keys, args = revokeFamilyScript, []string{k.rev, k.fam, k.sup, k.succ, k.code, k.dev, k.outbox}, []any{r.Retain.Milliseconds()}
	case store.RevokeSubject, store.RevokeClient:
		if r.Kind == store.RevokeSubject {
			if r.SubjectType == "" || r.Subject == "" {
				return fmt.Errorf("%s: subject type and subject are required", op)
			}
			tag = subjectTag(r.SubjectType, r.Subject)
		} else {
			if r.ClientID == "" {
				return fmt.Errorf("%s: client id is required", op)
			}
			tag = clientTag(r.ClientID)
		}
		if r.Cutoff.IsZero() {
			return fmt.Errorf("%s: cut-off is required", op)
		}
		sc, keys, args = revokeCutoffScript, []string{s.tagged(tag, "cut"), s.shardKey(tag)},
			[]any{ms(r.Cutoff), max(r.Retain, s.maxGrant).Milliseconds()}
	default:
		return fmt.Errorf("%s: unknown revocation kind %q", op, r.Kind)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	version := "0"
	for attempt := range maxIndexRetries {
		if ev.id != "" {
			var err error
			if version, err = s.registration(ctx, op, tag, attempt > 0); err != nil {
				return err
			}
		}
		status, vals, err := s.run(ctx, op, sc, keys, append(args, version, ev.id, ev.value)...)
		switch {
		case err != nil:
			return err
		case status == statusIndex:
			continue
		case status != statusOK:
			return unexpected(op, status, vals)
		}
		if ev.id != "" {
			s.remember(ev.id, tag)
		}
		return nil
	}
	return errIndexChurn(op)
}

// DenyState reads, in one pipelined round trip, everything that could deny
// the access token q describes: its jti mark, its family's mark and the
// cut-offs of its subject and client. Empty fields of q are not looked up.
func (s *Store) DenyState(ctx context.Context, q store.DenyQuery) (store.Deny, error) {
	const op = "read deny state"
	if err := ctx.Err(); err != nil {
		return store.Deny{}, fmt.Errorf("%s: %w", op, err)
	}
	var jti, fam *goredis.IntCmd
	cmds := make([]goredis.Cmder, 0, 5)
	if q.JTI != "" {
		jti = goredis.NewIntCmd(ctx, "exists", s.jtiKey(q.JTI))
		cmds = append(cmds, jti)
	}
	if validFID(q.FID) {
		fam = goredis.NewIntCmd(ctx, "exists", s.grant(q.FID).rev)
		cmds = append(cmds, fam)
	}
	var sub, sub2, cli *goredis.SliceCmd
	switch {
	case q.Subject == "":
	case q.SubjectType != "":
		sub = s.readCutoff(ctx, s.subjectCutKey(q.SubjectType, q.Subject))
		cmds = append(cmds, sub)
	default: // either namespace: both cut-offs, the later wins
		sub = s.readCutoff(ctx, s.subjectCutKey(events.SubjectUser, q.Subject))
		sub2 = s.readCutoff(ctx, s.subjectCutKey(events.SubjectClient, q.Subject))
		cmds = append(cmds, sub, sub2)
	}
	if q.ClientID != "" {
		cli = s.readCutoff(ctx, s.clientCutKey(q.ClientID))
		cmds = append(cmds, cli)
	}
	if len(cmds) == 0 {
		return store.Deny{}, nil
	}
	if err := s.roundTrip(ctx, cmds...); err != nil {
		return store.Deny{}, wrap(op, err)
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return store.Deny{}, wrap(op, err)
		}
	}
	var d store.Deny
	var err error
	if jti != nil {
		d.JTIRevoked = jti.Val() > 0
	}
	if fam != nil {
		d.FamilyRevoked = fam.Val() > 0
	}
	if sub != nil {
		if d.SubjectCutoff, err = mgetCutoff(sub); err != nil {
			return store.Deny{}, wrap(op, err)
		}
	}
	if sub2 != nil {
		c2, err := mgetCutoff(sub2)
		if err != nil {
			return store.Deny{}, wrap(op, err)
		}
		if c2.After(d.SubjectCutoff) {
			d.SubjectCutoff = c2
		}
	}
	if cli != nil {
		if d.ClientCutoff, err = mgetCutoff(cli); err != nil {
			return store.Deny{}, wrap(op, err)
		}
	}
	return d, nil
}
