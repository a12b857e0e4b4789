// Package issuer is Valet's authorization server: discovery (RFC 8414), JWKS,
// /authorize with login and consent, and /token. Later work fills in the
// grants; this package already owns the service's listeners and health.
package issuer
