package issuer

// Browser sessions, CSRF protection and the headers of every page.
//
// The session cookie holds 32 random bytes; the store keeps only its
// SHA-256 (store.Session.Hash). A new id is issued at every login (session
// fixation). Forms carry a CSRF token:
//   - with a session, the synchronizer token SHA-256("csrf" || session id),
//     whose hash is also stored in the session (store.Session.CSRF): a page
//     of another origin can neither read the cookie nor compute it;
//   - before login, a double-submit token: a random value in an HttpOnly
//     cookie that the login form must repeat.

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"

	"github.com/valetauth/valet/pkg/store"
)

const (
	sessionCookie = "valet_session"
	csrfCookie    = "valet_csrf"
	// maxForm bounds a page form's body.
	maxForm = 16 << 10
)

//go:embed templates/*.html
var templateFS embed.FS

func parseTemplates() (*template.Template, error) {
	return template.ParseFS(templateFS, "templates/*.html")
}

// contentSecurityPolicy allows the pages' inline style and nothing else: no
// script, no framing (RFC 9700 §4.16 clickjacking).
const contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"

// pageHeaders sets the headers of every page and redirect.
func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// randomValue returns 32 random bytes in base64url.
func randomValue() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// sessionCSRF is the synchronizer token of the session whose id is sid.
func sessionCSRF(sid string) string {
	s := sha256.Sum256([]byte("csrf\x00" + sid))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func hashOf(s string) store.Hash { return sha256.Sum256([]byte(s)) }

// session returns the live session of r and its id, or nil.
func (a *authorize) session(r *http.Request) (*store.Session, string) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || len(ck.Value) != 43 {
		return nil, ""
	}
	s, err := a.sessions.GetSession(r.Context(), hashOf(ck.Value), a.skew)
	if err != nil || !a.now().Before(s.ExpiresAt) {
		return nil, ""
	}
	return &s, ck.Value
}

// checkSessionCSRF reports whether form's csrf is the session's token.
func checkSessionCSRF(sess *store.Session, sid, presented string) bool {
	if sess == nil || presented == "" {
		return false
	}
	want := sessionCSRF(sid)
	h := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1 &&
		(len(sess.CSRF) == 0 || subtle.ConstantTimeCompare(h[:], sess.CSRF) == 1)
}

// loginCSRF returns the double-submit token of r, setting a new cookie on w
// when r has none.
func (a *authorize) loginCSRF(w http.ResponseWriter, r *http.Request) (string, error) {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value, nil
	}
	v, err := randomValue()
	if err != nil {
		return "", err
	}
	http.SetCookie(w, a.cookie(csrfCookie, v, 0))
	return v, nil
}

// checkLoginCSRF reports whether the form repeats the CSRF cookie.
func checkLoginCSRF(r *http.Request, presented string) bool {
	ck, err := r.Cookie(csrfCookie)
	if err != nil || presented == "" || len(ck.Value) != 43 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(ck.Value), []byte(presented)) == 1
}

// cookie builds a cookie: HttpOnly, SameSite=Lax, Secure outside dev mode,
// path /; maxAge 0 is a browser-session cookie, negative deletes it.
func (a *authorize) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode}
}

// readForm parses a bounded url-encoded POST body; it refuses repeated
// fields.
func readForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return err
	}
	for _, v := range r.PostForm {
		if len(v) > 1 {
			return errors.New("repeated form field")
		}
	}
	return nil
}

// page data for the templates.
type page struct {
	Title, Error, Action, CSRF, Request, Client, Username, Resource string
	Scopes                                                          []string
	Done                                                            bool
}

// render writes a page with status.
func (a *authorize) render(w http.ResponseWriter, status int, name string, p page) error {
	pageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return a.tmpl.ExecuteTemplate(w, name, p)
}

func (a *authorize) renderError(w http.ResponseWriter, status int, title, msg string) error {
	return a.render(w, status, "error", page{Title: title, Error: msg})
}
