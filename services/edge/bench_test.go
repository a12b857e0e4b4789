package edge_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/services/edge"
)

// BenchmarkForwardAuth is one Traefik forward-auth decision for a cached
// token through the whole public handler (echo, request id, metrics, access
// log check, route match, Verify, identity headers), without the network.
func BenchmarkForwardAuth(b *testing.B) {
	e := newEnv(b)
	a := e.startAuthz(b, testPolicy)
	h := a.svc.Server().Public
	req := a.traefik(b, "GET", "/reports/42?page=1", e.sign(b, claims()))
	req.RequestURI = edge.PathTraefik
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d, want 200", rec.Code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkForwardAuthParallel is BenchmarkForwardAuth on every core.
func BenchmarkForwardAuthParallel(b *testing.B) {
	e := newEnv(b)
	a := e.startAuthz(b, testPolicy)
	h := a.svc.Server().Public
	tok := e.sign(b, claims())
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := a.traefik(b, "GET", "/reports/42?page=1", tok)
		req.RequestURI = edge.PathTraefik
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
}

// BenchmarkForwardAuthWrk runs wrk (Debian package wrk) against the running
// authorizer's Traefik endpoint over TCP: 2 threads, 32 connections, one
// cached token, for EDGE_WRK_DURATION (default 10s). It reports wrk's
// decisions/s and p99; run it once:
//
//	go test -run '^$' -bench ForwardAuthWrk -benchtime 1x ./
func BenchmarkForwardAuthWrk(b *testing.B) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk not found: install it (Debian: apt-get install -y wrk)")
	}
	e := newEnv(b)
	a := e.startAuthz(b, testPolicy)
	tok := e.sign(b, claims())
	if r := ask(b, a.traefik(b, "GET", "/reports/42?page=1", tok)); r.status != http.StatusOK {
		b.Fatalf("status %d, want 200", r.status)
	}
	d := os.Getenv("EDGE_WRK_DURATION")
	if d == "" {
		d = "10s"
	}
	b.ResetTimer()
	for range b.N {
		out, err := exec.Command(bin, "-t2", "-c32", "-d"+d, "--latency",
			"-H", "Authorization: Bearer "+tok,
			"-H", "X-Forwarded-Method: GET",
			"-H", "X-Forwarded-Uri: /reports/42?page=1",
			"-H", "X-Forwarded-Host: api.test",
			a.url+edge.PathTraefik).CombinedOutput()
		if err != nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		text := string(out)
		b.Logf("wrk -t2 -c32 -d%s --latency (Authorization, X-Forwarded-*) %s%s\n%s", d, a.url, edge.PathTraefik, text)
		if strings.Contains(text, "Non-2xx") {
			b.Fatalf("wrk saw non-2xx answers:\n%s", text)
		}
		for line := range strings.SplitSeq(text, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) == 2 && f[0] == "Requests/sec:":
				if v, err := strconv.ParseFloat(f[1], 64); err == nil {
					b.ReportMetric(v, "decisions/s")
				}
			case len(f) == 2 && f[0] == "99%":
				if v, err := time.ParseDuration(f[1]); err == nil {
					b.ReportMetric(float64(v.Microseconds()), "p99-µs")
				}
			}
		}
	}
}

// BenchmarkReverseProxy is one proxied GET for a cached token through the
// whole public handler (echo, request id, metrics, access-log check, route
// match, Verify, identity and X-Forwarded-* headers) to an upstream that
// answers 200 with a 17-byte body: "http" goes through
// httputil.ReverseProxy to an httptest server on loopback (one pooled
// connection, so the upstream's own cost is in the figure), "in-process"
// calls Deps.Upstream directly. Without the network between client and
// edge.
func BenchmarkReverseProxy(b *testing.B) {
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(edge.HeaderSubject) != "alice" {
			http.Error(w, "no identity", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"upstream":"ok"}`))
	})
	up := httptest.NewServer(answer)
	b.Cleanup(up.Close)
	for _, bc := range []struct {
		name string
		edit func(*config.Config, *edge.Deps)
	}{
		{"http", func(c *config.Config, _ *edge.Deps) { c.Services.Edge.Upstream = up.URL }},
		{"in-process", func(_ *config.Config, d *edge.Deps) { d.Upstream = answer }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b)
			a := e.startAuthzWith(b, testPolicy, bc.edit)
			h := a.svc.Server().Public
			req := httptest.NewRequest(http.MethodGet, "/reports/42?page=1", nil)
			req.Header.Set("Authorization", "Bearer "+e.sign(b, claims()))
			serve := func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req) // the proxy rewrites the same headers each time
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			serve()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				serve()
			}
		})
	}
}
