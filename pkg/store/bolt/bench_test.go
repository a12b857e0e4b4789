package bolt

// Benchmarks of the hot storage steps on a file in the test's temporary
// directory, fsync per transaction as in production (go test -run '^$'
// -bench . -benchmem ./store/bolt). Each reports ops/s; docs/embedded-store.md
// quotes them.

import (
	"context"
	"crypto/sha256"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// benchParallelism is goroutines per GOMAXPROCS, as in the Redis benchmarks:
// many steps in flight, which group commit turns into few transactions.
const benchParallelism = 16

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// benchEvent is a reuse event of realistic size.
func benchEvent(id string) store.OutboxEntry {
	data := make([]byte, 320)
	for i := range data {
		data[i] = 'x'
	}
	return store.OutboxEntry{ID: id, Subject: "valet.family.revoked", Data: data, CreatedAt: time.Now()}
}

// fill runs create(i) for i in [0, n) on 64 goroutines.
func fill(b *testing.B, n int, create func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := create(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkRedeemAuthCode redeems distinct codes, created beforehand: one
// read-write step each (read the code and both cut-offs, mark it used).
func BenchmarkRedeemAuthCode(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	now := time.Now()
	codes := make([]store.AuthCode, b.N)
	fill(b, b.N, func(i int) error {
		fid := testFID(b)
		codes[i] = store.AuthCode{FID: fid, Hash: sha256.Sum256([]byte(tokenOf(b, "vac", fid))), ClientID: "app",
			RedirectURI: "https://app.example.com/cb", CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
			CodeChallengeMethod: "S256", Scopes: []string{"read", "write"}, Resource: "https://api.example.com",
			Subject: "alice", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
		return s.CreateAuthCode(ctx, codes[i])
	})
	cut := store.Cutoffs{SubjectType: "user", Subject: "alice", ClientID: "app", Skew: 30 * time.Second}
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := codes[next.Add(1)-1]
			if _, err := s.RedeemAuthCode(ctx, c.FID, c.Hash, "app", time.Now(), benchEvent(c.FID), cut); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOps(b)
}

// BenchmarkRotateRefresh rotates refresh tokens, each goroutine along the
// chain of its own family, with grace on (the successor is sealed and
// kept).
func BenchmarkRotateRefresh(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		now := time.Now()
		fid := testFID(b)
		tok := tokenOf(b, "vrt", fid)
		f := store.RefreshFamily{FID: fid, ClientID: "app", Subject: "alice", SubjectType: "user",
			Scopes: []string{"read", "write"}, Resource: "https://api.example.com", Grant: "authorization_code",
			CreatedAt: now, IdleTimeout: 14 * 24 * time.Hour, AbsoluteExpiresAt: now.Add(90 * 24 * time.Hour)}
		if err := s.CreateFamily(ctx, f, sha256.Sum256([]byte(tok))); err != nil {
			b.Error(err)
			return
		}
		cut := store.Cutoffs{SubjectType: "user", Subject: "alice", ClientID: "app", Skew: 30 * time.Second}
		ev := benchEvent(fid)
		for i := 0; pb.Next(); i++ {
			next := tok[:len(tok)-10] + strconv.FormatInt(int64(1e9+i), 10) // a distinct successor
			res, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: sha256.Sum256([]byte(tok)), ClientID: "app",
				Successor: next, Now: time.Now(), Grace: 10 * time.Second, MaxGraceReplays: 3, ReuseEvent: ev, Cutoffs: cut})
			if err != nil || res.GraceReplay {
				b.Errorf("rotation %d: %v (grace replay %v)", i, err, res.GraceReplay)
				return
			}
			tok = next
		}
	})
	reportOps(b)
}

// BenchmarkDenyState reads the deny state of one access token (jti, family,
// subject and client cut-offs) in one read transaction, as introspection
// does.
func BenchmarkDenyState(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeClient, ClientID: "app", Cutoff: time.Now().Add(-time.Hour), Retain: time.Hour}, benchEvent("cut")); err != nil {
		b.Fatal(err)
	}
	q := store.DenyQuery{JTI: testFID(b), FID: testFID(b), SubjectType: "user", Subject: "alice", ClientID: "app"}
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d, err := s.DenyState(ctx, q)
			if err != nil || d.ClientCutoff.IsZero() {
				b.Errorf("deny state: %+v, %v", d, err)
				return
			}
		}
	})
	reportOps(b)
}

// BenchmarkRevoke revokes distinct access tokens by jti, each with its
// outbox entry.
func BenchmarkRevoke(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	prefix := testFID(b)
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			jti := prefix + strconv.FormatInt(next.Add(1), 10)
			if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: time.Now().Add(5 * time.Minute),
				Retain: 15*time.Minute + 30*time.Second}, benchEvent(jti)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOps(b)
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
	ev := benchEvent(fid)
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
	reportOps(b)
}
