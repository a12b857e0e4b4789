package redis

// The outbox, sharded by hash tag (docs/redis.md, "The outbox"; docs/revoke.md).
//
// An outbox entry is written by the same script as the deny state it
// announces, so it lives in that state's slot: a shard P{tag}:outbox (a hash
// of event id -> "<created ms> <NATS subject> <data>") tagged like the
// family, the jti mark or the cut-off. The relay finds the shards through an
// index, P{outbox}:shards: shard tags scored by a registration version (the
// index node's clock in ms × 1024, made unique by P{outbox}:seq).
//
// Nothing queued may be missing from the index, so the index is written
// first: a revocation registers its shard, then runs its script with the
// version it got; a redemption or rotation, which queues only on reuse, runs
// its script with no version, and a reuse answers INDEX without writing
// anything, so the store registers and runs it again.
//
// The relay retires shards it finds empty. Retiring races with a writer that
// registered and has not queued yet, so it is fenced: reading an empty shard
// closes it at the version the index lists (outbox_read.lua writes the
// version in the shard's OUTBOX_CLOSED field, in the same step); the index
// entry is then dropped only if its version is still that one
// (outbox_forget.lua). A writer queues only if the shard was not closed at
// or after its own registration (enqueue in common.lua), so either it
// registered after the close — its version is newer, and the index keeps the
// shard — or it registers again. A writer also refuses a registration older
// than registrationMaxAge, so a closed shard need only be kept
// closedShardTTL, comfortably longer.
//
// Registrations: a revocation's shard is shared (a bucket of jti marks, a
// subject's or a client's cut-off), so the store keeps the version it got
// and queues with it again while it is younger than registrationReuse, well
// inside registrationMaxAge; a script that answers INDEX (the relay closed
// the shard since) drops it, and the store registers afresh. A revocation
// is then one round trip, and the relay closes a busy shard at most once a
// pass, not once a revocation.
//
// AckOutbox is given only an event id: the store remembers the shard of the
// entries it queued or read (ids are deterministic, so an id always names
// the same shard). An id it does not know is left for the relay, whose read
// teaches it the shard.

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
)

const (
	// outboxClosedField is the shard field that records the version the
	// relay closed the shard at; no event id can take it (outboxArgs).
	outboxClosedField = "!closed"
	// registrationMaxAge is how long after its registration a writer may
	// still queue into a shard (the shard's node's clock against the
	// index's: both NTP-synced). A step takes milliseconds; one that took
	// longer registers again.
	registrationMaxAge = time.Minute
	// registrationReuse is how long the store queues with a version it
	// got earlier: half of registrationMaxAge, measured on the local
	// monotonic clock from before the registration was sent, so that it
	// holds whatever the offset between this host and Redis.
	registrationReuse = registrationMaxAge / 2
	// maxCachedRegistrations bounds the cache; past it, it starts over.
	maxCachedRegistrations = 4096
	// closedShardTTL is how long a closed, empty shard keeps its close
	// version: longer than registrationMaxAge plus any clock offset
	// between Redis nodes, so that no registration the close covers can
	// still be used once it expires.
	closedShardTTL = 10 * time.Minute
	// rememberedShards bounds the ids whose shard the store remembers for
	// AckOutbox; past it, the oldest half is forgotten (the relay acks
	// those).
	rememberedShards = 1 << 16
	// indexPage is how many shards PendingOutbox reads per round trip.
	indexPage = 256
)

// outboxEntry is an entry as the scripts take it: its id and its value.
type outboxEntry struct{ id, value string }

// outboxArgs checks an entry and encodes its value
// "<created ms> <subject> <data>" (a NATS subject holds no space).
func outboxArgs(e store.OutboxEntry) (outboxEntry, error) {
	if err := checkEntry(e); err != nil {
		return outboxEntry{}, err
	}
	return outboxEntry{id: e.ID, value: entryValue(e)}, nil
}

// checkEntry refuses an entry without an id or with a subject the encoding
// cannot hold. Steps that may queue check their event at once, and encode it
// only when they queue it.
func checkEntry(e store.OutboxEntry) error {
	if e.ID == "" || e.ID == outboxClosedField || e.Subject == "" || strings.ContainsAny(e.Subject, " \t\r\n") {
		return fmt.Errorf("outbox entry needs an id and a NATS subject without spaces (id %q, subject %q)", e.ID, e.Subject)
	}
	return nil
}

func entryValue(e store.OutboxEntry) string {
	return strconv.FormatInt(ms(nowOr(e.CreatedAt)), 10) + " " + e.Subject + " " + string(e.Data)
}

// register lists the shard tag in the index and returns the registration
// version the writer passes to its script.
func (s *Store) register(ctx context.Context, op, tag string) (string, error) {
	shards, seq := s.indexKeys()
	status, vals, err := s.run(ctx, op+": register outbox shard", outboxRegisterScript, []string{shards, seq}, tag)
	if err != nil {
		return "", err
	}
	if status != statusOK || len(vals) != 1 {
		return "", unexpected(op, status, vals)
	}
	return vals[0], nil
}

// registration is a version the store got for a shard, and when it asked.
type registration struct {
	version string
	asked   time.Time
}

// registration returns a version to queue into tag's shard with: a cached
// one still young enough, unless fresh, or a new one (register).
func (s *Store) registration(ctx context.Context, op, tag string, fresh bool) (string, error) {
	if !fresh {
		s.regsMu.Lock()
		r, ok := s.regs[tag]
		s.regsMu.Unlock()
		if ok && time.Since(r.asked) < registrationReuse {
			return r.version, nil
		}
	}
	asked := time.Now()
	v, err := s.register(ctx, op, tag)
	if err != nil {
		return "", err
	}
	s.regsMu.Lock()
	if len(s.regs) >= maxCachedRegistrations {
		clear(s.regs)
	}
	if cur, ok := s.regs[tag]; !ok || cur.asked.Before(asked) {
		s.regs[tag] = registration{version: v, asked: asked}
	}
	s.regsMu.Unlock()
	return v, nil
}

// remember records that the entry id lives in the shard of tag.
func (s *Store) remember(id, tag string) {
	s.shardsMu.Lock()
	defer s.shardsMu.Unlock()
	if len(s.shards) >= rememberedShards {
		n := 0
		for k := range s.shards {
			delete(s.shards, k)
			if n++; n >= rememberedShards/2 {
				break
			}
		}
	}
	s.shards[id] = tag
}

// shardOf returns the tag remembered for id.
func (s *Store) shardOf(id string) (string, bool) {
	s.shardsMu.Lock()
	defer s.shardsMu.Unlock()
	tag, ok := s.shards[id]
	return tag, ok
}

func (s *Store) forgetID(id string) {
	s.shardsMu.Lock()
	defer s.shardsMu.Unlock()
	delete(s.shards, id)
}

// PendingOutbox returns up to limit outbox entries created at or before
// olderThan, in registration order (the order the revocations were
// attempted) and, within what one call returns, oldest first. It walks the
// index a page at a time, reading each page's shards in one round trip, and
// retires the shards it finds empty whose registration is older than
// olderThan.
func (s *Store) PendingOutbox(ctx context.Context, olderThan time.Time, limit int) ([]store.OutboxEntry, error) {
	const op = "read outbox"
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if limit <= 0 {
		return nil, nil
	}
	shards, _ := s.indexKeys()
	retireBelow := float64(ms(olderThan)) * 1024
	var out []store.OutboxEntry
	after := "-inf"
	for len(out) < limit {
		page := goredis.NewZSliceCmd(ctx, "zrange", shards, after, "+inf", "byscore", "limit", 0, indexPage, "withscores")
		if err := s.roundTrip(ctx, page); err != nil {
			return nil, wrap(op, err)
		}
		members, err := page.Result()
		if err != nil {
			return nil, wrap(op, err)
		}
		if len(members) == 0 {
			break
		}
		reads := make([]goredis.Cmder, len(members))
		for i, m := range members {
			tag, _ := m.Member.(string)
			retire := "0"
			if m.Score <= retireBelow {
				retire = "1"
			}
			reads[i] = evalCmd(ctx, outboxReadScript, []string{s.shardKey(tag)},
				strconv.FormatFloat(m.Score, 'f', -1, 64), retire, closedShardTTL.Milliseconds())
		}
		if err := s.roundTrip(ctx, reads...); err != nil {
			return nil, wrap(op, err)
		}
		var closed []any
		for i, m := range members {
			tag, _ := m.Member.(string)
			status, vals, err := scriptReply(op, reads[i].(*goredis.StringSliceCmd))
			if err != nil {
				return nil, err
			}
			if status == statusClosed {
				closed = append(closed, tag, strconv.FormatFloat(m.Score, 'f', -1, 64))
				continue
			}
			if status != statusOK || len(vals)%2 != 0 {
				return nil, unexpected(op, status, vals)
			}
			var shard []store.OutboxEntry
			for j := 0; j < len(vals); j += 2 {
				e, err := decodeEntry(vals[j], vals[j+1])
				if err != nil {
					return nil, fmt.Errorf("%s: %w: %v", op, store.ErrUnavailable, err)
				}
				if e.CreatedAt.After(olderThan) {
					continue
				}
				s.remember(e.ID, tag)
				shard = append(shard, e)
			}
			sort.SliceStable(shard, func(a, b int) bool { return shard[a].CreatedAt.Before(shard[b].CreatedAt) })
			out = append(out, shard...)
		}
		if len(closed) > 0 {
			if _, _, err := s.run(ctx, op+": retire empty shards", outboxForgetScript, []string{shards}, closed...); err != nil {
				return nil, err
			}
		}
		after = "(" + strconv.FormatFloat(members[len(members)-1].Score, 'f', -1, 64)
		if len(members) < indexPage {
			break
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].CreatedAt.Before(out[b].CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// decodeEntry reads a shard's "<created ms> <subject> <data>".
func decodeEntry(id, value string) (store.OutboxEntry, error) {
	created, rest, ok := strings.Cut(value, " ")
	subject, data, ok2 := strings.Cut(rest, " ")
	n, err := strconv.ParseInt(created, 10, 64)
	if !ok || !ok2 || err != nil {
		return store.OutboxEntry{}, fmt.Errorf("malformed outbox entry %q", id)
	}
	return store.OutboxEntry{ID: id, Subject: subject, Data: []byte(data), CreatedAt: time.UnixMilli(n)}, nil
}

// AckOutbox removes an entry once JetStream has acknowledged its event. An
// id whose shard this store does not know (it neither queued nor read it) is
// left for the relay, whose read will find and ack it; like an unknown id,
// that succeeds. The shard itself leaves the index at the relay's next pass.
func (s *Store) AckOutbox(ctx context.Context, id string) error {
	const op = "ack outbox entry"
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	tag, ok := s.shardOf(id)
	if !ok {
		return nil
	}
	del := goredis.NewIntCmd(ctx, "hdel", s.shardKey(tag), id)
	if err := s.roundTrip(ctx, del); err != nil {
		return wrap(op, err)
	}
	if err := del.Err(); err != nil {
		return wrap(op, err)
	}
	s.forgetID(id)
	return nil
}
