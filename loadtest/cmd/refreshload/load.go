package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valetauth/valet/loadtest/internal/codeflow"
	"github.com/valetauth/valet/pkg/testenv"
)

// results are what the workers saw, merged.
type results struct {
	measured  time.Duration
	latencies []time.Duration // of the measured rotations, sorted
	rotations int             // successful rotations started in the measured window
	warm      int             // successful rotations before it
	failures  map[string]int  // by "status error" or transport failure
	chains    int
	alive     int           // chains still rotating at the end
	generator time.Duration // this process's CPU time over the measured window
	server    counts        // the issuer's own counts, when scraped
}

// worker is one chain's state and its private tallies.
type worker struct {
	client    *http.Client
	url, auth string
	public    string // the public client's id, sent in the body; empty when auth is set
	narrow    string
	token     string
	lat       []time.Duration
	rotations int
	warm      int
	failures  map[string]int
	dead      bool
	buf       bytes.Buffer
}

// attack rotates every chain from now until the warm-up and the measured
// duration have passed.
func attack(ctx context.Context, o options, chains []string) *results {
	tr := &http.Transport{
		Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns: len(chains), MaxIdleConnsPerHost: len(chains), MaxConnsPerHost: len(chains),
		IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.timeout}
	auth := ""
	if o.flow.ClientSecret != "" {
		auth = codeflow.BasicAuth(o.flow.ClientID, o.flow.ClientSecret)
	}
	start := time.Now()
	from, end := start.Add(o.warmup), start.Add(o.warmup+o.duration)
	var cpu0 atomic.Int64 // this process's CPU time when the measured window opens; -1 before
	cpu0.Store(-1)
	cpuTimer := time.AfterFunc(o.warmup, func() { cpu0.Store(int64(testenv.ProcessCPU())) })
	ws := make([]*worker, len(chains))
	var wg sync.WaitGroup
	for i, tok := range chains {
		w := &worker{client: client, url: o.flow.TokenURL, auth: auth, narrow: o.narrow, token: tok,
			failures: map[string]int{}, lat: make([]time.Duration, 0, 4096)}
		if auth == "" {
			w.public = o.flow.ClientID
		}
		ws[i] = w
		wg.Add(1)
		go func() { defer wg.Done(); w.loop(ctx, from, end) }()
	}
	wg.Wait()
	cpuTimer.Stop()
	r := &results{measured: o.duration, failures: map[string]int{}, chains: len(chains)}
	if c := cpu0.Load(); c >= 0 {
		r.generator = testenv.ProcessCPU() - time.Duration(c)
	}
	if now := time.Now(); now.Before(end) { // interrupted, or every chain broke
		r.measured = max(now.Sub(from), 0)
	}
	for _, w := range ws {
		r.latencies = append(r.latencies, w.lat...)
		r.rotations += w.rotations
		r.warm += w.warm
		for k, n := range w.failures {
			r.failures[k] += n
		}
		if !w.dead {
			r.alive++
		}
	}
	slices.Sort(r.latencies)
	return r
}

// loop rotates the worker's chain until end. A failure ends the chain: the
// state of a family after an unanswered or refused rotation is not known,
// and presenting its token again could be taken for reuse.
func (w *worker) loop(ctx context.Context, from, end time.Time) {
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		next, fail := w.rotate(ctx)
		lat := time.Since(t0)
		if fail != "" {
			if ctx.Err() != nil {
				return // interrupted: not the server's failure
			}
			w.failures[fail]++
			w.dead = true
			return
		}
		w.token = next
		if t0.Before(from) {
			w.warm++
			continue
		}
		w.rotations++
		w.lat = append(w.lat, lat)
	}
}

// rotate sends one refresh request and returns the successor, or a failure
// label: "<status> <error>" (RFC 6749 §5.2) or a transport error.
func (w *worker) rotate(ctx context.Context) (string, string) {
	body := "grant_type=refresh_token&refresh_token=" + url.QueryEscape(w.token)
	if w.narrow != "" {
		body += "&scope=" + url.QueryEscape(w.narrow)
	}
	if w.public != "" {
		body += "&client_id=" + url.QueryEscape(w.public)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, strings.NewReader(body))
	if err != nil {
		return "", "request: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w.auth != "" {
		req.Header.Set("Authorization", w.auth)
	}
	res, err := w.client.Do(req)
	if err != nil {
		return "", "transport: " + transportError(err)
	}
	w.buf.Reset()
	_, err = w.buf.ReadFrom(io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if err != nil {
		return "", "transport: reading the body: " + transportError(err)
	}
	b := w.buf.Bytes()
	if res.StatusCode != http.StatusOK {
		return "", refusal(res.StatusCode, b)
	}
	next := field(b, `"refresh_token":"`)
	switch {
	case len(field(b, `"access_token":"`)) == 0 || !bytes.Contains(b, []byte(`"token_type":"Bearer"`)):
		return "", "200 without a bearer access token"
	case len(next) == 0:
		return "", "200 without a refresh token"
	case string(next) == w.token:
		return "", "200 with the presented refresh token again (not rotated)"
	}
	return string(next), ""
}

// field returns the JSON string value after key in b (token values need no
// unescaping), without decoding the whole response on the generator's share
// of the CPU.
func field(b []byte, key string) []byte {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil
	}
	v := b[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}

// refusal labels a non-200 answer by status and error code, and says so
// when it is reuse detection.
func refusal(status int, b []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(b, &e)
	if e.Error == "" {
		e.Error = "(no error code)"
	}
	label := fmt.Sprintf("%d %s", status, e.Error)
	if e.Error == "invalid_grant" && strings.Contains(e.Description, "already used") {
		label += " (REUSE DETECTED: the family was revoked)"
	}
	return label
}

// transportError shortens a client error to its kind.
func transportError(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	}
	return err.Error()
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (r *results) failed() int {
	n := 0
	for _, c := range r.failures {
		n += c
	}
	return n
}

func (r *results) report(w io.Writer, o options) {
	kind := "confidential client, client_secret_basic"
	if o.flow.ClientSecret == "" {
		kind = "public client"
	}
	narrow := "no scope parameter"
	if o.narrow != "" {
		narrow = fmt.Sprintf("scope=%q on every refresh", o.narrow)
	}
	secs := r.measured.Seconds()
	fmt.Fprintf(w, "refresh_token via refreshload: %d chains (%s, %s), %s measured after %s warm-up\n",
		r.chains, kind, narrow, r.measured.Round(time.Millisecond), o.warmup)
	rate := 0.0
	if secs > 0 {
		rate = float64(r.rotations) / secs
	}
	fmt.Fprintf(w, "  rotations     %d (%.0f/s); %d more in the warm-up\n", r.rotations, rate, r.warm)
	for _, p := range []float64{50, 90, 99} {
		fmt.Fprintf(w, "  latency p%-4g %s\n", p, round(percentile(r.latencies, p)))
	}
	maxLat := time.Duration(0)
	if n := len(r.latencies); n > 0 {
		maxLat = r.latencies[n-1]
	}
	fmt.Fprintf(w, "  latency max   %s\n", round(maxLat))
	fmt.Fprintf(w, "  chains        %d alive of %d at the end\n", r.alive, r.chains)
	if r.rotations > 0 {
		fmt.Fprintf(w, "  generator CPU %.1f us per rotation\n", float64(r.generator.Microseconds())/float64(r.rotations))
	}
	if r.server.seen {
		fmt.Fprintf(w, "  issuer counts rotated %.0f, grace %.0f, reuse %.0f\n", r.server.rotated, r.server.grace, r.server.reuse)
	}
	if len(r.failures) == 0 {
		fmt.Fprintf(w, "  errors        none\n")
		return
	}
	keys := make([]string, 0, len(r.failures))
	for k := range r.failures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  errors        %d × %s\n", r.failures[k], k)
	}
}

// verdict prints PASS or a loud FAILED and returns an error for the
// latter: every rotation must succeed, none may be taken for reuse.
func (r *results) verdict(w io.Writer) error {
	var why []string
	if n := r.failed(); n > 0 {
		why = append(why, fmt.Sprintf("%d rotation(s) failed, %d of %d chains broken", n, r.chains-r.alive, r.chains))
	}
	if r.server.seen && (r.server.reuse > 0 || r.server.grace > 0) {
		why = append(why, fmt.Sprintf("the issuer counted %.0f reuse and %.0f grace replays; one chain per worker must cause neither", r.server.reuse, r.server.grace))
	}
	if seen := r.rotations + r.warm; r.server.seen && int(r.server.rotated) != seen {
		why = append(why, fmt.Sprintf("the issuer rotated %.0f times, the generator saw %d rotations", r.server.rotated, seen))
	}
	if r.rotations == 0 && r.measured > 0 {
		why = append(why, "no rotation in the measured window")
	}
	if len(why) == 0 {
		fmt.Fprintln(w, "PASS: every rotation succeeded")
		return nil
	}
	bar := strings.Repeat("!", 72)
	fmt.Fprintf(w, "%s\nFAILED: %s\n%s\n", bar, strings.Join(why, "; "), bar)
	return errors.New("FAILED: " + strings.Join(why, "; "))
}

func round(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

// counts are the issuer's valet_refresh_rotations_total by outcome.
type counts struct {
	rotated, grace, reuse float64
	seen                  bool
}

func (c counts) minus(b counts) counts {
	return counts{rotated: c.rotated - b.rotated, grace: c.grace - b.grace, reuse: c.reuse - b.reuse, seen: c.seen && b.seen}
}

// scrape reads valet_refresh_rotations_total from the issuer's /metrics;
// nothing when url is empty.
func scrape(ctx context.Context, url string) (counts, error) {
	if url == "" {
		return counts{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return counts{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return counts{}, fmt.Errorf("metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return counts{}, fmt.Errorf("metrics: status %d", res.StatusCode)
	}
	c := counts{seen: true}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "valet_refresh_rotations_total{") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(name, `outcome="rotated"`):
			c.rotated = v
		case strings.Contains(name, `outcome="grace"`):
			c.grace = v
		case strings.Contains(name, `outcome="reuse"`):
			c.reuse = v
		}
	}
	return c, sc.Err()
}
