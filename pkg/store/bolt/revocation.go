package bolt

// Deny state and the outbox (store.RevocationStore). Revoke writes the deny
// state and its outbox entry in one transaction; the reuse branches of the
// grant steps queue their event in theirs (grants.go).

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/store"
)

// maxKeyLen bounds a key the store writes as given (jti, user code, event
// id, cut-off and consent keys): bbolt's limit, less the 9 bytes the expiry
// index puts in front of it.
const maxKeyLen = bbolt.MaxKeySize - 9

// tupleKey joins parts with a length before each, so that no two tuples
// share a key whatever bytes their parts hold.
func tupleKey(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	k := make([]byte, 0, n)
	for _, p := range parts {
		k = binary.AppendUvarint(k, uint64(len(p)))
		k = append(k, p...)
	}
	return k
}

// subjectCutKey is the key of a subject's cut-off; subType is "user" or
// "client".
func subjectCutKey(subType, sub string) []byte { return tupleKey(subType, sub) }

// readCut reads a cut-off (Unix ms), 0 when there is none.
func (t *txn) readCut(id bucketID, key []byte) int64 {
	v, ok := t.get(id, key)
	if !ok {
		return 0
	}
	if len(v) != 8 {
		t.fail(fmt.Errorf("%w: %s value of %d bytes", errMalformed, bucketNames[id], len(v)))
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (t *txn) subjectCutoff(subType, sub string) int64 {
	return t.readCut(bSubjectCuts, subjectCutKey(subType, sub))
}

func (t *txn) clientCutoff(clientID string) int64 { return t.readCut(bClientCuts, []byte(clientID)) }

// cutoff returns the later of a subject's and a client's cut-offs (ms), or 0.
func (t *txn) cutoff(subType, sub, clientID string) int64 {
	return max(t.subjectCutoff(subType, sub), t.clientCutoff(clientID))
}

// outboxRec is a queued event; its creation is in its key.
type outboxRec struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Data    []byte `json:"data"`
}

// outboxKey orders the outbox by creation (ms, sign flipped so that the
// bytes sort as the number), then by insertion.
func outboxKey(created int64, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(created)^(1<<63))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func outboxCreated(key []byte) int64 { return int64(binary.BigEndian.Uint64(key) ^ (1 << 63)) }

// queue adds an outbox entry. An entry already queued keeps its place; its
// subject and data are replaced.
func (t *txn) queue(e store.OutboxEntry) {
	if e.IsZero() {
		return
	}
	if e.ID == "" || t.err != nil {
		return
	}
	data, err := json.Marshal(outboxRec{ID: e.ID, Subject: e.Subject, Data: e.Data})
	if err != nil {
		t.fail(fmt.Errorf("encode outbox entry: %w", err))
		return
	}
	if k, ok := t.get(bOutboxIDs, []byte(e.ID)); ok && len(k) == 16 {
		t.put(bOutbox, append([]byte(nil), k...), 0, data)
		return
	}
	created := t.now
	if !e.CreatedAt.IsZero() {
		created = e.CreatedAt.UnixMilli()
	}
	seq, err := t.bucket(bOutbox).NextSequence()
	if err != nil {
		t.fail(err)
		return
	}
	key := outboxKey(created, seq)
	t.put(bOutbox, key, 0, data)
	t.put(bOutboxIDs, []byte(e.ID), 0, key)
}

// Revoke writes r's deny state and queues e in the outbox in one step, so
// that a revocation is never written without its event nor the reverse
// (MISSION §0.2, §0.7). A token's mark lives until its exp plus r.Retain; a
// family's mark r.Retain, and its records (family, code, device
// authorization) are deleted so that nothing under the fid can be redeemed
// again; a cut-off replaces an earlier one, never a later one, and lives at
// least r.Retain and the maximum grant lifetime (WithMaxGrantLifetime).
// Revoking again succeeds and queues e again (an entry already queued keeps
// its place).
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
	if !e.IsZero() { // a zero entry queues nothing (replay)
		if err := checkEvent(e); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if r.Retain <= 0 {
		return fmt.Errorf("%s: retain must be positive", op)
	}
	switch r.Kind {
	case store.RevokeToken:
		if r.JTI == "" || len(r.JTI) > maxKeyLen {
			return fmt.Errorf("%s: a jti of 1..%d bytes is required", op, maxKeyLen)
		}
		now := s.now()
		until := r.Expires
		if until.IsZero() {
			until = now
		}
		until = until.Add(r.Retain)
		if floor := now.Add(time.Second); until.Before(floor) {
			until = floor // the token is long dead; keep the mark a moment anyway
		}
		return s.update(ctx, op, func(t *txn) error {
			key := []byte(r.JTI)
			exp, ok := t.expiry(bJTIMarks, key)
			if !ok || (exp != 0 && expiryMS(until) > exp) {
				t.put(bJTIMarks, key, expiryMS(until), nil)
			}
			t.queue(e)
			return nil
		})
	case store.RevokeFamily:
		if !validFID(r.FID) {
			return fmt.Errorf("%s: invalid fid %q", op, r.FID)
		}
		return s.update(ctx, op, func(t *txn) error {
			key := []byte(r.FID)
			t.mark(r.FID, r.Retain)
			t.dropFamily(r.FID)
			t.del(bCodes, key)
			var d devRec
			if t.getJSON(bDevices, key, &d) {
				if v, ok := t.get(bUserCodes, []byte(d.UserCode)); ok && string(v) == r.FID {
					t.del(bUserCodes, []byte(d.UserCode))
				}
			}
			t.del(bDevices, key)
			t.queue(e)
			return nil
		})
	case store.RevokeSubject, store.RevokeClient:
		id, key := bClientCuts, []byte(r.ClientID)
		if r.Kind == store.RevokeSubject {
			if r.SubjectType == "" || r.Subject == "" {
				return fmt.Errorf("%s: subject type and subject are required", op)
			}
			id, key = bSubjectCuts, subjectCutKey(r.SubjectType, r.Subject)
		} else if r.ClientID == "" {
			return fmt.Errorf("%s: client id is required", op)
		}
		if len(key) > maxKeyLen {
			return fmt.Errorf("%s: key of %d bytes, at most %d", op, len(key), maxKeyLen)
		}
		if r.Cutoff.IsZero() {
			return fmt.Errorf("%s: cut-off is required", op)
		}
		ttl := max(r.Retain, s.maxGrant).Milliseconds()
		return s.update(ctx, op, func(t *txn) error {
			cut := max(t.readCut(id, key), r.Cutoff.UnixMilli())
			until := t.now + ttl
			if exp, ok := t.expiry(id, key); ok && (exp == 0 || exp > until) {
				until = exp // refreshed, never shortened
			}
			v := make([]byte, 8)
			binary.BigEndian.PutUint64(v, uint64(cut))
			t.put(id, key, until, v)
			t.queue(e)
			return nil
		})
	}
	return fmt.Errorf("%s: unknown revocation kind %q", op, r.Kind)
}

// DenyState reads, in one read transaction, everything that could deny the
// access token q describes: its jti mark, its family's mark and the cut-offs
// of its subject and client. Empty fields of q are not looked up, except
// that a subject without a subject type reads the cut-offs of both
// namespaces (user and client) and reports the later one.
func (s *Store) DenyState(ctx context.Context, q store.DenyQuery) (store.Deny, error) {
	var d store.Deny
	err := s.view(ctx, "read deny state", func(t *txn) error {
		if q.JTI != "" {
			d.JTIRevoked = t.has(bJTIMarks, []byte(q.JTI))
		}
		if validFID(q.FID) {
			d.FamilyRevoked = t.revoked(q.FID)
		}
		switch {
		case q.Subject == "":
		case q.SubjectType != "":
			d.SubjectCutoff = timeOf(t.subjectCutoff(q.SubjectType, q.Subject))
		default: // either namespace: both cut-offs, the later wins
			d.SubjectCutoff = timeOf(max(t.subjectCutoff(events.SubjectUser, q.Subject), t.subjectCutoff(events.SubjectClient, q.Subject)))
		}
		if q.ClientID != "" {
			d.ClientCutoff = timeOf(t.clientCutoff(q.ClientID))
		}
		return nil
	})
	if err != nil {
		return store.Deny{}, err
	}
	return d, nil
}

// PendingOutbox returns up to limit outbox entries created at or before
// olderThan (to the millisecond), oldest first, entries of the same
// millisecond in the order they were queued.
func (s *Store) PendingOutbox(ctx context.Context, olderThan time.Time, limit int) ([]store.OutboxEntry, error) {
	const op = "read outbox"
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if limit <= 0 {
		return nil, nil
	}
	until := olderThan.UnixMilli()
	var out []store.OutboxEntry
	err := s.view(ctx, op, func(t *txn) error {
		out = out[:0]
		c := t.bucket(bOutbox).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) != 16 {
				t.fail(fmt.Errorf("%w: outbox key of %d bytes", errMalformed, len(k)))
				return nil
			}
			created := outboxCreated(k)
			if created > until {
				break
			}
			var rec outboxRec
			if !t.getJSON(bOutbox, k, &rec) {
				if t.err != nil {
					return nil
				}
				continue
			}
			out = append(out, store.OutboxEntry{ID: rec.ID, Subject: rec.Subject, Data: rec.Data, CreatedAt: time.UnixMilli(created)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AckOutbox removes an entry once JetStream has acknowledged its event; an
// unknown id succeeds.
func (s *Store) AckOutbox(ctx context.Context, id string) error {
	const op = "ack outbox entry"
	if len(id) > maxKeyLen { // never queued
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	}
	return s.update(ctx, op, func(t *txn) error {
		if k, ok := t.get(bOutboxIDs, []byte(id)); ok {
			t.del(bOutbox, append([]byte(nil), k...))
		}
		t.del(bOutboxIDs, []byte(id))
		return nil
	})
}
