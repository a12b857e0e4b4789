package issuer_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/services/issuer"
)

// Fixtures of the device harness.
const (
	tvID    = "tv"    // public, device_code + refresh_token
	tv2ID   = "tv2"   // public, device_code only
	nodevID = "nodev" // public, authorization_code only
)

// newDeviceHarness is newAuthHarness with a 1 s device poll interval (so
// that x/oauth2 polls quickly) and the device clients.
func newDeviceHarness(t testing.TB) *authHarness { return newDeviceHarnessWith(t, nil) }

// newDeviceHarnessWith is newDeviceHarness with mod applied to the issuer's
// dependencies.
func newDeviceHarnessWith(t testing.TB, mod func(*issuer.Deps)) *authHarness {
	t.Helper()
	h := newHarness(t)
	if _, err := h.users(t).Add(context.Background(), alice, alicePW); err != nil {
		t.Fatal(err)
	}
	a := &authHarness{harness: h, reg: prometheus.NewRegistry()}
	h.svc, a.url = startDeviceIssuer(t, h, a.reg, mod)
	res := map[string][]string{apiID: {"read", "write"}}
	h.CreateClient(store.Client{ID: tvID, Name: "Living Room TV", Type: store.Public,
		GrantTypes: []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"}, Resources: res, DefaultResource: apiID})
	h.CreateClient(store.Client{ID: tv2ID, Type: store.Public,
		GrantTypes: []string{"urn:ietf:params:oauth:grant-type:device_code"}, Resources: res, DefaultResource: apiID})
	h.CreateClient(store.Client{ID: nodevID, Type: store.Public, GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{nativeBase}, Resources: res, DefaultResource: apiID})
	h.eventually("device clients cached", func() bool {
		_, err := h.cache.Client(context.Background(), nodevID)
		return err == nil
	})
	return a
}

// startDeviceIssuer starts one more issuer replica with the user grants on
// h's store, keys and cache (as a second cmd/issuer on the same Redis), with
// mod applied to its dependencies, and returns it and its public URL.
func startDeviceIssuer(t testing.TB, h *harness, reg *prometheus.Registry, mod func(*issuer.Deps)) (*issuer.Service, string) {
	t.Helper()
	cfg := *h.cfg
	cfg.Tokens.DevicePollInterval = time.Second
	cfg.Redis.KeyPrefix = h.Redis.Prefix
	deps := h.userDeps(t, reg)
	if mod != nil {
		mod(&deps)
	}
	return startIssuer(t, &cfg, deps)
}

func (a *authHarness) deviceConf(id string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: id, Scopes: scopes, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: a.url + "/device_authorization", TokenURL: a.url + "/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// poll posts one device_code grant for client id.
func (a *authHarness) poll(id, deviceCode string) response {
	a.t.Helper()
	return a.postUser(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {deviceCode}, "client_id": {id}})
}

// postUser posts form to the user-grant issuer's /token.
func (a *authHarness) postUser(form url.Values) response {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.url+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return servicetest.Do(a.t, req)
}

var (
	userCodeRE = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)
	csrfRE     = regexp.MustCompile(`name="(csrf|request)" value="([^"]*)"`)
)

// step is one browser request of the device flow, with errors instead of
// t.Fatal so that it can run in a goroutine.
func step(c *http.Client, method, u string, form url.Values) (int, http.Header, string, error) {
	var res *http.Response
	var err error
	if method == http.MethodGet {
		res, err = c.Get(u)
	} else {
		res, err = c.PostForm(u, form)
	}
	if err != nil {
		return 0, nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b), err
}

func formOf(body string) url.Values {
	v := url.Values{}
	for _, m := range csrfRE.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// deviceBrowser drives the verification pages as a user would: the link
// from verification_uri_complete (the pre-filled form, which must still be
// submitted), login when not signed in, which returns straight to the
// consent page showing the code (no second submission), then approve or
// deny.
func (a *authHarness) deviceBrowser(c *http.Client, userCode string, approve bool) error {
	st, _, body, err := step(c, http.MethodGet, a.url+"/device?user_code="+url.QueryEscape(userCode), nil)
	if err != nil {
		return err
	}
	if st != http.StatusOK || !strings.Contains(body, `value="`+userCode+`"`) || strings.Contains(body, `id="approve"`) {
		return fmt.Errorf("entry page: %d, want the pre-filled form and no approval: %.300s", st, body)
	}
	f := formOf(body)
	f.Set("user_code", strings.ToLower(strings.ReplaceAll(userCode, "-", " "))) // as typed
	st, _, body, err = step(c, http.MethodPost, a.url+"/device", f)
	if err != nil {
		return err
	}
	if st == http.StatusOK && strings.Contains(body, `id="password"`) {
		loc, err := a.deviceLogin(c, body, nil)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(loc, "/device?user_code="+url.QueryEscape(userCode)+"&bind=") {
			return fmt.Errorf("login returned to %q, want the device page with the code and its binding", loc)
		}
		if st, _, body, err = step(c, http.MethodGet, a.url+loc, nil); err != nil {
			return err
		}
	}
	if st != http.StatusOK || !strings.Contains(body, `id="approve"`) || !strings.Contains(body, `>`+userCode+`</strong>`) {
		return fmt.Errorf("consent page: %d: %.400s", st, body)
	}
	if !strings.Contains(body, "Living Room TV") || !strings.Contains(body, "<code>read</code>") {
		return fmt.Errorf("consent page does not name the client and the scope: %.400s", body)
	}
	df := formOf(body)
	df.Set("user_code", userCode)
	if approve {
		df.Set("approve", "1")
	} else {
		df.Set("deny", "1")
	}
	st, _, body, err = step(c, http.MethodPost, a.url+"/device/decide", df)
	if err != nil {
		return err
	}
	if st != http.StatusOK || !strings.Contains(body, `id="result"`) {
		return fmt.Errorf("decide: %d: %.300s", st, body)
	}
	return nil
}

// deviceLogin signs alice in on the login page loginBody (tamper, if set,
// may change the form first) and returns where the login redirects.
func (a *authHarness) deviceLogin(c *http.Client, loginBody string, tamper func(url.Values)) (string, error) {
	lf := formOf(loginBody)
	lf.Set("username", alice)
	lf.Set("password", alicePW)
	if tamper != nil {
		tamper(lf)
	}
	st, hdr, body, err := step(c, http.MethodPost, a.url+"/login", lf)
	if err != nil {
		return "", err
	}
	if st != http.StatusSeeOther {
		return "", fmt.Errorf("login: %d: %.300s", st, body)
	}
	return hdr.Get("Location"), nil
}

// enterCode submits userCode on a fresh entry form and returns the answer.
func (a *authHarness) enterCode(c *http.Client, base, userCode string) (int, http.Header, string, error) {
	_, _, body, err := step(c, http.MethodGet, base+"/device", nil)
	if err != nil {
		return 0, nil, "", err
	}
	f := formOf(body)
	f.Set("user_code", userCode)
	return step(c, http.MethodPost, base+"/device", f)
}

// TestDeviceInterop runs the device flow with golang.org/x/oauth2: DeviceAuth,
// the user approving in a browser while DeviceAccessToken polls, a token
// with the user as subject and a refresh family, refresh; then a second
// redemption is invalid_grant and revokes the family (code_reuse).
func TestDeviceInterop(t *testing.T) {
	a := newDeviceHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conf := a.deviceConf(tvID, "read")
	da, err := conf.DeviceAuth(ctx, oauth2.SetAuthURLParam("resource", apiID))
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	if !userCodeRE.MatchString(da.UserCode) || !strings.HasPrefix(da.DeviceCode, "vdc_") || da.Interval != 1 ||
		da.VerificationURI != testIssuer+"/device" || da.VerificationURIComplete != testIssuer+"/device?user_code="+da.UserCode ||
		time.Until(da.Expiry) < 9*time.Minute {
		t.Fatalf("device authorization %+v", da)
	}
	errc := make(chan error, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond) // let the client poll while pending
		errc <- a.deviceBrowser(browser(t), da.UserCode, true)
	}()
	tok, err := conf.DeviceAccessToken(ctx, da)
	if berr := <-errc; berr != nil {
		t.Fatalf("browser: %v", berr)
	}
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	c := claimsOf(t, tok.AccessToken)
	fid, _ := c["fid"].(string)
	sub, _ := c["sub"].(string)
	if !strings.HasPrefix(sub, "usr_") || c["client_id"] != tvID || c["scope"] != "read" || c["aud"] != apiID ||
		!strings.HasPrefix(tok.RefreshToken, "vrt_") || fid == "" || fid != tok.RefreshToken[4:26] || da.DeviceCode[4:26] != fid {
		t.Fatalf("token %+v claims %v", tok, c)
	}
	tok.Expiry = time.Now().Add(-time.Minute)
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil || next.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v", err)
	}
	// Second redemption: invalid_grant, the family revoked everywhere.
	if r := a.poll(tvID, da.DeviceCode); r.Status != http.StatusBadRequest || r.Code() != "invalid_grant" {
		t.Fatalf("second redemption: %d %s", r.Status, r.Raw)
	}
	a.wantFamilyRevoked(t, fid, events.ReasonCodeReuse)
	r := a.postUser(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next.RefreshToken}, "client_id": {tvID}})
	if r.Code() != "invalid_grant" {
		t.Fatalf("refresh after reuse: %d %s", r.Status, r.Raw)
	}
}

// start posts /device_authorization for client id.
func (a *authHarness) startDevice(t *testing.T, id string, extra url.Values) response {
	t.Helper()
	f := url.Values{"client_id": {id}}
	for k, v := range extra {
		f[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, a.url+"/device_authorization", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return servicetest.Do(a.t, req)
}

func (a *authHarness) startOK(t *testing.T, id string) (deviceCode, userCode string) {
	t.Helper()
	r := a.startDevice(t, id, url.Values{"scope": {"read"}})
	dc, _ := r.Body["device_code"].(string)
	uc, _ := r.Body["user_code"].(string)
	if r.Status != http.StatusOK || dc == "" || uc == "" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("device authorization: %d %s", r.Status, r.Raw)
	}
	return dc, uc
}

// TestDeviceErrors: the RFC 8628 answers of the token endpoint and the
// refusals of the device endpoints and pages.
func TestDeviceErrors(t *testing.T) {
	a := newDeviceHarness(t)
	ctx := context.Background()

	t.Run("metadata", func(t *testing.T) {
		r := servicetest.Do(a.t, mustReq(t, http.MethodGet, a.url+"/.well-known/oauth-authorization-server"))
		if r.Body["device_authorization_endpoint"] != testIssuer+"/device_authorization" ||
			!strings.Contains(r.Raw, "urn:ietf:params:oauth:grant-type:device_code") {
			t.Fatalf("metadata %s", r.Raw)
		}
	})
	for _, tc := range []struct {
		name, id string
		extra    url.Values
		status   int
		code     string
	}{
		{"client not allowed the grant", nodevID, nil, 400, "unauthorized_client"},
		{"unknown client", "nobody", nil, 401, "invalid_client"},
		{"scope not allowed", tvID, url.Values{"scope": {"admin"}}, 400, "invalid_scope"},
		{"unknown resource", tvID, url.Values{"resource": {"https://other.example.test/"}}, 400, "invalid_target"},
		{"repeated parameter", tvID, url.Values{"scope": {"read", "write"}}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := a.startDevice(t, tc.id, tc.extra); r.Status != tc.status || r.Code() != tc.code {
				t.Fatalf("%d %s, want %d %s", r.Status, r.Raw, tc.status, tc.code)
			}
		})
	}
	t.Run("pending then slow_down", func(t *testing.T) {
		dc, _ := a.startOK(t, tvID)
		if r := a.poll(tvID, dc); r.Status != 400 || r.Code() != "authorization_pending" {
			t.Fatalf("first poll: %d %s", r.Status, r.Raw)
		}
		if r := a.poll(tvID, dc); r.Status != 400 || r.Code() != "slow_down" {
			t.Fatalf("fast poll: %d %s", r.Status, r.Raw)
		}
	})
	t.Run("wrong client", func(t *testing.T) {
		dc, _ := a.startOK(t, tvID)
		if r := a.poll(tv2ID, dc); r.Status != 400 || r.Code() != "invalid_grant" {
			t.Fatalf("other client: %d %s", r.Status, r.Raw)
		}
		if r := a.poll(tvID, dc); r.Code() != "authorization_pending" {
			t.Fatalf("own client after a foreign poll: %d %s", r.Status, r.Raw)
		}
	})
	t.Run("malformed device code", func(t *testing.T) {
		for _, dc := range []string{"", "vdc_x", "vrt_" + strings.Repeat("A", 22) + "." + strings.Repeat("B", 43)} {
			if r := a.poll(tvID, dc); r.Status != 400 || r.Code() != "invalid_grant" {
				t.Fatalf("%q: %d %s", dc, r.Status, r.Raw)
			}
		}
	})
	t.Run("deny", func(t *testing.T) {
		conf := a.deviceConf(tvID, "read")
		da, err := conf.DeviceAuth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.deviceBrowser(browser(t), da.UserCode, false); err != nil {
			t.Fatal(err)
		}
		if r := a.poll(tvID, da.DeviceCode); r.Status != 400 || r.Code() != "access_denied" {
			t.Fatalf("denied: %d %s", r.Status, r.Raw)
		}
		// The user code is spent: it cannot be approved afterwards.
		if err := a.deviceBrowser(browser(t), da.UserCode, true); err == nil {
			t.Fatal("a decided user code was accepted again")
		}
	})
	t.Run("csrf", func(t *testing.T) {
		_, uc := a.startOK(t, tvID)
		c := browser(t)
		if st, _, _, _ := step(c, http.MethodPost, a.url+"/device", url.Values{"user_code": {uc}}); st != http.StatusForbidden {
			t.Fatalf("user code without csrf: %d", st)
		}
		if st, _, _, _ := step(c, http.MethodPost, a.url+"/device/decide", url.Values{"user_code": {uc}, "approve": {"1"}, "csrf": {strings.Repeat("A", 43)}}); st != http.StatusForbidden {
			t.Fatalf("decision without a session's csrf: %d", st)
		}
	})
	t.Run("frame and cache headers", func(t *testing.T) {
		st, hdr, _, err := step(browser(t), http.MethodGet, a.url+"/device", nil)
		if err != nil || st != 200 || !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") || hdr.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %v %v", st, hdr, err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		dc, uc := a.startOK(t, tvID)
		a.clock.Advance(11 * time.Minute)
		defer a.clock.Advance(-11 * time.Minute)
		if r := a.poll(tvID, dc); r.Status != 400 || r.Code() != "expired_token" {
			t.Fatalf("expired: %d %s", r.Status, r.Raw)
		}
		if err := a.deviceBrowser(browser(t), uc, true); err == nil {
			t.Fatal("an expired user code was accepted")
		}
	})
	// Last: it leaves this client address blocked at the pages.
	t.Run("user code entry is rate limited", func(t *testing.T) {
		_, uc := a.startOK(t, tvID)
		c := browser(t)
		_, _, body, _ := step(c, http.MethodGet, a.url+"/device", nil)
		f := formOf(body)
		var st int
		for i := 0; i < 40 && st != http.StatusTooManyRequests; i++ {
			f.Set("user_code", "BBBB-BBBB")
			st, _, _, _ = step(c, http.MethodPost, a.url+"/device", f)
		}
		if st != http.StatusTooManyRequests {
			t.Fatalf("no limit after 40 wrong codes: %d", st)
		}
		f.Set("user_code", uc)
		if st, _, _, _ := step(c, http.MethodPost, a.url+"/device", f); st != http.StatusTooManyRequests {
			t.Fatalf("a valid code while limited: %d", st)
		}
	})
}

func mustReq(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestDeviceLoginBinding: after signing in, the browser that submitted a
// user code lands on that code's consent page at once; the binding that
// makes this possible works only with the browser's own valet_device
// cookie, only for the code it was made for, and only once. Anything else
// shows the pre-filled form, which must still be submitted (RFC 8628 §5.4).
func TestDeviceLoginBinding(t *testing.T) {
	a := newDeviceHarness(t)
	_, codeA := a.startOK(t, tvID)
	_, codeB := a.startOK(t, tvID)

	// signIn enters code in c, signs in (tamper may change the login form)
	// and returns where the login redirects.
	signIn := func(c *http.Client, code string, tamper func(url.Values)) string {
		t.Helper()
		st, _, body, err := a.enterCode(c, a.url, code)
		if err != nil || st != http.StatusOK || !strings.Contains(body, `id="password"`) {
			t.Fatalf("entering %s: %d %v: %.300s", code, st, err, body)
		}
		loc, err := a.deviceLogin(c, body, tamper)
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	x, y, z := browser(t), browser(t), browser(t)
	locX := signIn(x, codeA, nil)
	u, err := url.Parse(locX)
	if err != nil || u.Path != "/device" || u.Query().Get("user_code") != codeA || len(u.Query().Get("bind")) != 43 {
		t.Fatalf("login returned to %q", locX)
	}
	bindA := u.Query().Get("bind")
	locY := signIn(y, codeB, nil)
	// z swaps the code in the login form's hidden request, keeping A's
	// binding: the login succeeds, the binding no longer matches.
	locZ := signIn(z, codeA, func(f url.Values) { f.Set("request", strings.Replace(f.Get("request"), codeA, codeB, 1)) })

	for _, tc := range []struct {
		name    string
		c       *http.Client
		path    string
		code    string
		consent bool
	}{
		{"another signed-in browser with X's binding", y, locX, codeA, false},
		{"A's binding on code B", x, "/device?user_code=" + codeB + "&bind=" + bindA, codeB, false},
		{"a made-up binding", x, "/device?user_code=" + codeA + "&bind=" + strings.Repeat("A", 43), codeA, false},
		{"a malformed binding", x, "/device?user_code=" + codeA + "&bind=%00", codeA, false},
		{"a code swapped in the login form", z, locZ, codeB, false},
		{"X's own return", x, locX, codeA, true},
		{"X's return again (single use)", x, locX, codeA, false},
		{"Y's own return", y, locY, codeB, true},
		{"no session", browser(t), locX, codeA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _, body, err := step(tc.c, http.MethodGet, a.url+tc.path, nil)
			if err != nil || st != http.StatusOK {
				t.Fatalf("%d %v", st, err)
			}
			gotConsent := strings.Contains(body, `id="approve"`)
			if gotConsent != tc.consent {
				t.Fatalf("consent page %v, want %v: %.400s", gotConsent, tc.consent, body)
			}
			want := `value="` + tc.code + `"` // the pre-filled form
			if tc.consent {
				want = `>` + tc.code + `</strong>` // the code to compare
			}
			if !strings.Contains(body, want) {
				t.Fatalf("page does not show %s: %.400s", tc.code, body)
			}
		})
	}
	t.Run("malformed device continuation at login", func(t *testing.T) {
		c := browser(t)
		_, _, body, _ := a.enterCode(c, a.url, codeA)
		for _, req := range []string{
			"valet_device=1&user_code=" + codeA + "&evil=1",
			"valet_device=1&user_code=" + codeA + "&user_code=" + codeB,
			"valet_device=1&user_code=" + codeA + "&bind=short",
			"valet_device=1&user_code=nope",
		} {
			lf := formOf(body)
			lf.Set("username", alice)
			lf.Set("password", alicePW)
			lf.Set("request", req)
			if st, _, _, _ := step(c, http.MethodPost, a.url+"/login", lf); st != http.StatusBadRequest {
				t.Fatalf("request %q: %d, want 400", req, st)
			}
		}
	})
}

// TestDeviceLimitSharedAcrossReplicas: two issuer replicas on one Redis
// (issuer.New builds the Redis limiter from the store) share the user-code
// entry limit: wrong codes on replica A block entries, valid ones included,
// on replica B.
func TestDeviceLimitSharedAcrossReplicas(t *testing.T) {
	a := newDeviceHarness(t)
	_, urlB := startDeviceIssuer(t, a.harness, prometheus.NewRegistry(), nil)
	_, uc := a.startOK(t, tvID)
	c := browser(t)
	if st, _, body, err := a.enterCode(c, urlB, uc); err != nil || st != http.StatusOK || !strings.Contains(body, `id="password"`) {
		t.Fatalf("replica B before any failure: %d %v", st, err)
	}
	for i := range 20 { // deviceMaxFailuresIP
		if st, _, _, err := a.enterCode(c, a.url, "BBBB-BBBB"); err != nil || st != http.StatusBadRequest {
			t.Fatalf("wrong code %d on replica A: %d %v", i+1, st, err)
		}
	}
	st, hdr, body, err := a.enterCode(c, urlB, uc)
	if err != nil || st != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || strings.Contains(body, `id="password"`) {
		t.Fatalf("replica B after 20 failures on A: %d %v %v", st, hdr, err)
	}
	if st, _, _, _ := a.enterCode(c, a.url, uc); st != http.StatusTooManyRequests {
		t.Fatalf("replica A after its 20 failures: %d", st)
	}
}

// TestDeviceLimiterOutage: when the limits cannot be read the device page
// answers 503, never an unlimited look-up.
func TestDeviceLimiterOutage(t *testing.T) {
	lr := testenv.Redis(t)
	opt, err := goredis.ParseURL(lr.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries, opt.DialTimeout, opt.ReadTimeout = -1, 300*time.Millisecond, 300*time.Millisecond
	rdb := goredis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	lim, err := ratelimit.NewAttempts(rdb, lr.Prefix, ratelimit.AttemptsConfig{Name: "device", Window: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	a := newDeviceHarnessWith(t, func(d *issuer.Deps) { d.DeviceLimiter = lim })
	_, uc := a.startOK(t, tvID)
	c := browser(t)
	if st, _, _, err := a.enterCode(c, a.url, uc); err != nil || st != http.StatusOK {
		t.Fatalf("limiter up: %d %v", st, err)
	}
	lr.Stop()
	for _, code := range []string{uc, "BBBB-BBBB"} {
		st, hdr, body, err := a.enterCode(c, a.url, code)
		if err != nil || st != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || strings.Contains(body, `id="password"`) {
			t.Fatalf("limiter down, code %s: %d %v %v", code, st, hdr, err)
		}
	}
}

// pingOnly hides the store's Redis client from issuer.New, as a store that
// is not Redis would (the embedded one).
type pingOnly struct{ issuer.Store }

// TestDeviceLimiterInMemoryWithoutRedis: without a Redis store the limit
// still holds, in the process (the embedded store is single-process).
func TestDeviceLimiterInMemoryWithoutRedis(t *testing.T) {
	a := newDeviceHarnessWith(t, func(d *issuer.Deps) { d.Store = pingOnly{d.Store} })
	_, uc := a.startOK(t, tvID)
	c := browser(t)
	for i := range 20 {
		if st, _, _, err := a.enterCode(c, a.url, "BBBB-BBBB"); err != nil || st != http.StatusBadRequest {
			t.Fatalf("wrong code %d: %d %v", i+1, st, err)
		}
	}
	if st, _, _, _ := a.enterCode(c, a.url, uc); st != http.StatusTooManyRequests {
		t.Fatalf("after 20 failures: %d", st)
	}
}
