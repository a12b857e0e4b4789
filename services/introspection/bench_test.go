package introspection_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/testenv"
)

// benchIntrospect runs the handler in-process (no network) over tokens, with
// Basic authentication, the client cache warm and the real Redis deny read.
func benchIntrospect(b *testing.B, n int) {
	h := newHarness(b)
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = url.Values{"token": {h.Mint(claims())}}.Encode()
	}
	auth := servicetest.Basic(clientA, h.Secrets[clientA])
	srv := h.svc.Server().Public
	do := func(body string) int {
		req := httptest.NewRequest(http.MethodPost, "/introspect", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if !strings.HasPrefix(rec.Body.String(), `{"active":true`) {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return rec.Code
	}
	for _, body := range bodies { // warm the client and token caches
		do(body)
	}
	b.ReportAllocs()
	cpu := testenv.ProcessCPU()
	i := 0
	for b.Loop() {
		do(bodies[i%n])
		i++
	}
	reportCPU(b, cpu)
}

// reportCPU reports the process CPU time per operation since cpu: on a box
// shared with other work it varies far less than ns/op. redis-server's CPU
// is not included.
func reportCPU(b *testing.B, cpu time.Duration) {
	if used := testenv.ProcessCPU() - cpu; used > 0 && b.N > 0 {
		b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

// BenchmarkIntrospect measures one introspection of a cached (verified
// before) token: client authentication, cache hit, one Redis round trip.
func BenchmarkIntrospect(b *testing.B) { benchIntrospect(b, 1) }

// BenchmarkIntrospectDistinct cycles over 10,000 tokens (all within the
// verified-token cache).
func BenchmarkIntrospectDistinct(b *testing.B) { benchIntrospect(b, 10000) }

// BenchmarkIntrospectParallel is BenchmarkIntrospect from 16×GOMAXPROCS
// goroutines (32 on two cores, the load-test connection count): throughput
// rather than latency.
func BenchmarkIntrospectParallel(b *testing.B) {
	h := newHarness(b)
	body := url.Values{"token": {h.Mint(claims())}}.Encode()
	auth := servicetest.Basic(clientA, h.Secrets[clientA])
	srv := h.svc.Server().Public
	b.ReportAllocs()
	b.SetParallelism(16)
	cpu := testenv.ProcessCPU()
	defer func() { reportCPU(b, cpu) }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/introspect", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", auth)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Errorf("%d %s", rec.Code, rec.Body)
				return
			}
		}
	})
}
