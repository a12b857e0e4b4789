package edge_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/edge"
)

// BenchmarkKeyPropagation measures "a new key at every edge within 100 ms"
// (MISSION §3): N edges on one embedded JetStream and one JWKS server over
// TLS; each round the issuer's JWKS starts serving a new ES256 key, then its
// key.published is published, and the round's figure is the time from that
// publish until the last of the N edges has the key usable (its
// OnKeyLearned: fetched from JWKS with the announced thumbprint, so Verify
// accepts its tokens from then on; each edge's Verify of a token signed with
// it is checked after the round). Edges never refetch JWKS for an unknown
// kid here, so only the stream makes them learn. Between rounds the key is
// retired and every edge's refetch awaited, so each round starts from the
// same two-key JWKS.
//
//	cd pkg/edge && go test -run '^$' -bench KeyPropagation -benchtime 50x .
//
// Reported per sub-benchmark: p50-ms, p99-ms and max-ms over the rounds;
// ns/op is the mean.
func BenchmarkKeyPropagation(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("edges=%d", n), func(b *testing.B) { benchKeyPropagation(b, n) })
	}
}

func benchKeyPropagation(b *testing.B, n int) {
	e := newEnv(b)
	var current atomic.Pointer[string]
	learned := make(chan time.Time, n)
	obs := edge.Observer{OnKeyLearned: func(kid string, _ time.Time) {
		if c := current.Load(); c != nil && *c == kid {
			learned <- time.Now()
		}
	}}
	edges := make([]*edge.Verifier, n)
	for i := range edges {
		// Each edge its own connection to JWKS, as separate gateways have.
		client := &http.Client{Transport: e.is.srv.Client().Transport.(*http.Transport).Clone(), Timeout: wait}
		edges[i] = e.startEdge(b, edge.WithObserver(obs), edge.WithUnknownKIDInterval(time.Hour), edge.WithHTTPClient(client))
	}

	var samples []time.Duration
	round := 0
	for b.Loop() {
		round++
		k := newKey(b, "ES256", fmt.Sprintf("es256-r%d", round))
		tok := sign(b, k, claims())
		current.Store(&k.kid)
		e.is.serve(e.key, k)
		start := time.Now()
		e.publish(b, &events.KeyPublished{KID: k.kid, Alg: k.alg, Thumbprint: k.thumbprint})
		var last time.Time
		deadline := time.After(wait)
		for range n {
			select {
			case at := <-learned:
				last = at
			case <-deadline:
				b.Fatalf("round %d: the key reached only some of %d edges within %s", round, n, wait)
			}
		}
		samples = append(samples, last.Sub(start))
		for i, v := range edges {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				b.Fatalf("round %d: edge %d refuses the new key's token: %v", round, i, err)
			}
		}
		settle(b, e, edges, k)
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(sum)/float64(len(samples)), "ns/op")
	b.ReportMetric(ms(percentile(samples, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(samples, 99)), "p99-ms")
	b.ReportMetric(ms(samples[len(samples)-1]), "max-ms")
}

// settle retires k and waits until every edge fetched JWKS after that and
// found it clean, so that the next round starts from a quiet state.
func settle(b *testing.B, e *env, edges []*edge.Verifier, k *signingKey) {
	b.Helper()
	e.is.serve(e.key)
	at := time.Now()
	e.publish(b, &events.KeyRetired{KID: k.kid})
	eventually(b, func() error {
		for i, v := range edges {
			st := v.Status()
			if !st.JWKSFetched.After(at) || st.JWKSError != nil {
				return fmt.Errorf("edge %d: JWKS fetched %s (retired at %s), error %v", i, st.JWKSFetched, at, st.JWKSError)
			}
		}
		return nil
	})
}

// percentile returns the p-th percentile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}
