package redis

// The cut-off check of redemptions, rotations, device polls and family
// creation (docs/redis.md, "The cut-off check").
//
// A grant's script runs in the slot of {fid}; the subject and client
// cut-offs live in their own slots, so the script cannot read them on Redis
// Cluster. The store reads them in the same round trip as the script instead
// (GETs pipelined before the EVALSHA) and checks them against the record the
// script returns. When they cover the grant, the store kills it at once
// (grant_kill.lua) and answers ErrRevoked: nothing the script produced is
// handed out.
//
// Why a read next to the script is as safe as a read inside it: a cut-off
// written after the GET and before the script lets through only a grant that
// the revocation, in the order of events, had not yet reached. Its tokens are
// issued at iat ≤ the request's now, which is before the revocation; an
// edge, introspection and every later rotation kill tokens of iat ≤ cut-off +
// skew and the family itself (created before the cut-off), so nothing
// outlives the revocation. On Cluster the GETs may even run after the
// script, which only makes the check fresher.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/store"
)

// cutReads are the cut-off reads sent with a script: the subject's, when the
// caller hinted it, and the presenting client's.
type cutReads struct {
	subType, sub string // what sub was read for; "" when not read
	subCmd       *goredis.SliceCmd
	cliCmd       *goredis.SliceCmd
	buf          [3]goredis.Cmder
}

// readCutoff returns the read of one cut-off: an MGET of its one key, so
// that a missing key is a nil value rather than a redis.Nil error, which
// go-redis handles at some cost on every command of a pipeline.
func (s *Store) readCutoff(ctx context.Context, key string) *goredis.SliceCmd {
	return goredis.NewSliceCmd(ctx, "mget", key)
}

// cutReads prepares the reads; subType or sub empty skips the subject's.
func (s *Store) cutReads(ctx context.Context, subType, sub, clientID string) *cutReads {
	r := &cutReads{cliCmd: s.readCutoff(ctx, s.clientCutKey(clientID))}
	if subType != "" && sub != "" {
		r.subType, r.sub = subType, sub
		r.subCmd = s.readCutoff(ctx, s.subjectCutKey(subType, sub))
	}
	return r
}

// with returns the reads followed by script, for one round trip.
func (r *cutReads) with(script goredis.Cmder) []goredis.Cmder {
	cmds := r.buf[:0]
	if r.subCmd != nil {
		cmds = append(cmds, r.subCmd)
	}
	return append(cmds, r.cliCmd, script)
}

// check answers ErrRevoked, after killing the grant, when a cut-off plus skew
// is at or after created. The client cut-off is the one read; the subject's
// is the one read when it was read for subType:sub, otherwise (no hint, a
// wrong one) it is read now, one more round trip. An empty sub checks the
// client's only (a device code not yet approved).
func (s *Store) checkCutoffs(ctx context.Context, op, fid string, r *cutReads, subType, sub string, created time.Time, skew time.Duration) error {
	cut, err := mgetCutoff(r.cliCmd)
	if err != nil {
		return wrap(op+": read client cut-off", err)
	}
	if sub != "" {
		subCmd := r.subCmd
		if subCmd == nil || r.subType != subType || r.sub != sub {
			subCmd = s.readCutoff(ctx, s.subjectCutKey(subType, sub))
			if err := s.roundTrip(ctx, subCmd); err != nil {
				return wrap(op+": read subject cut-off", err)
			}
		}
		c, err := mgetCutoff(subCmd)
		if err != nil {
			return wrap(op+": read subject cut-off", err)
		}
		if c.After(cut) {
			cut = c
		}
	}
	if cut.IsZero() || created.After(cut.Add(skew)) {
		return nil
	}
	if err := s.kill(ctx, fid); err != nil {
		// The answer stands: nothing is handed out. A grant left alive
		// dies at its next use, whose check reads the cut-off again.
		s.log.Warn("revoking a grant a cut-off covers failed; its next use refuses it", zap.String("fid", fid), zap.Error(err))
	}
	return fmt.Errorf("%s: %w: cut-off", op, store.ErrRevoked)
}

// kill revokes a grant a cut-off covers, for good (grant_kill.lua).
func (s *Store) kill(ctx context.Context, fid string) error {
	k := s.grant(fid)
	_, _, err := s.run(context.WithoutCancel(ctx), "revoke a grant under a cut-off", grantKillScript,
		[]string{k.rev, k.fam, k.sup, k.succ, k.code, k.dev}, s.retain.Milliseconds())
	return err
}

// mgetCutoff reads a cut-off (Unix ms) read by readCutoff; no key is the
// zero time.
func mgetCutoff(c *goredis.SliceCmd) (time.Time, error) {
	vals, err := c.Result()
	if err != nil {
		return time.Time{}, err
	}
	if len(vals) != 1 {
		return time.Time{}, fmt.Errorf("cut-off read returned %d values", len(vals))
	}
	if vals[0] == nil {
		return time.Time{}, nil
	}
	v, _ := vals[0].(string)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("cut-off %q is not Unix milliseconds", v)
	}
	return time.UnixMilli(n), nil
}

// cutoffValue reads a cut-off (Unix ms) read with GET; no key is the zero
// time.
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
