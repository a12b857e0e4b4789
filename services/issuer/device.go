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
//   - POST /device: the code looked up under a per-IP and per-session
//     failed-attempt limit (§5.1), then the login page (login.go, via the
//     loginRequest and afterLogin hooks) or, signed in, the device consent
//     page showing the client, the resource, the scopes and the code to
//     compare with the device's screen;
//   - POST /device/decide: the session's CSRF token, the code looked up
//     again, approve or deny (DecideDevice).
//
// The polling side is grant_device.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/oautherr"
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

// User-code entry limits (RFC 8628 §5.1): failed look-ups per key (remote IP,
// and session when signed in) within deviceAttemptWindow. With 20^8 codes,
// a short code lifetime and these limits, guessing a live code is hopeless.
const (
	deviceMaxFailuresIP      = 20
	deviceMaxFailuresSession = 10
	deviceAttemptWindow      = 10 * time.Minute
	deviceLimiterCap         = 100_000
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
	limiter  *attemptLimiter
	outcomes *prometheus.CounterVec
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
	d := &deviceFlow{
		a: a, t: a.t, grants: dg, log: deps.Logger,
		lifetime: cfg.Tokens.DeviceCodeLifetime, interval: cfg.Tokens.DevicePollInterval,
		verify:  cfg.Services.Issuer.URL(devicePath),
		limiter: newAttemptLimiter(deviceAttemptWindow, deviceLimiterCap),
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
	res, err := d.startAuthorization(r.Context(), r)
	if err != nil {
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
// query (verification_uri_complete) when it holds a well-formed code.
func (d *deviceFlow) entryPage(c echo.Context) error {
	w, r := c.Response(), c.Request()
	code, _ := token.NormalizeUserCode(r.URL.Query().Get("user_code"))
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
// IPv6 per /64) and its session, if any.
func (d *deviceFlow) limitKeys(r *http.Request, sid string) []limitKey {
	keys := []limitKey{{"ip:" + clientAddr(r, d.a.trusted), deviceMaxFailuresIP}}
	if sid != "" {
		h := hashOf(sid)
		keys = append(keys, limitKey{"sid:" + string(h[:]), deviceMaxFailuresSession})
	}
	return keys
}

// lookup finds the pending authorization the form's user_code names, under
// the attempt limit. On failure it has written the page.
func (d *deviceFlow) lookup(w http.ResponseWriter, r *http.Request, keys []limitKey, retry func(msg string, status int) error) (store.DeviceCode, bool, error) {
	now := d.a.now()
	if d.limiter.blocked(now, keys) {
		d.outcomes.WithLabelValues("limited").Inc()
		w.Header().Set("Retry-After", fmt.Sprint(int(deviceAttemptWindow/time.Second)))
		return store.DeviceCode{}, false, d.a.renderError(w, http.StatusTooManyRequests, "Too many attempts",
			"Too many incorrect codes were entered. Wait a few minutes and try again.")
	}
	code, ok := token.NormalizeUserCode(r.PostForm.Get("user_code"))
	if !ok {
		d.limiter.fail(now, keys)
		d.outcomes.WithLabelValues("invalid_code").Inc()
		return store.DeviceCode{}, false, retry("That code is not valid. Check the code shown on your device.", http.StatusBadRequest)
	}
	dc, err := d.grants.LookupUserCode(r.Context(), code, now)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired):
		d.limiter.fail(now, keys)
		d.outcomes.WithLabelValues("invalid_code").Inc()
		return store.DeviceCode{}, false, retry("That code is not valid, has expired or was already used. Check the code shown on your device.", http.StatusBadRequest)
	case err != nil:
		d.outcomes.WithLabelValues("unavailable").Inc()
		d.log.Warn("device: user code lookup failed", zap.Error(err))
		return store.DeviceCode{}, false, d.a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	return dc, true, nil
}

// enter answers POST /device: CSRF, the code looked up (rate limited), then
// the login page or, signed in, the device consent page.
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
	retry := func(msg string, status int) error { return d.renderEntry(w, r, "", msg, status) }
	dc, ok, err := d.lookup(w, r, d.limitKeys(r, sid), retry)
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
		d.outcomes.WithLabelValues("login").Inc()
		return d.a.renderLogin(w, r, &authRequest{raw: deviceRequestPrefix + dc.UserCode, client: cl}, "", "", http.StatusOK)
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
	dc, ok, err := d.lookup(w, r, d.limitKeys(r, sid), retry)
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
// device continuation (deviceRequestPrefix and a user code, checked for form
// only: the code is looked up, under the attempt limit, after login) or an
// authorization request.
func (a *authorize) loginRequest(ctx context.Context, raw string) (*authRequest, error) {
	rest, ok := strings.CutPrefix(raw, deviceRequestPrefix)
	if !ok {
		return a.validate(ctx, raw)
	}
	code, ok := token.NormalizeUserCode(rest)
	if !ok {
		return nil, &pageError{http.StatusBadRequest, "The device code is malformed."}
	}
	return &authRequest{raw: deviceRequestPrefix + code, client: &store.Client{Name: "your device"}}, nil
}

// afterLogin is where a successful login goes: back to /device with the user
// code (to be confirmed again), or to /authorize.
func afterLogin(ar *authRequest) string {
	if code, ok := strings.CutPrefix(ar.raw, deviceRequestPrefix); ok {
		return devicePath + "?user_code=" + url.QueryEscape(code)
	}
	return authorizePath + "?" + ar.raw
}

// limitKey is one attempt-limiter key and its limit.
type limitKey struct {
	key string
	max int
}

// attemptLimiter counts failures per key in fixed windows, in memory (per
// replica).
type attemptLimiter struct {
	mu     sync.Mutex
	window time.Duration
	cap    int
	m      map[string]*attemptCount
}

type attemptCount struct {
	n     int
	start time.Time
}

func newAttemptLimiter(window time.Duration, capacity int) *attemptLimiter {
	return &attemptLimiter{window: window, cap: capacity, m: map[string]*attemptCount{}}
}

// blocked reports whether any key has reached its limit in the current
// window.
func (l *attemptLimiter) blocked(now time.Time, keys []limitKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if c, ok := l.m[k.key]; ok && now.Sub(c.start) < l.window && c.n >= k.max {
			return true
		}
	}
	return false
}

// fail counts one failure for every key. When the table is full, expired
// windows are dropped; if it is still full, the oldest entry is evicted.
func (l *attemptLimiter) fail(now time.Time, keys []limitKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		c, ok := l.m[k.key]
		if ok && now.Sub(c.start) < l.window {
			c.n++
			continue
		}
		if !ok && len(l.m) >= l.cap {
			l.sweep(now)
		}
		l.m[k.key] = &attemptCount{n: 1, start: now}
	}
}

func (l *attemptLimiter) sweep(now time.Time) {
	var oldest string
	var at time.Time
	for k, c := range l.m {
		if now.Sub(c.start) >= l.window {
			delete(l.m, k)
			continue
		}
		if oldest == "" || c.start.Before(at) {
			oldest, at = k, c.start
		}
	}
	if len(l.m) >= l.cap && oldest != "" {
		delete(l.m, oldest)
	}
}
