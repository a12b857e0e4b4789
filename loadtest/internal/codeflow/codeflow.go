// Package codeflow obtains refresh-token families the way a user's browser
// and a web client would, without a browser: /authorize with PKCE S256
// (RFC 7636), the issuer's login form, its consent form, the redirect with
// code, state and iss (RFC 9207), then the code exchange at /token (RFC
// 6749 §4.1.3). Every family the load generators rotate is therefore
// exactly what the authorization_code grant creates: same family record,
// same token format, same events.
//
// A Flow signs in once and keeps its session cookie, as a browser does, so
// the memory-hard password hash is paid once per Flow and not per family;
// the consent is remembered after the first approval.
package codeflow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Config names the issuer, the client and the user.
type Config struct {
	// AuthorizeURL and TokenURL are the issuer's endpoints.
	AuthorizeURL, TokenURL string
	// Issuer, when set, must be the iss of every authorization response
	// (RFC 9207); empty skips the check.
	Issuer string
	// ClientID and RedirectURI as registered; ClientSecret empty for a
	// public client (the exchange then sends client_id, PKCE alone binds
	// the code).
	ClientID, ClientSecret, RedirectURI string
	// Resource (RFC 8707) and Scope to ask for; empty for the client's
	// defaults.
	Resource, Scope string
	// Username and Password of the user who signs in and approves.
	Username, Password string
}

// Tokens is one token response of the code exchange.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
}

// Flow runs authorizations for one user agent: one cookie jar, so one
// session after the first login.
type Flow struct {
	cfg   Config
	http  *http.Client // the user agent: cookies kept, no redirect followed
	token *http.Client // the client's back channel: no cookies
	base  *url.URL     // the issuer's origin, for relative redirects
}

// New returns a Flow with its own cookie jar over transport (nil for
// http.DefaultTransport).
func New(cfg Config, transport http.RoundTripper) (*Flow, error) {
	if cfg.AuthorizeURL == "" || cfg.TokenURL == "" || cfg.ClientID == "" || cfg.RedirectURI == "" ||
		cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("codeflow: authorize and token URLs, client id, redirect URI, username and password are required")
	}
	base, err := url.Parse(cfg.AuthorizeURL)
	if err != nil {
		return nil, fmt.Errorf("codeflow: authorize URL: %w", err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	if transport == nil {
		transport = http.DefaultTransport
	}
	return &Flow{cfg: cfg, base: base, token: &http.Client{Transport: transport, Timeout: 30 * time.Second}, http: &http.Client{
		Jar: jar, Transport: transport, Timeout: 30 * time.Second,
		// Every redirect is read, not followed: the last one points at the
		// client, where nothing listens.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// page is one response of the browser part.
type page struct {
	status   int
	location string
	body     string
}

// maxSteps bounds the pages of one authorization: authorize, login,
// authorize again, consent.
const maxSteps = 6

// Authorize runs the browser part once and returns the authorization code,
// having checked state and iss. It signs in or approves when the issuer
// asks.
func (f *Flow) Authorize(ctx context.Context, challenge string) (string, error) {
	state, err := random(16)
	if err != nil {
		return "", err
	}
	q := url.Values{
		"response_type": {"code"}, "client_id": {f.cfg.ClientID}, "redirect_uri": {f.cfg.RedirectURI},
		"state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	if f.cfg.Scope != "" {
		q.Set("scope", f.cfg.Scope)
	}
	if f.cfg.Resource != "" {
		q.Set("resource", f.cfg.Resource)
	}
	p, err := f.do(ctx, http.MethodGet, f.cfg.AuthorizeURL+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	for range maxSteps {
		switch {
		case p.status == http.StatusOK && strings.Contains(p.body, `name="password"`):
			form, err := hidden(p.body)
			if err != nil {
				return "", fmt.Errorf("codeflow: login page: %w", err)
			}
			form.Set("username", f.cfg.Username)
			form.Set("password", f.cfg.Password)
			if p, err = f.do(ctx, http.MethodPost, f.resolve(formAction(p.body, "/login")), form); err != nil {
				return "", err
			}
			if p.status != http.StatusSeeOther {
				return "", fmt.Errorf("codeflow: login answered %d: %s", p.status, pageError(p.body))
			}
		case p.status == http.StatusOK && strings.Contains(p.body, `name="approve"`):
			form, err := hidden(p.body)
			if err != nil {
				return "", fmt.Errorf("codeflow: consent page: %w", err)
			}
			form.Set("approve", "1")
			if p, err = f.do(ctx, http.MethodPost, f.resolve(formAction(p.body, "/consent")), form); err != nil {
				return "", err
			}
		case (p.status == http.StatusFound || p.status == http.StatusSeeOther) && strings.HasPrefix(p.location, f.cfg.RedirectURI):
			return f.code(p.location, state)
		case p.status == http.StatusFound || p.status == http.StatusSeeOther:
			if p, err = f.do(ctx, http.MethodGet, f.resolve(p.location), nil); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("codeflow: the authorization stopped at status %d: %s", p.status, pageError(p.body))
		}
	}
	return "", fmt.Errorf("codeflow: no code after %d pages", maxSteps)
}

// code reads the redirect to the client (RFC 6749 §4.1.2, RFC 9207 §2).
func (f *Flow) code(location, state string) (string, error) {
	u, err := url.Parse(location)
	if err != nil {
		return "", fmt.Errorf("codeflow: redirect: %w", err)
	}
	q := u.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("codeflow: authorization refused: %s: %s", e, q.Get("error_description"))
	}
	switch {
	case q.Get("state") != state:
		return "", errors.New("codeflow: the redirect does not carry our state")
	case f.cfg.Issuer != "" && q.Get("iss") != f.cfg.Issuer:
		return "", fmt.Errorf("codeflow: the redirect's iss is %q, want %q", q.Get("iss"), f.cfg.Issuer)
	case q.Get("code") == "":
		return "", errors.New("codeflow: the redirect carries no code")
	}
	return q.Get("code"), nil
}

// Family runs one whole authorization and code exchange and returns the
// tokens of a new refresh family.
func (f *Flow) Family(ctx context.Context) (Tokens, error) {
	verifier, err := random(32) // 43 characters (RFC 7636 §4.1)
	if err != nil {
		return Tokens{}, err
	}
	sum := sha256.Sum256([]byte(verifier))
	code, err := f.Authorize(ctx, base64.RawURLEncoding.EncodeToString(sum[:]))
	if err != nil {
		return Tokens{}, err
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {f.cfg.RedirectURI}, "code_verifier": {verifier}}
	if f.cfg.ClientSecret == "" {
		form.Set("client_id", f.cfg.ClientID) // a public client (RFC 6749 §3.2.1)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Tokens{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if f.cfg.ClientSecret != "" {
		req.Header.Set("Authorization", BasicAuth(f.cfg.ClientID, f.cfg.ClientSecret))
	}
	res, err := f.token.Do(req)
	if err != nil {
		return Tokens{}, fmt.Errorf("codeflow: code exchange: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return Tokens{}, fmt.Errorf("codeflow: code exchange: %w", err)
	}
	var t struct {
		Tokens
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return Tokens{}, fmt.Errorf("codeflow: code exchange: status %d, not JSON: %w", res.StatusCode, err)
	}
	switch {
	case res.StatusCode != http.StatusOK:
		return Tokens{}, fmt.Errorf("codeflow: code exchange: status %d: %s: %s", res.StatusCode, t.Error, t.Description)
	case t.RefreshToken == "" || t.AccessToken == "" || t.TokenType != "Bearer":
		return Tokens{}, errors.New("codeflow: code exchange: no bearer access token and refresh token (is the client allowed refresh_token?)")
	}
	return t.Tokens, nil
}

// Families returns n new families, obtained by up to parallel concurrent
// authorizations after a first one (which signs in and approves).
func (f *Flow) Families(ctx context.Context, n, parallel int) ([]Tokens, error) {
	if n <= 0 {
		return nil, nil
	}
	first, err := f.Family(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Tokens, n)
	out[0] = first
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg   sync.WaitGroup
		once sync.Once
		ferr error
	)
	for range max(1, min(parallel, n-1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t, err := f.Family(ctx)
				if err != nil {
					once.Do(func() { ferr = fmt.Errorf("family %d: %w", i, err); cancel() })
					continue
				}
				out[i] = t
			}
		}()
	}
feed:
	for i := 1; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ferr != nil {
		return nil, ferr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// do sends one browser request: a GET, or a POST of form.
func (f *Flow) do(ctx context.Context, method, u string, form url.Values) (page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return page{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := f.http.Do(req)
	if err != nil {
		return page{}, fmt.Errorf("codeflow: %s %s: %w", method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 256<<10))
	if err != nil {
		return page{}, fmt.Errorf("codeflow: %s %s: %w", method, req.URL.Path, err)
	}
	return page{status: res.StatusCode, location: res.Header.Get("Location"), body: string(b)}, nil
}

// resolve makes a relative redirect or form action absolute against the
// issuer's origin.
func (f *Flow) resolve(ref string) string {
	u, err := f.base.Parse(ref)
	if err != nil {
		return ref
	}
	return u.String()
}

var (
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)"`)
	actionRE = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	errorRE  = regexp.MustCompile(`id="error">([^<]*)<`)
)

// hidden returns a page form's hidden fields (csrf and request); the
// CSRF token must be there.
func hidden(body string) (url.Values, error) {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	if v.Get("csrf") == "" {
		return nil, errors.New("no csrf field in the form")
	}
	return v, nil
}

// formAction returns the page form's action, or def.
func formAction(body, def string) string {
	if m := actionRE.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return def
}

// pageError returns the error a page shows, for messages.
func pageError(body string) string {
	if m := errorRE.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return fmt.Sprintf("%.200q", body)
}

// random returns n random bytes in base64url without padding.
func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("codeflow: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// BasicAuth returns the Authorization header value of client_secret_basic:
// id and secret each form-url-encoded before they are joined (RFC 6749
// §2.3.1).
func BasicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}
