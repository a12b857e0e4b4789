package redis

// Benchmarks of the hot storage steps against the harness's redis-server,
// with the load generated in the same process (go test -run '^$' -bench .
// -benchmem). Each reports ops/s, which on a shared box depends on what else
// runs, and the CPU each operation costs on both sides (meter), which
// depends much less; the goal is ≥ 20k ops/s for redemption and rotation on
// the 2-core reference box. docs/redis.md quotes the figures.

import (
	"context"
	"crypto/sha256"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// benchParallelism is goroutines per GOMAXPROCS: enough requests in flight
// to keep Redis busy while the client waits on round trips.
const benchParallelism = 16

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// meter measures CPU per operation on both sides, which the load of other
// work on a shared box does not change much, unlike ops/s: the benchmark
// process's user+system time (client and load generator) and Redis's
// (INFO cpu), plus Redis's own time per script call (INFO commandstats).
type meter struct {
	b      *testing.B
	s      *Store
	client time.Duration
	server float64
	evals  evalStats
}

type evalStats struct{ calls, usec float64 }

func startMeter(b *testing.B, s *Store) *meter {
	b.Helper()
	m := &meter{b: b, s: s, client: processCPU(b)}
	m.server, m.evals = serverStats(b, s)
	return m
}

// report adds client-µs/op, redis-µs/op and script-µs/call to the results.
func (m *meter) report() {
	m.b.Helper()
	m.b.StopTimer()
	client := processCPU(m.b) - m.client
	server, evals := serverStats(m.b, m.s)
	n := float64(m.b.N)
	m.b.ReportMetric(float64(client.Microseconds())/n, "client-µs/op")
	m.b.ReportMetric((server-m.server)*1e6/n, "redis-µs/op")
	if calls := evals.calls - m.evals.calls; calls > 0 {
		m.b.ReportMetric((evals.usec-m.evals.usec)/calls, "script-µs/call")
	}
	reportOps(m.b)
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverStats reads Redis's CPU seconds and the EVALSHA/EVAL counters.
func serverStats(b *testing.B, s *Store) (float64, evalStats) {
	info, err := s.rdb.Info(context.Background(), "cpu", "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var cpu float64
	var ev evalStats
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "used_cpu_user", "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		case "cmdstat_evalsha", "cmdstat_eval":
			for _, kv := range strings.Split(v, ",") {
				name, val, _ := strings.Cut(kv, "=")
				f, _ := strconv.ParseFloat(val, 64)
				switch name {
				case "calls":
					ev.calls += f
				case "usec":
					ev.usec += f
				}
			}
		}
	}
	return cpu, ev
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

// BenchmarkRedeemAuthCode redeems distinct codes, with the subject hint (one
// round trip: both cut-offs read with the script) and without (the issuer's
// case: the subject's cut-off is read in a second round trip, once the script
// has named the subject).
func BenchmarkRedeemAuthCode(b *testing.B) {
	for _, hinted := range []bool{true, false} {
		name := "hint"
		if !hinted {
			name = "no-hint"
		}
		b.Run(name, func(b *testing.B) {
			s := newStoreOn(b, newTestServer(b))
			redeemBench(b, s, hinted)
		})
	}
}

// redeemBench redeems b.N distinct codes, created beforehand.
func redeemBench(b *testing.B, s *Store, hinted bool) {
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
	cut := store.Cutoffs{ClientID: "app", Skew: 30 * time.Second}
	if hinted {
		cut.SubjectType, cut.Subject = "user", "alice"
	}
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	m := startMeter(b, s)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := codes[next.Add(1)-1]
			if _, err := s.RedeemAuthCode(ctx, c.FID, c.Hash, "app", time.Now(), benchEvent(c.FID), cut); err != nil {
				b.Error(err)
				return
			}
		}
	})
	m.report()
}

// BenchmarkRotateRefresh rotates refresh tokens, each goroutine along the
// chain of its own family, with grace on (the successor is sealed), with the
// subject hint and without (as for redemption: a second round trip for the
// subject's cut-off).
func BenchmarkRotateRefresh(b *testing.B) {
	for _, hinted := range []bool{true, false} {
		name := "hint"
		if !hinted {
			name = "no-hint"
		}
		b.Run(name, func(b *testing.B) {
			s := newStoreOn(b, newTestServer(b))
			rotateBench(b, s, hinted)
		})
	}
}

// rotateBench rotates along one family per goroutine.
func rotateBench(b *testing.B, s *Store, hinted bool) {
	ctx := context.Background()
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	m := startMeter(b, s)
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
		cut := store.Cutoffs{ClientID: "app", Skew: 30 * time.Second}
		if hinted {
			cut.SubjectType, cut.Subject = "user", "alice"
		}
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
	m.report()
}

// BenchmarkDenyState reads the deny state of one access token (jti, family,
// subject and client cut-offs), as introspection does.
func BenchmarkDenyState(b *testing.B) {
	s := newStoreOn(b, newTestServer(b))
	ctx := context.Background()
	if err := s.Revoke(ctx, store.Revocation{Kind: store.RevokeClient, ClientID: "app", Cutoff: time.Now().Add(-time.Hour), Retain: time.Hour}, benchEvent("cut")); err != nil {
		b.Fatal(err)
	}
	q := store.DenyQuery{JTI: testFID(b), FID: testFID(b), SubjectType: "user", Subject: "alice", ClientID: "app"}
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	m := startMeter(b, s)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d, err := s.DenyState(ctx, q)
			if err != nil || d.ClientCutoff.IsZero() {
				b.Errorf("deny state: %+v, %v", d, err)
				return
			}
		}
	})
	m.report()
}

// BenchmarkRevoke revokes distinct access tokens by jti, each with its
// outbox entry.
func BenchmarkRevoke(b *testing.B) {
	s := newStoreOn(b, newTestServer(b))
	ctx := context.Background()
	prefix := testFID(b)
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	m := startMeter(b, s)
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
	m.report()
}
