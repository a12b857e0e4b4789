package issuer_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// FuzzAuthorize throws arbitrary query strings and cookies at /authorize
// through the whole public handler: never a 5xx (the store is up), and a
// redirect only ever goes to a registered redirect URI.
func FuzzAuthorize(f *testing.F) {
	a := newAuthHarness(f)
	ch := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	good := url.Values{"response_type": {"code"}, "client_id": {webID}, "redirect_uri": {webRedir},
		"state": {"s"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}, "scope": {"read"}}.Encode()
	for _, s := range []struct{ q, cookie string }{
		{good, ""},
		{good, "valet_session=" + strings.Repeat("A", 43)},
		{good + "&client_id=web", ""},
		{good + "&resource=" + url.QueryEscape(apiID) + "&resource=x", ""},
		{strings.Replace(good, "S256", "plain", 1), ""},
		{"client_id=native&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcb&response_type=code", ""},
		{"client_id=native&redirect_uri=http%3A%2F%2F%5B%3A%3A1%5D%3A1%2Fcb", ""},
		{"%zz", ""}, {"", ""}, {"client_id=%00", ""}, {"redirect_uri=%", "valet_session=%"},
		{strings.Repeat("a=b&", 3000), ""},
	} {
		f.Add(s.q, s.cookie)
	}
	h := a.svc.Server().Public
	f.Fuzz(func(t *testing.T, q, cookie string) {
		req := httptest.NewRequest(http.MethodGet, "/authorize", nil)
		req.URL.RawQuery = q
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, q, rec.Body)
		}
		if loc := rec.Header().Get("Location"); loc != "" &&
			!strings.HasPrefix(loc, webRedir+"?") && !strings.HasPrefix(loc, "http://127.0.0.1:") && !strings.HasPrefix(loc, "http://[::1]:") {
			t.Fatalf("redirect to %q for %q", loc, q)
		}
	})
}

// FuzzLogin throws arbitrary form bodies and cookies at /login and /consent:
// never a 5xx, and no session without the CSRF token.
func FuzzLogin(f *testing.F) {
	a := newAuthHarness(f)
	ch := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	req := url.Values{"response_type": {"code"}, "client_id": {webID}, "redirect_uri": {webRedir},
		"code_challenge": {ch}, "code_challenge_method": {"S256"}}.Encode()
	csrf := strings.Repeat("B", 43)
	good := url.Values{"username": {alice}, "password": {alicePW}, "csrf": {csrf}, "request": {req}}.Encode()
	for _, s := range []struct{ path, body, cookie string }{
		{"/login", good, "valet_csrf=" + csrf},
		{"/login", good, ""},
		{"/login", good + "&csrf=x", "valet_csrf=" + csrf},
		{"/login", "username=&password=&csrf=" + csrf, "valet_csrf=" + csrf},
		{"/login", "%zz", ""},
		{"/login", "request=%00&csrf=" + csrf, "valet_csrf=" + csrf},
		{"/login", "password=" + strings.Repeat("p", 2000) + "&username=alice&csrf=" + csrf + "&request=" + url.QueryEscape(req), "valet_csrf=" + csrf},
		{"/consent", "approve=1&csrf=x&request=" + url.QueryEscape(req), "valet_session=" + strings.Repeat("A", 43)},
		{"/logout", "csrf=x", ""},
	} {
		f.Add(s.path, s.body, s.cookie)
	}
	h := a.svc.Server().Public
	f.Fuzz(func(t *testing.T, path, body, cookie string) {
		switch path {
		case "/login", "/consent", "/logout":
		default:
			path = "/login"
		}
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %s %q: %s", rec.Code, path, body, rec.Body)
		}
		if rec.Code == http.StatusServiceUnavailable && !strings.Contains(rec.Body.String(), "Too many sign-ins") {
			t.Fatalf("503 without the hashing cap: %s %q", path, body)
		}
		if path == "/login" && !strings.Contains(cookie, "valet_csrf=") && strings.Contains(rec.Header().Get("Set-Cookie"), "valet_session=") {
			t.Fatalf("a session without the CSRF cookie: %q", body)
		}
	})
}
