// Command propagation measures Valet's revocation propagation end to end on
// one box: from the 200 of /revoke to the moment every edge rejects the
// token, at a steady rate and in a burst, for 1, 4 and 16 edges; then the
// edge's memory per revoked jti and its rebuild by replay of 1M events.
//
// It starts redis-server (on a free loopback port, in a temporary directory;
// or uses REDIS_URL) and an embedded NATS server with JetStream (or uses
// NATS_URL), the revocation service built with its exported constructor on
// the real Redis store, bus publisher and revoke primitive (relay and
// heartbeater running), a key ring over the store whose JWKS is served on
// loopback, and N edge-library Verifiers, each with its own NATS connection
// as separate gateways would have, each having verified (cached) every token
// before it is revoked.
//
//   - steady: revokes -rate tokens/s for -duration (open loop), POSTing
//     /revoke with client authentication (HTTP Basic) like a real client;
//   - burst: revokes -burst tokens with -workers concurrent clients;
//   - replay: publishes -replay token.revoked events with bus.PublishBatch,
//     then starts a fresh edge in a child process (so that its heap holds
//     the edge and its NATS client only, not the embedded server) and times
//     Start → current; it reports events/s, the peak heap, the heap the
//     deny state keeps per revoked jti, the edge's garbage collections, and
//     the CPU time per event of the edge and of the server (embedded, or a
//     separate one named by -nats-pid), each in its own process, with CPU
//     profiles of both under -replay-profile. -replay-runs replays the one
//     stream several times, -replay-compare alternates them with another
//     build's edge (before/after on the same stream and server), and
//     -replay-hogs keeps cores busy meanwhile, as other work on a shared box
//     does.
//
// For each revocation the instant its 200 arrives is recorded, and at each
// edge the instant Verify first returns ErrRevoked for that token (see
// gateway in edges.go). Everything runs on the same box, the load generator
// included.
//
// Usage:
//
//	go run ./cmd/propagation            # full: 200/s for 10 s, burst 10,000, replay 1,000,000
//	go run ./cmd/propagation -quick     # under a minute
//	go build -o /tmp/before ./cmd/propagation   # at the commit to compare with, then at yours:
//	go run ./cmd/propagation -phases replay -replay-runs 10 -replay-compare /tmp/before [-replay-hogs 1]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/testenv"
)

type options struct {
	edges      []int
	rate       int
	duration   time.Duration
	burst      int
	workers    int
	replay     int
	publishers int
	profileDir string
	phases     map[string]bool
	wait       time.Duration
	// replayRuns replays the one published stream this many times;
	// replayCompare, when set, is another build of this program whose
	// child takes every second run, for an A/B on the same stream and
	// server; replayHogs CPU hogs run beside each replay; natsPID is the
	// separate server's process, for its CPU time.
	replayRuns    int
	replayCompare string
	replayHogs    int
	natsPID       int
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-replay-child" {
		if err := replayChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "replay child:", err)
			os.Exit(1)
		}
		return
	}
	var (
		quick    = flag.Bool("quick", false, "small sizes (finishes in under a minute): -rate 100 -duration 3s -burst 2000 -replay 100000")
		edgesF   = flag.String("edges", "1,4,16", "edge counts to measure, comma-separated")
		rate     = flag.Int("rate", 200, "steady phase: revocations per second")
		duration = flag.Duration("duration", 10*time.Second, "steady phase: how long to revoke")
		burst    = flag.Int("burst", 10000, "burst phase: revocations")
		workers  = flag.Int("workers", 64, "burst phase: concurrent /revoke clients")
		replay   = flag.Int("replay", 1_000_000, "replay phase: token.revoked events to publish and replay")
		pubs     = flag.Int("publishers", 4, "replay phase: concurrent PublishBatch callers")
		profile  = flag.String("replay-profile", "", "replay phase: write CPU profiles of the edge (edge.pprof) and of this process, the embedded server's (server.pprof), to this directory")
		phasesF  = flag.String("phases", "steady,burst,replay", "phases to run")
		wait     = flag.Duration("wait", 60*time.Second, "how long to wait for every edge to reject after the last 200")
		redisURL = flag.String("redis", os.Getenv("REDIS_URL"), "Redis URL (default $REDIS_URL; empty: start redis-server)")
		natsURL  = flag.String("nats", os.Getenv("NATS_URL"), "NATS URL with JetStream (default $NATS_URL; empty: embedded server)")
		natsPID  = flag.Int("nats-pid", 0, "replay phase: process id of the separate server at -nats, for its CPU time per event")
		runs     = flag.Int("replay-runs", 1, "replay phase: replays of the one published stream, each by a fresh edge")
		compare  = flag.String("replay-compare", "", "replay phase: another build of this program whose edge takes every second run (A/B on one stream)")
		hogs     = flag.Int("replay-hogs", 0, "replay phase: CPU hogs (sh -c 'while :; do :; done') running beside each replay")
	)
	flag.Parse()
	o := options{rate: *rate, duration: *duration, burst: *burst, workers: *workers, replay: *replay, publishers: max(1, *pubs), profileDir: *profile, wait: *wait, phases: map[string]bool{},
		replayRuns: max(1, *runs), replayCompare: *compare, replayHogs: max(0, *hogs), natsPID: *natsPID}
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["rate"] {
			o.rate = 100
		}
		if !set["duration"] {
			o.duration = 3 * time.Second
		}
		if !set["burst"] {
			o.burst = 2000
		}
		if !set["replay"] {
			o.replay = 100_000
		}
	}
	for _, s := range strings.Split(*edgesF, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "-edges: %q is not a positive count\n", s)
			os.Exit(2)
		}
		o.edges = append(o.edges, n)
	}
	for _, p := range strings.Split(*phasesF, ",") {
		o.phases[strings.TrimSpace(p)] = true
	}
	if err := run(o, *redisURL, *natsURL); err != nil {
		fmt.Fprintln(os.Stderr, "propagation:", err)
		os.Exit(1)
	}
}

func run(o options, redisURL, natsURL string) error {
	fmt.Printf("propagation: GOMAXPROCS=%d NumCPU=%d edges=%v steady=%d/s×%s burst=%d (%d workers) replay=%d\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), o.edges, o.rate, o.duration, o.burst, o.workers, o.replay)
	start := time.Now()
	c, err := startCluster(redisURL, natsURL)
	if err != nil {
		return err
	}
	defer c.close()
	fmt.Printf("cluster up in %s (NATS %s, prefix %s)\n", time.Since(start).Round(time.Millisecond), c.natsURL, c.prefix)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	ctx := context.Background()

	var results []result
	for _, n := range o.edges {
		if !o.phases["steady"] && !o.phases["burst"] {
			break
		}
		rs, err := measureEdges(ctx, c, hc, o, n)
		if err != nil {
			return fmt.Errorf("%d edges: %w", n, err)
		}
		results = append(results, rs...)
	}
	if len(results) > 0 {
		printResults(results)
	}
	if o.phases["replay"] && o.replay > 0 {
		if err := replayPhase(ctx, c, o, natsURL == ""); err != nil {
			return err
		}
	}
	fmt.Printf("\ntotal %s\n", time.Since(start).Round(time.Second))
	return nil
}

// measureEdges starts n gateways and runs the steady and burst phases.
func measureEdges(ctx context.Context, c *cluster, hc *http.Client, o options, n int) ([]result, error) {
	t0 := time.Now()
	gws := make([]*gateway, 0, n)
	defer func() {
		for _, g := range gws {
			g.close()
		}
	}()
	for range n {
		g, err := startGateway(ctx, c)
		if err != nil {
			return nil, err
		}
		gws = append(gws, g)
	}
	steadyN := o.rate * int(o.duration/time.Millisecond) / 1000
	var out []result
	type plan struct {
		kind string
		n    int
	}
	var plans []plan
	if o.phases["steady"] && steadyN > 0 {
		plans = append(plans, plan{"steady", steadyN})
	}
	if o.phases["burst"] && o.burst > 0 {
		plans = append(plans, plan{"burst", o.burst})
	}
	// Mint and warm every phase's tokens first, so that warming one phase
	// does not load the box while another is measured.
	phases := make([]*phase, len(plans))
	for k, pl := range plans {
		toks, jtis, err := c.mint(pl.n, fmt.Sprintf("%s-%d", pl.kind, n))
		if err != nil {
			return nil, err
		}
		phases[k] = newPhase(toks, jtis)
		if err := warm(ctx, gws, phases[k]); err != nil {
			return nil, err
		}
	}
	fmt.Printf("%2d edges: started, %d tokens cached at each, in %s\n", n, steadyN+o.burst, time.Since(t0).Round(time.Millisecond))
	for k, pl := range plans {
		p := phases[k]
		for _, g := range gws {
			g.setPhase(p)
		}
		runtime.GC()
		var r result
		var err error
		if pl.kind == "steady" {
			r, err = steady(c, hc, gws, p, o)
		} else {
			r, err = burst(c, hc, gws, p, o)
		}
		if err != nil {
			return nil, err
		}
		r.edges = n
		fmt.Printf("%2d edges: %-6s every edge p50 %s p99 %s max %s ms (%d revoked at %.0f/s)\n",
			n, r.kind, ms(r.all.p50), ms(r.all.p99), ms(r.all.max), r.ok, r.rate)
		out = append(out, r)
	}
	return out, nil
}

// revokeOne posts token i of p to /revoke as its client, and records when the
// 200 arrived. It returns the send → 200 time.
func revokeOne(c *cluster, hc *http.Client, p *phase, i int) (time.Duration, error) {
	body := url.Values{"token": {p.toks[i]}, "token_type_hint": {"access_token"}}.Encode()
	req, err := http.NewRequest(http.MethodPost, c.revoke, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(c.secret))
	sent := time.Now()
	p.sent[i].Store(sent.UnixNano())
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	at := time.Now()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/revoke answered %d", res.StatusCode)
	}
	p.ok[i].Store(at.UnixNano())
	return at.Sub(sent), nil
}

type sender struct {
	mu   sync.Mutex
	lat  []time.Duration
	errs atomic.Int64
	last atomic.Value
}

func (s *sender) record(d time.Duration, err error) {
	if err != nil {
		s.errs.Add(1)
		s.last.Store(err.Error())
		return
	}
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.mu.Unlock()
}

// steady revokes p's tokens at o.rate per second, open loop.
func steady(c *cluster, hc *http.Client, gws []*gateway, p *phase, o options) (result, error) {
	var s sender
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(o.rate)
	start := time.Now()
	for i := range p.toks {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.record(revokeOne(c, hc, p, i)) }()
	}
	wg.Wait()
	sendTime := time.Since(start)
	return collect("steady", gws, p, &s, start, sendTime, o.wait)
}

// burst revokes p's tokens with o.workers concurrent clients.
func burst(c *cluster, hc *http.Client, gws []*gateway, p *phase, o options) (result, error) {
	var s sender
	var wg sync.WaitGroup
	next := atomic.Int64{}
	start := time.Now()
	for range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(p.toks) {
					return
				}
				s.record(revokeOne(c, hc, p, i))
			}
		}()
	}
	wg.Wait()
	sendTime := time.Since(start)
	return collect("burst", gws, p, &s, start, sendTime, o.wait)
}

// collect waits until every edge rejected every token that got its 200 (or
// wait passed) and computes the figures.
func collect(kind string, gws []*gateway, p *phase, s *sender, start time.Time, sendTime, wait time.Duration) (result, error) {
	if e := s.errs.Load(); e > 0 {
		return result{}, fmt.Errorf("%s: %d /revoke calls failed, last: %v", kind, e, s.last.Load())
	}
	ok := len(s.lat)
	deadline := time.Now().Add(wait)
	for {
		all := true
		for _, g := range gws {
			if g.done.Load() < int64(ok) {
				all = false
				break
			}
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := result{kind: kind, sent: len(p.toks), ok: ok, rate: float64(ok) / sendTime.Seconds(), revokeLat: summarize(s.lat)}
	var pairs, alls, fromSend []time.Duration
	var last int64
	for i := range p.toks {
		okAt := p.ok[i].Load()
		if okAt == 0 {
			continue
		}
		var worst time.Duration
		var lastRej int64
		complete := true
		for _, g := range gws {
			rej := g.rej[i].Load()
			if rej == 0 {
				r.missing++
				complete = false
				continue
			}
			last = max(last, rej)
			lastRej = max(lastRej, rej)
			d := time.Duration(rej - okAt)
			if d < 0 {
				r.early++
				d = 0
			}
			pairs = append(pairs, d)
			worst = max(worst, d)
		}
		if complete {
			alls = append(alls, worst)
			fromSend = append(fromSend, time.Duration(lastRej-p.sent[i].Load()))
		}
	}
	r.pair, r.all, r.fromSend = summarize(pairs), summarize(alls), summarize(fromSend)
	if kind == "burst" && last > 0 {
		r.wall = time.Duration(last - start.UnixNano())
	}
	if r.missing > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d (token, edge) pairs not rejected within %s\n", kind, r.missing, wait)
	}
	return r, nil
}

// replayPhase publishes o.replay token.revoked events, then has a child
// process start a fresh edge over the stream and report, o.replayRuns times
// over the same stream. With the server embedded, this process's CPU time
// while the child replays is the server's (plus the relay's and
// heartbeater's, idle here); with a separate server, -nats-pid gives it.
func replayPhase(ctx context.Context, c *cluster, o options, embedded bool) error {
	if err := publishReplay(ctx, c, o); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("Edge rebuild by replay (fresh edge in a child process, Start → current)")
	if o.replayHogs > 0 {
		fmt.Printf("  each replay runs beside %d CPU hog(s): sh -c 'while :; do :; done'\n", o.replayHogs)
	}
	fmt.Printf("%-6s %-5s %-10s %-10s %-9s %-9s %-10s %-10s %-9s %-4s %-11s %-11s\n",
		"build", "load", "events", "time", "events/s", "peak heap", "kept heap", "bytes/jti", "peak RSS", "GCs", "edge µs/ev", "server µs/ev")
	var sums [2]struct {
		runs          int
		nanos, edge   int64
		server        int64
		serverUnknown bool
	}
	for i := range o.replayRuns {
		bin, label := self, "this"
		if o.replayCompare != "" && i%2 == 1 {
			bin, label = o.replayCompare, "other"
		}
		profileDir := ""
		if o.profileDir != "" && i == 0 {
			profileDir = o.profileDir
		}
		load := testenv.LoadAverage()
		rr, serverCPU, err := replayOnce(c, o, bin, profileDir, embedded)
		if err != nil {
			return err
		}
		perEvent := func(d time.Duration) float64 {
			return float64(d.Nanoseconds()) / 1e3 / float64(max(rr.Applied, 1))
		}
		srv := "?"
		if serverCPU >= 0 {
			srv = fmt.Sprintf("%.2f", perEvent(serverCPU))
		}
		fmt.Printf("%-6s %-5s %-10d %-10s %-9.0f %-9s %-10s %-10.1f %-9s %-4d %-11.2f %-11s\n",
			label, load, rr.Applied, time.Duration(rr.Nanos).Round(time.Millisecond), float64(rr.Applied)/time.Duration(rr.Nanos).Seconds(),
			mib(rr.PeakHeap), mib(rr.KeptHeap), rr.BytesPerJTI, mib(rr.PeakRSS), rr.GCs, perEvent(time.Duration(rr.CPUNanos)), srv)
		k := i % 2
		if o.replayCompare == "" {
			k = 0
		}
		sums[k].runs++
		sums[k].nanos += rr.Nanos / int64(max(rr.Applied, 1))
		sums[k].edge += rr.CPUNanos / int64(max(rr.Applied, 1))
		if serverCPU >= 0 {
			sums[k].server += serverCPU.Nanoseconds() / int64(max(rr.Applied, 1))
		} else {
			sums[k].serverUnknown = true
		}
	}
	fmt.Println("  peak heap: largest HeapAlloc sampled every 20 ms during the replay; kept heap: HeapAlloc after GC minus before")
	fmt.Println("  the edge was created; bytes/jti: kept heap / jtis in the deny state; GCs: the edge's garbage collections,")
	fmt.Println("  Start → current; load: 1-minute load average at the start")
	fmt.Println("  edge µs/ev: the edge process's CPU time, Start → current, per event; server µs/ev: the server's CPU time over")
	fmt.Println("  the child's whole life, per event (embedded: this process's; separate: -nats-pid's)")
	for k, label := range []string{"this", "other"} {
		s := sums[k]
		if s.runs < 2 && o.replayCompare == "" {
			break
		}
		if s.runs == 0 {
			continue
		}
		srv := "?"
		if !s.serverUnknown {
			srv = fmt.Sprintf("%.2f", float64(s.server)/float64(s.runs)/1e3)
		}
		fmt.Printf("  mean of %d %s run(s): %.2f s per 1M events, edge %.2f µs/event, server %s µs/event\n",
			s.runs, label, float64(s.nanos)/float64(s.runs)*1e6/1e9, float64(s.edge)/float64(s.runs)/1e3, srv)
	}
	if o.profileDir != "" {
		fmt.Printf("  CPU profiles of the first run in %s: edge.pprof, server.pprof\n", o.profileDir)
	}
	return nil
}

// publishReplay publishes o.replay token.revoked events on the revocation
// stream.
func publishReplay(ctx context.Context, c *cluster, o options) error {
	n, publishers := o.replay, o.publishers
	fmt.Printf("\nreplay: publishing %d token.revoked events with bus.PublishBatch...\n", n)
	exp := time.Now().Add(10 * time.Minute).Unix()
	const chunk = 10_000
	start := time.Now()
	// A few concurrent publishers, each with its own window of pending
	// acknowledgements: one PublishBatch leaves the server idle while it
	// waits for acknowledgements.
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for range publishers {
		// Each publisher has its own connection: nats.go bounds the
		// asynchronous publishes pending per JetStream context.
		nc, err := nats.Connect(c.natsURL, nats.Name("valet-propagation-publisher"))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		pub, err := bus.NewPublisher(js, c.prefix)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(chunk) - chunk)
				if i >= n || firstErr.Load() != nil {
					return
				}
				evs := make([]events.Event, 0, chunk)
				for j := i; j < min(i+chunk, n); j++ {
					jti := "replay-" + strconv.Itoa(j)
					ev, err := events.New(events.DeterministicID(events.TypeTokenRevoked, c.prefix, jti), issuer, time.Now(),
						&events.TokenRevoked{JTI: jti, Exp: exp, ClientID: clientID})
					if err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
					evs = append(evs, ev)
				}
				if err := pub.PublishBatch(ctx, evs); err != nil {
					err = fmt.Errorf("publish: %w", err)
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return *e
	}
	pubTime := time.Since(start)
	fmt.Printf("replay: published %d in %s (%.0f events/s)\n", n, pubTime.Round(time.Millisecond), float64(n)/pubTime.Seconds())
	return nil
}

// replayOnce runs bin as the replay child, beside o.replayHogs CPU hogs, and
// returns its report and the server's CPU time over the child's life (-1
// when unknown: a separate server without -nats-pid).
func replayOnce(c *cluster, o options, bin, profileDir string, embedded bool) (replayResult, time.Duration, error) {
	args := []string{"-replay-child",
		"-nats", c.natsURL, "-prefix", c.prefix, "-jwks", c.jwksURL,
		"-max-life", c.maxLife.String(), "-want", strconv.Itoa(o.replay)}
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return replayResult{}, 0, err
		}
		args = append(args, "-cpuprofile", filepath.Join(profileDir, "edge.pprof"))
		if embedded {
			f, err := os.Create(filepath.Join(profileDir, "server.pprof"))
			if err != nil {
				return replayResult{}, 0, err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return replayResult{}, 0, err
			}
			defer pprof.StopCPUProfile()
		}
	}
	hogs, err := startHogs(o.replayHogs)
	defer stopHogs(hogs)
	if err != nil {
		return replayResult{}, 0, err
	}
	serverCPU := func() time.Duration {
		if embedded {
			return testenv.ProcessCPU()
		}
		if o.natsPID == 0 {
			return -1
		}
		d, err := testenv.ProcessCPUOf(o.natsPID)
		if err != nil {
			return -1
		}
		return d
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	cpu0 := serverCPU()
	outb, err := cmd.Output()
	cpu1 := serverCPU()
	if err != nil {
		return replayResult{}, 0, fmt.Errorf("replay child %s: %w", bin, err)
	}
	srv := time.Duration(-1)
	if cpu0 >= 0 && cpu1 >= 0 {
		srv = cpu1 - cpu0
	}
	var rr replayResult
	line := strings.TrimSpace(string(outb))
	if i := strings.LastIndex(line, "\n"); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &rr); err != nil {
		return replayResult{}, 0, fmt.Errorf("replay child said %q: %w", outb, err)
	}
	return rr, srv, nil
}

// startHogs starts n processes that each keep a core busy, as other work on
// a shared box does.
func startHogs(n int) ([]*exec.Cmd, error) {
	var hogs []*exec.Cmd
	for range n {
		h := exec.Command("sh", "-c", "while :; do :; done")
		if err := h.Start(); err != nil {
			return hogs, fmt.Errorf("CPU hog: %w", err)
		}
		hogs = append(hogs, h)
	}
	return hogs, nil
}

// stopHogs kills and reaps the hogs startHogs started.
func stopHogs(hogs []*exec.Cmd) {
	for _, h := range hogs {
		_ = h.Process.Kill()
		_ = h.Wait()
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

var errUsage = errors.New("usage")
