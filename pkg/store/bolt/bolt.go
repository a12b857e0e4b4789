// Package bolt is the durable embedded backend of pkg/store, on
// go.etcd.io/bbolt: the default that stands in for Redis where none is
// configured (valet dev, a single node). It keeps the contracts of
// pkg/store with the semantics of the Redis backend (pkg/store/redis,
// docs/redis.md) and passes the same conformance suite.
//
// One file holds everything, one bucket per record kind (docs/embedded-store.md
// lists them). Every atomic step — a code redemption, a refresh rotation, a
// device poll, a revocation with its outbox entry — runs as one function
// inside one bbolt read-write transaction. bbolt has a single writer, so
// steps are serialized and contention has exactly one winner. Steps that
// arrive while a transaction is committing are committed together in the
// next one (group commit: each step still lies wholly inside one
// transaction, and none returns before the fsync of the transaction that
// holds it).
//
// Records that expire carry their expiry (Unix ms) in front of their value
// and in an expiry index; reads treat an expired record as absent, and a
// background sweeper deletes them in bounded batches.
//
// The file is locked while open (flock): one process at a time. New fails
// within the lock timeout, naming the file, when another process holds it.
package bolt

import (
	"context"
	"crypto/cipher"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/store"
)

// Store implements store.Store on one bbolt file.
type Store struct {
	db   *bbolt.DB
	path string
	aead cipher.AEAD
	log  *zap.Logger
	now  func() time.Time

	// retain and maxGrant: see WithDenyRetention and WithMaxGrantLifetime.
	retain   time.Duration
	maxGrant time.Duration

	lockTimeout   time.Duration
	sweepInterval time.Duration
	sweepBatch    int

	// mu guards closed and the sends on writes: Close takes it exclusively
	// before it closes the channel, so no send can race the close.
	mu      sync.RWMutex
	closed  bool
	writes  chan *writeReq
	written chan struct{} // closed when the committer has drained writes

	stopSweep chan struct{}
	swept     chan struct{} // closed when the sweeper has stopped
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

const (
	defaultLockTimeout   = 500 * time.Millisecond
	defaultSweepInterval = time.Minute
	defaultSweepBatch    = 1000
	// defaultDenyRetention covers the largest configurable access-token
	// lifetime (24h) plus the largest clock skew (5m), as in the Redis
	// backend.
	defaultDenyRetention = 24*time.Hour + 5*time.Minute
	// defaultMaxGrantLifetime is the largest configurable refresh-family
	// lifetime.
	defaultMaxGrantLifetime = 8760 * time.Hour
	// maxBatch bounds how many queued steps share one transaction.
	maxBatch = 256
	// schemaVersion is the layout of the buckets (docs/embedded-store.md).
	schemaVersion = "1"
)

// Option configures New.
type Option func(*Store)

// WithLogger sets the logger (default: no-op).
func WithLogger(l *zap.Logger) Option { return func(s *Store) { s.log = l } }

// WithClock sets the wall clock that decides when a stored record has
// expired (on read and for the sweeper) and what "now" is where a caller
// gives none. Default time.Now. Grant steps decide their own expiries by
// the caller's Now, as in the Redis backend.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithLockTimeout sets how long New waits for the file lock held by another
// process before it gives up (default 500ms).
func WithLockTimeout(d time.Duration) Option { return func(s *Store) { s.lockTimeout = d } }

// WithSweepInterval sets how often the sweeper deletes expired records
// (default 1m). Expired records read as absent whether or not they have been
// swept; the sweeper only reclaims their space.
func WithSweepInterval(d time.Duration) Option { return func(s *Store) { s.sweepInterval = d } }

// WithSweepBatch sets how many expired records one sweeping transaction
// deletes at most (default 1000), which bounds how long it holds the writer.
func WithSweepBatch(n int) Option { return func(s *Store) { s.sweepBatch = n } }

// WithDenyRetention sets how long the deny marks the store writes on its own
// live: the family mark written when a code, device code or refresh token is
// reused, or when a cut-off is found to cover a family. Set it to the replay
// window (maximum access-token lifetime plus skew); the default, 24h5m,
// covers the largest allowed configuration.
func WithDenyRetention(d time.Duration) Option { return func(s *Store) { s.retain = d } }

// WithMaxGrantLifetime sets the longest a grant can live (the refresh
// families' absolute lifetime). Subject and client cut-offs are kept at least
// this long, so that a family created before a cut-off can never come back
// once the cut-off's own retention is over. Default 8760h.
func WithMaxGrantLifetime(d time.Duration) Option { return func(s *Store) { s.maxGrant = d } }

// New opens (creating it if needed, with its directory) the store file at
// path and starts its committer and sweeper; Close stops them. aead seals the
// refresh-token successors kept for the grace window (the fid is the
// associated data); it is required. New fails when another process holds the
// file, once the lock timeout is over, with an error naming the path.
func New(path string, aead cipher.AEAD, opts ...Option) (*Store, error) {
	s := &Store{
		path: path, aead: aead, log: zap.NewNop(), now: time.Now,
		retain: defaultDenyRetention, maxGrant: defaultMaxGrantLifetime,
		lockTimeout: defaultLockTimeout, sweepInterval: defaultSweepInterval, sweepBatch: defaultSweepBatch,
	}
	for _, o := range opts {
		o(s)
	}
	switch {
	case path == "":
		return nil, errors.New("bolt store: a file path is required")
	case aead == nil:
		return nil, errors.New("bolt store: an AEAD for refresh-token successors is required")
	case s.retain <= 0 || s.maxGrant <= 0:
		return nil, errors.New("bolt store: deny retention and maximum grant lifetime must be positive")
	case s.lockTimeout <= 0 || s.sweepInterval <= 0 || s.sweepBatch <= 0:
		return nil, errors.New("bolt store: lock timeout, sweep interval and sweep batch must be positive")
	case s.log == nil || s.now == nil:
		return nil, errors.New("bolt store: logger and clock must not be nil")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("bolt store: create directory of %s: %w", path, err)
		}
	}
	// The freelist is not written at each commit (as in etcd): it is rebuilt
	// by scanning the file on open, which changes nothing of durability.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: s.lockTimeout, FreelistType: bbolt.FreelistMapType, NoFreelistSync: true,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt store: %s is locked by another process (is another valet dev running?): gave up after %s: %w",
			path, s.lockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt store: open %s: %w", path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt store: prepare %s: %w", path, err)
	}
	s.db = db
	s.writes = make(chan *writeReq, 4*maxBatch)
	s.written = make(chan struct{})
	s.stopSweep = make(chan struct{})
	s.swept = make(chan struct{})
	go s.commitLoop()
	go s.sweepLoop()
	return s, nil
}

// Backup writes a consistent copy of the whole store file to w, from one
// read transaction, while the store goes on serving, and returns the bytes
// written. Writers wait for it only if the file must grow meanwhile. The
// copy opens with New like the original.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.view(ctx, "back up", func(t *txn) error {
		var err error
		n, err = t.tx.WriteTo(w)
		if err != nil {
			return fmt.Errorf("write the copy: %w", err)
		}
		return nil
	})
	return n, err
}

// Path returns the store's file.
func (s *Store) Path() string { return s.path }

// Ping reports whether the store is open and its file readable.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, "ping", func(t *txn) error { return nil })
}

// Close stops the sweeper, lets the steps already queued commit, and closes
// the file (releasing its lock). Steps begun after Close are
// store.ErrUnavailable. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopSweep)
		<-s.swept
		s.mu.Lock()
		s.closed = true
		close(s.writes)
		s.mu.Unlock()
		<-s.written
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// ---- buckets and records ----

// bucketID names a bucket; it is also the byte that names the bucket in the
// expiry index.
type bucketID byte

// The buckets, one per record kind (docs/embedded-store.md). Each value in a
// record bucket starts with its expiry (see txn.put).
const (
	bCodes       bucketID = iota + 1 // fid -> codeRec
	bFamilies                        // fid -> famRec
	bSuperseded                      // fid -> superseded refresh hashes, 32 bytes each, oldest first
	bSuccessors                      // fid -> sealed successor of the last rotation
	bFamilyMarks                     // fid -> (empty): the family is revoked
	bDevices                         // fid -> devRec
	bUserCodes                       // user code -> fid
	bJTIMarks                        // jti -> (empty): the access token is revoked
	bSubjectCuts                     // len-prefixed (type, subject) -> cut-off (8 bytes, Unix ms)
	bClientCuts                      // client id -> cut-off (8 bytes, Unix ms)
	bOutbox                          // created (8) ‖ sequence (8) -> outboxRec
	bOutboxIDs                       // event id -> its key in bOutbox
	bClients                         // client id -> record.Client JSON
	bResources                       // resource server id -> record.ResourceServer JSON
	bKeys                            // kid -> record.SigningKey JSON
	bSessions                        // session hash -> sessionRecord JSON
	bConsents                        // len-prefixed (subject, client, resource) -> consentRecord JSON
	bExpiry                          // expiry (8) ‖ bucket (1) ‖ key -> (empty): the expiry index
	bMeta                            // "schema" -> schemaVersion
	bucketCount
)

var bucketNames = [bucketCount][]byte{
	bCodes:       []byte("codes"),
	bFamilies:    []byte("families"),
	bSuperseded:  []byte("superseded"),
	bSuccessors:  []byte("successors"),
	bFamilyMarks: []byte("family_revoked"),
	bDevices:     []byte("devices"),
	bUserCodes:   []byte("user_codes"),
	bJTIMarks:    []byte("jti_revoked"),
	bSubjectCuts: []byte("subject_cutoffs"),
	bClientCuts:  []byte("client_cutoffs"),
	bOutbox:      []byte("outbox"),
	bOutboxIDs:   []byte("outbox_ids"),
	bClients:     []byte("clients"),
	bResources:   []byte("resource_servers"),
	bKeys:        []byte("signing_keys"),
	bSessions:    []byte("sessions"),
	bConsents:    []byte("consents"),
	bExpiry:      []byte("expiry"),
	bMeta:        []byte("meta"),
}

// initBuckets creates the buckets of a new file and checks the schema of an
// existing one.
func initBuckets(tx *bbolt.Tx) error {
	for id := bCodes; id < bucketCount; id++ {
		if _, err := tx.CreateBucketIfNotExists(bucketNames[id]); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketNames[bMeta])
	switch v := meta.Get([]byte("schema")); {
	case v == nil:
		return meta.Put([]byte("schema"), []byte(schemaVersion))
	case string(v) != schemaVersion:
		return fmt.Errorf("the file has schema %q; this version of Valet reads schema %q", v, schemaVersion)
	}
	return nil
}

// headerLen is the expiry in front of every record value: Unix ms, big
// endian, 0 for a record that does not expire.
const headerLen = 8

// errMalformed is a stored value the store cannot read: it answers
// store.ErrUnavailable rather than guess.
var errMalformed = errors.New("malformed record")

// txn is one step's view of a transaction: record access that honours
// expiry and keeps the expiry index. The first failure of bbolt or of
// decoding sticks in err; the step's transaction then rolls back (writes)
// or its answer is store.ErrUnavailable (reads).
type txn struct {
	tx  *bbolt.Tx
	now int64 // wall clock, Unix ms: a record whose expiry is at or before it is gone
	err error
}

func (t *txn) bucket(id bucketID) *bbolt.Bucket { return t.tx.Bucket(bucketNames[id]) }

func (t *txn) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// get returns the payload stored under key and whether there is one that has
// not expired. The payload is valid only during the transaction.
func (t *txn) get(id bucketID, key []byte) ([]byte, bool) {
	v := t.bucket(id).Get(key)
	if v == nil {
		return nil, false
	}
	if len(v) < headerLen {
		t.fail(fmt.Errorf("%w: %s value of %d bytes", errMalformed, bucketNames[id], len(v)))
		return nil, false
	}
	if exp := int64(binary.BigEndian.Uint64(v)); exp != 0 && t.now >= exp {
		return nil, false
	}
	return v[headerLen:], true
}

// expiry returns the expiry (Unix ms, 0 for none) of a live record.
func (t *txn) expiry(id bucketID, key []byte) (int64, bool) {
	if _, ok := t.get(id, key); !ok {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(t.bucket(id).Get(key))), true
}

func (t *txn) has(id bucketID, key []byte) bool {
	_, ok := t.get(id, key)
	return ok
}

// getJSON decodes the live record under key into v.
func (t *txn) getJSON(id bucketID, key []byte, v any) bool {
	p, ok := t.get(id, key)
	if !ok {
		return false
	}
	if err := json.Unmarshal(p, v); err != nil {
		t.fail(fmt.Errorf("%w: %s: %v", errMalformed, bucketNames[id], err))
		return false
	}
	return true
}

// put stores payload under key until exp (Unix ms; 0 never expires),
// replacing the record and its expiry index entry.
func (t *txn) put(id bucketID, key []byte, exp int64, payload []byte) {
	if t.err != nil {
		return
	}
	b := t.bucket(id)
	if old := b.Get(key); len(old) >= headerLen {
		if was := int64(binary.BigEndian.Uint64(old)); was != 0 && was != exp {
			t.fail(t.bucket(bExpiry).Delete(expiryKey(was, id, key)))
		}
	}
	if exp != 0 {
		t.fail(t.bucket(bExpiry).Put(expiryKey(exp, id, key), []byte{}))
	}
	v := make([]byte, headerLen+len(payload))
	binary.BigEndian.PutUint64(v, uint64(exp))
	copy(v[headerLen:], payload)
	// bbolt keeps the key until the commit: give it a copy of its own.
	t.fail(b.Put(append([]byte(nil), key...), v))
}

// putJSON stores v as JSON under key until exp.
func (t *txn) putJSON(id bucketID, key []byte, exp int64, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		t.fail(fmt.Errorf("encode %s record: %w", bucketNames[id], err))
		return
	}
	t.put(id, key, exp, data)
}

// del removes the record under key (live or expired) and its index entry.
// It reports whether a live record was removed.
func (t *txn) del(id bucketID, key []byte) bool {
	if t.err != nil {
		return false
	}
	b := t.bucket(id)
	old := b.Get(key)
	if old == nil {
		return false
	}
	live := true
	if len(old) >= headerLen {
		if exp := int64(binary.BigEndian.Uint64(old)); exp != 0 {
			live = t.now < exp
			t.fail(t.bucket(bExpiry).Delete(expiryKey(exp, id, key)))
		}
	}
	t.fail(b.Delete(key))
	return live
}

// expiryKey is the index entry of a record: expiry first, so that a cursor
// meets the records in the order they expire. The sign bit is flipped so
// that the bytes sort as the signed number does.
func expiryKey(exp int64, id bucketID, key []byte) []byte {
	k := make([]byte, 9+len(key))
	binary.BigEndian.PutUint64(k, uint64(exp)^(1<<63))
	k[8] = byte(id)
	copy(k[9:], key)
	return k
}

// expiryMS returns t in Unix ms for a record's expiry, at least 1 (0 means
// "never").
func expiryMS(t time.Time) int64 { return max(t.UnixMilli(), 1) }

// ---- steps ----

// writeReq is one atomic step waiting for the committer.
type writeReq struct {
	ctx context.Context
	// fn runs the step and returns its outcome (nil, or a store sentinel).
	// What it wrote commits with the outcome, unless the txn's err is set.
	fn   func(t *txn) error
	out  error
	done chan error // the transaction's own failure, or nil once durable
}

// update runs fn as one atomic step in a read-write transaction and returns
// its outcome once the transaction is durable (fsync). A context already
// done when the step's turn comes writes nothing and is returned as is. A
// bbolt failure is store.ErrUnavailable, and nothing of fn is written.
func (s *Store) update(ctx context.Context, op string, fn func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("%s: %w: the store is closed", op, store.ErrUnavailable)
	}
	s.writes <- r
	s.mu.RUnlock()
	if err := <-r.done; err != nil {
		return fmt.Errorf("%s: %w: %v", op, store.ErrUnavailable, err)
	}
	if r.out != nil {
		return fmt.Errorf("%s: %w", op, r.out)
	}
	return nil
}

// commitLoop is the one committer: it takes the steps queued while the last
// transaction was committing and commits them in one transaction.
func (s *Store) commitLoop() {
	defer close(s.written)
	batch := make([]*writeReq, 0, maxBatch)
	for first := range s.writes {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-s.writes:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commit(batch)
		clear(batch)
	}
}

// commit runs batch in one transaction. When that fails, each step is run
// again alone, so that one step's failure is only its own.
func (s *Store) commit(batch []*writeReq) {
	err := s.db.Update(func(tx *bbolt.Tx) error { return s.apply(tx, batch) })
	if err == nil || len(batch) == 1 {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	for _, r := range batch {
		r.done <- s.db.Update(func(tx *bbolt.Tx) error { return s.apply(tx, []*writeReq{r}) })
	}
}

func (s *Store) apply(tx *bbolt.Tx, batch []*writeReq) error {
	now := s.now().UnixMilli()
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.out = err
			continue
		}
		t := txn{tx: tx, now: now}
		r.out = r.fn(&t)
		if t.err != nil {
			return t.err
		}
	}
	return nil
}

// view runs fn in a read-only transaction (concurrent with the writer and
// other readers) and returns its outcome.
func (s *Store) view(ctx context.Context, op string, fn func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var out error
	err := s.db.View(func(tx *bbolt.Tx) error {
		t := txn{tx: tx, now: s.now().UnixMilli()}
		out = fn(&t)
		return t.err
	})
	if err != nil {
		return fmt.Errorf("%s: %w: %v", op, store.ErrUnavailable, err)
	}
	if out != nil {
		return fmt.Errorf("%s: %w", op, out)
	}
	return nil
}

// ---- the sweeper ----

func (s *Store) sweepLoop() {
	defer close(s.swept)
	tick := time.NewTicker(s.sweepInterval)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stopSweep
		cancel()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n, err := s.Sweep(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("embedded store: sweeping expired records failed", zap.String("path", s.path), zap.Error(err))
			case n > 0:
				s.log.Debug("embedded store: swept expired records", zap.Int("records", n))
			}
		}
	}
}

// Sweep deletes the records that have expired, at most the sweep batch per
// transaction, until none is left, and returns how many it deleted. The
// sweeper calls it every sweep interval; expired records read as absent
// whether or not they were swept.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		var n int
		err := s.update(ctx, "sweep expired records", func(t *txn) error {
			n = t.sweep(s.sweepBatch)
			return nil
		})
		total += n
		if err != nil || n < s.sweepBatch {
			return total, err
		}
	}
}

// sweep deletes up to limit expired records and their index entries.
func (t *txn) sweep(limit int) int {
	idx := t.bucket(bExpiry)
	var keys [][]byte
	c := idx.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < limit; k, _ = c.Next() {
		if len(k) >= 9 && int64(binary.BigEndian.Uint64(k)^(1<<63)) > t.now {
			break
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if len(k) >= 9 && k[8] > 0 && bucketID(k[8]) < bucketCount {
			exp, id, key := int64(binary.BigEndian.Uint64(k)^(1<<63)), bucketID(k[8]), k[9:]
			b := t.bucket(id)
			// Delete the record only if this entry is its current expiry.
			if v := b.Get(key); len(v) >= headerLen && int64(binary.BigEndian.Uint64(v)) == exp {
				t.fail(b.Delete(key))
			}
		}
		t.fail(idx.Delete(k))
	}
	return len(keys)
}
