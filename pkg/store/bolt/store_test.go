package bolt

// Tests of what is particular to the embedded backend: durability across a
// reopen, the one-process file lock, the expiry index and its sweeper, and
// failing closed. The contracts themselves are the conformance suite's
// (bolt_test.go).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/testenv"
)

func testFID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenOf(t testing.TB, kind, fid string) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return kind + "_" + fid + "." + base64.RawURLEncoding.EncodeToString(b)
}

func testEvent(t testing.TB) store.OutboxEntry {
	t.Helper()
	id := testFID(t)
	return store.OutboxEntry{ID: id, Subject: "valet.family.revoked", Data: []byte(`{"id":"` + id + `"}`), CreatedAt: time.Now()}
}

// testFamily is a family of client "app" for alice, created now.
func testFamily(fid string) store.RefreshFamily {
	now := time.Now()
	return store.RefreshFamily{FID: fid, ClientID: "app", Subject: "alice", SubjectType: "user",
		Scopes: []string{"read", "write"}, Resource: "https://api.example.com", Grant: "authorization_code",
		CreatedAt: now, IdleTimeout: 24 * time.Hour, AbsoluteExpiresAt: now.Add(7 * 24 * time.Hour), Generation: 1}
}

func mustNo(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestDurableAcrossReopen closes the store and opens the file again: the
// registry, a family (and the grace replay of its last rotation), deny state
// and the outbox are all still there.
func TestDurableAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "valet.db")
	aead := testenv.AEAD(t)
	ctx := context.Background()
	s, err := New(path, aead)
	mustNo(t, "New", err)

	now := time.Now()
	client := store.Client{ID: "app", Name: "App", Type: store.Confidential, GrantTypes: []string{"authorization_code"},
		Secrets: []store.Secret{{ID: "s1", Hash: []byte("keyed-hash"), CreatedAt: now.UTC()}}, CreatedAt: now.UTC()}
	mustNo(t, "create client", s.CreateClient(ctx, client))
	mustNo(t, "create key", s.CreateKey(ctx, store.SigningKey{KID: "k1", Alg: "ES256", State: store.KeyActive, CreatedAt: now}))

	fid := testFID(t)
	first := tokenOf(t, "vrt", fid)
	mustNo(t, "create family", s.CreateFamily(ctx, testFamily(fid), sha256.Sum256([]byte(first))))
	succ := tokenOf(t, "vrt", fid)
	_, err = s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(first)), ClientID: "app",
		Successor: succ, Now: now, Grace: time.Minute, MaxGraceReplays: 3, ReuseEvent: testEvent(t)})
	mustNo(t, "rotate", err)

	revokedFID, jti := testFID(t), testFID(t)
	famEvent, jtiEvent := testEvent(t), testEvent(t)
	mustNo(t, "revoke family", s.Revoke(ctx, store.Revocation{Kind: store.RevokeFamily, FID: revokedFID, Retain: time.Hour}, famEvent))
	mustNo(t, "revoke jti", s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: now.Add(5 * time.Minute), Retain: time.Minute}, jtiEvent))
	cut := now.Add(-time.Hour)
	mustNo(t, "revoke client", s.Revoke(ctx, store.Revocation{Kind: store.RevokeClient, ClientID: "other", Cutoff: cut, Retain: time.Hour}, testEvent(t)))
	mustNo(t, "ack", s.AckOutbox(ctx, jtiEvent.ID))
	mustNo(t, "close", s.Close())

	s, err = New(path, aead)
	mustNo(t, "reopen", err)
	t.Cleanup(func() { _ = s.Close() })

	got, err := s.GetClient(ctx, "app")
	mustNo(t, "get client after reopen", err)
	if got.Name != "App" || got.Version != 1 || len(got.Secrets) != 1 || string(got.Secrets[0].Hash) != "keyed-hash" {
		t.Fatalf("client after reopen: %+v", got)
	}
	if keys, err := s.ListKeys(ctx); err != nil || len(keys) != 1 || keys[0].State != store.KeyActive {
		t.Fatalf("keys after reopen: %+v, %v", keys, err)
	}
	fam, err := s.LookupRefresh(ctx, fid, sha256.Sum256([]byte(succ)))
	mustNo(t, "look up the live refresh token after reopen", err)
	if fam.Generation != 2 {
		t.Fatalf("generation %d after reopen, want 2", fam.Generation)
	}
	replay, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(first)), ClientID: "app",
		Successor: tokenOf(t, "vrt", fid), Now: now.Add(time.Second), Grace: time.Minute, MaxGraceReplays: 3, ReuseEvent: testEvent(t)})
	mustNo(t, "grace replay after reopen", err)
	if !replay.GraceReplay || replay.RefreshToken != succ {
		t.Fatalf("grace replay after reopen: GraceReplay=%v, same token=%v", replay.GraceReplay, replay.RefreshToken == succ)
	}
	d, err := s.DenyState(ctx, store.DenyQuery{JTI: jti, FID: revokedFID, ClientID: "other"})
	mustNo(t, "deny state after reopen", err)
	if !d.JTIRevoked || !d.FamilyRevoked || d.ClientCutoff.UnixMilli() != cut.UnixMilli() {
		t.Fatalf("deny state after reopen: %+v", d)
	}
	out, err := s.PendingOutbox(ctx, now.Add(time.Hour), 10)
	mustNo(t, "pending outbox after reopen", err)
	if len(out) != 2 || out[0].ID != famEvent.ID || string(out[0].Data) != string(famEvent.Data) {
		t.Fatalf("outbox after reopen: %+v, want the family event first and the client event (the jti event was acked)", out)
	}
}

// TestSecondOpenFailsFast opens the file twice in one process: the second
// New gives up within its lock timeout and names the file; once the first
// store is closed, the file opens again.
func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "valet.db")
	s, err := New(path, testenv.AEAD(t))
	mustNo(t, "New", err)
	start := time.Now()
	second, err := New(path, testenv.AEAD(t), WithLockTimeout(200*time.Millisecond))
	if err == nil {
		_ = second.Close()
		t.Fatal("a second New on a locked file succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the second New took %s to fail", took)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "is another valet dev running?") {
		t.Errorf("error %q does not name the file and the likely cause", msg)
	}
	mustNo(t, "close", s.Close())
	again, err := New(path, testenv.AEAD(t))
	mustNo(t, "New after the first store closed", err)
	mustNo(t, "close", again.Close())
}

// lockHolderEnv makes the test binary, started by TestLockedByAnotherProcess,
// hold a store open until its standard input closes.
const lockHolderEnv = "VALET_BOLT_TEST_HOLD_LOCK"

func TestMain(m *testing.M) {
	if path := os.Getenv(lockHolderEnv); path != "" {
		os.Exit(holdLock(path))
	}
	os.Exit(m.Run())
}

func holdLock(path string) int {
	aead, err := newGCM(make([]byte, 32))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := New(path, aead)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// TestLockedByAnotherProcess runs a second process that holds the file:
// New fails fast with the clear error, and succeeds once that process is
// gone.
func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "valet.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	mustNo(t, "stdin pipe", err)
	stdout, err := cmd.StdoutPipe()
	mustNo(t, "stdout pipe", err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	mustNo(t, "start the lock holder", cmd.Start())
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder said %q (%v); stderr: %s", line, err, stderr.String())
	}

	start := time.Now()
	s, err := New(path, testenv.AEAD(t), WithLockTimeout(300*time.Millisecond))
	if err == nil {
		_ = s.Close()
		t.Fatal("New succeeded on a file another process holds")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("New took %s to fail", took)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "locked by another process") {
		t.Errorf("error %q does not name the file and the lock", msg)
	}

	mustNo(t, "release the lock holder", stdin.Close())
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lock holder: %v; stderr: %s", err, stderr.String())
	}
	s, err = New(path, testenv.AEAD(t))
	mustNo(t, "New once the other process is gone", err)
	mustNo(t, "close", s.Close())
}

// fakeClock is the wall clock plus an offset the test moves.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// keyCount counts the keys of a bucket.
func keyCount(t testing.TB, s *Store, id bucketID) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketNames[id]).Stats().KeyN
		return nil
	})
	mustNo(t, "count keys", err)
	return n
}

// checkIndex checks the expiry index against the records: every record with
// an expiry has its index entry and every index entry names a record
// expiring then.
func checkIndex(t testing.TB, s *Store) (indexed int) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		idx := tx.Bucket(bucketNames[bExpiry])
		for id := bCodes; id < bExpiry; id++ {
			err := tx.Bucket(bucketNames[id]).ForEach(func(k, v []byte) error {
				if exp := int64(binary.BigEndian.Uint64(v)); exp != 0 && idx.Get(expiryKey(exp, id, k)) == nil {
					t.Errorf("%s record %x expiring at %d has no index entry", bucketNames[id], k, exp)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return idx.ForEach(func(k, _ []byte) error {
			indexed++
			exp, id, key := int64(binary.BigEndian.Uint64(k)^(1<<63)), bucketID(k[8]), k[9:]
			if v := tx.Bucket(bucketNames[id]).Get(key); v == nil || int64(binary.BigEndian.Uint64(v)) != exp {
				t.Errorf("index entry for %s %x at %d names no record expiring then", bucketNames[id], key, exp)
			}
			return nil
		})
	})
	mustNo(t, "read the index", err)
	return indexed
}

// grantLifecycle writes one of every expiring record: a code, a family with
// a rotation in grace, a device authorization and its user code, a session,
// a consent, and every kind of deny mark.
func grantLifecycle(t testing.TB, s *Store) {
	t.Helper()
	ctx := context.Background()
	now := s.now()
	fid := testFID(t)
	code := tokenOf(t, "vac", fid)
	mustNo(t, "create code", s.CreateAuthCode(ctx, store.AuthCode{FID: fid, Hash: sha256.Sum256([]byte(code)), ClientID: "app",
		Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}))
	_, err := s.RedeemAuthCode(ctx, fid, sha256.Sum256([]byte(code)), "app", now, testEvent(t), store.Cutoffs{})
	mustNo(t, "redeem", err)
	f := testFamily(fid)
	f.CreatedAt, f.AbsoluteExpiresAt = now, now.Add(time.Hour)
	first := tokenOf(t, "vrt", fid)
	mustNo(t, "create family", s.CreateFamily(ctx, f, sha256.Sum256([]byte(first))))
	_, err = s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(first)), ClientID: "app",
		Successor: tokenOf(t, "vrt", fid), Now: now, Grace: 10 * time.Second, MaxGraceReplays: 1, ReuseEvent: testEvent(t)})
	mustNo(t, "rotate", err)
	dfid := testFID(t)
	mustNo(t, "create device code", s.CreateDeviceCode(ctx, store.DeviceCode{FID: dfid, UserCode: "BCDF-" + dfid[:4],
		ClientID: "app", Interval: 5 * time.Second, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}))
	mustNo(t, "create session", s.CreateSession(ctx, store.Session{Hash: sha256.Sum256([]byte(fid)), Subject: "alice",
		CreatedAt: now, ExpiresAt: now.Add(8 * time.Hour)}))
	mustNo(t, "put consent", s.PutConsent(ctx, store.Consent{Subject: "alice", ClientID: "app", Resource: "urn:" + fid, CreatedAt: now}, time.Hour))
	for _, r := range []store.Revocation{
		{Kind: store.RevokeToken, JTI: testFID(t), Expires: now.Add(time.Minute), Retain: time.Minute},
		{Kind: store.RevokeFamily, FID: testFID(t), Retain: time.Minute},
		{Kind: store.RevokeSubject, SubjectType: "user", Subject: "bob", Cutoff: now, Retain: time.Minute},
		{Kind: store.RevokeClient, ClientID: "other", Cutoff: now, Retain: time.Minute},
	} {
		mustNo(t, "revoke", s.Revoke(ctx, r, testEvent(t)))
	}
}

// lifecycleRecords is how many expiring records grantLifecycle writes, less
// the two cut-offs every call shares.
const lifecycleRecords = 10

// TestSweeperRemovesExpired writes one of every expiring record, moves the
// clock past them all, and waits for the background sweeper to delete them
// and their index entries; the registry and the outbox, which do not
// expire, stay.
func TestSweeperRemovesExpired(t *testing.T) {
	clock := &fakeClock{}
	s := newTestStore(t, WithClock(clock.now), WithSweepInterval(20*time.Millisecond), WithSweepBatch(4))
	ctx := context.Background()
	mustNo(t, "create client", s.CreateClient(ctx, store.Client{ID: "app", Type: store.Public}))
	for range 5 {
		grantLifecycle(t, s)
	}
	indexed := checkIndex(t, s)
	if want := 5*lifecycleRecords + 2; indexed != want {
		t.Fatalf("%d records in the expiry index, want %d", indexed, want)
	}
	outbox := keyCount(t, s, bOutbox)
	time.Sleep(100 * time.Millisecond)
	if got := checkIndex(t, s); got != indexed {
		t.Fatalf("the sweeper deleted %d records that had not expired", indexed-got)
	}

	clock.advance(365 * 24 * time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for checkIndex(t, s) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records still indexed 10s after they expired", checkIndex(t, s))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for id := bCodes; id < bExpiry; id++ {
		if id == bOutbox || id == bOutboxIDs || id == bClients || id == bResources || id == bKeys {
			continue
		}
		if n := keyCount(t, s, id); n != 0 {
			t.Errorf("%d records left in %s", n, bucketNames[id])
		}
	}
	if keyCount(t, s, bClients) != 1 || keyCount(t, s, bOutbox) != outbox {
		t.Error("the sweeper deleted records that never expire")
	}
}

// TestSweepBatches checks that one sweeping transaction deletes at most the
// batch, and that Sweep goes on until nothing expired is left.
func TestSweepBatches(t *testing.T) {
	clock := &fakeClock{}
	s := newTestStore(t, WithClock(clock.now), WithSweepInterval(time.Hour), WithSweepBatch(4))
	ctx := context.Background()
	for range 3 {
		grantLifecycle(t, s)
	}
	total := checkIndex(t, s)
	clock.advance(365 * 24 * time.Hour)
	var n int
	mustNo(t, "sweep once", s.update(ctx, "sweep", func(tx *txn) error { n = tx.sweep(4); return nil }))
	if n != 4 || checkIndex(t, s) != total-4 {
		t.Fatalf("one sweeping transaction deleted %d records, want the batch of 4", n)
	}
	swept, err := s.Sweep(ctx)
	mustNo(t, "sweep", err)
	if swept != total-4 || checkIndex(t, s) != 0 {
		t.Fatalf("Sweep deleted %d records, want the %d left", swept, total-4)
	}
	if _, err := s.Sweep(canceledCtx()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sweep with a canceled context: %v", err)
	}
}

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestExpiredReadsAsAbsent checks that an expired record is gone for every
// reader before the sweeper has run.
func TestExpiredReadsAsAbsent(t *testing.T) {
	clock := &fakeClock{}
	s := newTestStore(t, WithClock(clock.now), WithSweepInterval(time.Hour))
	ctx := context.Background()
	jti := testFID(t)
	mustNo(t, "revoke jti", s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: time.Now(), Retain: time.Minute}, testEvent(t)))
	h := sha256.Sum256([]byte("session"))
	mustNo(t, "create session", s.CreateSession(ctx, store.Session{Hash: h, Subject: "alice", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}))
	clock.advance(2 * time.Hour)
	if d, err := s.DenyState(ctx, store.DenyQuery{JTI: jti}); err != nil || d.JTIRevoked {
		t.Fatalf("an expired jti mark: %+v, %v", d, err)
	}
	if _, err := s.GetSession(ctx, h, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired session: %v, want ErrNotFound", err)
	}
	if keyCount(t, s, bSessions) != 1 {
		t.Fatal("the session was swept already; this test is about reads")
	}
	// A create over an expired, unswept record replaces it and its index entry.
	mustNo(t, "create the session again", s.CreateSession(ctx, store.Session{Hash: h, Subject: "bob", CreatedAt: clock.now(), ExpiresAt: clock.now().Add(time.Hour)}))
	checkIndex(t, s)
}

// TestFailsClosed checks that the store never answers a negative it cannot
// vouch for: a closed store and an unreadable cut-off are ErrUnavailable.
func TestFailsClosed(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	fid := testFID(t)
	first := tokenOf(t, "vrt", fid)
	mustNo(t, "create family", s.CreateFamily(ctx, testFamily(fid), sha256.Sum256([]byte(first))))
	h := sha256.Sum256([]byte("session"))
	mustNo(t, "create session", s.CreateSession(ctx, store.Session{Hash: h, Subject: "alice", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}))

	// A cut-off that does not decode: every read that needs it fails closed.
	err := s.db.Update(func(tx *bbolt.Tx) error {
		v := make([]byte, headerLen+3)
		return tx.Bucket(bucketNames[bSubjectCuts]).Put(subjectCutKey("user", "alice"), v)
	})
	mustNo(t, "corrupt the cut-off", err)
	_, err = s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(first)), ClientID: "app",
		Successor: tokenOf(t, "vrt", fid), Now: time.Now(), ReuseEvent: testEvent(t)})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("rotate with an unreadable cut-off: %v, want ErrUnavailable", err)
	}
	if _, err := s.LookupRefresh(ctx, fid, sha256.Sum256([]byte(first))); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("look up with an unreadable cut-off: %v, want ErrUnavailable", err)
	}
	if _, err := s.GetSession(ctx, h, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("session with an unreadable cut-off: %v, want ErrUnavailable", err)
	}
	if _, err := s.DenyState(ctx, store.DenyQuery{SubjectType: "user", Subject: "alice"}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("deny state with an unreadable cut-off: %v, want ErrUnavailable", err)
	}
	// The failed rotation changed nothing.
	err = s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketNames[bSubjectCuts]).Delete(subjectCutKey("user", "alice"))
	})
	mustNo(t, "repair the cut-off", err)
	if f, err := s.LookupRefresh(ctx, fid, sha256.Sum256([]byte(first))); err != nil || f.Generation != 1 {
		t.Fatalf("after the failed rotation: %+v, %v; want generation 1 live", f, err)
	}

	mustNo(t, "close", s.Close())
	for name, call := range map[string]func() error{
		"Ping":      func() error { return s.Ping(ctx) },
		"DenyState": func() error { _, err := s.DenyState(ctx, store.DenyQuery{JTI: "x"}); return err },
		"Revoke": func() error {
			return s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: "x", Expires: time.Now(), Retain: time.Minute}, testEvent(t))
		},
		"GetClient": func() error { _, err := s.GetClient(ctx, "app"); return err },
		"RotateRefresh": func() error {
			_, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(first)), ClientID: "app",
				Successor: "x", Now: time.Now(), ReuseEvent: testEvent(t)})
			return err
		},
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s on a closed store: %v, want ErrUnavailable", name, err)
		}
	}
	mustNo(t, "close again", s.Close())
}

// TestSupersededKept checks the bound on superseded hashes, as in the Redis
// backend: the latest keepSuperseded are recognised as reuse; older ones are
// only unknown.
func TestSupersededKept(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	fid := testFID(t)
	toks := []string{tokenOf(t, "vrt", fid)}
	mustNo(t, "create family", s.CreateFamily(ctx, testFamily(fid), sha256.Sum256([]byte(toks[0]))))
	rotate := func(presented string) error {
		next := tokenOf(t, "vrt", fid)
		_, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(presented)), ClientID: "app",
			Successor: next, Now: time.Now(), ReuseEvent: testEvent(t)})
		if err == nil {
			toks = append(toks, next)
		}
		return err
	}
	for range keepSuperseded + 2 {
		mustNo(t, "rotate", rotate(toks[len(toks)-1]))
	}
	var kept int
	mustNo(t, "read", s.view(ctx, "read", func(tx *txn) error {
		used, _ := tx.get(bSuperseded, []byte(fid))
		kept = len(used) / sha256.Size
		return nil
	}))
	if kept != keepSuperseded {
		t.Fatalf("%d superseded hashes kept, want %d", kept, keepSuperseded)
	}
	if err := rotate(toks[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replay of a token superseded %d rotations ago: %v, want ErrNotFound", len(toks)-1, err)
	}
	if err := rotate(toks[len(toks)-keepSuperseded]); !errors.Is(err, store.ErrReused) {
		t.Fatalf("replay of a token superseded %d rotations ago: %v, want ErrReused", keepSuperseded-1, err)
	}
	// Later replays of superseded tokens stay reuse while the mark lives.
	if err := rotate(toks[len(toks)-2]); !errors.Is(err, store.ErrReused) {
		t.Fatalf("replay after the family was revoked for reuse: %v, want ErrReused", err)
	}
}

// TestNoSecretInClear rotates with grace (the successor is kept, sealed) and
// checks that no refresh token, code or device code appears in the file
// (MISSION §0.5), and that the sealed successor opens only under its fid.
func TestNoSecretInClear(t *testing.T) {
	path := filepath.Join(t.TempDir(), "valet.db")
	s, err := New(path, testenv.AEAD(t))
	mustNo(t, "New", err)
	ctx := context.Background()
	now := time.Now()
	fid := testFID(t)
	code := tokenOf(t, "vac", fid)
	mustNo(t, "create code", s.CreateAuthCode(ctx, store.AuthCode{FID: fid, Hash: sha256.Sum256([]byte(code)), ClientID: "app",
		Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}))
	first, succ := tokenOf(t, "vrt", fid), tokenOf(t, "vrt", fid)
	mustNo(t, "create family", s.CreateFamily(ctx, testFamily(fid), sha256.Sum256([]byte(first))))
	_, err = s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(first)), ClientID: "app",
		Successor: succ, Now: now, Grace: time.Minute, MaxGraceReplays: 3, ReuseEvent: testEvent(t)})
	mustNo(t, "rotate", err)
	var sealed []byte
	mustNo(t, "read", s.view(ctx, "read", func(tx *txn) error {
		v, _ := tx.get(bSuccessors, []byte(fid))
		sealed = append([]byte(nil), v...)
		return nil
	}))
	if got, err := s.open(fid, sealed); err != nil || got != succ {
		t.Fatalf("open the sealed successor: %v", err)
	}
	if _, err := s.open(testFID(t), sealed); err == nil {
		t.Fatal("the sealed successor opened under another fid")
	}
	mustNo(t, "close", s.Close())
	data, err := os.ReadFile(path)
	mustNo(t, "read the file", err)
	for _, secret := range []string{code, first, succ, succ[strings.IndexByte(succ, '.')+1:]} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the file holds %q in clear", secret)
		}
	}
}

// TestNewRefusesBadOptions checks New's validation.
func TestNewRefusesBadOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "valet.db")
	for name, opts := range map[string][]Option{
		"zero retention":      {WithDenyRetention(0)},
		"negative grant life": {WithMaxGrantLifetime(-time.Hour)},
		"zero lock timeout":   {WithLockTimeout(0)},
		"zero sweep interval": {WithSweepInterval(0)},
		"zero sweep batch":    {WithSweepBatch(0)},
		"nil clock":           {WithClock(nil)},
		"nil logger":          {WithLogger(nil)},
	} {
		if s, err := New(path, testenv.AEAD(t), opts...); err == nil {
			_ = s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	if s, err := New(path, nil); err == nil {
		_ = s.Close()
		t.Error("no AEAD: accepted")
	}
}

// TestBackup copies the store while writers go on, then opens the copy: it
// holds what was written before the copy began.
func TestBackup(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	mustNo(t, "create client", s.CreateClient(ctx, store.Client{ID: "app", Type: store.Public}))
	fid := testFID(t)
	mustNo(t, "revoke family", s.Revoke(ctx, store.Revocation{Kind: store.RevokeFamily, FID: fid, Retain: time.Hour}, testEvent(t)))

	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: fmt.Sprint("jti-", i), Expires: time.Now(), Retain: time.Minute}, testEvent(t)); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	path := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(path)
	mustNo(t, "create the copy", err)
	n, err := s.Backup(ctx, f)
	mustNo(t, "backup", err)
	mustNo(t, "close the copy", f.Close())
	close(stop)
	mustNo(t, "writer", <-writerDone)
	if fi, err := os.Stat(path); err != nil || fi.Size() != n {
		t.Fatalf("copy of %d bytes, Backup said %d (%v)", fi.Size(), n, err)
	}

	c, err := New(path, testenv.AEAD(t))
	mustNo(t, "open the copy", err)
	defer func() { mustNo(t, "close the copy", c.Close()) }()
	if _, err := c.GetClient(ctx, "app"); err != nil {
		t.Fatalf("client in the copy: %v", err)
	}
	if d, err := c.DenyState(ctx, store.DenyQuery{FID: fid}); err != nil || !d.FamilyRevoked {
		t.Fatalf("family mark in the copy: %+v, %v", d, err)
	}
	if _, err := s.Backup(canceledCtx(), io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("backup with a canceled context: %v", err)
	}
}
