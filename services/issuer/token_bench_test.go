package issuer_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

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

// BenchmarkTokenErrors is the cost of a refusal (wrong secret): no
// signature, one MAC.
func BenchmarkTokenErrors(b *testing.B) {
	h := newHarness(b)
	handler := h.svc.Server().Public
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	r, _ := http.NewRequest(http.MethodPost, "/token", nil)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", servicetest.Basic(clientA, h.secretA+"x"))
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r.Body = readCloser{strings.NewReader(body)}
		clear(w.h)
		handler.ServeHTTP(w, r)
		if w.code != 401 {
			b.Fatalf("status %d", w.code)
		}
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
