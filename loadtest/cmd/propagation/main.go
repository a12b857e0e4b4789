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
//     deny state keeps per revoked jti, and the CPU time per event of the
//     edge and (embedded) of the server, each in its own process, with CPU
//     profiles of both under -replay-profile.
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
	)
	flag.Parse()
	o := options{rate: *rate, duration: *duration, burst: *burst, workers: *workers, replay: *replay, publishers: max(1, *pubs), profileDir: *profile, wait: *wait, phases: map[string]bool{}}
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
// process start a fresh edge over the stream and report. With the server
// embedded, this process's CPU time while the child replays is the
// server's (plus the relay's and heartbeater's, idle here).
func replayPhase(ctx context.Context, c *cluster, o options, embedded bool) error {
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

	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-replay-child",
		"-nats", c.natsURL, "-prefix", c.prefix, "-jwks", c.jwksURL,
		"-max-life", c.maxLife.String(), "-want", strconv.Itoa(n)}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
		args = append(args, "-cpuprofile", filepath.Join(o.profileDir, "edge.pprof"))
		f, err := os.Create(filepath.Join(o.profileDir, "server.pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	cpu0 := processCPU()
	outb, err := cmd.Output()
	serverCPU := processCPU() - cpu0
	if o.profileDir != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return fmt.Errorf("replay child: %w", err)
	}
	var rr replayResult
	line := strings.TrimSpace(string(outb))
	if i := strings.LastIndex(line, "\n"); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &rr); err != nil {
		return fmt.Errorf("replay child said %q: %w", outb, err)
	}
	fmt.Println()
	fmt.Println("Edge rebuild by replay (fresh edge in a child process, Start → current)")
	fmt.Printf("%-12s %-10s %-12s %-14s %-14s %-14s %-12s\n", "events", "jtis", "time", "events/s", "peak heap", "kept heap", "bytes/jti")
	fmt.Printf("%-12d %-10d %-12s %-14.0f %-14s %-14s %-12.1f\n",
		rr.Applied, rr.JTIs, time.Duration(rr.Nanos).Round(time.Millisecond), float64(rr.Applied)/time.Duration(rr.Nanos).Seconds(),
		mib(rr.PeakHeap), mib(rr.KeptHeap), rr.BytesPerJTI)
	fmt.Printf("  peak heap: largest HeapAlloc sampled every 20 ms during the replay; kept heap: HeapAlloc after GC minus before\n")
	fmt.Printf("  the edge was created; bytes/jti: kept heap / jtis in the deny state (process peak RSS %s)\n", mib(rr.PeakRSS))
	perEvent := func(d time.Duration) string {
		return fmt.Sprintf("%.2f µs/event", float64(d.Nanoseconds())/1e3/float64(max(rr.Applied, 1)))
	}
	fmt.Printf("  CPU: edge process %s (%s, Start → current)", time.Duration(rr.CPUNanos).Round(time.Millisecond), perEvent(time.Duration(rr.CPUNanos)))
	if embedded {
		fmt.Printf(", embedded server %s (%s, the child's whole life)", serverCPU.Round(time.Millisecond), perEvent(serverCPU))
	}
	fmt.Println()
	if o.profileDir != "" {
		fmt.Printf("  CPU profiles in %s: edge.pprof, server.pprof\n", o.profileDir)
	}
	return nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

var errUsage = errors.New("usage")
