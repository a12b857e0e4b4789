// Package edge is the library gateways embed to verify Valet access tokens
// locally and reject revoked ones within milliseconds. It is a module of its
// own that depends only on the events contract, pkg/bus, nats.go and jwx, so
// that a gateway embedding it never inherits Redis, bbolt or echo.
//
// A Verifier checks an RFC 9068 access token — typ at+jwt, the signature
// with the one algorithm its JWKS key is bound to (ES256, EdDSA or RS256;
// never none or HMAC), kid, iss, aud, exp, nbf, iat, scopes — and then its
// deny state: revoked jtis, revoked refresh families (fid claim), subject
// cut-offs and client cut-offs, and keys revoked as compromised (MISSION §0
// invariants 1 and 4).
//
// Keys come only from the issuer's JWKS over HTTPS. The key stream never
// carries key material: its events make the edge refetch JWKS, pin a kid to
// the announced RFC 7638 thumbprint, drop a retired kid, and deny a revoked
// kid for good even if a stale JWKS still serves it.
//
// The deny state is a projection of the revocation stream, replayed at start
// over the maximum token lifetime and then followed live. The edge is current
// while it applied an event with nothing pending behind it (heartbeats arrive
// every few seconds) within its staleness bound; otherwise every Verify
// fails closed with ErrStale (MISSION §0 invariant 2), and it recovers by
// itself once the stream is reachable again.
//
// The gateway brings its own NATS connection (Config.JetStream). Connect it
// as the edge user of deploy/nats/accounts.conf, which may read the
// revocation and key streams and publish nothing, and with
// nats.CustomInboxPrefix("_INBOX_edge"): that user may subscribe only to
// _INBOX_edge.>, never to NATS's default _INBOX.>, so that it cannot read the
// replies meant for the issuer, revocation and introspection services. On
// the default prefix the server refuses the reply subscription, no request
// is answered and Verify fails closed with ErrStale.
//
// A cache of verified tokens, keyed by SHA-256 of the token, skips only the
// signature check: expiry, the deny state and the key's status are checked
// on every call. docs/gateway.md shows how to embed it, what the staleness
// bound means for availability, and the measured costs.
package edge
