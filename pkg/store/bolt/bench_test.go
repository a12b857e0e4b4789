package bolt

// Benchmarks of the hot storage steps on a file in the test's temporary
// directory, fsync per transaction as in production (go test -run '^$'
// -bench . -benchmem ./store/bolt). The parallel bodies are the shared ones
// of package conformance, with many steps in flight, which group commit
// turns into few transactions; the serial rotation, bound by fsync, is this
// backend's own. Each reports ops/s; docs/embedded-store.md quotes them.

import (
	"context"
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/conformance"
)

// hint is whether redemption and rotation name the subject in their
// cut-offs, as in the Redis benchmarks' hint variant; bbolt reads the
// record and the cut-offs in one transaction either way.
const hint = true

// BenchmarkRedeemAuthCode redeems distinct codes, created beforehand: one
// read-write step each (read the code and both cut-offs, mark it used).
func BenchmarkRedeemAuthCode(b *testing.B) {
	conformance.BenchRedeemAuthCode(b, newTestStore(b), hint, nil)
}

// BenchmarkRotateRefresh rotates refresh tokens, each goroutine along the
// chain of its own family, with grace on (the successor is sealed and
// kept).
func BenchmarkRotateRefresh(b *testing.B) {
	conformance.BenchRotateRefresh(b, newTestStore(b), hint, nil)
}

// BenchmarkDenyState reads the deny state of one access token (jti, family,
// subject and client cut-offs) in one read transaction, as introspection
// does.
func BenchmarkDenyState(b *testing.B) {
	conformance.BenchDenyState(b, newTestStore(b), nil)
}

// BenchmarkRevoke revokes distinct access tokens by jti, each with its
// outbox entry.
func BenchmarkRevoke(b *testing.B) {
	conformance.BenchRevoke(b, newTestStore(b), nil)
}

// BenchmarkRotateRefreshSerial rotates one family from one goroutine: every
// rotation waits for its own fsync, the latency of a lone request.
func BenchmarkRotateRefreshSerial(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	now := time.Now()
	fid := testFID(b)
	tok := tokenOf(b, "vrt", fid)
	f := store.RefreshFamily{FID: fid, ClientID: "app", Subject: "alice", SubjectType: "user", Scopes: []string{"read"},
		CreatedAt: now, IdleTimeout: 14 * 24 * time.Hour, AbsoluteExpiresAt: now.Add(90 * 24 * time.Hour)}
	if err := s.CreateFamily(ctx, f, sha256.Sum256([]byte(tok))); err != nil {
		b.Fatal(err)
	}
	ev := conformance.BenchEvent(fid)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next := tok[:len(tok)-10] + strconv.FormatInt(int64(1e9+i), 10)
		if _, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(tok)), ClientID: "app",
			Successor: next, Now: time.Now(), Grace: 10 * time.Second, MaxGraceReplays: 3, ReuseEvent: ev}); err != nil {
			b.Fatal(err)
		}
		tok = next
	}
	conformance.ReportOps(b)
}
