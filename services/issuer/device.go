package issuer

// The device authorization grant (RFC 8628), browser and device side:
//
//   - POST /device_authorization (§3.1, §3.2): the client authenticated as at
//     /token and allowed the device_code grant, resource and scope resolved by
//     tokenEndpoint.target as for every other grant; a device code
//     (vdc_<fid>.<secret>, stored hashed) and a user code (XXXX-XXXX from
//     token.UserCodeAlphabet) are stored pending;
//   - GET /device (§3.3): the user-code form, pre-filled from
//     verification_uri_complete's user_code but always submitted by the user
//     (§5.4: a link alone never approves anything);
//   - POST /device: the code looked up under a per-address and per-session
//     attempt cap (§5.1, DeviceLimiter: shared through Redis), then, signed
//     in, the device consent page showing the client, the resource, the
//     scopes and the code to compare with the device's screen; or else the
//     login page (login.go, via the loginRequest and afterLogin hooks),
//     after which the browser lands on that consent page directly;
//   - POST /device/decide: the session's CSRF token, the code looked up
//     again, approve or deny (DecideDevice).
//
// No click is lost to the login: the code the user submitted before signing
// in is carried through the login form and back to GET /device with a
// binding, SHA-256 of the code and a random value held in this browser's
// HttpOnly valet_device cookie (Path=/device). GET /device shows the
// consent page only for a signed-in session presenting a binding that
// matches its own cookie; a link carrying someone else's code or binding
// only pre-fills the form. The consent page is the user's confirmation of
// the code (§5.4): it shows the code and nothing is approved without its
// Allow button, which posts the session's CSRF token.
//
// The polling side is grant_device.go.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
)

// DeviceGrants is what the device grant needs of the grant store (pkg/store
// GrantStore, both backends). The device flow is on when Deps.Grants also
// implements it.
type DeviceGrants interface {
	CreateDeviceCode(ctx context.Context, d store.DeviceCode) error
	LookupUserCode(ctx context.Context, userCode string, now time.Time) (store.DeviceCode, error)
	DecideDevice(ctx context.Context, fid string, approve bool, subject string, authTime, now time.Time) error
	PollDevice(ctx context.Context, p store.DevicePoll) (store.PollResult, error)
}

var _ DeviceGrants = store.GrantStore(nil)

// Paths of the device endpoints.
const (
	deviceAuthorizationPath = "/device_authorization"
	devicePath              = "/device"
	deviceDecidePath        = "/device/decide"
	// deviceRequestPrefix marks the hidden request field of a login started
	// from /device: the rest is the user code.
	deviceRequestPrefix = "valet_device=1&user_code="
)

// User-code entry limits (RFC 8628 §5.1): failed look-ups per key (client
// address, and session when signed in) within deviceAttemptWindow. With
// 20^8 codes, a short code lifetime and these limits, guessing a live code
// is hopeless.
const (
	deviceMaxFailuresIP      = 20
	deviceMaxFailuresSession = 10
	deviceAttemptWindow      = 10 * time.Minute
	// deviceLimiterCap bounds the in-memory limiter of the embedded store.
	deviceLimiterCap = 100_000
	// deviceBindCookie holds the random value user codes are bound to
	// between POST /device and the return from the login page.
	deviceBindCookie = "valet_device"
)

// DeviceLimiter caps user-code entries per key (*ratelimit.Attempts in
// Redis, shared by every replica; *ratelimit.LocalAttempts for the
// single-process embedded store). Every look-up takes an attempt first;
// look-ups that were not wrong codes give it back, so only failures stay
// counted, and concurrent guesses cannot overshoot the cap. An error means
// the limits cannot be read: the page fails closed (503).
type DeviceLimiter interface {
	// Take reserves an attempt on every limit, or returns how long to wait.
	Take(ctx context.Context, limits ...ratelimit.Limit) (time.Duration, error)
	// Refund gives back an attempt Take reserved.
	Refund(ctx context.Context, limits ...ratelimit.Limit) error
}

var (
	_ DeviceLimiter = (*ratelimit.Attempts)(nil)
	_ DeviceLimiter = (*ratelimit.LocalAttempts)(nil)
)

// deviceFlow serves the device endpoints.
type deviceFlow struct {
	a        *authorize
	t        *tokenEndpoint
	grants   DeviceGrants
	log      *zap.Logger
	lifetime time.Duration
	interval time.Duration
	verify   string // verification_uri
	limiter  DeviceLimiter
	outcomes *prometheus.CounterVec
	// limits are the per-replica request limits of /device_authorization,
	// as at /token (nil: none).
	limits *clientlimit.Guard
}

// deviceGrantsOf returns the device store of deps, or nil when the grant
// store has none (the device flow is then off).
func deviceGrantsOf(deps Deps) DeviceGrants {
	dg, _ := deps.Grants.(DeviceGrants)
	return dg
}

// newDeviceFlow returns the device endpoints, or nil when the grant store
// has no device codes.
func newDeviceFlow(cfg *config.Config, deps Deps, a *authorize) (*deviceFlow, error) {
	dg := deviceGrantsOf(deps)
	if dg == nil {
		return nil, nil
	}
	lim, err := deviceLimiter(cfg, deps)
	if err != nil {
		return nil, err
	}
	d := &deviceFlow{
		a: a, t: a.t, grants: dg, log: deps.Logger,
		lifetime: cfg.Tokens.DeviceCodeLifetime, interval: cfg.Tokens.DevicePollInterval,
		verify:  cfg.Services.Issuer.URL(devicePath),
		limiter: lim,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_device_verifications_total",
			Help: "Device flow browser steps by outcome: issued, login, consent, approved, denied, invalid_code, limited, csrf, unavailable.",
		}, []string{"outcome"}),
	}
	if d.lifetime <= 0 {
		d.lifetime = 10 * time.Minute
	}
	if d.interval <= 0 {
		d.interval = 5 * time.Second
	}
	if err := deps.Registry.Register(d.outcomes); err != nil {
		return nil, fmt.Errorf("issuer: register device metrics: %w", err)
	}
	return d, nil
}

// deviceLimiter returns deps.DeviceLimiter, or the one the store calls
// for: Redis-backed when the store is on Redis, so that the cap holds
// across replicas; in memory otherwise, which only the single-process
// embedded store (valet dev) may rely on.
func deviceLimiter(cfg *config.Config, deps Deps) (DeviceLimiter, error) {
	if deps.DeviceLimiter != nil {
		return deps.DeviceLimiter, nil
	}
	acfg := ratelimit.AttemptsConfig{Name: "device", Window: deviceAttemptWindow}
	if rc, ok := deps.Store.(redisClienter); ok {
		l, err := ratelimit.NewAttempts(rc.Client(), cfg.Redis.KeyPrefix, acfg)
		if err != nil {
			return nil, fmt.Errorf("issuer: device limiter: %w", err)
		}
		return l, nil
	}
	l, err := ratelimit.NewLocalAttempts(acfg, deviceLimiterCap, deps.Clock)
	if err != nil {
		return nil, fmt.Errorf("issuer: device limiter: %w", err)
	}
	deps.Logger.Info("device user-code entry limits are kept in this process: the store is not Redis (the embedded store is single-process)")
	return l, nil
}

// register adds the device routes.
func (d *deviceFlow) register(e *echo.Echo) {
	e.Any(deviceAuthorizationPath, d.authorization)
	e.GET(devicePath, d.entryPage)
	e.POST(devicePath, d.enter)
	e.POST(deviceDecidePath, d.decide)
}

// deviceAuthResponse is the RFC 8628 §3.2 response.
type deviceAuthResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// authorization answers POST /device_authorization (RFC 8628 §3.1, §3.2).
func (d *deviceFlow) authorization(c echo.Context) error {
	r, w := c.Request(), c.Response()
	var res deviceAuthResponse
	addr, err := d.limits.Admit(c) // as at /token
	if err == nil {
		res, err = d.startAuthorization(r.Context(), r)
	}
	if err != nil {
		d.limits.Answered(addr, err)
		e := oautherr.From(err)
		if e.Status >= 500 {
			d.log.Warn("device authorization failed", zap.String("error", e.Code), zap.Error(e.Cause()))
		}
		oautherr.Write(w, e)
		return nil
	}
	d.outcomes.WithLabelValues("issued").Inc()
	b, _ := json.Marshal(res) // strings and integers: cannot fail
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["Pragma"] = hdrNoCache
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

// startAuthorization authenticates the client and stores a pending device
// authorization.
func (d *deviceFlow) startAuthorization(ctx context.Context, r *http.Request) (deviceAuthResponse, error) {
	var form clientauth.Form
	if err := clientauth.ReadForm(r, &form, d.t.maxBody); err != nil {
		return deviceAuthResponse{}, err
	}
	if name := form.Repeated(); name != "" {
		return deviceAuthResponse{}, oautherr.ErrInvalidRequest.WithDescription("A parameter is repeated: %.64s.", name)
	}
	creds, err := clientauth.CredentialsFrom(r.Header, &form)
	if err != nil {
		return deviceAuthResponse{}, err
	}
	auth, err := d.t.auth.Authenticate(ctx, creds)
	if err != nil {
		return deviceAuthResponse{}, err
	}
	if err := d.limits.Client(auth); err != nil {
		return deviceAuthResponse{}, err
	}
	cl := auth.Client
	if !clientMay(cl, grantDeviceCode) {
		return deviceAuthResponse{}, oautherr.ErrUnauthorizedClient.WithDescription("The client is not allowed the device_code grant.")
	}
	aud, _, scope, err := d.t.target(ctx, cl, form.Count("resource"), form.Get("resource"), form.Get("scope"), nil)
	if err != nil {
		return deviceAuthResponse{}, err
	}
	fid, err := token.NewFamilyID()
	if err != nil {
		return deviceAuthResponse{}, oautherr.ErrServerError.WithCause(err)
	}
	dc, err := token.New(token.KindDevice, fid)
	if err != nil {
		return deviceAuthResponse{}, oautherr.ErrServerError.WithCause(err)
	}
	now := d.a.now()
	var userCode string
	for range 3 { // a user-code collision is rare; try again with a new one
		if userCode, err = token.NewUserCode(); err != nil {
			return deviceAuthResponse{}, oautherr.ErrServerError.WithCause(err)
		}
		err = d.grants.CreateDeviceCode(ctx, store.DeviceCode{
			FID: fid, Hash: dc.Hash, UserCode: userCode, ClientID: cl.ID, Scopes: splitScope(scope), Resource: aud,
			Interval: d.interval, CreatedAt: now, ExpiresAt: now.Add(d.lifetime), Status: store.DevicePending,
		})
		if !errors.Is(err, store.ErrAlreadyExists) {
			break
		}
	}
	if err != nil {
		return deviceAuthResponse{}, unavailable("The token store is temporarily unavailable.", err)
	}
	return deviceAuthResponse{
		DeviceCode: dc.Value, UserCode: userCode, VerificationURI: d.verify,
		VerificationURIComplete: d.verify + "?user_code=" + url.QueryEscape(userCode),
		ExpiresIn:               int64(d.lifetime / time.Second), Interval: int64((d.interval + time.Second - 1) / time.Second),
	}, nil
}

// devicePage is the data of the device templates.
type devicePage struct {
	Title, Error, Action, CSRF, UserCode, Client, Resource, Username string
	Scopes                                                           []string
	Approved                                                         bool
}

// render writes a device page with the page headers.
func (d *deviceFlow) render(w http.ResponseWriter, status int, name string, p devicePage) error {
	pageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return d.a.tmpl.ExecuteTemplate(w, name, p)
}

// formCSRF returns the CSRF token of the user-code form: the session's
// synchronizer token when signed in, else the double-submit cookie's.
func (d *deviceFlow) formCSRF(w http.ResponseWriter, r *http.Request, sess *store.Session, sid string) (string, error) {
	if sess != nil {
		return sessionCSRF(sid), nil
	}
	return d.a.loginCSRF(w, r)
}

// checkFormCSRF checks what formCSRF handed out.
func checkFormCSRF(r *http.Request, sess *store.Session, sid string) bool {
	presented := r.PostForm.Get("csrf")
	if sess != nil {
		return checkSessionCSRF(sess, sid, presented)
	}
	return checkLoginCSRF(r, presented)
}

// entryPage answers GET /device: the user-code form, pre-filled from the
// query (verification_uri_complete) when it holds a well-formed code; or,
// on the return from the login page, for a signed-in session whose query
// binds the code to this browser's valet_device cookie, straight the
// consent page for the code submitted before login.
func (d *deviceFlow) entryPage(c echo.Context) error {
	w, r := c.Response(), c.Request()
	q := r.URL.Query()
	code, ok := token.NormalizeUserCode(q.Get("user_code"))
	if bind := q.Get("bind"); ok && bind != "" {
		if sess, sid := d.a.session(r); sess != nil && d.bound(r, code, bind) {
			// Single use: a reload shows the pre-filled form.
			http.SetCookie(w, d.bindCookie("", -1))
			return d.proceed(w, r, sess, sid, code)
		}
	}
	return d.renderEntry(w, r, code, "", http.StatusOK)
}

func (d *deviceFlow) renderEntry(w http.ResponseWriter, r *http.Request, code, msg string, status int) error {
	sess, sid := d.a.session(r)
	csrf, err := d.formCSRF(w, r, sess, sid)
	if err != nil {
		return d.a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	return d.render(w, status, "device", devicePage{Title: "Connect a device", Action: devicePath, CSRF: csrf, UserCode: code, Error: msg})
}

// limitKeys are the attempt-limiter keys of r: its client address (as the
// login limits see it: X-Forwarded-For only from limits.trusted_proxies,
// IPv6 per /64) and its session, if any (hashed: the limiter hashes again).
func (d *deviceFlow) limitKeys(r *http.Request, sid string) []ratelimit.Limit {
	keys := []ratelimit.Limit{{ID: "ip:" + clientAddr(r, d.a.trusted), Max: deviceMaxFailuresIP}}
	if sid != "" {
		h := hashOf(sid)
		keys = append(keys, ratelimit.Limit{ID: "sid:" + string(h[:]), Max: deviceMaxFailuresSession})
	}
	return keys
}

// lookup finds the pending authorization the user code raw names, under the
// attempt limit: an attempt is taken first and given back unless the code
// was wrong. On failure it has written the page.
func (d *deviceFlow) lookup(w http.ResponseWriter, r *http.Request, keys []ratelimit.Limit, raw string, retry func(msg string, status int) error) (store.DeviceCode, bool, error) {
	ctx := r.Context()
	wait, err := d.limiter.Take(ctx, keys...)
	if err != nil {
		d.outcomes.WithLabelValues("unavailable").Inc()
		d.log.Warn("device: user-code limits unavailable", zap.Error(err))
		w.Header().Set("Retry-After", "1")
		return store.DeviceCode{}, false, d.a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	if wait > 0 {
		d.outcomes.WithLabelValues("limited").Inc()
		w.Header().Set("Retry-After", retryAfterSeconds(wait))
		return store.DeviceCode{}, false, d.a.renderError(w, http.StatusTooManyRequests, "Too many attempts",
			"Too many incorrect codes were entered. Try again in "+waitText(wait)+".")
	}
	code, ok := token.NormalizeUserCode(raw)
	if !ok {
		d.outcomes.WithLabelValues("invalid_code").Inc()
		return store.DeviceCode{}, false, retry("That code is not valid. Check the code shown on your device.", http.StatusBadRequest)
	}
	dc, err := d.grants.LookupUserCode(ctx, code, d.a.now())
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired):
		d.outcomes.WithLabelValues("invalid_code").Inc()
		return store.DeviceCode{}, false, retry("That code is not valid, has expired or was already used. Check the code shown on your device.", http.StatusBadRequest)
	case err != nil:
		d.refund(ctx, keys)
		d.outcomes.WithLabelValues("unavailable").Inc()
		d.log.Warn("device: user code lookup failed", zap.Error(err))
		return store.DeviceCode{}, false, d.a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	d.refund(ctx, keys)
	return dc, true, nil
}

// refund gives back an attempt that was not a wrong code. A refund lost to
// an outage only makes the limit stricter for a while.
func (d *deviceFlow) refund(ctx context.Context, keys []ratelimit.Limit) {
	if err := d.limiter.Refund(ctx, keys...); err != nil {
		d.log.Warn("device: user-code attempt not given back", zap.Error(err))
	}
}

// enter answers POST /device: CSRF, then proceed with the submitted code.
func (d *deviceFlow) enter(c echo.Context) error {
	w, r := c.Response(), c.Request()
	if err := readForm(w, r); err != nil {
		return d.a.renderError(w, http.StatusBadRequest, "Request refused", "The form is malformed.")
	}
	sess, sid := d.a.session(r)
	if !checkFormCSRF(r, sess, sid) {
		d.outcomes.WithLabelValues("csrf").Inc()
		return d.a.renderError(w, http.StatusForbidden, "Request refused", "The form has expired or did not come from this site. Go back and try again.")
	}
	return d.proceed(w, r, sess, sid, r.PostForm.Get("user_code"))
}

// proceed looks the user code raw up (rate limited) and shows the device
// consent page, or, without a session, the login page, whose request binds
// the code to this browser (bindNonce) so that the login returns straight
// to the consent page.
func (d *deviceFlow) proceed(w http.ResponseWriter, r *http.Request, sess *store.Session, sid, raw string) error {
	retry := func(msg string, status int) error { return d.renderEntry(w, r, "", msg, status) }
	dc, ok, err := d.lookup(w, r, d.limitKeys(r, sid), raw, retry)
	if !ok {
		return err
	}
	cl, err := d.a.clients.Client(r.Context(), dc.ClientID)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && cl.Disabled:
		return d.a.renderError(w, http.StatusBadRequest, "Request refused", "The application is no longer registered.")
	case err != nil:
		return d.a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	if sess == nil {
		nonce, err := d.bindNonce(w, r)
		if err != nil {
			return d.a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
		}
		d.outcomes.WithLabelValues("login").Inc()
		raw := deviceRequestPrefix + dc.UserCode + "&bind=" + deviceBinding(nonce, dc.UserCode)
		return d.a.renderLogin(w, r, &authRequest{raw: raw, client: cl}, "", "", http.StatusOK)
	}
	resource := dc.Resource
	if rs, err := d.a.clients.ResourceServer(r.Context(), dc.Resource); err == nil && rs.Name != "" {
		resource = rs.Name
	}
	d.outcomes.WithLabelValues("consent").Inc()
	return d.render(w, http.StatusOK, "device_consent", devicePage{Title: "Allow device access", Action: deviceDecidePath,
		CSRF: sessionCSRF(sid), UserCode: dc.UserCode, Client: clientName(cl), Resource: resource, Username: displayName(sess), Scopes: dc.Scopes})
}

// decide answers POST /device/decide: the session's CSRF token, the code
// looked up again (rate limited), then DecideDevice (RFC 8628 §3.3).
func (d *deviceFlow) decide(c echo.Context) error {
	w, r := c.Response(), c.Request()
	if err := readForm(w, r); err != nil {
		return d.a.renderError(w, http.StatusBadRequest, "Request refused", "The form is malformed.")
	}
	sess, sid := d.a.session(r)
	if !checkSessionCSRF(sess, sid, r.PostForm.Get("csrf")) {
		d.outcomes.WithLabelValues("csrf").Inc()
		return d.a.renderError(w, http.StatusForbidden, "Request refused", "The form has expired or did not come from this site. Go back and try again.")
	}
	approve, deny := r.PostForm.Get("approve") != "", r.PostForm.Get("deny") != ""
	if approve == deny {
		return d.a.renderError(w, http.StatusBadRequest, "Request refused", "Choose Allow or Deny.")
	}
	retry := func(msg string, status int) error { return d.renderEntry(w, r, "", msg, status) }
	dc, ok, err := d.lookup(w, r, d.limitKeys(r, sid), r.PostForm.Get("user_code"), retry)
	if !ok {
		return err
	}
	switch err := d.grants.DecideDevice(r.Context(), dc.FID, approve, sess.Subject, sess.AuthTime, d.a.now()); {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired), errors.Is(err, store.ErrConflict):
		return d.renderEntry(w, r, "", "That code has expired or was already used.", http.StatusBadRequest)
	case err != nil:
		d.outcomes.WithLabelValues("unavailable").Inc()
		d.log.Warn("device: decision not stored", zap.Error(err))
		return d.a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	if approve {
		d.outcomes.WithLabelValues("approved").Inc()
	} else {
		d.outcomes.WithLabelValues("denied").Inc()
	}
	return d.render(w, http.StatusOK, "device_done", devicePage{Title: "Device", Approved: approve})
}

// loginRequest validates the request field of the login form (login.go): a
// device continuation (valet_device=1, a user code and the binding that
// POST /device added, checked for form only: the code is looked up, under
// the attempt limit, after login) or an authorization request.
func (a *authorize) loginRequest(ctx context.Context, raw string) (*authRequest, error) {
	if !strings.HasPrefix(raw, deviceRequestPrefix) {
		return a.validate(ctx, raw)
	}
	code, bind, ok := parseDeviceRequest(raw)
	if !ok {
		return nil, &pageError{http.StatusBadRequest, "The device code is malformed."}
	}
	return &authRequest{raw: deviceRequest(code, bind), client: &store.Client{Name: "your device"}}, nil
}

// parseDeviceRequest reads a device continuation: exactly valet_device=1,
// one well-formed user_code and at most one well-formed bind.
func parseDeviceRequest(raw string) (code, bind string, ok bool) {
	if len(raw) > maxForm {
		return "", "", false
	}
	q, err := url.ParseQuery(raw)
	if err != nil || len(q["valet_device"]) != 1 || q.Get("valet_device") != "1" || len(q["user_code"]) != 1 || len(q["bind"]) > 1 {
		return "", "", false
	}
	for k := range q {
		if k != "valet_device" && k != "user_code" && k != "bind" {
			return "", "", false
		}
	}
	code, ok = token.NormalizeUserCode(q.Get("user_code"))
	bind = q.Get("bind")
	if !ok || bind != "" && !wellFormedBinding(bind) {
		return "", "", false
	}
	return code, bind, true
}

// deviceRequest is the canonical device continuation of code and bind.
func deviceRequest(code, bind string) string {
	raw := deviceRequestPrefix + url.QueryEscape(code)
	if bind != "" {
		raw += "&bind=" + bind
	}
	return raw
}

// afterLogin is where a successful login goes: back to /device with the user
// code and its binding (straight to the consent page when the binding
// matches this browser's cookie), or to /authorize.
func afterLogin(ar *authRequest) string {
	if strings.HasPrefix(ar.raw, deviceRequestPrefix) {
		code, bind, _ := parseDeviceRequest(ar.raw) // canonical: loginRequest built it
		loc := devicePath + "?user_code=" + url.QueryEscape(code)
		if bind != "" {
			loc += "&bind=" + bind
		}
		return loc
	}
	return authorizePath + "?" + ar.raw
}

// deviceBinding binds a user code to a browser's valet_device value:
// base64url(SHA-256("valet device binding" || 0 || nonce || 0 || code)).
// Without the HttpOnly cookie nobody can compute it for another code.
func deviceBinding(nonce, code string) string {
	s := sha256.Sum256([]byte("valet device binding\x00" + nonce + "\x00" + code))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// wellFormedBinding reports whether b looks like a deviceBinding.
func wellFormedBinding(b string) bool {
	if len(b) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(b)
	return err == nil
}

// bindNonce returns this browser's valet_device value, setting a new
// cookie when it has none. The cookie lives as long as a device code and
// is sent to /device only.
func (d *deviceFlow) bindNonce(w http.ResponseWriter, r *http.Request) (string, error) {
	if ck, err := r.Cookie(deviceBindCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value, nil
	}
	v, err := randomValue()
	if err != nil {
		return "", err
	}
	http.SetCookie(w, d.bindCookie(v, int(d.lifetime/time.Second)))
	return v, nil
}

// bindCookie is the valet_device cookie: HttpOnly, SameSite=Lax (sent on
// the redirect back from /login), Secure outside dev mode, Path=/device;
// a negative maxAge deletes it.
func (d *deviceFlow) bindCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: deviceBindCookie, Value: value, Path: devicePath, MaxAge: maxAge,
		HttpOnly: true, Secure: d.a.secure, SameSite: http.SameSiteLaxMode}
}

// bound reports whether bind is code's binding to r's valet_device cookie.
func (d *deviceFlow) bound(r *http.Request, code, bind string) bool {
	ck, err := r.Cookie(deviceBindCookie)
	if err != nil || len(ck.Value) != 43 || !wellFormedBinding(bind) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(deviceBinding(ck.Value, code)), []byte(bind)) == 1
}
