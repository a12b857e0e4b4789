package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// devHarness runs valet dev in this process on free ports and a data
// directory that outlives one start.
type devHarness struct {
	t    *testing.T
	data string
	env  map[string]string // VALET_* overrides: the listeners and URLs
	// configPath is an optional configuration file for valet dev.
	configPath string

	cancel context.CancelFunc
	done   chan error
	out    *bytes.Buffer
}

// freePort returns a port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newDevHarness(t *testing.T) *devHarness {
	t.Helper()
	h := &devHarness{t: t, data: t.TempDir(), env: map[string]string{"VALET_LOG_LEVEL": "warn"}}
	for _, svc := range []string{"ISSUER", "INTROSPECTION", "REVOCATION", "EDGE"} {
		pub, adm := freePort(t), freePort(t)
		h.env["VALET_SERVICES_"+svc+"_LISTEN"] = "127.0.0.1:" + strconv.Itoa(pub)
		h.env["VALET_SERVICES_"+svc+"_ADMIN_LISTEN"] = "127.0.0.1:" + strconv.Itoa(adm)
		if svc != "EDGE" {
			h.env["VALET_SERVICES_"+svc+"_PUBLIC_URL"] = "http://127.0.0.1:" + strconv.Itoa(pub)
		}
	}
	h.env["VALET_ISSUER"] = h.env["VALET_SERVICES_ISSUER_PUBLIC_URL"]
	return h
}

// lookupEnv is the harness's environment: its overrides only, so that a
// REDIS_URL or NATS_URL of the machine running the tests is not used.
func (h *devHarness) lookupEnv(name string) (string, bool) {
	v, ok := h.env[name]
	return v, ok
}

// start runs valet dev and waits until it is ready.
func (h *devHarness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.out = &bytes.Buffer{}
	d, err := newDev(ctx, devOptions{
		DataDir: h.data, ConfigPath: h.configPath, NATSPort: -1,
		LookupEnv: h.lookupEnv, Out: h.out, Logger: zap.NewNop(),
	})
	if err != nil {
		cancel()
		h.t.Fatalf("newDev: %v", err)
	}
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- d.Run(ctx) }()
	h.t.Cleanup(h.stop)
	select {
	case <-d.Ready():
	case err := <-h.done:
		h.t.Fatalf("valet dev stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		h.t.Fatal("valet dev not ready after 60s")
	}
}

// stop shuts valet dev down gracefully and waits for it.
func (h *devHarness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("valet dev stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Error("valet dev did not stop within 30s")
	}
}

// demoEnv reads data/demo.env, the file the README walkthrough sources.
func (h *devHarness) demoEnv() map[string]string {
	h.t.Helper()
	f, err := os.Open(filepath.Join(h.data, demoEnvFile))
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		vars[k] = strings.Trim(v, "'")
	}
	return vars
}

// do sends one request and returns its status and body.
func do(t *testing.T, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// getToken is step 1 of the walkthrough: client credentials at /token
// (curl -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d scope=read "$TOKEN_URL").
func getToken(t *testing.T, env map[string]string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, env["TOKEN_URL"], strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "scope": {"read"},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(env["CLIENT_ID"], env["CLIENT_SECRET"])
	status, _, body := do(t, req)
	if status != http.StatusOK {
		t.Fatalf("token: %d %s", status, body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token response %s: %v", body, err)
	}
	return tr.AccessToken
}

// callAPI is step 2: the demo API through the gateway and the edge
// (curl -H "Authorization: Bearer $ACCESS_TOKEN" "$GATEWAY_URL/hello").
func callAPI(t *testing.T, env map[string]string, at string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env["GATEWAY_URL"]+"/hello", nil)
	if at != "" {
		req.Header.Set("Authorization", "Bearer "+at)
	}
	return do(t, req)
}

// revokeToken is step 3: RFC 7009 (curl -u "$CLIENT_ID:$CLIENT_SECRET" -d token="$ACCESS_TOKEN" "$REVOKE_URL").
func revokeToken(t *testing.T, env map[string]string, at string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, env["REVOKE_URL"], strings.NewReader(url.Values{"token": {at}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(env["CLIENT_ID"], env["CLIENT_SECRET"])
	if status, _, body := do(t, req); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
}

// wantRefused waits (the revocation travels through the stream to the
// edge: milliseconds) until the API answers 401 invalid_token.
func wantRefused(t *testing.T, env map[string]string, at string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, hdr, body := callAPI(t, env, at)
		if status == http.StatusUnauthorized {
			if www := hdr.Get("WWW-Authenticate"); !strings.Contains(www, `error="invalid_token"`) {
				t.Fatalf("401 challenge %q, want invalid_token", www)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after revocation: %d %s, want 401", status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantAllowed checks a 200 from the demo upstream with the edge's identity.
func wantAllowed(t *testing.T, env map[string]string, at string) {
	t.Helper()
	status, _, body := callAPI(t, env, at)
	if status != http.StatusOK {
		t.Fatalf("API: %d %s, want 200", status, body)
	}
	var echo map[string]string
	if err := json.Unmarshal(body, &echo); err != nil {
		t.Fatalf("API body %s: %v", body, err)
	}
	if echo["client_id"] != env["CLIENT_ID"] || echo["scope"] != "read" || echo["jti"] == "" {
		t.Fatalf("upstream saw identity %v", echo)
	}
}

// TestDevWalkthrough runs the README walkthrough against valet dev: a
// token, the demo API through the edge (200), /revoke, the API again (401).
func TestDevWalkthrough(t *testing.T) {
	h := newDevHarness(t)
	h.start()
	env := h.demoEnv()
	for _, k := range []string{"CLIENT_ID", "CLIENT_SECRET", "TOKEN_URL", "REVOKE_URL", "GATEWAY_URL", "INTROSPECT_URL", "ADMIN_CLIENT_SECRET"} {
		if env[k] == "" {
			t.Fatalf("demo.env lacks %s: %v", k, env)
		}
	}
	out := h.out.String()
	for _, want := range []string{"valet dev ready in", "demo data created", env["CLIENT_SECRET"], env["ADMIN_CLIENT_SECRET"]} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}

	at := getToken(t, env)
	wantAllowed(t, env, at)
	if status, _, _ := callAPI(t, env, ""); status != http.StatusUnauthorized {
		t.Errorf("API without a token: %d, want 401", status)
	}
	revokeToken(t, env, at)
	wantRefused(t, env, at)

	// The admin client gets an admin token.
	req, _ := http.NewRequest(http.MethodPost, env["TOKEN_URL"], strings.NewReader("grant_type=client_credentials&scope=valet%3Aadmin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(env["ADMIN_CLIENT_ID"], env["ADMIN_CLIENT_SECRET"])
	if status, _, body := do(t, req); status != http.StatusOK {
		t.Errorf("admin token: %d %s", status, body)
	}
}

// TestDevRestart stops valet dev and starts it again on the same data
// directory: the client still authenticates with the same secret, a revoked
// token stays revoked, a live one stays valid, and the signing key is the
// same.
func TestDevRestart(t *testing.T) {
	h := newDevHarness(t)
	h.start()
	env := h.demoEnv()
	revoked, live := getToken(t, env), getToken(t, env)
	revokeToken(t, env, revoked)
	wantRefused(t, env, revoked)
	kids := jwksKIDs(t, env)
	h.stop()

	h.start()
	if strings.Contains(h.out.String(), "demo data created") {
		t.Error("second start created the demo data again")
	}
	env2 := h.demoEnv()
	if env2["CLIENT_SECRET"] != env["CLIENT_SECRET"] || !strings.Contains(h.out.String(), env["CLIENT_SECRET"]) {
		t.Error("the demo secret changed or was not printed again")
	}
	wantAllowed(t, env2, getToken(t, env2))
	wantAllowed(t, env2, live)
	wantRefused(t, env2, revoked)
	if got := jwksKIDs(t, env2); strings.Join(got, ",") != strings.Join(kids, ",") {
		t.Errorf("JWKS kids %v after restart, want %v", got, kids)
	}
}

// TestDevDataDirLocked: a second valet dev on the same data directory
// fails at once and says why.
func TestDevDataDirLocked(t *testing.T) {
	h := newDevHarness(t)
	h.start()
	_, err := newDev(context.Background(), devOptions{
		DataDir: h.data, NATSPort: -1, LookupEnv: h.lookupEnv, Logger: zap.NewNop(),
	})
	if err == nil || !strings.Contains(err.Error(), "one process per data directory") {
		t.Fatalf("second newDev: %v, want the lock explained", err)
	}
}

func jwksKIDs(t *testing.T, env map[string]string) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(env["ISSUER"], "/")+"/jwks.json", nil)
	status, _, body := do(t, req)
	if status != http.StatusOK {
		t.Fatalf("jwks: %d %s", status, body)
	}
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks %s: %v", body, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func TestDevEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		key  string
		want string
	}{
		{"dev on by default", nil, "VALET_DEV", "true"},
		{"REDIS_URL maps", map[string]string{"REDIS_URL": "redis://r:6379/0"}, "VALET_REDIS_URL", "redis://r:6379/0"},
		{"NATS_URL maps", map[string]string{"NATS_URL": "nats://n:4222"}, "VALET_NATS_URL", "nats://n:4222"},
		{"VALET_ wins", map[string]string{"NATS_URL": "nats://a:4222", "VALET_NATS_URL": "nats://b:4222"}, "VALET_NATS_URL", "nats://b:4222"},
		{"empty is unset", map[string]string{"VALET_DEV": ""}, "VALET_DEV", "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := devEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })(tt.key)
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

// browser is a cookie-keeping client that follows no redirect.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// page is one response of the browser.
type page struct {
	status int
	loc    string
	body   string
}

func browse(t *testing.T, c *http.Client, method, u string, form url.Values) page {
	t.Helper()
	var res *http.Response
	var err error
	if method == http.MethodPost {
		res, err = c.PostForm(u, form)
	} else {
		res, err = c.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return page{res.StatusCode, res.Header.Get("Location"), string(b)}
}

var hiddenRE = regexp.MustCompile(`name="(csrf|request)" value="([^"]*)"`)

// hidden returns the hidden csrf and request fields of a page's form.
func hidden(t *testing.T, body string) url.Values {
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

// authCode runs the authorization code flow with PKCE as the demo user in
// a fresh browser, through the login page and (wantConsent: consent not
// remembered yet) the consent page, and exchanges the code.
func authCode(t *testing.T, env map[string]string, conf *oauth2.Config, wantConsent bool) *oauth2.Token {
	t.Helper()
	c, base := browser(t), env["ISSUER"]
	verifier := oauth2.GenerateVerifier()
	p := browse(t, c, http.MethodGet, conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("resource", env["RESOURCE"])), nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="password"`) {
		t.Fatalf("authorize: %d, want the login page: %.400s", p.status, p.body)
	}
	f := hidden(t, p.body)
	f.Set("username", env["DEMO_USERNAME"])
	f.Set("password", env["DEMO_PASSWORD"])
	if p = browse(t, c, http.MethodPost, base+"/login", f); p.status != http.StatusSeeOther {
		t.Fatalf("login: %d: %.400s", p.status, p.body)
	}
	p = browse(t, c, http.MethodGet, base+p.loc, nil)
	if consent := p.status == http.StatusOK && strings.Contains(p.body, `id="approve"`); consent != wantConsent {
		t.Fatalf("after login: %d %s, consent page %v, want %v: %.400s", p.status, p.loc, consent, wantConsent, p.body)
	}
	if wantConsent {
		f = hidden(t, p.body)
		f.Set("approve", "1")
		p = browse(t, c, http.MethodPost, base+"/consent", f)
	}
	if p.status != http.StatusFound && p.status != http.StatusSeeOther {
		t.Fatalf("authorization ended with %d: %.400s", p.status, p.body)
	}
	u, err := url.Parse(p.loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if !strings.HasPrefix(p.loc, conf.RedirectURL) || q.Get("state") != "st-1" || q.Get("iss") != base || q.Get("code") == "" {
		t.Fatalf("redirect %s: want %s with code, state and iss", p.loc, conf.RedirectURL)
	}
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return tok
}

// wantUserAllowed checks a 200 from the demo upstream for a token of the
// demo-spa client.
func wantUserAllowed(t *testing.T, env map[string]string, at string) {
	t.Helper()
	status, _, body := callAPI(t, env, at)
	if status != http.StatusOK {
		t.Fatalf("API: %d %s, want 200", status, body)
	}
	var echo map[string]string
	if err := json.Unmarshal(body, &echo); err != nil {
		t.Fatalf("API body %s: %v", body, err)
	}
	if echo["client_id"] != env["SPA_CLIENT_ID"] || !strings.Contains(echo["scope"], "read") {
		t.Fatalf("upstream saw identity %v", echo)
	}
}

// TestDevBrowserFlow: the demo user logs in to the public demo-spa client
// (authorization code with PKCE, any loopback port), the token passes the
// edge, the refresh token rotates; after a restart the same password logs
// in again, the consent is remembered and the rotated refresh token still
// works.
func TestDevBrowserFlow(t *testing.T) {
	h := newDevHarness(t)
	h.start()
	env := h.demoEnv()
	for _, k := range []string{"SPA_CLIENT_ID", "DEMO_USERNAME", "DEMO_PASSWORD", "ISSUER"} {
		if env[k] == "" {
			t.Fatalf("demo.env lacks %s: %v", k, env)
		}
	}
	if env["DEMO_USERNAME"] != demoUsername || !strings.Contains(h.out.String(), env["DEMO_PASSWORD"]) {
		t.Fatalf("banner lacks the demo user's password:\n%s", h.out.String())
	}
	conf := &oauth2.Config{
		ClientID: env["SPA_CLIENT_ID"], RedirectURL: "http://127.0.0.1:49152/callback", Scopes: []string{"read", "write"},
		Endpoint: oauth2.Endpoint{AuthURL: env["ISSUER"] + "/authorize", TokenURL: env["TOKEN_URL"], AuthStyle: oauth2.AuthStyleInParams},
	}
	ctx := context.Background()
	tok := authCode(t, env, conf, true)
	wantUserAllowed(t, env, tok.AccessToken)

	tok.Expiry = time.Now().Add(-time.Minute)
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken {
		t.Fatal("refresh did not rotate")
	}
	wantUserAllowed(t, env, next.AccessToken)

	// The device flow is on for demo-spa too (RFC 8628 §3.1).
	req, _ := http.NewRequest(http.MethodPost, env["ISSUER"]+"/device_authorization", strings.NewReader(url.Values{
		"client_id": {env["SPA_CLIENT_ID"]}, "scope": {"read"},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, _, body := do(t, req); status != http.StatusOK || !strings.Contains(string(body), `"user_code"`) {
		t.Fatalf("device authorization: %d %s", status, body)
	}

	h.stop()
	h.start()
	env2 := h.demoEnv()
	if env2["DEMO_PASSWORD"] != env["DEMO_PASSWORD"] {
		t.Fatal("the demo password changed across a restart")
	}
	next.Expiry = time.Now().Add(-time.Minute)
	if _, err := conf.TokenSource(ctx, next).Token(); err != nil {
		t.Fatalf("refresh after restart: %v", err)
	}
	// The consent given before the restart is remembered.
	wantUserAllowed(t, env2, authCode(t, env2, conf, false).AccessToken)
}

// TestDevBootstrap: valet dev applies a declarative bootstrap section
// (docs/bootstrap.md) from its configuration file: a declared machine
// client, its secret read from the environment, gets a token for the demo
// API, and a second start reports it unchanged rather than failing.
func TestDevBootstrap(t *testing.T) {
	h := newDevHarness(t)
	cfgPath := filepath.Join(t.TempDir(), "valet.yaml")
	if err := os.WriteFile(cfgPath, []byte(`bootstrap:
  clients:
    - id: declared-worker
      secret: env:DECLARED_WORKER_SECRET
      grant_types: [client_credentials]
      resources:
        - id: `+demoResource+`
          scopes: [read]
      default_resource: `+demoResource+`
`), 0o600); err != nil {
		t.Fatal(err)
	}
	const workerSecret = "declared-worker-secret-0123456789abcdefghijklmnop"
	h.env["DECLARED_WORKER_SECRET"] = workerSecret
	h.configPath = cfgPath
	for i := 0; i < 2; i++ {
		h.start()
		env := h.demoEnv()
		env["CLIENT_ID"], env["CLIENT_SECRET"] = "declared-worker", workerSecret
		wantAllowed(t, env, getToken(t, env))
		h.stop()
	}
}

// TestDevAdminCLI: after sourcing demo.env, the admin CLI talks to valet
// dev's admin APIs as the demo admin client: the registry lists the demo
// client, a user can be added and is listed, and valet revoke reaches the
// revocation service's admin API.
func TestDevAdminCLI(t *testing.T) {
	h := newDevHarness(t)
	h.start()
	env := h.demoEnv()
	getenv := func(k string) string { return env[k] }
	run := func(verb func([]string, func(string) string, io.Writer, io.Writer) int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := verb(args, getenv, &out, &errb); code != 0 {
			t.Fatalf("valet %v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		return out.String()
	}
	if out := run(runClients, "list"); !strings.Contains(out, env["CLIENT_ID"]) {
		t.Fatalf("valet clients list does not show %s:\n%s", env["CLIENT_ID"], out)
	}
	users := func(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
		return runUsers(args, getenv, strings.NewReader(""), stdout, stderr)
	}
	if out := run(users, "list"); !strings.Contains(out, env["DEMO_USERNAME"]) {
		t.Fatalf("valet users list does not show %s:\n%s", env["DEMO_USERNAME"], out)
	}
	at := getToken(t, env)
	wantAllowed(t, env, at)
	claims := strings.Split(at, ".")[1]
	raw, err := base64.RawURLEncoding.DecodeString(claims)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	run(runRevoke, "token", c.JTI, "--exp", strconv.FormatInt(c.Exp, 10))
	wantRefused(t, env, at)
}
