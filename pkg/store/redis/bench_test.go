package redis

// Benchmarks of the hot storage steps against the harness's redis-server,
// with the load generated in the same process (go test -run '^$' -bench .
// -benchmem). The bodies are the shared ones of package conformance; this
// file adds what is Redis's own: the hint and no-hint variants, and the CPU
// meter. Each reports ops/s, which on a shared box depends on what else
// runs, and the CPU each operation costs on both sides (meter), which
// depends much less; the goal is ≥ 20k ops/s for redemption and rotation on
// the 2-core reference box. docs/redis.md quotes the figures.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store/conformance"
	"github.com/valetauth/valet/pkg/testenv"
)

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
	m := &meter{b: b, s: s, client: testenv.ProcessCPU()}
	m.server, m.evals = serverStats(b, s)
	return m
}

// report adds client-µs/op, redis-µs/op and script-µs/call to the results.
func (m *meter) report() {
	m.b.Helper()
	m.b.StopTimer()
	client := testenv.ProcessCPU() - m.client
	server, evals := serverStats(m.b, m.s)
	n := float64(m.b.N)
	m.b.ReportMetric(float64(client.Microseconds())/n, "client-µs/op")
	m.b.ReportMetric((server-m.server)*1e6/n, "redis-µs/op")
	if calls := evals.calls - m.evals.calls; calls > 0 {
		m.b.ReportMetric((evals.usec-m.evals.usec)/calls, "script-µs/call")
	}
	conformance.ReportOps(m.b)
}

// meterOn returns the conformance.Meter that adds the CPU figures of s (see
// report) to a shared benchmark body.
func meterOn(s *Store) conformance.Meter {
	return func(b *testing.B) func() { return startMeter(b, s).report }
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

// BenchmarkRedeemAuthCode redeems distinct codes, with the subject hint (one
// round trip: both cut-offs read with the script) and without (the issuer's
// case: the subject's cut-off is read in a second round trip, once the script
// has named the subject).
func BenchmarkRedeemAuthCode(b *testing.B) {
	for _, hint := range []bool{true, false} {
		b.Run(hintName(hint), func(b *testing.B) {
			s := newStoreOn(b, newTestServer(b))
			conformance.BenchRedeemAuthCode(b, s, hint, meterOn(s))
		})
	}
}

// BenchmarkRotateRefresh rotates refresh tokens, each goroutine along the
// chain of its own family, with grace on (the successor is sealed), with the
// subject hint and without (as for redemption: a second round trip for the
// subject's cut-off).
func BenchmarkRotateRefresh(b *testing.B) {
	for _, hint := range []bool{true, false} {
		b.Run(hintName(hint), func(b *testing.B) {
			s := newStoreOn(b, newTestServer(b))
			conformance.BenchRotateRefresh(b, s, hint, meterOn(s))
		})
	}
}

// hintName names the sub-benchmark with or without the subject hint.
func hintName(hint bool) string {
	if hint {
		return "hint"
	}
	return "no-hint"
}

// BenchmarkDenyState reads the deny state of one access token (jti, family,
// subject and client cut-offs), as introspection does.
func BenchmarkDenyState(b *testing.B) {
	s := newStoreOn(b, newTestServer(b))
	conformance.BenchDenyState(b, s, meterOn(s))
}

// BenchmarkRevoke revokes distinct access tokens by jti, each with its
// outbox entry.
func BenchmarkRevoke(b *testing.B) {
	s := newStoreOn(b, newTestServer(b))
	conformance.BenchRevoke(b, s, meterOn(s))
}
