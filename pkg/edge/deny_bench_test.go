package edge

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
)

// BenchmarkDenyMemoryPerJTI inserts 1M revoked jtis (22 characters, like
// token.NewID's) into an empty deny state and reports the live heap they
// cost per jti. Goal ≤ 128 bytes.
func BenchmarkDenyMemoryPerJTI(b *testing.B) {
	const n = 1_000_000
	forget := time.Now().Add(time.Hour).Unix()
	var perJTI float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d := newDenyState(30*time.Second, time.Hour)
		for i := range n {
			d.addJTI(hashJTI(jti22(i)), forget)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := d.sizes().JTIs; got != n {
			b.Fatalf("%d jtis, want %d", got, n)
		}
		perJTI = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(d)
	}
	b.ReportMetric(perJTI, "bytes/jti")
}

// jti22 returns a distinct 22-character jti for i.
func jti22(i int) string {
	s := strconv.Itoa(i)
	return "AAAAAAAAAAAAAAAAAAAAAA"[len(s):] + s
}

// BenchmarkApplyTokenRevoked is the deny state's apply rate for decoded
// token.revoked events, the bulk of a replay.
func BenchmarkApplyTokenRevoked(b *testing.B) {
	now := time.Now()
	evs := make([]events.Event, b.N)
	for i := range evs {
		evs[i] = event(b, now, &events.TokenRevoked{JTI: jti22(i), Exp: now.Add(time.Hour).Unix()})
	}
	d := newDenyState(30*time.Second, time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		d.apply(evs[i], now)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkDecodeApplyTokenRevoked adds events.Decode, which the bus
// consumer runs on several goroutines ahead of the applier.
func BenchmarkDecodeApplyTokenRevoked(b *testing.B) {
	now := time.Now()
	raw := make([][]byte, b.N)
	for i := range raw {
		e := event(b, now, &events.TokenRevoked{JTI: jti22(i), Exp: now.Add(time.Hour).Unix()})
		var err error
		if raw[i], err = e.Encode(); err != nil {
			b.Fatal(err)
		}
	}
	d := newDenyState(30*time.Second, time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		e, err := events.Decode(raw[i])
		if err != nil {
			b.Fatal(err)
		}
		d.apply(e, now)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkDenied is the deny-state lookup of a token that is not revoked,
// with 1M revoked jtis and a few cut-offs in place.
func BenchmarkDenied(b *testing.B) {
	d := newDenyState(30*time.Second, time.Hour)
	forget := time.Now().Add(time.Hour).Unix()
	for i := range 1_000_000 {
		d.addJTI(hashJTI(jti22(i)), forget)
	}
	now := time.Now()
	d.apply(event(b, now, &events.SubjectRevoked{Subject: "bob", SubjectType: events.SubjectUser, Cutoff: now.Unix()}), now)
	d.apply(event(b, now, &events.FamilyRevoked{FID: "fam", Reason: events.ReasonAdmin}), now)
	k := hashJTI("not-revoked")
	b.ReportAllocs()
	for b.Loop() {
		if d.denied(k, "fid-x", "alice", "web", now.Unix()) != "" {
			b.Fatal("denied")
		}
	}
}
