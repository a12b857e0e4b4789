package issuer

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
)

// renderLogin shows the login form for the authorization request ar.
func (a *authorize) renderLogin(w http.ResponseWriter, r *http.Request, ar *authRequest, username, msg string, status int) error {
	csrf, err := a.loginCSRF(w, r)
	if err != nil {
		return a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	return a.render(w, status, "login", page{Title: "Sign in", Action: loginPath, CSRF: csrf, Request: ar.raw,
		Client: clientName(ar.client), Username: username, Error: msg})
}

// clientName is what the pages call a client.
func clientName(cl *store.Client) string {
	if cl.Name != "" {
		return cl.Name
	}
	return cl.ID
}

// login answers POST /login: CSRF (double submit), the authorization request
// re-validated, the password checked under the hashing cap (503 when full),
// then a new session (a new id: no fixation) and back to /authorize.
func (a *authorize) login(c echo.Context) error {
	w, r := c.Response(), c.Request()
	if err := readForm(w, r); err != nil {
		return a.renderError(w, http.StatusBadRequest, "Request refused", "The form is malformed.")
	}
	if !checkLoginCSRF(r, r.PostForm.Get("csrf")) {
		a.logins.WithLabelValues("csrf").Inc()
		return a.renderError(w, http.StatusForbidden, "Request refused", "The form has expired or did not come from this site. Go back and try again.")
	}
	raw := r.PostForm.Get("request")
	ar, err := a.loginRequest(r.Context(), raw) // device.go: a device continuation or /authorize's request
	if err != nil {
		return a.fail(w, ar, err, http.StatusSeeOther)
	}
	username, password := strings.TrimSpace(r.PostForm.Get("username")), r.PostForm.Get("password")
	if !users.ValidUsername(username) || password == "" || len(password) > users.MaxPasswordLen {
		a.logins.WithLabelValues("failure").Inc()
		return a.renderLogin(w, r, ar, "", "Incorrect username or password.", http.StatusUnauthorized)
	}
	addr := clientAddr(r, a.trusted)
	if a.limiter != nil { // ratelimit.go: before any hashing, fail closed
		wait, err := a.limiter.Allow(r.Context(), username, addr)
		if err != nil {
			a.logins.WithLabelValues("unavailable").Inc()
			a.log.Warn("login: rate limits unavailable", zap.Error(err))
			w.Header().Set("Retry-After", "1")
			return a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
		}
		if wait > 0 {
			a.logins.WithLabelValues("throttled").Inc()
			w.Header().Set("Retry-After", retryAfterSeconds(wait))
			return a.renderLogin(w, r, ar, username,
				"Too many failed sign-in attempts. Try again in "+waitText(wait)+".", http.StatusTooManyRequests)
		}
	}
	select {
	case a.hashSlots <- struct{}{}:
	default:
		a.logins.WithLabelValues("busy").Inc()
		w.Header().Set("Retry-After", "1")
		return a.renderError(w, http.StatusServiceUnavailable, "Busy", "Too many sign-ins at once. Try again in a moment.")
	}
	u, err := a.users.Authenticate(r.Context(), username, password)
	<-a.hashSlots
	switch {
	case errors.Is(err, users.ErrInvalidCredentials):
		a.logins.WithLabelValues("failure").Inc()
		if a.limiter != nil {
			if _, err := a.limiter.Failed(r.Context(), username, addr); err != nil {
				a.log.Warn("login: failure not counted", zap.Error(err))
			}
		}
		return a.renderLogin(w, r, ar, username, "Incorrect username or password.", http.StatusUnauthorized)
	case err != nil:
		a.logins.WithLabelValues("unavailable").Inc()
		a.log.Warn("login: user store unavailable", zap.Error(err))
		return a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	if old, err := r.Cookie(sessionCookie); err == nil && len(old.Value) == 43 {
		_ = a.sessions.DeleteSession(r.Context(), hashOf(old.Value))
	}
	sid, err := randomValue()
	if err != nil {
		return a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	now := a.now()
	csrfHash := hashOf(sessionCSRF(sid))
	err = a.sessions.CreateSession(r.Context(), store.Session{
		Hash: hashOf(sid), Subject: u.Subject, Name: u.Username, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(a.sessionTTL),
		CSRF: csrfHash[:],
	})
	if err != nil {
		a.logins.WithLabelValues("unavailable").Inc()
		a.log.Warn("login: session store unavailable", zap.Error(err))
		return a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
	}
	a.logins.WithLabelValues("success").Inc()
	if a.limiter != nil {
		if err := a.limiter.Succeeded(r.Context(), username, addr); err != nil {
			a.log.Warn("login: account failures not cleared", zap.Error(err))
		}
	}
	http.SetCookie(w, a.cookie(sessionCookie, sid, int(a.sessionTTL.Seconds())))
	http.SetCookie(w, a.cookie(csrfCookie, "", -1))
	pageHeaders(w.Header())
	w.Header().Set("Location", afterLogin(ar)) // device.go
	w.WriteHeader(http.StatusSeeOther)
	return nil
}
