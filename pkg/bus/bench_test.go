package bus_test

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/testenv"
)

// BenchmarkPublishBatch measures pipelined publishing with every ack awaited,
// the path of family.created/rotated and of a relay catching up.
func BenchmarkPublishBatch(b *testing.B) {
	e := newEnv(b, bus.StreamsConfig{})
	evs := revocations(b, "batch", b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := e.pub.PublishBatch(ctx, evs); err != nil {
		b.Fatalf("PublishBatch: %v", err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkPublish measures one synchronous publish, acknowledgement
// included: the floor under a revocation endpoint's latency.
func BenchmarkPublish(b *testing.B) {
	e := newEnv(b, bus.StreamsConfig{})
	evs := revocations(b, "sync", b.N)
	took := make([]time.Duration, b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := e.pub.Publish(ctx, evs[i]); err != nil {
			b.Fatalf("Publish: %v", err)
		}
		took[i] = time.Since(start)
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[b.N/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[b.N*99/100].Microseconds()), "p99-µs")
}

// replayEvents is how many revocations BenchmarkReplay replays: 1M, the
// bar, unless BUS_REPLAY_EVENTS says otherwise.
func replayEvents(b *testing.B) int {
	b.Helper()
	if s := os.Getenv("BUS_REPLAY_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("BUS_REPLAY_EVENTS=%q: want a positive count", s)
		}
		return n
	}
	return 1_000_000
}

// replayOptions are the consumer options BenchmarkReplay tries, from
// BUS_PULL_BATCH (messages,bytes) and BUS_DECODERS; none by default.
func replayOptions(b *testing.B) []bus.ConsumerOption {
	b.Helper()
	var opts []bus.ConsumerOption
	if s := os.Getenv("BUS_PULL_BATCH"); s != "" {
		m, by, ok := strings.Cut(s, ",")
		msgs, err1 := strconv.Atoi(m)
		bytes, err2 := strconv.Atoi(by)
		if !ok || err1 != nil || err2 != nil {
			b.Fatalf("BUS_PULL_BATCH=%q: want messages,bytes", s)
		}
		opts = append(opts, bus.WithPullBatch(msgs, bytes))
	}
	if s := os.Getenv("BUS_DECODERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("BUS_DECODERS=%q: want a count", s)
		}
		opts = append(opts, bus.WithDecoders(n))
	}
	return opts
}

// serverPID is the process id of the separate nats-server at NATS_URL, from
// NATS_PID, so that BenchmarkReplay reports the server's CPU per event apart
// from the consumer's; 0 when unset.
func serverPID(b *testing.B) int {
	b.Helper()
	s := os.Getenv("NATS_PID")
	if s == "" {
		return 0
	}
	if os.Getenv("NATS_URL") == "" {
		b.Fatal("NATS_PID names a separate server: set NATS_URL too")
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid < 1 {
		b.Fatalf("NATS_PID=%q: want a process id", s)
	}
	if _, err := testenv.ProcessCPUOf(pid); err != nil {
		b.Fatalf("NATS_PID=%d: %v", pid, err)
	}
	return pid
}

// BenchmarkReplay measures an edge's rebuild: a stream of small revocation
// events replayed from the start into a consumer until it is caught up, with
// the process's peak heap in use and CPU time (both include the embedded NATS
// server's; run with NATS_URL for the consumer's alone, and NATS_PID for the
// separate server's CPU per event beside it).
func BenchmarkReplay(b *testing.B) {
	n := replayEvents(b)
	pid := serverPID(b)
	e := newEnv(b, bus.StreamsConfig{})
	ctx := context.Background()
	const chunk = 10_000
	exp := time.Now().Add(time.Hour).Unix()
	at := time.Now()
	for i := 0; i < n; i += chunk {
		evs := make([]events.Event, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			jti := strconv.Itoa(j)
			ev, err := events.New(events.DeterministicID(events.TypeTokenRevoked, jti), testSource, at, &events.TokenRevoked{JTI: jti, Exp: exp})
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, ev)
		}
		if err := e.pub.PublishBatch(ctx, evs); err != nil {
			b.Fatalf("publishing the stream to replay: %v", err)
		}
	}
	info := e.streamInfo(b, events.StreamRevocations)
	if info.State.Msgs != uint64(n) {
		b.Fatalf("stream holds %d messages, want %d", info.State.Msgs, n)
	}
	b.Logf("stream of %d events, %d bytes", info.State.Msgs, info.State.Bytes)
	js := connect(b, e.srv.URL)

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var (
		peak    atomic.Uint64
		elapsed time.Duration
		cpu     time.Duration
		srvCPU  time.Duration
		runs    int
	)
	for b.Loop() {
		var applied atomic.Int64
		c, err := bus.NewConsumer(js, e.stream(events.StreamRevocations), func(_ context.Context, ev events.Event, _ bus.Meta) error {
			if _, ok := ev.Payload.(*events.TokenRevoked); ok {
				applied.Add(1)
			}
			return nil
		}, replayOptions(b)...)
		if err != nil {
			b.Fatal(err)
		}
		stopSampling := sampleHeap(&peak)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		srv0 := serverCPU(b, pid)
		start, cpu0 := time.Now(), testenv.ProcessCPU()
		go func() { done <- c.Run(runCtx) }()
		select {
		case <-c.Ready():
		case err := <-done:
			b.Fatalf("Run returned during replay: %v", err)
		}
		elapsed += time.Since(start)
		cpu += testenv.ProcessCPU() - cpu0
		srvCPU += serverCPU(b, pid) - srv0
		runs++
		cancel()
		<-done
		stopSampling()
		if got := applied.Load(); got != int64(n) {
			b.Fatalf("replayed %d events, want %d", got, n)
		}
	}
	perRun := elapsed / time.Duration(runs)
	b.ReportMetric(perRun.Seconds(), "replay-s")
	b.ReportMetric(float64(n)/perRun.Seconds(), "events/s")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	// CPU per event is steadier than wall time on a shared box; with the
	// embedded server it includes the server's work.
	b.ReportMetric(float64(cpu.Microseconds())/float64(runs*n), "cpu-µs/event")
	if pid != 0 {
		b.ReportMetric(float64(srvCPU.Microseconds())/float64(runs*n), "server-cpu-µs/event")
	}
	b.ReportMetric(float64(base.HeapInuse)/(1<<20), "base-heap-MiB")
}

// serverCPU returns the CPU time the separate server pid has used, or 0 when
// pid is 0.
func serverCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	if pid == 0 {
		return 0
	}
	d, err := testenv.ProcessCPUOf(pid)
	if err != nil {
		b.Fatalf("server CPU: %v", err)
	}
	return d
}

// sampleHeap records the peak HeapInuse into peak until the returned func is
// called.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			for {
				p := peak.Load()
				if m.HeapInuse <= p || peak.CompareAndSwap(p, m.HeapInuse) {
					break
				}
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(quit); <-done }
}

// BenchmarkPropagation measures one revocation from Publish to the handler
// of a consumer following the stream live: the bus's share of the
// revoke-to-edge propagation time.
func BenchmarkPropagation(b *testing.B) {
	e := newEnv(b, bus.StreamsConfig{})
	seen := make(chan struct{}, 1)
	c, err := bus.NewConsumer(connect(b, e.srv.URL), e.stream(events.StreamRevocations), func(context.Context, events.Event, bus.Meta) error {
		seen <- struct{}{}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	r := start(b, c)
	r.ready(b)
	evs := revocations(b, "live", b.N)
	took := make([]time.Duration, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := e.pub.Publish(ctx, evs[i]); err != nil {
			b.Fatalf("Publish: %v", err)
		}
		select {
		case <-seen:
		case <-time.After(wait):
			b.Fatal("event not applied")
		}
		took[i] = time.Since(start)
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[b.N/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[b.N*99/100].Microseconds()), "p99-µs")
}
