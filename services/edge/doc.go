// Package edge is the reference forward-auth authorizer built on pkg/edge,
// for Envoy ext_authz (HTTP service), NGINX auth_request and Traefik
// forwardAuth.
//
// A gateway asks it about every request: it reads the bearer token from the
// Authorization header only (RFC 6750 §2.1), looks up the scopes the
// original route requires in its Policy, verifies the token locally with
// pkg/edge (signature, iss, aud, exp, scopes, and the deny state fed by the
// revocation stream), and answers 200 with the identity headers
// X-Valet-Subject, X-Valet-Client, X-Valet-Scope and X-Valet-Token-Id, 401
// or 403 with an RFC 6750 §3 challenge, or 503 while the edge cannot show
// its deny state is current (fail closed). docs/gateway.md ("Forward auth")
// documents the contract, the policy file and the metrics;
// deploy/gateways holds the gateway configurations, which the tests load.
//
// With services.edge.upstream set (or Deps.Upstream, in process) it is also
// a reverse proxy, for small deployments without a gateway: every other
// request to the public listener is decided exactly as forward auth would
// decide it, refused with the same answers, and when accepted passed to the
// upstream by net/http/httputil.ReverseProxy with the identity headers set
// and any client-sent X-Valet-* removed (proxy.go; docs/gateway.md,
// "Reverse-proxy mode").
package edge
