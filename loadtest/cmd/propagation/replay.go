package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/testenv"
)

// replayResult is what the replay child reports, as one JSON line.
type replayResult struct {
	Nanos       int64   `json:"nanos"`         // Start → current
	Applied     uint64  `json:"applied"`       // revocation-stream events applied
	JTIs        int     `json:"jtis"`          // revoked jtis in the deny state
	PeakHeap    uint64  `json:"peak_heap"`     // largest HeapAlloc sampled
	KeptHeap    uint64  `json:"kept_heap"`     // HeapAlloc after GC, minus before the edge
	BytesPerJTI float64 `json:"bytes_per_jti"` // KeptHeap / JTIs
	PeakRSS     uint64  `json:"peak_rss"`      // VmHWM
	CPUNanos    int64   `json:"cpu_nanos"`     // this process's CPU time, Start → current
	GCs         uint32  `json:"gcs"`           // garbage collections, Start → current
}

// replayChild starts one fresh edge over the cluster's streams and reports
// how long it took to become current and what memory it used. It runs in a
// process of its own so that the heap it measures is the edge's.
func replayChild(args []string) error {
	fs := flag.NewFlagSet("replay-child", flag.ContinueOnError)
	natsURL := fs.String("nats", "", "")
	prefix := fs.String("prefix", "", "")
	jwksURL := fs.String("jwks", "", "")
	maxLife := fs.Duration("max-life", 15*time.Minute, "")
	want := fs.Int("want", 0, "")
	cpuProfile := fs.String("cpuprofile", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *natsURL == "" || *prefix == "" || *jwksURL == "" {
		return errUsage
	}
	nc, err := nats.Connect(*natsURL, nats.Name("valet-edge-replay"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var base runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&base)

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	ctx := context.Background()
	var gc0 runtime.MemStats
	runtime.ReadMemStats(&gc0)
	start, cpu0 := time.Now(), testenv.ProcessCPU()
	v, err := edge.New(edge.Config{
		Issuer: issuer, Audience: audience, JWKSURL: *jwksURL, JetStream: js, MaxTokenLifetime: *maxLife,
	}, edge.WithSubjectPrefix(*prefix), edge.WithStalenessBound(time.Minute))
	if err != nil {
		return err
	}
	if err := v.Start(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = v.WaitCurrent(wctx)
	cancel()
	took, cpu := time.Since(start), testenv.ProcessCPU()-cpu0
	var gc1 runtime.MemStats
	runtime.ReadMemStats(&gc1)
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	close(stop)
	<-sampled
	if err != nil {
		return fmt.Errorf("not current: %w (status %+v)", err, v.Status())
	}
	st := v.Status()
	if st.Deny.JTIs < *want {
		return fmt.Errorf("deny state holds %d jtis, want at least %d", st.Deny.JTIs, *want)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	r := replayResult{
		Nanos: took.Nanoseconds(), Applied: st.Revocations.Applied, JTIs: st.Deny.JTIs,
		PeakHeap: peak.Load(), PeakRSS: vmHWM(), CPUNanos: cpu.Nanoseconds(), GCs: gc1.NumGC - gc0.NumGC,
	}
	if after.HeapAlloc > base.HeapAlloc {
		r.KeptHeap = after.HeapAlloc - base.HeapAlloc
	}
	if r.JTIs > 0 {
		r.BytesPerJTI = float64(r.KeptHeap) / float64(r.JTIs)
	}
	runtime.KeepAlive(v)
	_ = v.Close()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// vmHWM is the process's peak resident set size, 0 when unknown.
func vmHWM() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
