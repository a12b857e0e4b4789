package issuer_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzDevice throws arbitrary form bodies, queries and cookies at the device
// endpoints (/device_authorization, the /device pages with and without a
// login binding, /device/decide), at /login with a device continuation and
// at the token endpoint's device grant: never a 5xx (the store is up), and
// never a redirect off the issuer's /device page.
func FuzzDevice(f *testing.F) {
	a := newDeviceHarness(f)
	r := a.startDevice(&testing.T{}, tvID, url.Values{"scope": {"read"}})
	dc, _ := r.Body["device_code"].(string)
	uc, _ := r.Body["user_code"].(string)
	if dc == "" || uc == "" {
		f.Fatalf("device authorization: %d %s", r.Status, r.Raw)
	}
	csrf := strings.Repeat("B", 43)
	bind := strings.Repeat("D", 43)
	sess := "valet_session=" + strings.Repeat("A", 43)
	for _, s := range []struct{ method, path, query, body, cookie string }{
		{"POST", "/device_authorization", "", "client_id=tv&scope=read", ""},
		{"POST", "/device_authorization", "", "client_id=tv&scope=read&scope=write", ""},
		{"POST", "/device_authorization", "", "client_id=tv&resource=%00&scope=%22", ""},
		{"POST", "/device_authorization", "", "client_id=nodev", ""},
		{"GET", "/device_authorization", "client_id=tv", "", ""},
		{"POST", "/device_authorization", "", "%zz", ""},
		{"GET", "/device", "user_code=" + url.QueryEscape(uc), "", ""},
		{"GET", "/device", "user_code=%zz&user_code=x", "", sess},
		{"POST", "/device", "", "csrf=" + csrf + "&user_code=" + url.QueryEscape(uc), "valet_csrf=" + csrf},
		{"POST", "/device", "", "csrf=" + csrf + "&user_code=bbbb%20bbbb", "valet_csrf=" + csrf},
		{"POST", "/device", "", "csrf=x&user_code=" + strings.Repeat("B", 70), sess},
		{"POST", "/device/decide", "", "csrf=x&approve=1&deny=1&user_code=" + url.QueryEscape(uc), sess},
		{"POST", "/device/decide", "", "%", ""},
		{"POST", "/login", "", "csrf=" + csrf + "&request=valet_device%3D1%26user_code%3D" + url.QueryEscape(uc) + "&username=alice&password=x", "valet_csrf=" + csrf},
		{"POST", "/login", "", "csrf=" + csrf + "&request=" + url.QueryEscape("valet_device=1&user_code="+uc+"&bind="+bind) + "&username=alice&password=x", "valet_csrf=" + csrf},
		{"POST", "/login", "", "csrf=" + csrf + "&request=valet_device%3D1%26user_code%3D" + url.QueryEscape(uc) + "%26bind%3D%25zz&username=alice&password=" + alicePW, "valet_csrf=" + csrf},
		{"GET", "/device", "user_code=" + url.QueryEscape(uc) + "&bind=" + bind, "", sess + "; valet_device=" + strings.Repeat("C", 43)},
		{"GET", "/device", "user_code=" + url.QueryEscape(uc) + "&bind=%00&bind=" + bind, "", "valet_device=x"},
		{"POST", "/token", "", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=tv&device_code=" + url.QueryEscape(dc), ""},
		{"POST", "/token", "", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=tv2&device_code=vdc_%00", ""},
	} {
		f.Add(s.method, s.path, s.query, s.body, s.cookie)
	}
	h := a.svc.Server().Public
	f.Fuzz(func(t *testing.T, method, path, query, body, cookie string) {
		if method != http.MethodGet {
			method = http.MethodPost
		}
		switch path {
		case "/device_authorization", "/device", "/device/decide", "/token":
		case "/login":
			if !strings.Contains(body, "valet_device") {
				path = "/device"
			}
		default:
			path = "/device"
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.URL.RawQuery = query
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && !(path == "/login" && rec.Code == http.StatusServiceUnavailable && strings.Contains(rec.Body.String(), "Too many sign-ins")) {
			t.Fatalf("status %d for %s %s?%q %q: %s", rec.Code, method, path, query, body, rec.Body)
		}
		if loc := rec.Header().Get("Location"); loc != "" && !strings.HasPrefix(loc, "/device?user_code=") {
			t.Fatalf("redirect to %q for %s %s %q", loc, method, path, body)
		}
	})
}
