package issuer

// The token endpoint (RFC 6749 §3.2, §5), the issuer's hot path, top to
// bottom:
//
//  1. serve: refuse an address that has run out of failed client
//     authentications (pkg/ratelimit/clientlimit: one in-memory lookup, no
//     Redis), read the form (POST, form-encoded, bounded, no repeated
//     parameter), authenticate the client (pkg/clientauth, against the
//     in-process client cache; invalid_client spends one of the address's
//     failures), apply the per-client request limit when configured, and
//     hand the request to the one grant handler that claims its grant_type
//     (fosite's handler pattern, typed);
//  2. clientCredentials.handle (RFC 6749 §4.4): the grant allowed, the
//     resource (RFC 8707), the scopes, the lifetime;
//  3. mint: the RFC 9068 claims written by hand into a pooled buffer and
//     signed with the current key (keys.Signer: one atomic load, no lock);
//  4. the JSON response (RFC 6749 §5.1) written by hand, with no-store.
//
// Every refusal is an *oautherr.Error written by oautherr.Write; bad input is
// a 4xx, an unavailable dependency a 503 with Retry-After, never a token
// that could not be revoked. token_bench_test.go measures the path.

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
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
)

// retryAfter is the Retry-After of a 503: the store, the stream or the key
// ring is expected back within seconds or not at all soon.
const retryAfter = time.Second

// tokenRequest is one /token request's state and scratch buffers, pooled.
type tokenRequest struct {
	form   clientauth.Form
	client *store.Client
	method clientauth.Method // how the client authenticated; grants for public clients read it
	now    time.Time
	// subject and fid are set by user grants (authorization code, refresh):
	// the token's sub is then the user, not the client, and it carries the
	// family id claim. Empty for client credentials.
	subject string
	fid     string
	scope   []byte // the granted scope value
	claims  []byte // the JWT claims
	out     []byte // the response body
}

var requestPool = sync.Pool{New: func() any {
	return &tokenRequest{scope: make([]byte, 0, 256), claims: make([]byte, 0, 1024), out: make([]byte, 0, 2048)}
}}

// issued is what a grant handler returns: the access token and its details
// for the response.
type issued struct {
	accessToken []byte
	expiresIn   int64
	scope       []byte
	// refreshToken is the vrt_ token to return, if any (user grants).
	refreshToken string
}

// grantHandler handles one grant type at /token (fosite's
// TokenEndpointHandler, without the interface{} factories): it says which
// grant_type is its own, and handles requests for it once the client is
// authenticated and allowed the grant.
type grantHandler interface {
	// grantType returns the grant_type value it handles.
	grantType() string
	// handle validates req and returns the token to issue, or an
	// *oautherr.Error.
	handle(ctx context.Context, req *tokenRequest) (issued, error)
}

// tokenEndpoint is /token: the client authenticator, the grant handlers, and
// what minting needs.
type tokenEndpoint struct {
	auth     *clientauth.Authenticator
	handlers []grantHandler
	clients  Clients
	keys     Keys
	met      *metrics
	log      *zap.Logger
	now      func() time.Time
	maxBody  int64
	// limits are the per-replica request limits (nil: none).
	limits *clientlimit.Guard

	// claimsPrefix is `{"iss":"<issuer>","sub":` — the same for every token.
	claimsPrefix    []byte
	defaultLifetime time.Duration
	maxLifetime     time.Duration
}

func newTokenEndpoint(cfg *config.Config, deps Deps, auth *clientauth.Authenticator, met *metrics, now func() time.Time) (*tokenEndpoint, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("issuer: an issuer identifier is required")
	}
	if cfg.Tokens.MaxAccessTokenLifetime < time.Second || cfg.Tokens.DefaultAccessTokenLifetime < time.Second {
		return nil, errors.New("issuer: access token lifetimes must be at least one second")
	}
	t := &tokenEndpoint{
		auth: auth, clients: deps.Clients, keys: deps.Keys, met: met, log: deps.Logger, now: now,
		maxBody:         cfg.Limits.MaxBodyBytes,
		defaultLifetime: cfg.Tokens.DefaultAccessTokenLifetime,
		maxLifetime:     cfg.Tokens.MaxAccessTokenLifetime,
	}
	t.claimsPrefix = append(appendJSONString([]byte(`{"iss":`), cfg.Issuer), `,"sub":`...)
	t.handlers = []grantHandler{&clientCredentials{t: t}}
	if deps.Grants != nil {
		ug, err := newUserGrants(cfg, deps, t)
		if err != nil {
			return nil, err
		}
		t.handlers = append(t.handlers, &authorizationCode{g: ug}, &refreshGrant{g: ug})
		if dh := newDeviceGrant(deps, ug); dh != nil {
			t.handlers = append(t.handlers, dh)
		}
	}
	return t, nil
}

// grantTypes returns the grant types /token handles, for discovery.
func (t *tokenEndpoint) grantTypes() []string {
	out := make([]string, len(t.handlers))
	for i, h := range t.handlers {
		out[i] = h.grantType()
	}
	return out
}

// serve answers one /token request.
func (t *tokenEndpoint) serve(c echo.Context) error {
	start := time.Now()
	r, w := c.Request(), c.Response()
	req := requestPool.Get().(*tokenRequest)
	var grant string
	var res issued
	// An address out of failed client authentications is refused unread
	// and unauthenticated; every invalid_client answer spends one.
	addr, err := t.limits.Admit(c)
	if err == nil {
		grant, res, err = t.process(r.Context(), r, req)
	}
	if err != nil {
		t.limits.Answered(addr, err)
		t.fail(w, grant, req, err)
		t.met.latency.WithLabelValues(grantLabel(grant)).Observe(time.Since(start).Seconds())
	} else {
		writeToken(w, req, res)
		if grant == grantClientCredentials {
			t.met.ccIssued.Inc()
			t.met.ccLatency.Observe(time.Since(start).Seconds())
		} else {
			t.met.issued.WithLabelValues(grant, string(req.client.Type)).Inc()
			t.met.latency.WithLabelValues(grant).Observe(time.Since(start).Seconds())
		}
	}
	req.client, req.subject, req.fid = nil, "", ""
	requestPool.Put(req)
	return nil
}

// process reads, authenticates and dispatches a request, returning its
// grant_type (for metrics) and the token to send.
func (t *tokenEndpoint) process(ctx context.Context, r *http.Request, req *tokenRequest) (string, issued, error) {
	if err := clientauth.ReadForm(r, &req.form, t.maxBody); err != nil {
		return "", issued{}, err
	}
	grant := req.form.Get("grant_type")
	if name := req.form.Repeated("resource"); name != "" {
		return grant, issued{}, oautherr.ErrInvalidRequest.WithDescription("A parameter is repeated: %.64s.", name)
	}
	if grant == "" {
		return grant, issued{}, oautherr.ErrInvalidRequest.WithDescription("The grant_type parameter is missing.")
	}
	creds, err := clientauth.CredentialsFrom(r.Header, &req.form)
	if err != nil {
		return grant, issued{}, err
	}
	auth, err := t.auth.Authenticate(ctx, creds)
	if err != nil {
		return grant, issued{}, err
	}
	if err := t.limits.Client(auth); err != nil {
		return grant, issued{}, err
	}
	var h grantHandler
	for _, cand := range t.handlers {
		if cand.grantType() == grant {
			h = cand
			break
		}
	}
	if h == nil {
		return grant, issued{}, oautherr.ErrUnsupportedGrantType
	}
	if !slices.Contains(auth.Client.GrantTypes, grant) {
		return grant, issued{}, oautherr.ErrUnauthorizedClient.WithDescription("The client is not allowed the %s grant.", grant)
	}
	req.client, req.method, req.now = auth.Client, auth.Method, t.now()
	res, err := h.handle(ctx, req)
	return grant, res, err
}

// clientCredentials is the client credentials grant (RFC 6749 §4.4) with
// resource indicators (RFC 8707).
type clientCredentials struct{ t *tokenEndpoint }

func (*clientCredentials) grantType() string { return grantClientCredentials }

// handle issues a token for one resource server to a confidential client:
//   - resource: the one requested (RFC 8707 §2), else the client's default;
//     neither, several, or one the client may not use: invalid_target;
//   - scope: each requested scope must be one the client may ask at that
//     resource and one the resource defines (invalid_scope otherwise); with
//     no scope parameter the client gets every scope it may ask there
//     (RFC 6749 §3.3's pre-defined default). The token carries only scopes
//     of its resource;
//   - lifetime: the shorter of the client's and the resource's lifetimes
//     (either may be unset, both unset is the configured default), capped
//     by the global maximum.
func (h *clientCredentials) handle(ctx context.Context, req *tokenRequest) (issued, error) {
	t, cl := h.t, req.client
	if cl.Type != store.Confidential {
		return issued{}, oautherr.ErrUnauthorizedClient.WithDescription("Only confidential clients may use the client_credentials grant.")
	}
	aud, rs, scope, err := t.target(ctx, cl, req.form.Count("resource"), req.form.Get("resource"), req.form.Get("scope"), req.scope[:0])
	req.scope = scope
	if err != nil {
		return issued{}, err
	}
	return t.mint(req, aud, t.lifetime(cl, rs))
}

// target resolves the resource and scope of a request by cl, shared by the
// client credentials grant and /authorize:
//   - resource: the one requested (RFC 8707 §2; count is how many were
//     sent), else the client's default; neither, several, or one the client
//     may not use: invalid_target;
//   - scope: appended to dst by grantScope (invalid_scope);
//
// A registry that cannot be read is temporarily_unavailable.
func (t *tokenEndpoint) target(ctx context.Context, cl *store.Client, count int, resource, scope string, dst []byte) (string, *store.ResourceServer, []byte, error) {
	var aud string
	switch count {
	case 0:
		aud = cl.DefaultResource
	case 1:
		aud = resource
	default:
		return "", nil, dst, oautherr.ErrInvalidTarget.WithDescription("Only one resource per token request is supported; request one token per resource.")
	}
	if aud == "" {
		if cl.DefaultResource == "" {
			return "", nil, dst, oautherr.ErrInvalidTarget.WithDescription("No resource was requested and the client has no default resource.")
		}
		aud = cl.DefaultResource
	}
	allowed, ok := cl.Resources[aud]
	if !ok {
		return "", nil, dst, oautherr.ErrInvalidTarget.WithDescription("The client may not request tokens for this resource.")
	}
	rs, err := t.clients.ResourceServer(ctx, aud)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil, dst, oautherr.ErrInvalidTarget.WithDescription("The resource is not registered.")
	case err != nil:
		return "", nil, dst, unavailable("The resource registry is temporarily unavailable.", err)
	}
	dst, err = grantScope(dst, scope, allowed, rs.Scopes)
	return aud, rs, dst, err
}

// lifetime is the access-token lifetime for cl at rs: the shorter of the
// client's and the resource's lifetimes (either may be unset, both unset is
// the configured default), capped by the global maximum.
func (t *tokenEndpoint) lifetime(cl *store.Client, rs *store.ResourceServer) time.Duration {
	lifetime := t.defaultLifetime
	switch c, r := cl.AccessTokenLifetime, rs.AccessTokenLifetime; {
	case c > 0 && r > 0:
		lifetime = min(c, r)
	case c > 0:
		lifetime = c
	case r > 0:
		lifetime = r
	}
	return min(lifetime, t.maxLifetime)
}

// grantScope appends to dst the scope to grant (RFC 6749 §3.3) and returns
// it: the requested scope tokens, de-duplicated, each both allowed to the
// client at the resource and defined by the resource; or, with no scope
// requested, every allowed scope the resource defines.
func grantScope(dst []byte, requested string, allowed, defined []string) ([]byte, error) {
	if requested == "" {
		for _, s := range allowed {
			if slices.Contains(defined, s) && !hasToken(dst, s) {
				dst = appendToken(dst, s)
			}
		}
		return dst, nil
	}
	for rest := requested; ; {
		tok, next, more := strings.Cut(rest, " ")
		if !validScopeToken(tok) {
			return dst, oautherr.ErrInvalidScope.WithDescription("The scope parameter is malformed: scope tokens separated by single spaces (RFC 6749 section 3.3).")
		}
		if !slices.Contains(allowed, tok) || !slices.Contains(defined, tok) {
			return dst, oautherr.ErrInvalidScope.WithDescription("The scope %.64s is not allowed for this client at this resource.", tok)
		}
		if !hasToken(dst, tok) {
			dst = appendToken(dst, tok)
		}
		if !more {
			return dst, nil
		}
		rest = next
	}
}

// validScopeToken reports whether s is a scope-token: 1*( %x21 / %x23-5B /
// %x5D-7E ) (RFC 6749 §3.3). Such a token needs no JSON escaping.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// hasToken reports whether the space-separated list scope holds tok.
func hasToken(scope []byte, tok string) bool {
	for len(scope) > 0 {
		i := 0
		for i < len(scope) && scope[i] != ' ' {
			i++
		}
		if string(scope[:i]) == tok {
			return true
		}
		if i == len(scope) {
			break
		}
		scope = scope[i+1:]
	}
	return false
}

func appendToken(dst []byte, tok string) []byte {
	if len(dst) > 0 {
		dst = append(dst, ' ')
	}
	return append(dst, tok...)
}

// mint signs an RFC 9068 access token for req's client at aud with
// req.scope, valid for lifetime (whole seconds, at least one). The header is
// {"alg","kid","typ":"at+jwt"}; the claims are iss, sub (req.subject for a
// user grant, else the client id: the client acts for itself, RFC 9068
// §2.2), aud, exp, iat, nbf, jti, client_id, fid (req.fid, user grants only)
// and scope. Without a key this replica may sign with — none loaded, the
// view stale, the new key not yet announced — it issues nothing: 503.
func (t *tokenEndpoint) mint(req *tokenRequest, aud string, lifetime time.Duration) (issued, error) {
	signer, err := t.keys.Current()
	if err != nil {
		return issued{}, unavailable("No signing key is available.", err)
	}
	jti, err := token.NewID()
	if err != nil {
		return issued{}, oautherr.ErrServerError.WithCause(err)
	}
	secs := max(int64(lifetime/time.Second), 1)
	iat := req.now.Unix()
	cl := req.client

	b := append(req.claims[:0], t.claimsPrefix...)
	if req.subject != "" {
		b = appendJSONString(b, req.subject)
	} else {
		b = appendJSONString(b, cl.ID)
	}
	b = append(b, `,"aud":`...)
	b = appendJSONString(b, aud)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, iat+secs, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, iat, 10)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, iat, 10)
	b = append(b, `,"jti":"`...)
	b = append(b, jti...) // base64url: nothing to escape
	b = append(b, `","client_id":`...)
	b = appendJSONString(b, cl.ID)
	if req.fid != "" {
		b = append(b, `,"`+token.FamilyClaim+`":"`...)
		b = append(b, req.fid...) // base64url: nothing to escape
		b = append(b, '"')
	}
	if len(req.scope) > 0 {
		b = append(b, `,"scope":"`...)
		b = append(b, req.scope...) // scope-tokens: nothing to escape
		b = append(b, '"')
	}
	b = append(b, '}')
	req.claims = b

	at, err := signer.Sign(keys.TypeAccessToken, b)
	if err != nil {
		return issued{}, oautherr.ErrServerError.WithCause(err)
	}
	return issued{accessToken: at, expiresIn: secs, scope: req.scope}, nil
}

// Response headers, shared and never modified: RFC 6749 §5.1 requires
// no-store and no-cache on every token response.
var (
	hdrJSON    = []string{"application/json;charset=UTF-8"}
	hdrNoStore = []string{"no-store"}
	hdrNoCache = []string{"no-cache"}
)

// writeToken writes the successful response (RFC 6749 §5.1).
func writeToken(w http.ResponseWriter, req *tokenRequest, res issued) {
	b := append(req.out[:0], `{"access_token":"`...)
	b = append(b, res.accessToken...) // JWS compact: base64url and dots
	b = append(b, `","token_type":"Bearer","expires_in":`...)
	b = strconv.AppendInt(b, res.expiresIn, 10)
	if len(res.scope) > 0 {
		b = append(b, `,"scope":"`...)
		b = append(b, res.scope...)
		b = append(b, '"')
	}
	if res.refreshToken != "" {
		b = append(b, `,"refresh_token":"`...)
		b = append(b, res.refreshToken...) // vrt_: base64url, '_' and '.'
		b = append(b, '"')
	}
	b = append(b, '}')
	req.out = b
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["Pragma"] = hdrNoCache
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// fail writes err and counts it. A 5xx is logged with its cause (which never
// holds a secret: credentials are not kept in causes).
func (t *tokenEndpoint) fail(w http.ResponseWriter, grant string, req *tokenRequest, err error) {
	e := oautherr.From(err)
	t.met.errors.WithLabelValues(grantLabel(grant), e.Code).Inc()
	if e.Status >= 500 {
		fields := []zap.Field{zap.String("grant", grantLabel(grant)), zap.String("error", e.Code), zap.Error(e.Cause())}
		if req.client != nil {
			fields = append(fields, zap.String("client_id", req.client.ID))
		}
		t.log.Warn("token request failed", fields...)
	}
	oautherr.Write(w, e)
}

// unavailable is temporarily_unavailable (503, Retry-After) for a dependency
// that could not answer: never a negative answer, never a token (MISSION
// invariant 6).
func unavailable(desc string, cause error) *oautherr.Error {
	return oautherr.ErrTemporarilyUnavailable.WithDescription("%s", desc).WithRetryAfter(retryAfter).WithCause(cause)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, everything else (UTF-8 included) as is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
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
	b = append(b, s[start:]...)
	return append(b, '"')
}
