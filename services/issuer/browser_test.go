package issuer_test

// End-to-end browser tests (issue 6 item 7): a headless Chromium, driven
// with chromedp, signs in on the issuer's login page, answers the consent
// page and lands on the client's redirect URI; the client then redeems the
// code with golang.org/x/oauth2. Run them alone with
//
//	go test -run Browser ./services/issuer/
//
// and refresh docs/screenshots/{login,consent}.png with
// VALET_UPDATE_SCREENSHOTS=1. They need Chromium (VALET_CHROMIUM, else
// /usr/bin/chromium) and fail, never skip, without it.

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/valetauth/valet/pkg/store"
)

const (
	browserClientID   = "browser-web"
	browserClientName = "Example Web App"
)

// browserSetup is a running issuer with alice, a confidential web client
// whose redirect URI is cb's /cb, and a headless Chromium.
type browserSetup struct {
	a       *authHarness
	cb      *callbackServer
	secret  string
	browser context.Context
}

func newBrowserSetup(t *testing.T) *browserSetup {
	t.Helper()
	a := newAuthHarness(t)
	cb := newCallbackServer(t)
	secret := a.CreateClient(store.Client{ID: browserClientID, Name: browserClientName, Type: store.Confidential,
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{cb.URL + "/cb"},
		Resources: map[string][]string{apiID: {"read", "write"}}, DefaultResource: apiID})
	return &browserSetup{a: a, cb: cb, secret: secret, browser: newChromium(t)}
}

func (s *browserSetup) oauth(scopes ...string) *oauth2.Config {
	return s.a.oauth(browserClientID, s.secret, s.cb.URL+"/cb", scopes...)
}

// signIn fills and submits the login page shown in tab and waits for the
// consent page.
func signIn(t *testing.T, tab context.Context) {
	t.Helper()
	if err := chromedp.Do(tab,
		chromedp.SendKeys(chromedp.ID("username"), alice),
		chromedp.SendKeys(chromedp.ID("password"), alicePW),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("approve")),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
}

// TestBrowserAuthCodeApprove signs in, approves and redeems the code.
func TestBrowserAuthCodeApprove(t *testing.T) {
	s := newBrowserSetup(t)
	tab := newTab(t, s.browser)
	docs := recordDocuments(t, tab)
	conf := s.oauth("read", "write")
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st-approve", oauth2.S256ChallengeOption(verifier))

	if err := chromedp.Do(tab, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatalf("login page: %v", err)
	}
	title, err := chromedp.Run(tab, chromedp.Title())
	if err != nil || !strings.Contains(title, "Sign in") {
		t.Fatalf("login page title %q, %v", title, err)
	}
	// The login page forbids framing (RFC 9700 §4.16), as the browser saw it.
	login := docs.first(s.a.url + "/authorize")
	if login == nil {
		t.Fatal("no document response recorded for /authorize")
	}
	if csp := header(login, "Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("login page CSP %q: want frame-ancestors 'none'", csp)
	}
	if xfo := header(login, "X-Frame-Options"); xfo != "DENY" {
		t.Fatalf("login page X-Frame-Options %q: want DENY", xfo)
	}
	screenshot(t, tab, "login.png")

	signIn(t, tab)
	text, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{browserClientName, alice, "read", "write"} {
		if !strings.Contains(text, want) {
			t.Fatalf("consent page does not mention %q:\n%s", want, text)
		}
	}
	scopes, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("scopes")))
	if err != nil || !strings.Contains(scopes, "read") || !strings.Contains(scopes, "write") {
		t.Fatalf("consent scopes %q, %v", scopes, err)
	}
	screenshot(t, tab, "consent.png")

	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
		t.Fatalf("approve: %v", err)
	}
	q := s.cb.next(t)
	if q.Get("state") != "st-approve" || q.Get("iss") != testIssuer || q.Get("code") == "" || q.Get("error") != "" {
		t.Fatalf("callback %v: want code, state st-approve and iss %s", q, testIssuer)
	}
	loc, err := chromedp.Run(tab, chromedp.Location())
	if err != nil || !strings.HasPrefix(loc, s.cb.URL+"/cb?") {
		t.Fatalf("browser ended at %q (%v), want the client's redirect URI", loc, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") || tok.RefreshToken == "" {
		t.Fatalf("token %+v: want a bearer access token and a refresh token", tok)
	}
	if sc, _ := claimsOf(t, tok.AccessToken)["scope"].(string); sc != "read write" {
		t.Fatalf("access token scope %q, want \"read write\"", sc)
	}
}

// TestBrowserAuthCodeDeny signs in and denies: the client gets access_denied.
func TestBrowserAuthCodeDeny(t *testing.T) {
	s := newBrowserSetup(t)
	tab := newTab(t, s.browser)
	authURL := s.oauth("read").AuthCodeURL("st-deny", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if err := chromedp.Do(tab, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatalf("login page: %v", err)
	}
	signIn(t, tab)
	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("deny")), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
		t.Fatalf("deny: %v", err)
	}
	q := s.cb.next(t)
	if q.Get("error") != "access_denied" || q.Get("state") != "st-deny" || q.Get("iss") != testIssuer || q.Get("code") != "" {
		t.Fatalf("callback %v: want error=access_denied with state st-deny and iss, no code", q)
	}
}

// TestBrowserLoginNotFramable loads a page of another origin that frames the
// login page (and, as a control, a page of its own): the browser must refuse
// to render the login page in the frame (CSP frame-ancestors 'none' and
// X-Frame-Options DENY, RFC 9700 §4.16).
func TestBrowserLoginNotFramable(t *testing.T) {
	s := newBrowserSetup(t)
	tab := newTab(t, s.browser)
	authURL := s.oauth("read").AuthCodeURL("st-frame", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	framer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/framable" {
			fmt.Fprint(w, `<!doctype html><title>framable</title><p id="inner">framed fine</p>`)
			return
		}
		fmt.Fprintf(w, `<!doctype html><title>framer</title><h1 id="top">not the issuer</h1>`+
			`<iframe id="victim" src="%s" width="600" height="500"></iframe>`+
			`<iframe id="control" src="/framable" width="200" height="100"></iframe>`, html.EscapeString(authURL))
	}))
	t.Cleanup(framer.Close)

	if err := chromedp.Do(tab, chromedp.Navigate(framer.URL), chromedp.WaitVisible(chromedp.ID("top"))); err != nil {
		t.Fatal(err)
	}
	// Wait until both frames have committed a document: the control its page,
	// the victim either the login page or the browser's error page.
	var victim, control *cdp.Frame
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		tree, err := chromedp.Call(tab, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		victim, control = nil, nil
		for _, c := range tree.FrameTree.ChildFrames {
			switch f := c.Frame; {
			case f.URL == framer.URL+"/framable":
				control = f
			case strings.HasPrefix(f.URL, s.a.url) || f.UnreachableURL == authURL:
				victim = f
			}
		}
		if victim != nil && control != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames never loaded: victim %+v control %+v", victim, control)
		}
	}
	if !strings.HasPrefix(victim.URL, "chrome-error://") || victim.UnreachableURL != authURL {
		t.Fatalf("the login page was rendered in a frame of another origin: frame url %q (unreachable %q)", victim.URL, victim.UnreachableURL)
	}
	if control.UnreachableURL != "" {
		t.Fatalf("control frame failed to load (%q): the check proves nothing", control.UnreachableURL)
	}
}
