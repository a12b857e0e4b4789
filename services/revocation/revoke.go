package revocation

// The RFC 7009 revocation endpoint, top to bottom:
//
//  1. serve: refuse an address that has run out of failed client
//     authentications (pkg/ratelimit/clientlimit: in memory, no Redis),
//     read the form (POST, form-encoded, bounded, no repeated parameter),
//     authenticate the client (pkg/clientauth: Basic or post for
//     confidential clients, client_id alone for public ones, §2.1; every
//     invalid_client spends one of the address's failures), then the
//     per-client request limit when configured;
//  2. classify the token by its shape, whatever token_type_hint says (the
//     hint only saves a lookup, §2.1, and both types are supported, so
//     unsupported_token_type is never sent): an opaque "vrt_" refresh token
//     or a JWT access token;
//  3. a refresh token of the caller revokes its family (and, through the
//     fid claim, every access token minted from it); an access token of the
//     caller revokes its jti until its exp. Through the revoke primitive:
//     200 only after the PubAck;
//  4. anything else — unknown, foreign, expired, garbage — is 200 with
//     nothing done (§2.2): a client learns nothing, and another client's
//     token stays valid.
//
// A dependency that cannot answer (Redis, JWKS, NATS) is 503 with
// Retry-After: never a 200 for a revocation that did not happen, never a 5xx
// for bad input.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
)

// retryAfter is the Retry-After of a 503 for a store or key outage.
const retryAfter = time.Second

type endpoint struct {
	auth    *clientauth.Authenticator
	st      Store
	rev     Revoker
	check   Checker
	met     *metrics
	log     *zap.Logger
	now     func() time.Time
	maxBody int64
	// limits are the per-replica request limits (nil: none).
	limits *clientlimit.Guard
}

// serve answers one /revoke request (RFC 7009 §2).
func (ep *endpoint) serve(c echo.Context) error {
	start := time.Now()
	r, w := c.Request(), c.Response()
	kind, result := kindUnknown, ""
	// An address out of failed client authentications is refused unread
	// and unauthenticated; every invalid_client answer spends one.
	addr, err := ep.limits.Admit(c)
	if err == nil {
		kind, result, err = ep.process(r.Context(), r)
	}
	if err != nil {
		ep.limits.Answered(addr, err)
		e := oautherr.From(err)
		result = e.Code
		if e.Status >= 500 {
			ep.log.Warn("revocation failed", zap.String("kind", kind), zap.String("error", e.Code), zap.Error(e.Cause()))
		}
		oautherr.Write(w, e)
	} else {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		w.WriteHeader(http.StatusOK)
	}
	ep.met.requests.WithLabelValues("revoke", kind, result).Inc()
	ep.met.latency.WithLabelValues("revoke").Observe(time.Since(start).Seconds())
	return nil
}

// process returns the kind of token (metric label), the result and an
// error to answer with.
func (ep *endpoint) process(ctx context.Context, r *http.Request) (kind, result string, err error) {
	kind = kindUnknown
	var f clientauth.Form
	if err := clientauth.ReadForm(r, &f, ep.maxBody); err != nil {
		return kind, "", err
	}
	if name := f.Repeated(); name != "" {
		return kind, "", oautherr.ErrInvalidRequest.WithDescription("A parameter is repeated: %.64s.", name)
	}
	creds, err := clientauth.CredentialsFrom(r.Header, &f)
	if err != nil {
		return kind, "", err
	}
	auth, err := ep.auth.Authenticate(ctx, creds)
	if err != nil {
		return kind, "", err
	}
	if err := ep.limits.Client(auth); err != nil {
		return kind, "", err
	}
	tok := f.Get("token")
	if tok == "" {
		return kind, "", oautherr.ErrInvalidRequest.WithDescription("The token parameter is missing.")
	}
	caller := auth.Client.ID
	if strings.HasPrefix(tok, string(token.KindRefresh)+"_") {
		res, err := ep.revokeRefresh(ctx, tok, caller)
		return kindRefresh, res, err
	}
	res, err := ep.revokeAccess(ctx, tok, caller)
	return kindAccess, res, err
}

// revokeRefresh revokes the family of a refresh token that is the live token
// of a family of caller's (RFC 7009 §2.1: the server SHOULD also invalidate
// the access tokens of the same grant — the family revocation does, through
// their fid claim). Anything else is ignored.
func (ep *endpoint) revokeRefresh(ctx context.Context, tok, caller string) (string, error) {
	p, err := token.ParseKind(token.KindRefresh, tok)
	if err != nil {
		return resultIgnored, nil // garbage: nothing to revoke
	}
	fam, err := ep.st.LookupRefresh(ctx, p.FID, store.Hash(p.Hash))
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrExpired):
		return resultIgnored, nil // unknown, superseded, already dead
	case err != nil:
		return "", unavailable("The token store is temporarily unavailable.", retryAfter, err)
	}
	if fam.ClientID != caller {
		return resultIgnored, nil // another client's token stays valid (§2.1)
	}
	if err := ep.rev.Family(ctx, fam.FID, fam.Subject, fam.ClientID, events.ReasonClient, caller); err != nil {
		return "", ep.revokeErr(err)
	}
	return resultRevoked, nil
}

// revokeAccess revokes an access token of caller's by jti until its exp.
// A token that does not verify (garbage, expired, foreign issuer, unknown
// key) or that belongs to another client is ignored; keys that cannot be
// fetched are a 503.
func (ep *endpoint) revokeAccess(ctx context.Context, tok, caller string) (string, error) {
	cl, err := ep.check.Check(ctx, tok)
	switch {
	case errors.Is(err, edge.ErrStale):
		return "", unavailable("The signing keys are temporarily unavailable.", retryAfter, err)
	case err != nil:
		return resultIgnored, nil
	}
	if cl.ClientID != caller {
		return resultIgnored, nil
	}
	if err := ep.rev.Token(ctx, cl.JTI, cl.ExpiresAt, cl.ClientID, events.ReasonClient, caller); err != nil {
		return "", ep.revokeErr(err)
	}
	return resultRevoked, nil
}

// unavailable is temporarily_unavailable with Retry-After.
func unavailable(desc string, d time.Duration, cause error) *oautherr.Error {
	return oautherr.ErrTemporarilyUnavailable.WithDescription("%s", desc).WithRetryAfter(d).WithCause(cause)
}

// revokeErr maps a Revoker error: the event not yet durable (NATS down) or
// the deny state not recorded (store down) are both 503, never 200.
func (ep *endpoint) revokeErr(err error) error {
	if errors.Is(err, revoke.ErrPending) {
		return unavailable("The revocation is recorded and will take effect everywhere shortly; retry to confirm.", ep.rev.RetryAfter(), err)
	}
	return unavailable("The token store is temporarily unavailable.", retryAfter, err)
}
