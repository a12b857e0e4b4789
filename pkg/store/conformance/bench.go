package conformance

// Benchmark bodies of the hot storage steps (authorization code redemption,
// refresh rotation, the deny state read by introspection, revocation),
// shared by every backend so that their figures measure the same work. A
// backend's benchmark builds its store, adds its own metrics through a Meter
// and calls one of these; docs/redis.md and docs/embedded-store.md quote the
// results.

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// BenchParallelism is goroutines per GOMAXPROCS in the parallel benchmarks:
// enough requests in flight to keep the store busy while each one waits on a
// round trip (Redis) or on the fsync of a group commit (bbolt).
const BenchParallelism = 16

// Meter starts measuring one benchmark run. The body calls it once the timer
// is reset, just before the timed loop, and calls the function it returns
// once the loop is done; that function reports the metrics, ops/s at least
// (ReportOps). A nil Meter reports ops/s only.
type Meter func(b *testing.B) (report func())

// ReportOps adds ops/s to the results: the figure the throughput goals are
// stated in, though on a shared box it depends on what else runs.
func ReportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// start calls meter, or returns ReportOps when there is none.
func (meter Meter) start(b *testing.B) (report func()) {
	if meter == nil {
		return func() { ReportOps(b) }
	}
	return meter(b)
}

// BenchEvent returns a reuse event of realistic size (320 bytes of data)
// with id, so that what a step writes to the outbox weighs what it will in
// production.
func BenchEvent(id string) store.OutboxEntry {
	data := make([]byte, 320)
	for i := range data {
		data[i] = 'x'
	}
	return store.OutboxEntry{ID: id, Subject: eventSubject, Data: data, CreatedAt: time.Now()}
}

// benchCutoffs returns the cut-offs passed with redemption and rotation;
// with hint, they name the subject, so that a backend can read its cut-off
// in the same step instead of once the grant has named it.
func benchCutoffs(hint bool) store.Cutoffs {
	cut := store.Cutoffs{ClientID: "app", Skew: 30 * time.Second}
	if hint {
		cut.SubjectType, cut.Subject = userType, subAlice
	}
	return cut
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

// runParallel resets the timer and runs body on BenchParallelism goroutines
// per GOMAXPROCS, measured by meter.
func runParallel(b *testing.B, meter Meter, body func(pb *testing.PB)) {
	b.SetParallelism(BenchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	report := meter.start(b)
	b.RunParallel(body)
	report()
}

// BenchRedeemAuthCode redeems b.N distinct codes on s, created beforehand
// (RFC 6749 §4.1.2), from BenchParallelism goroutines per GOMAXPROCS; with
// hint the cut-offs name the subject.
func BenchRedeemAuthCode(b *testing.B, s store.Store, hint bool, meter Meter) {
	ctx := context.Background()
	now := time.Now()
	codes := make([]store.AuthCode, b.N)
	fill(b, b.N, func(i int) error {
		fid := randomID(b)
		codes[i] = store.AuthCode{FID: fid, Hash: hashOf(newToken(b, "vac", fid)), ClientID: "app",
			RedirectURI: "https://app.example.com/cb", CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
			CodeChallengeMethod: "S256", Scopes: []string{"read", "write"}, Resource: "https://api.example.com",
			Subject: subAlice, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
		return s.CreateAuthCode(ctx, codes[i])
	})
	cut := benchCutoffs(hint)
	var next atomic.Int64
	runParallel(b, meter, func(pb *testing.PB) {
		for pb.Next() {
			c := codes[next.Add(1)-1]
			if _, err := s.RedeemAuthCode(ctx, c.FID, c.Hash, "app", time.Now(), BenchEvent(c.FID), cut); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchRotateRefresh rotates refresh tokens on s (RFC 9700 §4.14.2), each
// goroutine along the chain of its own family, with grace on (the successor
// is sealed and kept); with hint the cut-offs name the subject.
func BenchRotateRefresh(b *testing.B, s store.Store, hint bool, meter Meter) {
	ctx := context.Background()
	runParallel(b, meter, func(pb *testing.PB) {
		now := time.Now()
		fid := randomID(b)
		tok := newToken(b, "vrt", fid)
		f := store.RefreshFamily{FID: fid, ClientID: "app", Subject: subAlice, SubjectType: userType,
			Scopes: []string{"read", "write"}, Resource: "https://api.example.com", Grant: "authorization_code",
			CreatedAt: now, IdleTimeout: 14 * 24 * time.Hour, AbsoluteExpiresAt: now.Add(90 * 24 * time.Hour)}
		if err := s.CreateFamily(ctx, f, hashOf(tok)); err != nil {
			b.Error(err)
			return
		}
		cut := benchCutoffs(hint)
		ev := BenchEvent(fid)
		for i := 0; pb.Next(); i++ {
			next := tok[:len(tok)-10] + strconv.FormatInt(int64(1e9+i), 10) // a distinct successor
			res, err := s.RotateRefresh(ctx, store.Rotation{FID: fid, Presented: hashOf(tok), ClientID: "app",
				Successor: next, Now: time.Now(), Grace: 10 * time.Second, MaxGraceReplays: 3, ReuseEvent: ev, Cutoffs: cut})
			if err != nil || res.GraceReplay {
				b.Errorf("rotation %d: %v (grace replay %v)", i, err, res.GraceReplay)
				return
			}
			tok = next
		}
	})
}

// BenchDenyState reads the deny state of one access token on s (jti,
// family, subject and client cut-offs), as introspection does (RFC 7662
// §2.2), with a client cut-off in place.
func BenchDenyState(b *testing.B, s store.Store, meter Meter) {
	ctx := context.Background()
	if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeClient, ClientID: "app", Cutoff: time.Now().Add(-time.Hour), Retain: time.Hour}, BenchEvent("cut")); err != nil {
		b.Fatal(err)
	}
	q := store.DenyQuery{JTI: randomID(b), FID: randomID(b), SubjectType: userType, Subject: subAlice, ClientID: "app"}
	runParallel(b, meter, func(pb *testing.PB) {
		for pb.Next() {
			d, err := s.DenyState(ctx, q)
			if err != nil || d.ClientCutoff.IsZero() {
				b.Errorf("deny state: %+v, %v", d, err)
				return
			}
		}
	})
}

// BenchRevoke revokes distinct access tokens by jti on s (RFC 7009 §2),
// each with its outbox entry.
func BenchRevoke(b *testing.B, s store.Store, meter Meter) {
	ctx := context.Background()
	prefix := randomID(b)
	var next atomic.Int64
	runParallel(b, meter, func(pb *testing.PB) {
		for pb.Next() {
			jti := prefix + strconv.FormatInt(next.Add(1), 10)
			if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: time.Now().Add(5 * time.Minute),
				Retain: 15*time.Minute + 30*time.Second}, BenchEvent(jti)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
