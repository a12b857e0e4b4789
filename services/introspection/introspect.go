package introspection

// The introspection endpoint (RFC 7662), the service's hot path, top to
// bottom:
//
//  1. serve: refuse an address that has run out of failed client
//     authentications (pkg/ratelimit/clientlimit: in memory, no Redis),
//     read the form (POST, form-encoded, bounded, no repeated parameter)
//     into a pooled request, authenticate the caller (pkg/clientauth
//     against the in-process client cache; public clients may not
//     introspect, §2.1 requires the caller's authorization; every
//     invalid_client spends one of the address's failures), then the
//     per-client request limit when configured;
//  2. an opaque "vrt_" refresh token is looked up in the store: active only
//     while it is its family's live token, and only for the family's own
//     client;
//  3. anything else is verified as an access token by the edge's own code
//     (pkg/edge.Checker: typ, signature with the algorithm bound to the
//     JWKS key, iss, exp, nbf, iat, lifetime; a cache of verified tokens
//     skips only the signature), then the caller must be the token's client
//     or a resource server named in its aud (§4: no token scanning), then
//     the deny state is read in one pipelined round trip (jti, family,
//     subject and client cut-offs with the skew);
//  4. the JSON response written by hand into the pooled buffer, no-store.
//
// Everything not currently valid for this caller is {"active":false}; a
// dependency that cannot answer (Redis, JWKS) is 503 with Retry-After, never
// a false "inactive" (MISSION invariant 6). bench_test.go measures the path.

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
)

// Token kinds, the kind label of the metrics.
const (
	kindAccess  = "access_token"
	kindRefresh = "refresh_token"
	kindUnknown = "unknown"
)

// retryAfter is the Retry-After of a 503.
const retryAfter = time.Second

type endpoint struct {
	auth    *clientauth.Authenticator
	st      Store
	check   Checker
	met     *metrics
	log     *zap.Logger
	skew    time.Duration
	maxBody int64
	// limits are the per-replica request limits (nil: none).
	limits *clientlimit.Guard
}

// request is one request's state and scratch buffer, pooled.
type request struct {
	form clientauth.Form
	out  []byte
}

var requestPool = sync.Pool{New: func() any { return &request{out: make([]byte, 0, 1024)} }}

// Response headers, shared and never modified: RFC 7662 §2.2 responses
// carry tokens' details and must not be cached.
var (
	hdrJSON    = []string{"application/json;charset=UTF-8"}
	hdrNoStore = []string{"no-store"}
	hdrNoCache = []string{"no-cache"}
	inactive   = []byte(`{"active":false}`)
)

// serve answers one /introspect request.
func (ep *endpoint) serve(c echo.Context) error {
	start := time.Now()
	r, w := c.Request(), c.Response()
	req := requestPool.Get().(*request)
	kind := kindUnknown
	var body []byte
	// An address out of failed client authentications is refused unread
	// and unauthenticated; every invalid_client answer spends one.
	addr, err := ep.limits.Admit(c)
	if err == nil {
		kind, body, err = ep.process(r.Context(), r, req)
	}
	if err != nil {
		ep.limits.Answered(addr, err)
		e := oautherr.From(err)
		ep.met.requests.WithLabelValues(kind, e.Code).Inc()
		if e.Status >= 500 {
			ep.log.Warn("introspection failed", zap.String("kind", kind), zap.String("error", e.Code), zap.Error(e.Cause()))
		}
		oautherr.Write(w, e)
	} else {
		h := w.Header()
		h["Content-Type"] = hdrJSON
		h["Cache-Control"] = hdrNoStore
		h["Pragma"] = hdrNoCache
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		ep.count(kind, len(body) != len(inactive))
	}
	requestPool.Put(req)
	ep.met.latency.Observe(time.Since(start).Seconds())
	return nil
}

func (ep *endpoint) count(kind string, active bool) {
	switch {
	case kind == kindAccess && active:
		ep.met.active.Inc()
	case kind == kindAccess:
		ep.met.inactiveAccess.Inc()
	case active:
		ep.met.activeRefresh.Inc()
	default:
		ep.met.inactiveRefresh.Inc()
	}
}

// process reads and authenticates a request and returns the kind of token
// and the response body, or an error to answer with.
func (ep *endpoint) process(ctx context.Context, r *http.Request, req *request) (string, []byte, error) {
	if err := clientauth.ReadForm(r, &req.form, ep.maxBody); err != nil {
		return kindUnknown, nil, err
	}
	f := &req.form
	if name := f.Repeated(); name != "" {
		return kindUnknown, nil, oautherr.ErrInvalidRequest.WithDescription("A parameter is repeated: %.64s.", name)
	}
	creds, err := clientauth.CredentialsFrom(r.Header, f)
	if err != nil {
		return kindUnknown, nil, err
	}
	auth, err := ep.auth.Authenticate(ctx, creds)
	if err != nil {
		return kindUnknown, nil, err
	}
	if auth.Client.Type != store.Confidential {
		return kindUnknown, nil, oautherr.ErrInvalidClient.WithDescription("Public clients may not introspect tokens.")
	}
	if err := ep.limits.Client(auth); err != nil {
		return kindUnknown, nil, err
	}
	tok := f.Get("token")
	if tok == "" {
		return kindUnknown, nil, oautherr.ErrInvalidRequest.WithDescription("The token parameter is missing.")
	}
	// token_type_hint is only a hint (§2.1): the token's shape decides.
	if strings.HasPrefix(tok, string(token.KindRefresh)+"_") {
		body, err := ep.refresh(ctx, req, tok, auth.Client)
		return kindRefresh, body, err
	}
	body, err := ep.access(ctx, req, tok, auth.Client)
	return kindAccess, body, err
}

// access introspects a JWT access token for caller.
func (ep *endpoint) access(ctx context.Context, req *request, tok string, caller *store.Client) ([]byte, error) {
	cl, err := ep.check.Check(ctx, tok)
	switch {
	case errors.Is(err, edge.ErrStale):
		return nil, unavailable("The signing keys are temporarily unavailable.", err)
	case err != nil:
		return inactive, nil
	}
	if !mayIntrospect(caller, cl.ClientID, cl.Audience) {
		return inactive, nil
	}
	d, err := ep.st.DenyState(ctx, store.DenyQuery{JTI: cl.JTI, FID: cl.FID, Subject: cl.Subject, ClientID: cl.ClientID})
	if err != nil {
		return nil, unavailable("The token store is temporarily unavailable.", err)
	}
	if d.Revoked(cl.IssuedAt, ep.skew) {
		return inactive, nil
	}
	b := append(req.out[:0], `{"active":true`...)
	if len(cl.Scopes) > 0 {
		b = append(b, `,"scope":"`...)
		for i, s := range cl.Scopes {
			if i > 0 {
				b = append(b, ' ')
			}
			b = appendEscaped(b, s)
		}
		b = append(b, '"')
	}
	b = appendField(b, "client_id", cl.ClientID)
	b = appendField(b, "sub", cl.Subject)
	b = append(b, `,"aud":`...)
	if len(cl.Audience) == 1 {
		b = appendString(b, cl.Audience[0])
	} else {
		b = append(b, '[')
		for i, a := range cl.Audience {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, a)
		}
		b = append(b, ']')
	}
	b = appendField(b, "iss", cl.Issuer)
	b = appendInt(b, "exp", cl.ExpiresAt.Unix())
	b = appendInt(b, "iat", cl.IssuedAt.Unix())
	if !cl.NotBefore.IsZero() {
		b = appendInt(b, "nbf", cl.NotBefore.Unix())
	}
	b = appendField(b, "jti", cl.JTI)
	b = append(b, `,"token_type":"Bearer"}`...)
	req.out = b
	return b, nil
}

// mayIntrospect reports whether caller may learn about a token of clientID
// for aud: it is the token's own client, or it authenticates as a resource
// server the token is for (RFC 7662 §4).
func mayIntrospect(caller *store.Client, clientID string, aud []string) bool {
	if caller.ID == clientID {
		return true
	}
	for _, rs := range caller.ResourceIDs {
		if slices.Contains(aud, rs) {
			return true
		}
	}
	return false
}

// refresh introspects an opaque refresh token: active only while it is the
// live token of a family of the caller's own.
func (ep *endpoint) refresh(ctx context.Context, req *request, tok string, caller *store.Client) ([]byte, error) {
	p, err := token.ParseKind(token.KindRefresh, tok)
	if err != nil {
		return inactive, nil
	}
	fam, err := ep.st.LookupRefresh(ctx, p.FID, store.Hash(p.Hash))
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrExpired):
		return inactive, nil
	case err != nil:
		return nil, unavailable("The token store is temporarily unavailable.", err)
	}
	if fam.ClientID != caller.ID {
		return inactive, nil
	}
	b := append(req.out[:0], `{"active":true`...)
	if len(fam.Scopes) > 0 {
		b = append(b, `,"scope":"`...)
		for i, s := range fam.Scopes {
			if i > 0 {
				b = append(b, ' ')
			}
			b = appendEscaped(b, s)
		}
		b = append(b, '"')
	}
	b = appendField(b, "client_id", fam.ClientID)
	b = appendField(b, "sub", fam.Subject)
	if !fam.AbsoluteExpiresAt.IsZero() {
		b = appendInt(b, "exp", fam.AbsoluteExpiresAt.Unix())
	}
	if !fam.CreatedAt.IsZero() {
		b = appendInt(b, "iat", fam.CreatedAt.Unix())
	}
	b = append(b, `,"token_type":"refresh_token"}`...)
	req.out = b
	return b, nil
}

func unavailable(desc string, cause error) *oautherr.Error {
	return oautherr.ErrTemporarilyUnavailable.WithDescription("%s", desc).WithRetryAfter(retryAfter).WithCause(cause)
}

func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendInt(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped appends s escaped for a JSON string: quotes, backslashes
// and control characters escaped, everything else (valid UTF-8 or not,
// which the claims parser already refused) as is.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	return append(b, s[start:]...)
}
