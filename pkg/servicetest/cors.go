package servicetest

import (
	"net/http"
	"strings"
	"testing"
)

// CORSRequest sends method to u as a browser page at origin would (no
// Origin header when origin is ""), with the headers hdr and body, and
// returns the answer with its body closed: CORS lives in the headers. It
// follows no redirect, so that the answer checked is the endpoint's own.
func CORSRequest(t testing.TB, method, u, origin string, hdr map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

// VaryOrigin reports whether h lists Origin in Vary: an answer that
// depends on the origin must say so, or a cache serves it to another.
func VaryOrigin(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(f) == "Origin" {
				return true
			}
		}
	}
	return false
}

// NoCORS reports an error on t for every Access-Control-* header in h,
// naming what was asked: routes outside the allow-list answer none.
func NoCORS(t testing.TB, what string, h http.Header) {
	t.Helper()
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("%s: unexpected %s: %q", what, k, h.Get(k))
		}
	}
}
