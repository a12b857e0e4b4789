package revoke_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
)

// BenchmarkRevokeToken measures the primitive end to end: the Redis script
// writing deny state and outbox entry, the JetStream publish with its
// PubAck, and the outbox ack — with the load in the same process.
func BenchmarkRevokeToken(b *testing.B) {
	e := newEnv(b)
	var n atomic.Int64
	exp := time.Now().Add(time.Hour)
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1)
			if err := e.rev.Token(ctx, fmt.Sprint("bench-", i), exp, "c1", events.ReasonClient, "c1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "revocations/s")
}
