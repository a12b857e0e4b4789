package issuer

// /authorize (RFC 6749 §4.1.1 with the RFC 9700 profile): response_type=code
// only, PKCE S256 required for every client (RFC 7636, RFC 9700 §2.1.1),
// exact redirect URI matching with the RFC 8252 §7.3 loopback port exception
// for public clients, state returned, RFC 9207 iss in every response, scope
// and RFC 8707 resource resolved by tokenEndpoint.target exactly as for
// client credentials. The login and consent pages are login.go and
// consent.go; sessions, CSRF and the page headers are session.go.

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
	"github.com/valetauth/valet/pkg/users"
)

// Paths of the browser endpoints.
const (
	authorizePath = "/authorize"
	loginPath     = "/login"
	consentPath   = "/consent"
	logoutPath    = "/logout"
	pkceS256      = "S256"
	// maxQuery bounds an authorization request's query string.
	maxQuery = 8 << 10
)

// Sessions is what the pages need of the session store (pkg/store
// SessionStore).
type Sessions interface {
	CreateSession(ctx context.Context, s store.Session) error
	GetSession(ctx context.Context, h store.Hash, skew time.Duration) (store.Session, error)
	DeleteSession(ctx context.Context, h store.Hash) error
	PutConsent(ctx context.Context, c store.Consent, ttl time.Duration) error
	GetConsent(ctx context.Context, subject, clientID, resource string, skew time.Duration) (store.Consent, error)
}

// Users checks a username and password (*users.Authenticator): the user, or
// users.ErrInvalidCredentials, or an error matching users.ErrUnavailable.
type Users interface {
	Authenticate(ctx context.Context, username, password string) (users.User, error)
}

var _ Users = (*users.Authenticator)(nil)

// authorize serves /authorize, /login, /consent and /logout.
type authorize struct {
	t        *tokenEndpoint
	grants   Grants
	sessions Sessions
	users    Users
	clients  Clients
	log      *zap.Logger
	now      func() time.Time
	tmpl     *template.Template

	issuer       string
	codeLifetime time.Duration
	skew         time.Duration
	secure       bool // Secure cookies (outside dev mode)
	sessionTTL   time.Duration
	consentTTL   time.Duration
	hashSlots    chan struct{}
	loginLimits  // password-guessing limits (ratelimit.go)

	requests *prometheus.CounterVec
	logins   *prometheus.CounterVec
}

// Session and consent lifetimes, and the cap on concurrent password hashes
// (each argon2id hash holds its memory cost, 64 MiB by default).
const (
	defaultSessionTTL = 12 * time.Hour
	defaultConsentTTL = 90 * 24 * time.Hour
	maxConcurrentHash = 4
)

func newAuthorize(cfg *config.Config, deps Deps, t *tokenEndpoint, now func() time.Time) (*authorize, error) {
	if deps.Sessions == nil || deps.Users == nil || deps.Revoker == nil {
		return nil, errors.New("issuer: /authorize needs grants, sessions, users and a revoker")
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	a := &authorize{
		t: t, grants: deps.Grants, sessions: deps.Sessions, users: deps.Users, clients: deps.Clients,
		log: deps.Logger, now: now, tmpl: tmpl,
		issuer: cfg.Issuer, codeLifetime: cfg.Tokens.AuthorizationCodeLifetime, skew: cfg.Tokens.ClockSkew,
		secure: !cfg.Dev, sessionTTL: defaultSessionTTL, consentTTL: defaultConsentTTL,
		hashSlots: make(chan struct{}, maxConcurrentHash),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_authorize_requests_total",
			Help: "Authorization requests by outcome: code, login, consent, error_page, or the RFC 6749 error redirected.",
		}, []string{"outcome"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_login_attempts_total",
			Help: "Password logins by outcome: success, failure, throttled (back-off), busy (hashing capacity full), csrf, unavailable.",
		}, []string{"outcome"}),
	}
	if a.codeLifetime <= 0 {
		a.codeLifetime = time.Minute
	}
	for _, c := range []prometheus.Collector{a.requests, a.logins} {
		if err := deps.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("issuer: register authorize metrics: %w", err)
		}
	}
	return a, nil
}

// register adds the browser routes.
func (a *authorize) register(e *echo.Echo) {
	e.GET(authorizePath, a.authorize)
	e.POST(loginPath, a.login)
	e.POST(consentPath, a.consent)
	e.GET(logoutPath, a.logoutPage)
	e.POST(logoutPath, a.logout)
}

// authRequest is a validated authorization request.
type authRequest struct {
	raw         string // the query string, carried through the forms
	client      *store.Client
	redirectURI string
	state       string
	challenge   string
	aud         string
	rs          *store.ResourceServer
	scopes      []string
}

// pageError is a failure that must not be redirected (RFC 6749 §4.1.2.1:
// the client or redirect URI is unknown or invalid): shown to the user.
type pageError struct {
	status int
	msg    string
}

func (e *pageError) Error() string { return e.msg }

// validate checks an authorization request. It returns a *pageError when
// the client or the redirect URI cannot be trusted, an *oautherr.Error (with
// the request, whose redirect URI and state are set) for errors to redirect,
// or the request.
func (a *authorize) validate(ctx context.Context, raw string) (*authRequest, error) {
	if len(raw) > maxQuery {
		return nil, &pageError{http.StatusBadRequest, "The authorization request is too large."}
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, &pageError{http.StatusBadRequest, "The authorization request is malformed."}
	}
	if len(q["client_id"]) != 1 || q.Get("client_id") == "" {
		return nil, &pageError{http.StatusBadRequest, "The request does not name exactly one client (client_id)."}
	}
	cl, err := a.clients.Client(ctx, q.Get("client_id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, &pageError{http.StatusBadRequest, "The application is not registered (unknown client_id)."}
	case err != nil:
		return nil, &pageError{http.StatusServiceUnavailable, "The service is temporarily unavailable."}
	case cl.Disabled:
		return nil, &pageError{http.StatusBadRequest, "The application is disabled."}
	}
	if len(q["redirect_uri"]) != 1 {
		return nil, &pageError{http.StatusBadRequest, "The request must carry exactly one redirect_uri."}
	}
	ru := q.Get("redirect_uri")
	if !redirectAllowed(cl, ru) {
		return nil, &pageError{http.StatusBadRequest, "The redirect_uri is not registered for this application."}
	}
	ar := &authRequest{raw: raw, client: cl, redirectURI: ru}
	if len(q["state"]) == 1 {
		ar.state = q.Get("state")
	}
	for k, v := range q {
		if len(v) > 1 && k != "resource" {
			return ar, oautherr.ErrInvalidRequest.WithDescription("A parameter is repeated: %.64s.", k)
		}
	}
	if q.Get("response_type") != "code" {
		return ar, oautherr.ErrUnsupportedResponseType.WithDescription("Only response_type=code is supported.")
	}
	if !clientMay(cl, grantAuthorizationCode) {
		return ar, oautherr.ErrUnauthorizedClient.WithDescription("The client is not allowed the authorization_code grant.")
	}
	switch m := q.Get("code_challenge_method"); {
	case q.Get("code_challenge") == "":
		return ar, oautherr.ErrInvalidRequest.WithDescription("PKCE is required: code_challenge is missing (RFC 7636).")
	case m != pkceS256:
		return ar, oautherr.ErrInvalidRequest.WithDescription("PKCE code_challenge_method must be S256.")
	}
	ar.challenge = q.Get("code_challenge")
	if len(ar.challenge) != 43 || !validVerifier(ar.challenge) {
		return ar, oautherr.ErrInvalidRequest.WithDescription("The code_challenge is not an S256 challenge (43 base64url characters).")
	}
	aud, rs, scope, err := a.t.target(ctx, cl, len(q["resource"]), q.Get("resource"), q.Get("scope"), nil)
	if err != nil {
		return ar, err
	}
	ar.aud, ar.rs, ar.scopes = aud, rs, splitScope(scope)
	return ar, nil
}

// redirectAllowed reports whether ru is one of cl's redirect URIs: by exact
// string comparison, except that for a public client a loopback IP redirect
// (http://127.0.0.1 or http://[::1]) may use any port (RFC 8252 §7.3).
func redirectAllowed(cl *store.Client, ru string) bool {
	for _, r := range cl.RedirectURIs {
		if r == ru {
			return true
		}
	}
	if cl.Type != store.Public {
		return false
	}
	u, err := url.Parse(ru)
	if err != nil || !isLoopback(u) {
		return false
	}
	for _, r := range cl.RedirectURIs {
		reg, err := url.Parse(r)
		if err == nil && isLoopback(reg) && reg.Hostname() == u.Hostname() &&
			reg.EscapedPath() == u.EscapedPath() && reg.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

// isLoopback reports whether u is an http loopback IP literal redirect with
// no user info or fragment.
func isLoopback(u *url.URL) bool {
	h := u.Hostname()
	return u.Scheme == "http" && u.User == nil && u.Fragment == "" && u.Opaque == "" &&
		(h == "127.0.0.1" || h == "::1")
}

// authorize answers GET /authorize.
func (a *authorize) authorize(c echo.Context) error {
	w, r := c.Response(), c.Request()
	ar, err := a.validate(r.Context(), r.URL.RawQuery)
	if err != nil {
		return a.fail(w, ar, err, http.StatusFound)
	}
	sess, sid := a.session(r)
	if sess == nil {
		a.requests.WithLabelValues("login").Inc()
		return a.renderLogin(w, r, ar, "", "", http.StatusOK)
	}
	if a.consented(r.Context(), ar, sess) {
		return a.issue(r.Context(), w, ar, sess, http.StatusFound)
	}
	a.requests.WithLabelValues("consent").Inc()
	return a.renderConsent(w, ar, sess, sid)
}

// consented reports whether the consent page may be skipped: a first-party
// client, or a remembered consent covering every requested scope.
func (a *authorize) consented(ctx context.Context, ar *authRequest, sess *store.Session) bool {
	if ar.client.FirstParty {
		return true
	}
	c, err := a.sessions.GetConsent(ctx, sess.Subject, ar.client.ID, ar.aud, a.skew)
	if err != nil {
		return false
	}
	for _, s := range ar.scopes {
		if !contains(c.Scopes, s) {
			return false
		}
	}
	return true
}

// issue stores a code (RFC 6749 §4.1.2) for a new family and redirects to
// the client with code, state and iss (RFC 9207).
func (a *authorize) issue(ctx context.Context, w *echo.Response, ar *authRequest, sess *store.Session, status int) error {
	fid, err := token.NewFamilyID()
	if err != nil {
		return a.fail(w, ar, oautherr.ErrServerError.WithCause(err), status)
	}
	code, err := token.New(token.KindCode, fid)
	if err != nil {
		return a.fail(w, ar, oautherr.ErrServerError.WithCause(err), status)
	}
	now := a.now()
	err = a.grants.CreateAuthCode(ctx, store.AuthCode{
		FID: fid, Hash: code.Hash, ClientID: ar.client.ID, RedirectURI: ar.redirectURI,
		CodeChallenge: ar.challenge, CodeChallengeMethod: pkceS256, Scopes: ar.scopes, Resource: ar.aud,
		Subject: sess.Subject, AuthTime: sess.AuthTime, CreatedAt: now, ExpiresAt: now.Add(a.codeLifetime),
	})
	if err != nil {
		return a.fail(w, ar, unavailable("The service is temporarily unavailable.", err), status)
	}
	a.requests.WithLabelValues("code").Inc()
	v := url.Values{"code": {code.Value}, "iss": {a.issuer}}
	if ar.state != "" {
		v.Set("state", ar.state)
	}
	return a.redirect(w, ar.redirectURI, v, status)
}

// fail shows a page error, or redirects an OAuth error to the validated
// redirect URI with error, error_description, state and iss.
func (a *authorize) fail(w *echo.Response, ar *authRequest, err error, status int) error {
	var pe *pageError
	if errors.As(err, &pe) || ar == nil {
		if pe == nil {
			pe = &pageError{http.StatusBadRequest, "The request is invalid."}
		}
		a.requests.WithLabelValues("error_page").Inc()
		return a.renderError(w, pe.status, "Request refused", pe.msg)
	}
	e := oautherr.From(err)
	if e.Status >= 500 {
		a.log.Warn("authorization request failed", zap.String("client_id", ar.client.ID), zap.String("error", e.Code), zap.Error(e.Cause()))
	}
	a.requests.WithLabelValues(e.Code).Inc()
	return a.redirect(w, ar.redirectURI, e.RedirectQuery(ar.state, a.issuer), status)
}

// redirect sends the user agent to base (already validated) with v added to
// its query.
func (a *authorize) redirect(w *echo.Response, base string, v url.Values, status int) error {
	u, err := url.Parse(base)
	if err != nil {
		return a.renderError(w, http.StatusBadRequest, "Request refused", "The redirect_uri is invalid.")
	}
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	pageHeaders(w.Header())
	w.Header().Set("Location", u.String())
	w.WriteHeader(status)
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
