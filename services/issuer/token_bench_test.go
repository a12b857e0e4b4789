package issuer_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit/clientlimittest"
	"github.com/valetauth/valet/pkg/servicetest"
)

// discard is a ResponseWriter that keeps the status and drops the body, so
// the benchmark measures the server side only.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// BenchmarkTokenClientCredentials is the cost of one client-credentials
// token through the issuer's public handler (echo middleware, form, client
// authentication against a warm cache, scopes, claims, ES256 signature,
// response), without the network. Compare with pkg/keys
// BenchmarkSignAccessToken, the signature alone.
//
//	go test -run '^$' -bench TokenClientCredentials -benchmem ./services/issuer
func BenchmarkTokenClientCredentials(b *testing.B) {
	h := newHarness(b)
	handler := h.svc.Server().Public
	cases := []struct {
		name, body, auth string
	}{
		{"basic", "grant_type=client_credentials&scope=read", servicetest.Basic(clientA, h.secretA)},
		{"post", "grant_type=client_credentials&scope=read&client_id=svc-a&client_secret=" + h.secretA, ""},
		{"defaults", "grant_type=client_credentials", servicetest.Basic(clientA, h.secretA)},
	}
	for _, c := range cases {
		newReq := func() *http.Request {
			r, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "/token", nil)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			return r
		}
		serve := func(b *testing.B, r *http.Request, w *discard) {
			r.Body = readCloser{strings.NewReader(c.body)}
			clear(w.h)
			handler.ServeHTTP(w, r)
			if w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			r, w := newReq(), &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				serve(b, r, w)
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r, w := newReq(), &discard{h: http.Header{}}
				for pb.Next() {
					serve(b, r, w)
				}
			})
		})
	}
}

// BenchmarkTokenErrors is the cost of a refusal (wrong secret): with the
// failure limit off, 401 after one MAC and no signature; with the default
// limit, past its burst, 429 before any authentication, which is what a
// flood of wrong secrets from one address meets.
func BenchmarkTokenErrors(b *testing.B) {
	unlimited := config.Default().Limits
	unlimited.ClientAuthFailuresPerSecond = 0
	// The limited issuer's clock stands still: no refill lets a 401 through.
	clk := clientlimittest.NewClock()
	for _, c := range []struct {
		name   string
		limits clientlimit.Limits
		want   int
	}{
		{"401-unlimited", clientlimittest.Limits(b, unlimited, clk), http.StatusUnauthorized},
		{"429-limited", clientlimittest.Limits(b, config.Default().Limits, clk), http.StatusTooManyRequests},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := newHarnessLimited(b, c.limits)
			handler := h.svc.Server().Public
			body := url.Values{"grant_type": {"client_credentials"}}.Encode()
			r, _ := http.NewRequest(http.MethodPost, "/token", nil)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Authorization", servicetest.Basic(clientA, h.secretA+"x"))
			r.RemoteAddr = "192.0.2.7:40000"
			w := &discard{h: http.Header{}}
			if c.want == http.StatusTooManyRequests {
				// Spend the burst first: the figure is the steady 429.
				for w.code != c.want {
					r.Body = readCloser{strings.NewReader(body)}
					clear(w.h)
					handler.ServeHTTP(w, r)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Body = readCloser{strings.NewReader(body)}
				clear(w.h)
				handler.ServeHTTP(w, r)
				if w.code != c.want {
					b.Fatalf("status %d, want %d", w.code, c.want)
				}
			}
		})
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
