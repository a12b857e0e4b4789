package issuer_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/valetauth/valet/pkg/servicetest"
)

// FuzzTokenForm throws arbitrary bodies, Authorization headers and content
// types at /token through the whole public handler (middleware included).
// With the store up, no answer may be a 5xx; every answer is either a token
// or an RFC 6749 error object with no-store; nothing panics (echo's Recover
// would turn a panic into a 500, which fails the test). The seed
// corpus runs in `go test`; `go test -fuzz FuzzTokenForm` explores further.
func FuzzTokenForm(f *testing.F) {
	h := newHarness(f)
	cc := "grant_type=client_credentials"
	auth := servicetest.Basic(clientA, h.secretA)
	const form = "application/x-www-form-urlencoded"
	seeds := []struct{ body, auth, ct string }{
		{cc, auth, form},
		{cc + "&scope=read+write&resource=" + url.QueryEscape(apiID), auth, form},
		{cc + "&client_id=svc-a&client_secret=" + h.secretA, "", form},
		{cc + "&client_id=svc-a&client_secret=" + h.secretA, auth, form},
		{"", auth, form},
		{"&&&=&=", auth, form},
		{"grant_type=%", auth, form},
		{"grant_type=%zz", auth, form},
		{cc + "&scope=%00%ff%22", auth, form},
		{cc + "&scope=" + strings.Repeat("a ", 300), auth, form},
		{cc + "&resource=" + strings.Repeat("r", 3000), auth, form},
		{cc + strings.Repeat("&a=b", 33), auth, form},
		{cc + "&grant_type=client_credentials", auth, form},
		{cc, "Basic", form},
		{cc, "Basic =", form},
		{cc, "Basic " + b64(":"), form},
		{cc, "Basic " + b64("%zz:%zz"), form},
		{cc, "Basic " + b64(strings.Repeat("x", 200)+":y"), form},
		{cc, "basic " + b64(clientA+":"+h.secretA), form},
		{cc, "Bearer x", form},
		{cc, auth, "application/x-www-form-urlencoded; charset=utf-8"},
		{cc, auth, "application/x-www-form-urlencoded; charset"},
		{cc, auth, "text/plain"},
		{"grant_type=client_credentials&client_id=%00", "", form},
		{"grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=x", auth, form},
		{"grant_type=refresh_token&refresh_token=vrt_x", auth, form},
		{"\xff\xfe=\xfd", auth, form},
	}
	for _, s := range seeds {
		f.Add(s.body, s.auth, s.ct)
	}
	handler := h.svc.Server().Public
	f.Fuzz(func(t *testing.T, body, authz, ct string) {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q auth %q content type %q: %s", rec.Code, body, authz, ct, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("status %d: body is not JSON: %q", rec.Code, rec.Body)
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("status %d without Cache-Control: no-store", rec.Code)
		}
		_, hasToken := out["access_token"]
		_, hasError := out["error"]
		if hasToken == hasError || hasToken != (rec.Code == 200) {
			t.Fatalf("status %d body %s: want a token with 200 or an error otherwise", rec.Code, rec.Body)
		}
	})
}
