package redis

// The key schema (docs/redis.md). P is the prefix, which holds no brace.
// Every key is P, an optional brace-free head, then a hash tag {tag}, then a
// suffix; all the keys one script names carry the same tag, so each script
// runs in one Redis Cluster slot:
//
//	P{fid}:code, :fam, :sup, :succ, :rev, :dev   one grant (grants.go)
//	P{fid}:outbox                                 its outbox shard (reuse events, family revocations)
//	P{jtis:<bucket>}:rev:<jti>                    an access token's mark
//	P{jtis:<bucket>}:outbox                       the shard of the marks of that bucket
//	P{sub:<type>:<sub>}:cut, ...:outbox           a subject cut-off and its shard
//	P{client:<id>}:cut, ...:outbox                a client cut-off and its shard
//	P{outbox}:shards, P{outbox}:seq               the index of shards to relay (outbox.go)
//	Pucode:<user code>                            user code -> fid
//
// Identifiers that come from outside (jti, subject, client id) are escaped
// with url.QueryEscape inside a tag, which escapes '{', '}' and ':': no tag
// can end early, be empty or read as another kind's. A fid is base64url
// (validFID), so it holds no ':' and never equals another kind's tag.

import (
	"fmt"
	"net/url"
	"strings"
)

// grantKeys are the keys of one grant, all in the slot of {fid}.
type grantKeys struct{ code, fam, sup, succ, rev, dev, outbox string }

func (s *Store) grant(fid string) grantKeys {
	p := s.prefix + "{" + fid + "}:"
	return grantKeys{
		code:   p + "code",
		fam:    p + "fam",
		sup:    p + "sup",
		succ:   p + "succ",
		rev:    p + "rev",
		dev:    p + "dev",
		outbox: p + "outbox",
	}
}

// tagged is the key kind under hash tag tag.
func (s *Store) tagged(tag, kind string) string { return s.prefix + "{" + tag + "}:" + kind }

// key joins the prefix and parts with ':' (keys used alone, outside scripts).
func (s *Store) key(parts ...string) string {
	return s.prefix + strings.Join(parts, ":")
}

func (s *Store) userCodeKey(userCode string) string { return s.key("ucode", userCode) }

// jtiBuckets is how many hash tags the jti marks are spread over. A mark
// shares its tag with the outbox shard its event is queued in; with a tag per
// jti, every revocation had to register a new shard in the index (one more
// round trip) and the relay to read, close and forget it. A bucket's shard
// stays registered while it is in use (revocation.go), and the relay's work
// is bounded by the buckets, not the revocations. 256 buckets spread the
// marks over enough slots to balance a Redis Cluster's nodes.
const jtiBuckets = 256

// jtiTag, subjectTag and clientTag are the hash tags of the deny state of an
// access token, a subject and a client; each one's outbox shard shares it.
// A jti's tag is its bucket: FNV-1a of the jti modulo jtiBuckets, in hex.
func jtiTag(jti string) string {
	h := uint32(2166136261)
	for i := 0; i < len(jti); i++ {
		h ^= uint32(jti[i])
		h *= 16777619
	}
	return jtiBucketTags[h%jtiBuckets]
}

// jtiBucketTags are the bucket tags, "jtis:00" to "jtis:ff".
var jtiBucketTags = func() (tags [jtiBuckets]string) {
	for i := range tags {
		tags[i] = fmt.Sprintf("jtis:%02x", i)
	}
	return tags
}()

func subjectTag(subType, sub string) string {
	return "sub:" + url.QueryEscape(subType) + ":" + url.QueryEscape(sub)
}

func clientTag(clientID string) string { return "client:" + url.QueryEscape(clientID) }

// jtiKey is an access token's revoked mark, in its bucket's slot.
func (s *Store) jtiKey(jti string) string {
	return s.tagged(jtiTag(jti), "rev:"+url.QueryEscape(jti))
}

// subjectCutKey is the cut-off of a subject; subType is "user" or "client".
func (s *Store) subjectCutKey(subType, sub string) string {
	return s.tagged(subjectTag(subType, sub), "cut")
}

// clientCutKey is the cut-off of a client.
func (s *Store) clientCutKey(clientID string) string { return s.tagged(clientTag(clientID), "cut") }

// shardKey is the outbox shard of tag: a hash of event id -> entry, in the
// slot of the deny state it was queued with.
func (s *Store) shardKey(tag string) string { return s.tagged(tag, "outbox") }

// indexKeys are the index of shards with entries to relay (a sorted set of
// tags scored by registration version) and the counter that keeps versions
// unique; they share the tag {outbox}.
func (s *Store) indexKeys() (shards, seq string) {
	return s.prefix + "{outbox}:shards", s.prefix + "{outbox}:seq"
}

// validFID reports whether fid can be a grant's hash tag: 16 to 128
// base64url characters (fids are 22, docs/tokens.md). The alphabet keeps a
// fid from colliding with the tags above, which hold ':', and the length
// from the registry's short tags ({clients}, {keys}, {outbox}, ...).
func validFID(fid string) bool {
	if len(fid) < 16 || len(fid) > 128 {
		return false
	}
	for i := 0; i < len(fid); i++ {
		c := fid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
