package issuer_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
)

// Fixtures of the user-grant harness.
const (
	webID      = "web"    // confidential, code + refresh, consent required
	nativeID   = "native" // public, code + refresh, loopback redirect
	firstID    = "first"  // confidential, first party (no consent page)
	webRedir   = "https://app.example.test/cb"
	nativeBase = "http://127.0.0.1/cb"
	alice      = "alice"
	alicePW    = "wonderland-42"
)

// authHarness is the base harness plus a second issuer with the user
// grants on: users in Redis, sessions and grants in the token store, the
// revoke primitive publishing to the harness's JetStream.
type authHarness struct {
	*harness
	url       string
	reg       *prometheus.Registry
	webSecret string
	first     string
}

func newAuthHarness(t testing.TB) *authHarness {
	t.Helper()
	h := newHarness(t)
	if _, err := h.users(t).Add(context.Background(), alice, alicePW); err != nil {
		t.Fatal(err)
	}
	a := &authHarness{harness: h, reg: prometheus.NewRegistry()}
	cfg := *h.cfg
	h.svc, a.url = startIssuer(t, &cfg, h.userDeps(t, a.reg)) // fuzz targets drive its handler

	grants := []string{"authorization_code", "refresh_token"}
	res := map[string][]string{apiID: {"read", "write"}}
	a.webSecret = h.CreateClient(store.Client{ID: webID, Name: "Web App", Type: store.Confidential, GrantTypes: grants,
		RedirectURIs: []string{webRedir, "http://127.0.0.1:5000/cb"}, Resources: res, DefaultResource: apiID})
	h.CreateClient(store.Client{ID: nativeID, Name: "CLI", Type: store.Public, GrantTypes: grants,
		RedirectURIs: []string{nativeBase}, Resources: res, DefaultResource: apiID})
	a.first = h.CreateClient(store.Client{ID: firstID, Type: store.Confidential, GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{webRedir}, Resources: res, DefaultResource: apiID, FirstParty: true})
	return a
}

func (a *authHarness) oauth(id, secret, redirect string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: redirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: a.url + "/authorize", TokenURL: a.url + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// browser is a cookie-keeping client that follows no redirect.
func browser(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type pageResp struct {
	status int
	header http.Header
	body   string
}

func get(t testing.TB, c *http.Client, u string) pageResp {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return pageResp{res.StatusCode, res.Header, string(b)}
}

func postForm(t testing.TB, c *http.Client, u string, v url.Values) pageResp {
	t.Helper()
	res, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return pageResp{res.StatusCode, res.Header, string(b)}
}

var hiddenRE = regexp.MustCompile(`name="(csrf|request)" value="([^"]*)"`)

// hidden returns the hidden csrf and request fields of a page's form.
func hidden(t testing.TB, body string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	if v.Get("csrf") == "" {
		t.Fatalf("no csrf field in page: %.400s", body)
	}
	return v
}

// authorize drives the login and consent pages for authURL and returns the
// final redirect to the client.
func (a *authHarness) authorize(t testing.TB, c *http.Client, authURL string) *url.URL {
	t.Helper()
	p := get(t, c, authURL)
	if p.status == http.StatusOK && strings.Contains(p.body, `id="password"`) {
		f := hidden(t, p.body)
		f.Set("username", alice)
		f.Set("password", alicePW)
		p = postForm(t, c, a.url+"/login", f)
		if p.status != http.StatusSeeOther {
			t.Fatalf("login: status %d: %.400s", p.status, p.body)
		}
		p = get(t, c, a.url+p.header.Get("Location"))
	}
	if p.status == http.StatusOK && strings.Contains(p.body, `id="approve"`) {
		f := hidden(t, p.body)
		f.Set("approve", "1")
		p = postForm(t, c, a.url+"/consent", f)
	}
	if p.status != http.StatusFound && p.status != http.StatusSeeOther {
		t.Fatalf("authorization ended with status %d: %.400s", p.status, p.body)
	}
	u, err := url.Parse(p.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// code runs the flow and returns the code, checking state and iss.
func (a *authHarness) code(t testing.TB, c *http.Client, conf *oauth2.Config, verifier string, opts ...oauth2.AuthCodeOption) string {
	t.Helper()
	opts = append(opts, oauth2.S256ChallengeOption(verifier))
	u := a.authorize(t, c, conf.AuthCodeURL("st-1", opts...))
	q := u.Query()
	if q.Get("state") != "st-1" || q.Get("iss") != testIssuer || q.Get("code") == "" {
		t.Fatalf("redirect %s: want code, state st-1 and iss %s", u, testIssuer)
	}
	return q.Get("code")
}

func claimsOf(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAuthCodeInterop runs authorization code + PKCE and refresh with
// golang.org/x/oauth2 for a confidential client (consent page) and a public
// native client on a loopback port of its choosing (RFC 8252 §7.3).
func TestAuthCodeInterop(t *testing.T) {
	a := newAuthHarness(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, id, secret, redirect string
	}{
		{"confidential", webID, a.webSecret, webRedir},
		{"public loopback port", nativeID, "", "http://127.0.0.1:49152/cb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := a.oauth(tc.id, tc.secret, tc.redirect, "read")
			if tc.secret == "" {
				conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			}
			verifier := oauth2.GenerateVerifier()
			code := a.code(t, browser(t), conf, verifier, oauth2.SetAuthURLParam("resource", apiID))
			tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if tok.RefreshToken == "" || !strings.HasPrefix(tok.RefreshToken, "vrt_") {
				t.Fatalf("refresh token %q", tok.RefreshToken)
			}
			_, c := a.verify(t, tok.AccessToken, apiID)
			fid, _ := c["fid"].(string)
			sub, _ := c["sub"].(string)
			if !strings.HasPrefix(sub, "usr_") || c["client_id"] != tc.id || c["scope"] != "read" || fid != tok.RefreshToken[4:26] {
				t.Fatalf("claims %v: want a user sub, client_id %s, scope read, fid of the refresh token", c, tc.id)
			}
			// TokenSource refreshes an expired token.
			tok.Expiry = time.Now().Add(-time.Minute)
			next, err := conf.TokenSource(ctx, tok).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken || claimsOf(t, next.AccessToken)["fid"] != fid {
				t.Fatal("refresh did not rotate within the family")
			}
		})
	}
	if got := servicetest.Counter(t, a.reg, "valet_refresh_rotations_total"); got != 2 {
		t.Errorf("rotations %v, want 2", got)
	}
}

// TestAuthorizeErrors: what is redirected (with error, state and iss) and
// what is an error page with no Location.
func TestAuthorizeErrors(t *testing.T) {
	a := newAuthHarness(t)
	ch := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	base := func(client, redirect string) url.Values {
		return url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect},
			"state": {"xyz"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}}
	}
	with := func(v url.Values, k, val string) url.Values {
		v = url.Values(cloneValues(v))
		if val == "" {
			v.Del(k)
		} else {
			v.Set(k, val)
		}
		return v
	}
	web := base(webID, webRedir)
	for _, tc := range []struct {
		name  string
		q     url.Values
		page  int    // error page status, or 0
		error string // redirected error, or "" for the login page
	}{
		{"ok: login page", web, 0, ""},
		{"PKCE missing", with(web, "code_challenge", ""), 0, "invalid_request"},
		{"PKCE method missing", with(web, "code_challenge_method", ""), 0, "invalid_request"},
		{"PKCE plain", with(with(web, "code_challenge_method", "plain"), "code_challenge", strings.Repeat("a", 50)), 0, "invalid_request"},
		{"PKCE short challenge", with(web, "code_challenge", "abc"), 0, "invalid_request"},
		{"implicit", with(web, "response_type", "token"), 0, "unsupported_response_type"},
		{"scope not allowed", with(web, "scope", "admin"), 0, "invalid_scope"},
		{"resource not allowed", with(web, "resource", billingID), 0, "invalid_target"},
		{"client not allowed the grant", base(clientA, webRedir), 400, ""},
		{"unknown client", base("nobody", webRedir), 400, ""},
		{"redirect mismatch", with(web, "redirect_uri", webRedir+"/x"), 400, ""},
		{"redirect missing", with(web, "redirect_uri", ""), 400, ""},
		{"confidential loopback other port", with(web, "redirect_uri", "http://127.0.0.1:5001/cb"), 400, ""},
		{"confidential loopback registered port", with(web, "redirect_uri", "http://127.0.0.1:5000/cb"), 0, ""},
		{"public loopback any port", base(nativeID, "http://127.0.0.1:61234/cb"), 0, ""},
		{"public loopback other path", base(nativeID, "http://127.0.0.1:61234/other"), 400, ""},
		{"public localhost name", base(nativeID, "http://localhost:61234/cb"), 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := get(t, browser(t), a.url+"/authorize?"+tc.q.Encode())
			loc := p.header.Get("Location")
			switch {
			case tc.page != 0:
				if p.status != tc.page || loc != "" {
					t.Fatalf("status %d Location %q: want an error page %d and no redirect", p.status, loc, tc.page)
				}
			case tc.error != "":
				u, _ := url.Parse(loc)
				q := u.Query()
				if p.status != http.StatusFound || q.Get("error") != tc.error || q.Get("state") != "xyz" || q.Get("iss") != testIssuer {
					t.Fatalf("status %d Location %q: want a redirect with error %s, state and iss", p.status, loc, tc.error)
				}
			default:
				if p.status != 200 || !strings.Contains(p.body, `id="username"`) {
					t.Fatalf("status %d: want the login page: %.300s", p.status, p.body)
				}
			}
			if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || p.header.Get("X-Frame-Options") != "DENY" {
				t.Fatalf("CSP %q X-Frame-Options %q: the page must not be framable", csp, p.header.Get("X-Frame-Options"))
			}
		})
	}
}

func cloneValues(v url.Values) map[string][]string {
	out := make(map[string][]string, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// TestPKCERedemption: a missing verifier is refused without spending the
// code; a wrong one spends it and is counted.
func TestPKCERedemption(t *testing.T) {
	a := newAuthHarness(t)
	conf := a.oauth(webID, a.webSecret, webRedir, "read")
	verifier := oauth2.GenerateVerifier()
	code := a.code(t, browser(t), conf, verifier)
	ctx := context.Background()
	if _, err := conf.Exchange(ctx, code); !isOAuthErr(err, "invalid_request") {
		t.Fatalf("no verifier: %v, want invalid_request", err)
	}
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); !isOAuthErr(err, "invalid_grant") {
		t.Fatalf("wrong verifier: %v, want invalid_grant", err)
	}
	if got := servicetest.Counter(t, a.reg, "valet_pkce_failures_total"); got != 2 {
		t.Errorf("PKCE failures %v, want 2", got)
	}
	// Wrong redirect_uri at the token endpoint.
	code = a.code(t, browser(t), conf, verifier)
	other := *conf
	other.RedirectURL = "http://127.0.0.1:5000/cb"
	if _, err := other.Exchange(ctx, code, oauth2.VerifierOption(verifier)); !isOAuthErr(err, "invalid_grant") {
		t.Fatalf("redirect mismatch: %v", err)
	}
}

func isOAuthErr(err error, code string) bool {
	re, ok := err.(*oauth2.RetrieveError)
	return ok && re.ErrorCode == code
}

// TestCodeReuse: a second redemption is invalid_grant, revokes the family
// (the first access token's fid is denied) and publishes family.revoked
// with reason code_reuse.
func TestCodeReuse(t *testing.T) {
	a := newAuthHarness(t)
	conf := a.oauth(firstID, a.first, webRedir, "read", "write")
	verifier := oauth2.GenerateVerifier()
	code := a.code(t, browser(t), conf, verifier) // first party: no consent page
	ctx := context.Background()
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" {
		t.Fatal("a client without the refresh_token grant got a refresh token")
	}
	fid, _ := claimsOf(t, tok.AccessToken)["fid"].(string)
	if !token.ValidFamilyID(fid) {
		t.Fatalf("fid %q", fid)
	}
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); !isOAuthErr(err, "invalid_grant") {
		t.Fatalf("second redemption: %v, want invalid_grant", err)
	}
	deny, err := a.Store.DenyState(ctx, store.DenyQuery{FID: fid})
	if err != nil || !deny.FamilyRevoked {
		t.Fatalf("deny state %+v, %v: want the family revoked", deny, err)
	}
	a.wantFamilyRevoked(t, fid, events.ReasonCodeReuse)
	if got := servicetest.Counter(t, a.reg, "valet_code_reuse_total"); got != 1 {
		t.Errorf("code reuse count %v, want 1", got)
	}
}

// wantFamilyRevoked waits for family.revoked of fid with reason on the
// revocation stream.
func (a *authHarness) wantFamilyRevoked(t testing.TB, fid, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.JS.Stream(ctx, bus.StreamName(a.Prefix, events.StreamRevocations))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		ev, err := events.Decode(msg.Data())
		if err != nil {
			continue
		}
		if p, ok := ev.Payload.(*events.FamilyRevoked); ok && p.FID == fid {
			if p.Reason != reason {
				t.Fatalf("family.revoked reason %q, want %q", p.Reason, reason)
			}
			return
		}
	}
	t.Fatalf("no family.revoked for %s on the stream", fid)
}

// refresh posts a refresh_token grant for the web client.
func (a *authHarness) refresh(rt string, extra url.Values) response {
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for k, v := range extra {
		f[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, a.url+"/token", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", servicetest.Basic(webID, a.webSecret))
	return servicetest.Do(a.t, req)
}

func (a *authHarness) webTokens(t testing.TB) *oauth2.Token {
	t.Helper()
	conf := a.oauth(webID, a.webSecret, webRedir, "read", "write")
	verifier := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(context.Background(), a.code(t, browser(t), conf, verifier), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestRefreshGraceAndReuse: the superseded token inside the grace window
// gets the identical successor and the family stays; outside it the family
// is revoked and family.revoked (refresh_reuse) published. Scope narrowing
// works, widening is invalid_scope.
func TestRefreshGraceAndReuse(t *testing.T) {
	a := newAuthHarness(t)
	tok := a.webTokens(t)
	rt0 := tok.RefreshToken
	fid := rt0[4:26]

	if r := a.refresh(rt0, url.Values{"scope": {"read admin"}}); r.Status != 400 || r.Code() != "invalid_scope" {
		t.Fatalf("widening: %d %s", r.Status, r.Raw)
	}
	r1 := a.refresh(rt0, url.Values{"scope": {"read"}})
	if r1.Status != 200 || r1.Body["scope"] != "read" {
		t.Fatalf("narrowing: %d %s", r1.Status, r1.Raw)
	}
	rt1, _ := r1.Body["refresh_token"].(string)
	// An honest retry of rt0 within 10 s: the same successor, a new access token.
	r2 := a.refresh(rt0, nil)
	if r2.Status != 200 || r2.Body["refresh_token"] != rt1 || r2.Body["access_token"] == r1.Body["access_token"] {
		t.Fatalf("grace replay: %d %s: want the identical successor", r2.Status, r2.Raw)
	}
	if _, err := a.Store.LookupRefresh(context.Background(), fid, token.HashOf(rt1)); err != nil {
		t.Fatalf("after grace replay the family must be intact: %v", err)
	}
	// The successor still rotates normally.
	r3 := a.refresh(rt1, nil)
	if r3.Status != 200 {
		t.Fatalf("rotate rt1: %d %s", r3.Status, r3.Raw)
	}
	// rt0 is now two generations old, and the clock is past the window.
	a.clock.Advance(11 * time.Second)
	if r := a.refresh(rt0, nil); r.Status != 400 || r.Code() != "invalid_grant" {
		t.Fatalf("replay outside grace: %d %s", r.Status, r.Raw)
	}
	deny, err := a.Store.DenyState(context.Background(), store.DenyQuery{FID: fid})
	if err != nil || !deny.FamilyRevoked {
		t.Fatalf("deny %+v %v: want the family revoked", deny, err)
	}
	rt3, _ := r3.Body["refresh_token"].(string)
	if r := a.refresh(rt3, nil); r.Status != 400 || r.Code() != "invalid_grant" {
		t.Fatalf("live token after reuse: %d %s", r.Status, r.Raw)
	}
	a.wantFamilyRevoked(t, fid, events.ReasonRefreshReuse)
	if got := servicetest.Counter(t, a.reg, "valet_refresh_reuse_total"); got != 1 {
		t.Errorf("reuse count %v, want 1", got)
	}
}

// TestRefreshConcurrent: 50 concurrent refreshes of one token produce one
// successor at most: every success carries the same refresh token.
func TestRefreshConcurrent(t *testing.T) {
	a := newAuthHarness(t)
	rt0 := a.webTokens(t).RefreshToken
	var wg sync.WaitGroup
	var mu sync.Mutex
	succ := map[string]int{}
	ok := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a.refresh(rt0, nil)
			mu.Lock()
			defer mu.Unlock()
			if r.Status >= 500 {
				t.Errorf("status %d: %s", r.Status, r.Raw)
			}
			if r.Status == 200 {
				ok++
				succ[r.Body["refresh_token"].(string)]++
			}
		}()
	}
	wg.Wait()
	if len(succ) != 1 || ok < 1 || ok > 1+a.cfg.Tokens.RefreshGraceMaxReplays {
		t.Fatalf("%d successes with %d distinct successors: want 1 to %d successes, one successor", ok, len(succ), 1+a.cfg.Tokens.RefreshGraceMaxReplays)
	}
}

// TestFormsCSRF: login and consent without the CSRF token are refused.
func TestFormsCSRF(t *testing.T) {
	a := newAuthHarness(t)
	conf := a.oauth(webID, a.webSecret, webRedir, "read")
	c := browser(t)
	p := get(t, c, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	f := hidden(t, p.body)
	f.Set("username", alice)
	f.Set("password", alicePW)
	bad := url.Values(cloneValues(f))
	bad.Del("csrf")
	if r := postForm(t, c, a.url+"/login", bad); r.status != http.StatusForbidden {
		t.Fatalf("login without csrf: %d", r.status)
	}
	bad.Set("csrf", strings.Repeat("A", 43))
	if r := postForm(t, c, a.url+"/login", bad); r.status != http.StatusForbidden {
		t.Fatalf("login with a wrong csrf: %d", r.status)
	}
	wrong := url.Values(cloneValues(f))
	wrong.Set("password", "nope")
	if r := postForm(t, c, a.url+"/login", wrong); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Incorrect") {
		t.Fatalf("wrong password: %d", r.status)
	}
	r := postForm(t, c, a.url+"/login", f)
	if r.status != http.StatusSeeOther {
		t.Fatalf("login: %d %.300s", r.status, r.body)
	}
	p = get(t, c, a.url+r.header.Get("Location"))
	cf := hidden(t, p.body)
	cf.Set("approve", "1")
	cf.Del("csrf")
	if r := postForm(t, c, a.url+"/consent", cf); r.status != http.StatusForbidden || r.header.Get("Location") != "" {
		t.Fatalf("consent without csrf: %d", r.status)
	}
	// Deny: access_denied redirected with state and iss.
	cf = hidden(t, p.body)
	cf.Set("deny", "1")
	r = postForm(t, c, a.url+"/consent", cf)
	u, _ := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || u.Query().Get("error") != "access_denied" || u.Query().Get("iss") != testIssuer {
		t.Fatalf("deny: %d %s", r.status, u)
	}
	// Approve once; the consent is remembered: the next request skips it.
	cf = hidden(t, p.body)
	cf.Set("approve", "1")
	if r := postForm(t, c, a.url+"/consent", cf); r.status != http.StatusSeeOther {
		t.Fatalf("approve: %d", r.status)
	}
	p = get(t, c, conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if p.status != http.StatusFound || !strings.Contains(p.header.Get("Location"), "code=") {
		t.Fatalf("remembered consent: %d %s", p.status, p.header.Get("Location"))
	}
	// Logout ends the session: the next request shows the login page.
	lp := get(t, c, a.url+"/logout")
	lf := hidden(t, lp.body)
	if r := postForm(t, c, a.url+"/logout", lf); r.status != 200 {
		t.Fatalf("logout: %d", r.status)
	}
	if p := get(t, c, conf.AuthCodeURL("s3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); p.status != 200 || !strings.Contains(p.body, `id="password"`) {
		t.Fatalf("after logout: %d", p.status)
	}
}

// TestRefreshAfterSubjectRevocation: a subject cut-off ends a family whose
// rotations this replica has seen (so the next rotation passes the subject
// as a hint and reads the cut-off in the same round trip): the refresh after
// the revocation is invalid_grant, and the family is revoked.
func TestRefreshAfterSubjectRevocation(t *testing.T) {
	a := newAuthHarness(t)
	ctx := context.Background()
	tok := a.webTokens(t)
	fid := tok.RefreshToken[4:26]
	r1 := a.refresh(tok.RefreshToken, nil)
	if r1.Status != 200 {
		t.Fatalf("first rotation: %d %s", r1.Status, r1.Raw)
	}
	rt1, _ := r1.Body["refresh_token"].(string)
	fam, err := a.Store.GetFamily(ctx, fid)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := revoke.New(revoke.Config{Source: testIssuer, Prefix: a.Prefix, Retain: 20 * time.Minute}, a.Store, a.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := rev.Subject(ctx, fam.SubjectType, fam.Subject, a.clock.Now(), events.ReasonAdmin, "test"); err != nil {
		t.Fatal(err)
	}
	if r := a.refresh(rt1, nil); r.Status != 400 || r.Code() != "invalid_grant" {
		t.Fatalf("refresh after the subject's revocation: %d %s", r.Status, r.Raw)
	}
	if _, err := a.Store.GetFamily(ctx, fid); !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("family after the refused refresh: %v, want ErrRevoked", err)
	}
}
