// Package edge is the library gateways embed to verify Valet access tokens
// locally and reject revoked ones within milliseconds. It is a module of its
// own that depends only on the events contract, nats.go and jwx, so that a
// gateway embedding it never inherits Redis, bbolt or echo.
package edge
