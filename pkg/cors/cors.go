// Package cors answers cross-origin requests from the browser origins that
// public clients register (store.Client.CORSOrigins), and from nowhere else.
//
// Only the endpoints a browser-based public client calls get it: /token and
// /revoke (POST) and the discovery and JWKS documents (GET). Every other
// route — /authorize, the login and consent pages, /introspect, the admin
// API — is mounted without it and never carries CORS headers.
//
// Matching is exact: the request's Origin header must equal one registered
// origin (scheme://host[:port], lower-case, default port omitted, as
// browsers send it). There are no wildcards, the opaque origin "null" is
// never allowed, and Access-Control-Allow-Credentials is never sent: tokens
// travel in the body or the Authorization header, not in cookies. Every
// response of a wrapped route carries "Vary: Origin", so caches never serve
// one origin's answer to another.
package cors

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Origins decides whether a browser origin may call the wrapped endpoints.
// Allowed gets the Origin header exactly as sent and must be safe for
// concurrent use.
type Origins interface {
	Allowed(origin string) bool
}

// DefaultMaxAge is how long browsers may cache a preflight answer.
const DefaultMaxAge = 10 * time.Minute

// Policy is the CORS answer of one group of routes.
type Policy struct {
	// Origins is the allow-list; nil allows no origin (no CORS at all).
	Origins Origins
	// Methods are the methods a cross-origin request may use (POST for
	// /token and /revoke, GET for the documents).
	Methods []string
	// Headers are the request headers a cross-origin request may send;
	// nil means Authorization and Content-Type.
	Headers []string
	// Expose are response headers scripts may read besides the
	// CORS-safelisted ones (e.g. WWW-Authenticate, Retry-After).
	Expose []string
	// MaxAge is the preflight cache lifetime; zero means DefaultMaxAge.
	MaxAge time.Duration
}

// Middleware returns route middleware applying p. An OPTIONS request is a
// preflight and is answered here with 204 — with the CORS headers only when
// the origin is allowed and asks for one of p.Methods; other requests get
// Access-Control-Allow-Origin (the request's origin, echoed) when the origin
// is allowed, and go on to the handler. Register OPTIONS for the route
// (Any or Match) so that preflights reach it.
func (p Policy) Middleware() echo.MiddlewareFunc {
	methods := strings.Join(p.Methods, ", ")
	hdrs := p.Headers
	if hdrs == nil {
		hdrs = []string{"Authorization", "Content-Type"}
	}
	headers := strings.Join(hdrs, ", ")
	expose := strings.Join(p.Expose, ", ")
	maxAge := p.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	age := strconv.Itoa(int(maxAge / time.Second))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r, h := c.Request(), c.Response().Header()
			h.Add("Vary", "Origin")
			origin, sent := originOf(r)
			ok := sent && p.allowed(origin)
			if r.Method == http.MethodOptions {
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
				h.Set("Allow", methods+", OPTIONS")
				if ok && contains(p.Methods, r.Header.Get("Access-Control-Request-Method")) {
					h.Set("Access-Control-Allow-Origin", origin)
					h.Set("Access-Control-Allow-Methods", methods)
					h.Set("Access-Control-Allow-Headers", headers)
					h.Set("Access-Control-Max-Age", age)
				}
				return c.NoContent(http.StatusNoContent)
			}
			if ok {
				h.Set("Access-Control-Allow-Origin", origin)
				if expose != "" {
					h.Set("Access-Control-Expose-Headers", expose)
				}
			}
			return next(c)
		}
	}
}

func (p Policy) allowed(origin string) bool {
	if p.Origins == nil || origin == "" || origin == "null" {
		return false
	}
	return p.Origins.Allowed(origin)
}

// originOf returns the single Origin header of r.
func originOf(r *http.Request) (string, bool) {
	v := r.Header.Values("Origin")
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Normalize returns a registered origin in the form browsers send it:
// scheme and host lower-cased, the default port dropped, a trailing "/"
// removed. It reports false for anything that is not an http(s)
// scheme://host[:port] origin — a path, query, fragment, user info or
// wildcard — and for "null".
func Normalize(origin string) (string, bool) {
	origin = strings.TrimSuffix(strings.TrimSpace(origin), "/")
	if origin == "" || origin == "null" || strings.Contains(origin, "*") {
		return "", false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Opaque != "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" ||
		strings.Contains(origin, "?") || strings.Contains(origin, "#") {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", false
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return "", false
		}
		host += ":" + port
	}
	return scheme + "://" + host, true
}

// Static is a fixed allow-list (tests, and hosts without a registry).
type Static map[string]struct{}

// NewStatic returns the allow-list of the given origins, normalised;
// invalid ones are dropped.
func NewStatic(origins ...string) Static {
	s := Static{}
	for _, o := range origins {
		if n, ok := Normalize(o); ok {
			s[n] = struct{}{}
		}
	}
	return s
}

// Allowed reports whether origin is in the list.
func (s Static) Allowed(origin string) bool {
	_, ok := s[origin]
	return ok
}
