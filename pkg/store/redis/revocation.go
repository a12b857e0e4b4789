package redis

// Deny state and the outbox (store.RevocationStore):
//
//	<prefix>rev:jti:<jti>           string: the access token is revoked
//	<prefix>{fid}:rev               string: the family is revoked (grants.go)
//	<prefix>cut:sub:<type>:<sub>    string: subject cut-off, Unix ms
//	<prefix>cut:client:<id>         string: client cut-off, Unix ms
//	<prefix>{outbox}                zset: event id scored by creation (ms)
//	<prefix>{outbox}:data           hash: event id -> "<NATS subject> <data>"
//
// Revoke writes the deny state and the outbox entry in one script.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/store"
)

func (s *Store) jtiKey(jti string) string { return s.key("rev", "jti", jti) }

// subjectCutKey is the cut-off of a subject; subType is "user" or "client".
func (s *Store) subjectCutKey(subType, sub string) string { return s.key("cut", "sub", subType, sub) }

// clientCutKey is the cut-off of a client.
func (s *Store) clientCutKey(clientID string) string { return s.key("cut", "client", clientID) }

// outboxKeys are the outbox index and entries; they share the hash tag
// {outbox}.
func (s *Store) outboxKeys() (index, data string) {
	return s.prefix + "{outbox}", s.prefix + "{outbox}:data"
}

// outboxArgs are an entry's id, creation (ms) and stored value
// "<subject> <data>" (a NATS subject holds no space).
func outboxArgs(e store.OutboxEntry) ([3]string, error) {
	if e.ID == "" || e.Subject == "" || strings.ContainsAny(e.Subject, " \t\r\n") {
		return [3]string{}, fmt.Errorf("outbox entry needs an id and a NATS subject without spaces (id %q, subject %q)", e.ID, e.Subject)
	}
	return [3]string{e.ID, strconv.FormatInt(ms(nowOr(e.CreatedAt)), 10), e.Subject + " " + string(e.Data)}, nil
}

// cutoffValue reads a cut-off (Unix ms); no key is the zero time.
func cutoffValue(c *goredis.StringCmd) (time.Time, error) {
	v, err := c.Result()
	if errors.Is(err, goredis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("cut-off %q is not Unix milliseconds", v)
	}
	return time.UnixMilli(n), nil
}

// Revoke writes r's deny state and queues e in the outbox in one script, so
// that a revocation is never written without its event nor the reverse
// (MISSION §0.2, §0.7). A token's mark lives until its exp plus r.Retain; a
// family's mark r.Retain, and its records are deleted so that nothing under
// the fid can be redeemed again; a cut-off replaces an earlier one, never a
// later one, and lives at least r.Retain and the maximum grant lifetime
// (WithMaxGrantLifetime). Revoking again succeeds and queues e again.
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
	ev := [3]string{"", "0", ""} // a zero entry queues nothing (replay)
	var err error
	if !e.IsZero() {
		if ev, err = outboxArgs(e); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if r.Retain <= 0 {
		return fmt.Errorf("%s: retain must be positive", op)
	}
	index, data := s.outboxKeys()
	switch r.Kind {
	case store.RevokeToken:
		if r.JTI == "" {
			return fmt.Errorf("%s: jti is required", op)
		}
		until := nowOr(r.Expires).Add(r.Retain)
		if floor := time.Now().Add(time.Second); until.Before(floor) {
			until = floor // the token is long dead; keep the mark a moment anyway
		}
		_, _, err = s.run(ctx, op, revokeTokenScript, []string{s.jtiKey(r.JTI), index, data},
			ms(until), ev[0], ev[1], ev[2])
	case store.RevokeFamily:
		if !validFID(r.FID) {
			return fmt.Errorf("%s: invalid fid %q", op, r.FID)
		}
		k := s.grant(r.FID)
		_, _, err = s.run(ctx, op, revokeFamilyScript,
			[]string{k.rev, k.fam, k.used, k.succ, k.code, k.dev, index, data},
			r.Retain.Milliseconds(), ev[0], ev[1], ev[2])
	case store.RevokeSubject, store.RevokeClient:
		key := s.clientCutKey(r.ClientID)
		if r.Kind == store.RevokeSubject {
			if r.SubjectType == "" || r.Subject == "" {
				return fmt.Errorf("%s: subject type and subject are required", op)
			}
			key = s.subjectCutKey(r.SubjectType, r.Subject)
		} else if r.ClientID == "" {
			return fmt.Errorf("%s: client id is required", op)
		}
		if r.Cutoff.IsZero() {
			return fmt.Errorf("%s: cut-off is required", op)
		}
		_, _, err = s.run(ctx, op, revokeCutoffScript, []string{key, index, data},
			ms(r.Cutoff), max(r.Retain, s.maxGrant).Milliseconds(), ev[0], ev[1], ev[2])
	default:
		return fmt.Errorf("%s: unknown revocation kind %q", op, r.Kind)
	}
	return err
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
	var sub, sub2, cli *goredis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if q.JTI != "" {
			jti = p.Exists(ctx, s.jtiKey(q.JTI))
		}
		if validFID(q.FID) {
			fam = p.Exists(ctx, s.grant(q.FID).rev)
		}
		switch {
		case q.Subject == "":
		case q.SubjectType != "":
			sub = p.Get(ctx, s.subjectCutKey(q.SubjectType, q.Subject))
		default: // either namespace: both cut-offs, the later wins
			sub = p.Get(ctx, s.subjectCutKey(events.SubjectUser, q.Subject))
			sub2 = p.Get(ctx, s.subjectCutKey(events.SubjectClient, q.Subject))
		}
		if q.ClientID != "" {
			cli = p.Get(ctx, s.clientCutKey(q.ClientID))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return store.Deny{}, wrap(op, err)
	}
	var d store.Deny
	if jti != nil {
		d.JTIRevoked = jti.Val() > 0
	}
	if fam != nil {
		d.FamilyRevoked = fam.Val() > 0
	}
	if sub != nil {
		if d.SubjectCutoff, err = cutoffValue(sub); err != nil {
			return store.Deny{}, wrap(op, err)
		}
	}
	if sub2 != nil {
		c2, err := cutoffValue(sub2)
		if err != nil {
			return store.Deny{}, wrap(op, err)
		}
		if c2.After(d.SubjectCutoff) {
			d.SubjectCutoff = c2
		}
	}
	if cli != nil {
		if d.ClientCutoff, err = cutoffValue(cli); err != nil {
			return store.Deny{}, wrap(op, err)
		}
	}
	return d, nil
}

// PendingOutbox returns up to limit outbox entries created at or before
// olderThan, oldest first, read in one script.
func (s *Store) PendingOutbox(ctx context.Context, olderThan time.Time, limit int) ([]store.OutboxEntry, error) {
	const op = "read outbox"
	if limit <= 0 {
		return nil, nil
	}
	index, data := s.outboxKeys()
	status, vals, err := s.run(ctx, op, outboxPendingScript, []string{index, data}, ms(olderThan), limit)
	if err != nil {
		return nil, err
	}
	if status != statusOK || len(vals)%3 != 0 {
		return nil, unexpected(op, status, vals)
	}
	out := make([]store.OutboxEntry, 0, len(vals)/3)
	for i := 0; i < len(vals); i += 3 {
		created, err := strconv.ParseFloat(vals[i+1], 64)
		subject, payload, ok := strings.Cut(vals[i+2], " ")
		if err != nil || !ok {
			return nil, fmt.Errorf("%s: %w: malformed entry %q", op, store.ErrUnavailable, vals[i])
		}
		out = append(out, store.OutboxEntry{
			ID:        vals[i],
			Subject:   subject,
			Data:      []byte(payload),
			CreatedAt: time.UnixMilli(int64(created)),
		})
	}
	return out, nil
}

// AckOutbox removes an entry once JetStream has acknowledged its event; an
// unknown id succeeds. The index and the entry go in one transaction (they
// share a slot).
func (s *Store) AckOutbox(ctx context.Context, id string) error {
	const op = "ack outbox entry"
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	index, data := s.outboxKeys()
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZRem(ctx, index, id)
		p.HDel(ctx, data, id)
		return nil
	})
	return wrap(op, err)
}
