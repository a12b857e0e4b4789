package edge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/valetauth/valet/pkg/edge"
)

// Forward-auth endpoints on the public listener, one per gateway
// convention. Each reads the original request only from the headers its
// gateway sets, never from another gateway's: through Traefik a client can
// send its own X-Original-URI, through NGINX its own X-Forwarded-Uri.
const (
	// PathNGINX answers NGINX auth_request subrequests: the original
	// request's target in X-Original-URI, its method in X-Original-Method,
	// its host in X-Original-Host (optional).
	PathNGINX = "/auth/nginx"
	// PathTraefik answers Traefik forwardAuth: X-Forwarded-Uri,
	// X-Forwarded-Method and X-Forwarded-Host, which Traefik sets itself
	// (trustForwardHeader: false).
	PathTraefik = "/auth/traefik"
	// PathEnvoy is the path_prefix of Envoy's ext_authz HTTP service: Envoy
	// sends the original method and PathEnvoy + the original path.
	PathEnvoy = "/auth/envoy"
)

// Identity headers of a 200: the gateway copies them, and only them, onto
// the upstream request, replacing whatever the client sent under those
// names. All four are always set, scope possibly empty, so that a gateway
// that only overwrites headers present in the answer (Envoy) never lets a
// client's value through.
const (
	HeaderSubject = "X-Valet-Subject"
	HeaderClient  = "X-Valet-Client"
	HeaderScope   = "X-Valet-Scope"
	HeaderTokenID = "X-Valet-Token-Id"
)

// Realm is the realm of every Bearer challenge (RFC 6750 §3).
const Realm = "valet"

// Decision reasons beyond pkg/edge's, for valet_edge_decisions_total.
const (
	// ReasonNoToken: no Authorization: Bearer header (RFC 6750 §3.1: the
	// challenge carries no error code).
	ReasonNoToken = "no_token"
	// ReasonBadRequest: the gateway did not forward the original request,
	// or its path is malformed or ambiguous (dot segments).
	ReasonBadRequest = "bad_request"
	// ReasonInvalidRequest: an access_token query parameter (RFC 6750 §2.3
	// is not supported: URIs end up in logs), or a malformed or repeated
	// Authorization header.
	ReasonInvalidRequest = "invalid_request"
	// ReasonNoRoute: a valid token on a route no policy entry matches, with
	// unmatched: deny.
	ReasonNoRoute = "no_route"
)

// verifier is what the authorizer calls of *edge.Verifier.
type verifier interface {
	VerifyScopes(ctx context.Context, token string, scopes ...string) (edge.Claims, error)
}

var _ verifier = (*edge.Verifier)(nil)

// authorizer is the forward-auth handler: one decision per request.
type authorizer struct {
	v      verifier
	routes *routeTable
	met    *metrics
}

// nginx serves PathNGINX.
func (a *authorizer) nginx(w http.ResponseWriter, r *http.Request) {
	a.decide(w, r, r.Header.Get("X-Original-Method"), r.Header.Get("X-Original-URI"), r.Header.Get("X-Original-Host"))
}

// traefik serves PathTraefik.
func (a *authorizer) traefik(w http.ResponseWriter, r *http.Request) {
	a.decide(w, r, r.Header.Get("X-Forwarded-Method"), r.Header.Get("X-Forwarded-Uri"), r.Header.Get("X-Forwarded-Host"))
}

// envoy serves PathEnvoy and everything beneath it.
func (a *authorizer) envoy(w http.ResponseWriter, r *http.Request) {
	target := strings.TrimPrefix(r.RequestURI, PathEnvoy)
	if target == r.RequestURI || !strings.HasPrefix(target, "/") {
		target = "" // absolute form, or not beneath the prefix
	}
	a.decide(w, r, r.Method, target, r.Host)
}

// decide is the forward-auth answer: authorize, then the identity headers
// of a 200 or the prepared denial.
func (a *authorizer) decide(w http.ResponseWriter, r *http.Request, method, target, host string) {
	claims, res := a.authorize(r, method, target, host)
	if res != nil {
		a.deny(w, res)
		return
	}
	h := w.Header()
	h["Cache-Control"] = noStore
	setIdentity(h, &claims)
	w.WriteHeader(http.StatusOK)
	a.met.decided(http.StatusOK, edge.ReasonOK)
}

// authorize is the hot path, top to bottom: the original request, the
// bearer token (RFC 6750 §2.1 only), the route's scopes, Verify. It returns
// the claims of an accepted request, or the prepared denial. Forward auth
// and the reverse proxy (proxy.go) both decide here, so that they cannot
// disagree.
func (a *authorizer) authorize(r *http.Request, method, target, host string) (edge.Claims, *response) {
	// 1. The original request, as the gateway forwarded it.
	if method == "" || target == "" {
		return edge.Claims{}, resBadRequest
	}
	path, err := normalizePath(target)
	if err != nil {
		return edge.Claims{}, resBadPath
	}
	if tokenInQuery(target) {
		return edge.Claims{}, resTokenInQuery
	}

	// 2. The token: the Authorization header, exactly once (RFC 6750
	//    §2.1). Another scheme is no bearer token at all (§3.1).
	authz := r.Header.Values("Authorization")
	if len(authz) == 0 {
		return edge.Claims{}, resNoToken
	}
	if len(authz) > 1 {
		return edge.Claims{}, resBadAuthorization
	}
	scheme, token, _ := strings.Cut(authz[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return edge.Claims{}, resNoToken
	}
	if token = strings.TrimLeft(token, " "); token == "" {
		return edge.Claims{}, resBadAuthorization
	}

	// 3. The route decides the scopes; Verify does everything else.
	rt := a.routes.match(host, method, path)
	var scopes []string
	if rt != nil {
		scopes = rt.scopes
	}
	claims, err := a.v.VerifyScopes(r.Context(), token, scopes...)
	if err != nil {
		return edge.Claims{}, rejection(err, rt)
	}
	if rt == nil && a.routes.denyUnmatched {
		return edge.Claims{}, resNoRoute
	}
	return claims, nil
}

// setIdentity sets the four identity headers of c on h, replacing any
// value under those names.
func setIdentity(h http.Header, c *edge.Claims) {
	// One backing array for the four values: one allocation, not four.
	v := &[4]string{c.Subject, c.ClientID, strings.Join(c.Scopes, " "), c.JTI}
	h[HeaderSubject] = v[0:1:1]
	h[HeaderClient] = v[1:2:2]
	h[HeaderScope] = v[2:3:3]
	h[HeaderTokenID] = v[3:4:4]
}

// tokenInQuery reports whether target carries an access_token query
// parameter (RFC 6750 §2.3), escaped or not.
func tokenInQuery(target string) bool {
	_, q, ok := strings.Cut(target, "?")
	if !ok || !strings.Contains(q, "_token") && !strings.Contains(q, "%") {
		return false
	}
	for part := range strings.SplitSeq(q, "&") {
		k, _, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if k == "access_token" {
			return true
		}
	}
	return false
}

// response is a prepared denial.
type response struct {
	status int
	reason string
	// www is the WWW-Authenticate value, "" for none.
	www  string
	body []byte
}

var noStore = []string{"no-store"}

// deny writes res.
func (a *authorizer) deny(w http.ResponseWriter, res *response) {
	h := w.Header()
	h["Cache-Control"] = noStore
	h["Content-Type"] = jsonType
	if res.www != "" {
		h["Www-Authenticate"] = []string{res.www}
	}
	if res.status == http.StatusServiceUnavailable {
		h["Retry-After"] = retryAfter
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
	a.met.decided(res.status, res.reason)
}

var (
	jsonType   = []string{"application/json"}
	retryAfter = []string{"1"}
)

// rejection maps a Verify error to its prepared response; an
// insufficient_scope names the route's scopes.
func rejection(err error, rt *route) *response {
	var e *edge.Error
	if !errors.As(err, &e) {
		return resUnavailable // a cancelled request: say nothing about the token
	}
	if res, ok := byReason[e.Reason()]; ok {
		if res.reason == edge.ReasonInsufficientScope && rt != nil {
			return &response{status: res.status, reason: res.reason, www: rt.wwwInsufficient, body: res.body}
		}
		return res
	}
	return &response{
		status: e.StatusCode(), reason: e.Reason(),
		www:  bearerChallenge(e.BearerError(), "the access token is invalid", ""),
		body: errorBody(e.BearerError(), "the access token is invalid"),
	}
}

// bearerChallenge returns an RFC 6750 §3 WWW-Authenticate value: realm,
// then error, error_description and scope when not empty. The values are
// fixed text or validated scope tokens, free of quotes and backslashes.
func bearerChallenge(code, desc, scope string) string {
	s := `Bearer realm="` + Realm + `"`
	if code != "" {
		s += `, error="` + code + `"`
	}
	if desc != "" {
		s += `, error_description="` + desc + `"`
	}
	if scope != "" {
		s += `, scope="` + scope + `"`
	}
	return s
}

func errorBody(code, desc string) []byte {
	m := map[string]string{"error_description": desc}
	if code != "" {
		m["error"] = code
	}
	b, _ := json.Marshal(m)
	return b
}

// invalidToken returns the 401 of a pkg/edge rejection reason.
func invalidToken(reason, desc string) *response {
	return &response{
		status: http.StatusUnauthorized, reason: reason,
		www:  bearerChallenge("invalid_token", desc, ""),
		body: errorBody("invalid_token", desc),
	}
}

func invalidRequest(reason, desc string) *response {
	return &response{
		status: http.StatusBadRequest, reason: reason,
		www:  bearerChallenge("invalid_request", desc, ""),
		body: errorBody("invalid_request", desc),
	}
}

// The prepared responses. Descriptions are fixed text: nothing from the
// token or the request is ever echoed.
var (
	resNoToken = &response{
		status: http.StatusUnauthorized, reason: ReasonNoToken,
		www:  bearerChallenge("", "", ""), // RFC 6750 §3.1: no error code
		body: errorBody("", "a bearer access token is required"),
	}
	resBadRequest = &response{
		status: http.StatusBadRequest, reason: ReasonBadRequest,
		body: errorBody("invalid_request", "the gateway did not forward the original request's method and URI"),
	}
	resBadPath = &response{
		status: http.StatusBadRequest, reason: ReasonBadRequest,
		body: errorBody("invalid_request", "the request path is malformed or has dot segments"),
	}
	resTokenInQuery     = invalidRequest(ReasonInvalidRequest, "access tokens are accepted in the Authorization header only")
	resBadAuthorization = invalidRequest(ReasonInvalidRequest, "malformed or repeated Authorization header")
	resNoRoute          = &response{
		status: http.StatusForbidden, reason: ReasonNoRoute,
		www:  bearerChallenge("insufficient_scope", "no route policy allows this request", ""),
		body: errorBody("insufficient_scope", "no route policy allows this request"),
	}
	resUnavailable = &response{
		status: http.StatusServiceUnavailable, reason: edge.ReasonError,
		body: errorBody("temporarily_unavailable", "the request was cancelled before a decision"),
	}

	// byReason maps every pkg/edge reason to its response.
	byReason = map[string]*response{
		edge.ReasonMalformed:     invalidToken(edge.ReasonMalformed, "the access token is malformed"),
		edge.ReasonWrongType:     invalidToken(edge.ReasonWrongType, "the token is not an access token (typ at+jwt)"),
		edge.ReasonBadAlgorithm:  invalidToken(edge.ReasonBadAlgorithm, "the token's signature algorithm is not accepted"),
		edge.ReasonUnknownKID:    invalidToken(edge.ReasonUnknownKID, "the token's signing key is unknown"),
		edge.ReasonKeyRevoked:    invalidToken(edge.ReasonKeyRevoked, "the token's signing key is revoked"),
		edge.ReasonBadSignature:  invalidToken(edge.ReasonBadSignature, "the token's signature does not verify"),
		edge.ReasonWrongIssuer:   invalidToken(edge.ReasonWrongIssuer, "the token was issued by another issuer"),
		edge.ReasonWrongAudience: invalidToken(edge.ReasonWrongAudience, "the token is not meant for this audience"),
		edge.ReasonLifetime:      invalidToken(edge.ReasonLifetime, "the token's lifetime exceeds the maximum"),
		edge.ReasonExpired:       invalidToken(edge.ReasonExpired, "the access token expired"),
		edge.ReasonNotYetValid:   invalidToken(edge.ReasonNotYetValid, "the access token is not valid yet"),
		edge.ReasonRevoked:       invalidToken(edge.ReasonRevoked, "the access token is revoked"),
		edge.ReasonInsufficientScope: {
			status: http.StatusForbidden, reason: edge.ReasonInsufficientScope,
			www:  bearerChallenge("insufficient_scope", "the access token lacks a scope this route requires", ""),
			body: errorBody("insufficient_scope", "the access token lacks a scope this route requires"),
		},
		// Stale: not the token's fault, so no challenge (RFC 6750 §3.1
		// has no code for it); fail closed, the client may retry.
		edge.ReasonStale: {
			status: http.StatusServiceUnavailable, reason: edge.ReasonStale,
			body: errorBody("temporarily_unavailable", "revocation state not current; retry later"),
		},
	}
)
