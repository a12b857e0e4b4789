package issuer

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/store"
)

// renderConsent shows the consent page naming the client, the resource and
// the scopes.
func (a *authorize) renderConsent(w http.ResponseWriter, ar *authRequest, sess *store.Session, sid string) error {
	name := ar.rs.Name
	if name == "" {
		name = ar.aud
	}
	return a.render(w, http.StatusOK, "consent", page{Title: "Allow access", Action: consentPath, CSRF: sessionCSRF(sid),
		Request: ar.raw, Client: clientName(ar.client), Resource: name, Username: displayName(sess), Scopes: ar.scopes})
}

// consent answers POST /consent: the session's CSRF token, the request
// re-validated, then approve (remembered per user, client, resource and
// scopes; a code issued) or deny (access_denied redirected).
func (a *authorize) consent(c echo.Context) error {
	w, r := c.Response(), c.Request()
	if err := readForm(w, r); err != nil {
		return a.renderError(w, http.StatusBadRequest, "Request refused", "The form is malformed.")
	}
	sess, sid := a.session(r)
	if !checkSessionCSRF(sess, sid, r.PostForm.Get("csrf")) {
		return a.renderError(w, http.StatusForbidden, "Request refused", "The form has expired or did not come from this site. Go back and try again.")
	}
	ar, err := a.validate(r.Context(), r.PostForm.Get("request"))
	if err != nil {
		return a.fail(w, ar, err, http.StatusSeeOther)
	}
	approve, deny := r.PostForm.Get("approve") != "", r.PostForm.Get("deny") != ""
	switch {
	case approve == deny:
		return a.renderError(w, http.StatusBadRequest, "Request refused", "Choose Allow or Deny.")
	case deny:
		return a.fail(w, ar, oautherr.ErrAccessDenied.WithDescription("The user denied the request."), http.StatusSeeOther)
	}
	scopes := ar.scopes
	if old, err := a.sessions.GetConsent(r.Context(), sess.Subject, ar.client.ID, ar.aud, a.skew); err == nil {
		for _, s := range old.Scopes {
			if !contains(scopes, s) {
				scopes = append(scopes[:len(scopes):len(scopes)], s)
			}
		}
	}
	if err := a.sessions.PutConsent(r.Context(), store.Consent{Subject: sess.Subject, ClientID: ar.client.ID,
		Resource: ar.aud, Scopes: scopes, CreatedAt: a.now()}, a.consentTTL); err != nil {
		// Not remembering is no reason to refuse what the user approved.
		a.log.Warn("consent not remembered", zap.String("client_id", ar.client.ID), zap.Error(err))
	}
	return a.issue(r.Context(), w, ar, sess, http.StatusSeeOther)
}

// logoutPage shows the sign-out form (GET must not change state).
func (a *authorize) logoutPage(c echo.Context) error {
	w, r := c.Response(), c.Request()
	sess, sid := a.session(r)
	if sess == nil {
		return a.render(w, http.StatusOK, "logout", page{Title: "Signed out", Done: true})
	}
	return a.render(w, http.StatusOK, "logout", page{Title: "Sign out", Action: logoutPath, CSRF: sessionCSRF(sid)})
}

// logout ends the session: deleted from the store and the cookie cleared.
func (a *authorize) logout(c echo.Context) error {
	w, r := c.Response(), c.Request()
	if err := readForm(w, r); err != nil {
		return a.renderError(w, http.StatusBadRequest, "Request refused", "The form is malformed.")
	}
	sess, sid := a.session(r)
	if sess != nil {
		if !checkSessionCSRF(sess, sid, r.PostForm.Get("csrf")) {
			return a.renderError(w, http.StatusForbidden, "Request refused", "The form has expired or did not come from this site.")
		}
		if err := a.sessions.DeleteSession(r.Context(), hashOf(sid)); err != nil {
			return a.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The service is temporarily unavailable.")
		}
	}
	http.SetCookie(w, a.cookie(sessionCookie, "", -1))
	return a.render(w, http.StatusOK, "logout", page{Title: "Signed out", Done: true})
}

// displayName is the name a consent page shows for the signed-in user: the
// login name, or the subject for sessions made before names were stored.
func displayName(sess *store.Session) string {
	if sess.Name != "" {
		return sess.Name
	}
	return sess.Subject
}
