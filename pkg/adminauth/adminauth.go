// Package adminauth guards Valet's admin APIs: echo middleware that admits a
// request only with an RFC 6750 bearer token that is a Valet access token
// (verified by the edge's own code, pkg/edge.Checker), issued for the admin
// audience (Audience: "<issuer>/admin"), carrying the scope valet:admin
// (Scope), and not revoked (the store's deny state, one round trip). It puts
// the caller's identity in the request context for audit events (Actor).
//
// Refusals follow RFC 6750 §3: 401 with a Bearer challenge (without an
// error code when no token was sent, invalid_token otherwise), 403
// insufficient_scope for a valid token without the admin scope, 400
// invalid_request for a malformed request, and 503 temporarily_unavailable
// when the keys or the store cannot answer — never a guess.
package adminauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/store"
)

// Scope is the scope an admin token must carry.
const Scope = "valet:admin"

// Audience returns the admin resource identifier of an issuer: the issuer
// identifier followed by "/admin". Admin clients request their tokens for it
// (RFC 8707 resource) and it must be registered as a resource server that
// defines Scope.
func Audience(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/admin"
}

// Checker verifies access tokens (*edge.Checker).
type Checker interface {
	Check(ctx context.Context, token string) (edge.Claims, error)
}

var _ Checker = (*edge.Checker)(nil)

// DenyStore reads deny state (store.RevocationStore).
type DenyStore interface {
	// DenyState reads everything that could deny one token, in one round
	// trip; an error means the store could not answer.
	DenyState(ctx context.Context, q store.DenyQuery) (store.Deny, error)
}

// Config configures the middleware.
type Config struct {
	// Audience is the admin resource identifier a token's aud must hold;
	// Audience(cfg.Issuer) unless the deployment says otherwise.
	Audience string
	// ClockSkew is applied to subject and client cut-offs.
	ClockSkew time.Duration
	// RetryAfter is sent with a 503. Default one second.
	RetryAfter time.Duration
}

// Guard is the admin authentication middleware.
type Guard struct {
	cfg   Config
	check Checker
	deny  DenyStore
}

// New returns a Guard, or an error when a dependency or the audience is
// missing.
func New(cfg Config, check Checker, deny DenyStore) (*Guard, error) {
	if cfg.Audience == "" || check == nil || deny == nil {
		return nil, errors.New("adminauth: an audience, a token checker and a deny store are required")
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	return &Guard{cfg: cfg, check: check, deny: deny}, nil
}

type ctxKey struct{}

// Admin is the authenticated caller of an admin request.
type Admin struct {
	// ClientID is the client the admin token was issued to.
	ClientID string
	// Subject is the token's sub (the client id for client credentials).
	Subject string
	// JTI identifies the token used, for audit.
	JTI string
}

// Actor returns the audit actor of an authenticated request: the admin
// client's id, or "" when the request did not pass the Guard.
func Actor(ctx context.Context) string {
	a, _ := ctx.Value(ctxKey{}).(Admin)
	return a.ClientID
}

// From returns the admin of an authenticated request and true, or false when
// the request did not pass the Guard.
func From(ctx context.Context) (Admin, bool) {
	a, ok := ctx.Value(ctxKey{}).(Admin)
	return a, ok
}

// Middleware returns the echo middleware.
func (g *Guard) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			a, err := g.Authenticate(r.Context(), r.Header)
			if err != nil {
				writeError(c.Response(), err)
				return nil
			}
			c.SetRequest(r.WithContext(context.WithValue(r.Context(), ctxKey{}, a)))
			return next(c)
		}
	}
}

// errNoToken is a request without credentials: RFC 6750 §3.1 says the
// challenge then carries no error code.
var errNoToken = oautherr.ErrInvalidToken.WithDescription("An admin access token is required.")

// Authenticate returns the admin the request headers h authenticate, or an
// *oautherr.Error to answer with.
func (g *Guard) Authenticate(ctx context.Context, h http.Header) (Admin, error) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return Admin{}, errNoToken
	case len(vals) > 1:
		return Admin{}, oautherr.ErrInvalidRequest.WithDescription("The Authorization header is repeated.").WithChallenge("Bearer")
	}
	const prefix = "bearer "
	v := vals[0]
	if len(v) <= len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return Admin{}, oautherr.ErrInvalidRequest.WithDescription("The Authorization header must use the Bearer scheme.").WithChallenge("Bearer")
	}
	tok := strings.TrimLeft(v[len(prefix):], " ")
	cl, err := g.check.Check(ctx, tok)
	switch {
	case errors.Is(err, edge.ErrStale):
		return Admin{}, g.unavailable("The signing keys are temporarily unavailable.", err)
	case err != nil:
		return Admin{}, oautherr.ErrInvalidToken.WithChallenge("Bearer").WithCause(err)
	}
	if !slices.Contains(cl.Audience, g.cfg.Audience) {
		return Admin{}, oautherr.ErrInvalidToken.WithDescription("The access token is not for the admin API.").WithChallenge("Bearer")
	}
	d, err := g.deny.DenyState(ctx, store.DenyQuery{JTI: cl.JTI, FID: cl.FID, Subject: cl.Subject, ClientID: cl.ClientID})
	if err != nil {
		return Admin{}, g.unavailable("The token store is temporarily unavailable.", err)
	}
	if d.Revoked(cl.IssuedAt, g.cfg.ClockSkew) {
		return Admin{}, oautherr.ErrInvalidToken.WithDescription("The access token is revoked.").WithChallenge("Bearer")
	}
	if !cl.HasScope(Scope) {
		return Admin{}, oautherr.ErrInsufficientScope.WithDescription("The access token lacks the %s scope.", Scope).WithChallenge("Bearer")
	}
	return Admin{ClientID: cl.ClientID, Subject: cl.Subject, JTI: cl.JTI}, nil
}

func (g *Guard) unavailable(desc string, cause error) *oautherr.Error {
	return oautherr.ErrTemporarilyUnavailable.WithDescription("%s", desc).WithRetryAfter(g.cfg.RetryAfter).WithCause(cause)
}

// writeError answers a refusal; a request without a token gets a bare
// Bearer challenge (RFC 6750 §3.1).
func writeError(w http.ResponseWriter, err error) {
	if err == errNoToken {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+oautherr.Realm+`"`)
	}
	oautherr.Write(w, err)
}
