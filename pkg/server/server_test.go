package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func start(t *testing.T, ready ...Check) (*Server, string, string, context.CancelFunc, chan error) {
	t.Helper()
	s, err := New(Options{Service: "test", PublicAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Logger: zap.NewNop(),
		Registry: prometheus.NewRegistry(), Ready: ready, MaxBodyBytes: 1024, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.Public.POST("/slow", func(c echo.Context) error {
		time.Sleep(300 * time.Millisecond)
		return c.String(http.StatusOK, "done")
	})
	s.Public.POST("/echo", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, string(b))
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	pub, adm, err := s.Addrs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	return s, "http://" + pub.String(), "http://" + adm.String(), cancel, done
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHealthReadyAndMetrics(t *testing.T) {
	var down error
	_, pub, adm, _, _ := start(t, Check{Name: "redis", Fn: func(context.Context) error { return down }})
	tests := []struct {
		name string
		url  string
		down error
		want int
	}{
		{"healthz admin", adm + "/healthz", nil, 200},
		{"healthz public", pub + "/healthz", nil, 200},
		{"ready", adm + "/readyz", nil, 200},
		{"not ready", adm + "/readyz", errors.New("connection refused"), 503},
		{"healthz while dependency down", adm + "/healthz", errors.New("connection refused"), 200},
		{"unknown route", pub + "/nope", nil, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			down = tc.down
			resp, _ := get(t, tc.url)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	_, body := get(t, adm+"/metrics")
	if !strings.Contains(body, `valet_http_requests_total{code="404",listener="public",method="GET",route="unmatched",service="test"} 1`) {
		t.Fatalf("metrics lack the 404 count:\n%s", body)
	}
}

func TestRequestIDKeptWhenPlainReplacedOtherwise(t *testing.T) {
	_, pub, _, _, _ := start(t)
	resp, _ := get(t, pub+"/healthz", "X-Request-Id", "abc-123")
	if got := resp.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("plain id replaced: %q", got)
	}
	resp, _ = get(t, pub+"/healthz", "X-Request-Id", "evil\tid "+strings.Repeat("x", 100))
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, "\t ") || len(got) > 64 {
		t.Fatalf("hostile id kept: %q", got)
	}
}

func TestBodyLimitIsJSON413(t *testing.T) {
	_, pub, _, _, _ := start(t)
	resp, err := http.Post(pub+"/echo", "text/plain", strings.NewReader(strings.Repeat("a", 4096)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("body not JSON: %v", err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || body["error"] != "invalid_request" {
		t.Fatalf("got %d %v", resp.StatusCode, body)
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	_, pub, _, cancel, done := start(t)
	result := make(chan string, 1)
	go func() {
		resp, err := http.Post(pub+"/slow", "text/plain", nil)
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	time.Sleep(100 * time.Millisecond) // the request is in flight
	cancel()
	if got := <-result; got != "done" {
		t.Fatalf("in-flight request got %q, want it drained", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil // for the cleanup
}

// TestRealIPBelievesOnlyTrustedProxies: the access log's remote address is
// the TCP peer unless the peer is a configured trusted proxy; a client
// cannot write another address into the logs with X-Forwarded-For.
func TestRealIPBelievesOnlyTrustedProxies(t *testing.T) {
	proxy := netip.MustParsePrefix("10.0.0.0/8")
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     string
		want    string
	}{
		{"no proxies configured", nil, "203.0.113.5:4000", "198.51.100.7", "203.0.113.5"},
		{"loopback is not trusted by default", nil, "127.0.0.1:4000", "198.51.100.7", "127.0.0.1"},
		{"untrusted peer", []netip.Prefix{proxy}, "203.0.113.5:4000", "198.51.100.7", "203.0.113.5"},
		{"trusted proxy", []netip.Prefix{proxy}, "10.1.2.3:4000", "198.51.100.7", "198.51.100.7"},
		{"forged left entry", []netip.Prefix{proxy}, "10.1.2.3:4000", "192.0.2.66, 198.51.100.7", "198.51.100.7"},
		{"two trusted hops", []netip.Prefix{proxy}, "10.1.2.3:4000", "198.51.100.7, 10.9.9.9", "198.51.100.7"},
		{"malformed entry stops the walk", []netip.Prefix{proxy}, "10.1.2.3:4000", "198.51.100.7, junk, 10.9.9.9", "10.9.9.9"},
		{"only proxies", []netip.Prefix{proxy}, "10.1.2.3:4000", "10.9.9.9", "10.9.9.9"},
		{"mapped IPv4 peer", nil, "[::ffff:203.0.113.5]:4000", "198.51.100.7", "203.0.113.5"},
		{"IPv6 client", []netip.Prefix{proxy}, "10.1.2.3:4000", "2001:db8::1", "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Options{Service: "test", Logger: zap.NewNop(), Registry: prometheus.NewRegistry(), TrustedProxies: tc.trusted})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tc.peer
			req.Header.Set("X-Forwarded-For", tc.xff)
			if got := s.Public.IPExtractor(req); got != tc.want {
				t.Fatalf("RealIP = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLogsNameTheServiceOnce: the server logs with the caller's logger as
// given. boot.Main and valet dev scope theirs to the service, so a field
// added here too would name the service twice in every line.
func TestLogsNameTheServiceOnce(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core).With(zap.String("service", "issuer"))
	s, err := New(Options{Service: "issuer", PublicAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Logger: log,
		Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if _, _, err := s.Addrs(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if logs.Len() == 0 {
		t.Fatal("the server logged nothing")
	}
	for _, e := range logs.All() {
		n := 0
		for _, f := range e.Context {
			if f.Key == "service" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%q names the service %d times: %v", e.Message, n, e.Context)
		}
	}
}
