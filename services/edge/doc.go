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
package edge
