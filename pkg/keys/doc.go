// Package keys is the signing key ring every issuer replica shares: keys
// generated here (ES256 by default, EdDSA and RS256 configurable), kid = the
// RFC 7638 thumbprint, private halves stored only sealed under a
// key-encryption key (AES-256-GCM, the kid as associated data), and a
// lifecycle agreed between replicas by the store's compare-and-set:
//
//	published ──(announced, lead time)──► active ──(successor active)──► retiring ──(last token expired)──► retired ──► deleted
//	    any state ──(compromise)──► revoked
//
// MISSION §0.4 is the rule every step keeps: a key is in JWKS and its
// key.published event is acknowledged by the stream before any token signed
// with it exists, and it stays in JWKS until the last token it signed has
// expired — unless it is revoked, and then key.revoked tells every edge to
// reject its tokens at once. Key events carry no key material: they are
// signals to refetch JWKS over HTTPS, with the thumbprint to check.
//
// Manager is one replica's view (Refresh/Run), its key to sign with
// (Current, Signer), its JWKS, and the operator actions (Rotate, RotateNow,
// Revoke, Rewrap). KEKRing seals and opens private keys. docs/keys.md
// describes the lifecycle, the timings and the procedures.
package keys
