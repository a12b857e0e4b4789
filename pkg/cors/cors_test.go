package cors

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/valetauth/valet/pkg/store"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"https://App.Example.com":      "https://app.example.com",
		"https://app.example.com/":     "https://app.example.com",
		"https://app.example.com:443":  "https://app.example.com",
		"http://localhost:80":          "http://localhost",
		"http://127.0.0.1:5173":        "http://127.0.0.1:5173",
		"https://[::1]:8443":           "https://[::1]:8443",
		"null":                         "",
		"":                             "",
		"https://*.example.com":        "",
		"*":                            "",
		"https://app.example.com/path": "",
		"https://app.example.com?x=1":  "",
		"https://u@app.example.com":    "",
		"ftp://app.example.com":        "",
		"app.example.com":              "",
		"https://app.example.com:0":    "",
	} {
		got, ok := Normalize(in)
		if got != want || ok != (want != "") {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func serve(p Policy, method, origin string, hdr map[string]string) *httptest.ResponseRecorder {
	e := echo.New()
	e.Match([]string{http.MethodPost, http.MethodOptions}, "/x", func(c echo.Context) error {
		return c.String(http.StatusOK, "ok")
	}, p.Middleware())
	req := httptest.NewRequest(method, "/x", nil)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	return w
}

func TestMiddleware(t *testing.T) {
	p := Policy{Origins: NewStatic("https://app.example.com"), Methods: []string{http.MethodPost}, MaxAge: time.Minute}
	pre := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}

	w := serve(p, http.MethodOptions, "https://app.example.com", pre)
	h := w.Header()
	if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		h.Get("Access-Control-Allow-Methods") != "POST" || h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
		h.Get("Access-Control-Max-Age") != "60" || h.Get("Access-Control-Allow-Credentials") != "" || !vary(h) {
		t.Fatalf("allowed preflight: %d %v", w.Code, h)
	}
	for _, o := range []string{"https://evil.example.com", "null", "https://app.example.com.evil.com", "http://app.example.com"} {
		w := serve(p, http.MethodOptions, o, pre)
		if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "" || !vary(w.Header()) {
			t.Fatalf("preflight from %s: %d %v", o, w.Code, w.Header())
		}
	}
	w = serve(p, http.MethodOptions, "https://app.example.com", map[string]string{"Access-Control-Request-Method": "DELETE"})
	if w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight for DELETE allowed: %v", w.Header())
	}

	w = serve(p, http.MethodPost, "https://app.example.com", nil)
	if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" || !vary(w.Header()) {
		t.Fatalf("actual request: %d %v", w.Code, w.Header())
	}
	w = serve(p, http.MethodPost, "https://evil.example.com", nil)
	if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "" || !vary(w.Header()) {
		t.Fatalf("unregistered actual request: %d %v", w.Code, w.Header())
	}
	w = serve(Policy{Methods: []string{http.MethodPost}}, http.MethodPost, "https://app.example.com", nil)
	if w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("nil origins allowed: %v", w.Header())
	}
}

func vary(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		if v == "Origin" {
			return true
		}
	}
	return false
}

type lister struct {
	clients []store.Client
	fail    atomic.Bool
}

func (l *lister) ListClients(context.Context) ([]store.Client, error) {
	if l.fail.Load() {
		return nil, store.ErrUnavailable
	}
	return l.clients, nil
}

func TestRegistry(t *testing.T) {
	l := &lister{clients: []store.Client{
		{ID: "spa", Type: store.Public, CORSOrigins: []string{"https://App.example.com:443"}},
		{ID: "off", Type: store.Public, Disabled: true, CORSOrigins: []string{"https://off.example.com"}},
		{ID: "conf", Type: store.Confidential, CORSOrigins: []string{"https://conf.example.com"}},
		{ID: "bad", Type: store.Public, CORSOrigins: []string{"null", "https://*.example.com"}},
	}}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	r, err := NewRegistry(l, WithMaxStale(time.Minute), WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	if r.Allowed("https://app.example.com") {
		t.Fatal("allowed before the first read")
	}
	l.fail.Store(true)
	if err := r.Refresh(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("refresh during outage: %v", err)
	}
	if r.Allowed("https://app.example.com") {
		t.Fatal("outage before the first read opened CORS")
	}
	l.fail.Store(false)
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for o, want := range map[string]bool{
		"https://app.example.com": true, "https://off.example.com": false, "https://conf.example.com": false,
		"null": false, "https://x.example.com": false, "": false,
	} {
		if r.Allowed(o) != want {
			t.Errorf("Allowed(%q) = %v", o, !want)
		}
	}
	l.fail.Store(true)
	_ = r.Refresh(context.Background())
	if !r.Allowed("https://app.example.com") {
		t.Fatal("last set dropped at once on an outage")
	}
	now.Add(int64(2 * time.Minute))
	if r.Allowed("https://app.example.com") {
		t.Fatal("stale set still served after max-stale")
	}
}
