package edge_test

import (
	"context"
	"crypto/ecdsa"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/edge"
)

// BenchmarkVerifyCached is the hot path: a token verified before, checked
// again for time, key status, deny state and scope. Goal < 2 µs.
func BenchmarkVerifyCached(b *testing.B) {
	e := newEnv(b)
	v := e.startEdge(b)
	tok := sign(b, e.key, claims())
	mustVerify(b, v, tok)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyScopes(ctx, tok, "read"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedParallel is the hot path from every core at once.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	e := newEnv(b)
	v := e.startEdge(b)
	toks := make([]string, 64)
	for i := range toks {
		toks[i] = sign(b, e.key, claims())
		mustVerify(b, v, toks[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := 0
		for pb.Next() {
			if _, err := v.Verify(ctx, toks[i%len(toks)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkVerifyNewES256 verifies tokens never seen before: the whole
// path, ES256 signature included. Goal: within 1.5× BenchmarkJWXVerifyES256.
func BenchmarkVerifyNewES256(b *testing.B) {
	e := newEnv(b)
	v := e.startEdge(b)
	toks := make([]string, b.N)
	for i := range toks {
		toks[i] = sign(b, e.key, claims())
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := v.Verify(ctx, toks[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJWXVerifyES256 is one plain jwx ES256 signature verification of
// the same kind of token, for comparison.
func BenchmarkJWXVerifyES256(b *testing.B) {
	k := newKey(b, "ES256", "k")
	tok := []byte(sign(b, k, claims()))
	pub := k.priv.Public().(*ecdsa.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jws.Verify(tok, jws.WithKey(jwa.ES256, pub)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJWXParseES256 is jwx's jwt.Parse with verification and claim
// validation: what the edge avoids on its hot path.
func BenchmarkJWXParseES256(b *testing.B) {
	k := newKey(b, "ES256", "k")
	tok := []byte(sign(b, k, claims()))
	pub := k.priv.Public().(*ecdsa.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwt.Parse(tok, jwt.WithKey(jwa.ES256, pub), jwt.WithIssuer(testIssuer), jwt.WithAudience(testAudience)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRevocationPropagation measures one revocation from the start of
// its publication (the revocation service's Publish, acknowledgement
// included) to its application in the edge's deny state, after which
// Verify rejects the token. One embedded NATS, one edge, same process.
func BenchmarkRevocationPropagation(b *testing.B) {
	e := newEnv(b)
	applied := make(chan time.Time, 1)
	v := e.startEdge(b, edge.WithObserver(edge.Observer{
		OnRevocationApplied: func(t events.Type, _ time.Time, replay bool) {
			if t == events.TypeTokenRevoked && !replay {
				applied <- time.Now()
			}
		},
	}))
	ctx := context.Background()
	took := make([]time.Duration, 0, b.N)
	exp := time.Now().Add(time.Hour).Unix()
	for i := 0; b.Loop(); i++ {
		ev, err := events.New(events.NewID(), testIssuer, time.Now(), &events.TokenRevoked{JTI: "p" + strconv.Itoa(i), Exp: exp})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := e.pub.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-applied:
			took = append(took, at.Sub(start))
		case <-time.After(wait):
			b.Fatal("revocation not applied")
		}
	}
	b.StopTimer()
	if v.Status().Deny.JTIs < len(took) {
		b.Fatal("revocations missing from the deny state")
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkReplay measures an edge's start over a revocation stream of
// EDGE_REPLAY_EVENTS token revocations (default 200,000; the bar is 1M in
// under 10 s): Start to WaitCurrent, and the heap the deny state keeps.
func BenchmarkReplay(b *testing.B) {
	n := 200_000
	if s := os.Getenv("EDGE_REPLAY_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("EDGE_REPLAY_EVENTS=%q: want a positive count", s)
		}
	}
	e := newEnv(b)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).Unix()
	const chunk = 10_000
	for i := 0; i < n; i += chunk {
		evs := make([]events.Event, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			jti := "r" + strconv.Itoa(j)
			ev, err := events.New(events.DeterministicID(events.TypeTokenRevoked, jti), testIssuer, time.Now(), &events.TokenRevoked{JTI: jti, Exp: exp})
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, ev)
		}
		if err := e.pub.PublishBatch(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	var elapsed time.Duration
	runs := 0
	for b.Loop() {
		start := time.Now()
		v := e.newEdge(b)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		err := v.WaitCurrent(wctx)
		cancel()
		if err != nil {
			b.Fatalf("replay: %v; status %+v", err, v.Status())
		}
		elapsed += time.Since(start)
		runs++
		if got := v.Status().Deny.JTIs; got != n {
			b.Fatalf("deny state holds %d jtis, want %d", got, n)
		}
		_ = v.Close()
	}
	per := elapsed / time.Duration(runs)
	b.ReportMetric(per.Seconds(), "replay-s")
	b.ReportMetric(float64(n)/per.Seconds(), "events/s")
	runtime.GC()
}
