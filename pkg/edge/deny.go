package edge

import (
	"crypto/sha256"
	"math"
	"sync"
	"time"

	"github.com/valetauth/valet/events"
)

// jtiKey is the first 128 bits of SHA-256(jti): a fixed-size map key, so a
// revoked jti costs the same few dozen bytes whatever its length (the goal
// is ≤ 128 bytes per revoked jti; BenchmarkDenyMemoryPerJTI measures it). A
// collision would only reject a token that was not revoked, and jtis are
// chosen by the issuer, not by an attacker.
type jtiKey [16]byte

func hashJTI(jti string) jtiKey {
	var buf [64]byte
	var sum [32]byte
	if len(jti) <= len(buf) {
		// A stack copy: converting a long string to []byte would allocate.
		n := copy(buf[:], jti)
		sum = sha256.Sum256(buf[:n])
	} else {
		sum = sha256.Sum256([]byte(jti))
	}
	return jtiKey(sum[:16])
}

// jtiShards spreads revoked jtis over independently locked maps: the applier
// and many verifiers rarely meet on one lock, a sweep holds each lock only
// for its share, and maps are rebuilt smaller shard by shard.
const jtiShards = 256

type jtiShard struct {
	mu sync.RWMutex
	// m maps a revoked jti to when it may be forgotten: its exp plus skew,
	// in seconds since the epoch (uint32 lasts until 2106).
	m map[jtiKey]uint32
	// peak is the largest len(m) since the map was last rebuilt: Go maps
	// never shrink, so a sweep rebuilds one that fell to a quarter of it.
	peak int
	_    [24]byte // pad the shard to 64 bytes: one cache line each
}

// cutoff kills the tokens of one subject or client issued at or before at
// (plus skew); the entry may be forgotten after forget. Both are seconds.
type cutoff struct {
	at, forget int64
}

// denyState is the deny projection of the revocation stream (MISSION §0.1):
// revoked jtis, revoked families, subject cut-offs and client cut-offs, each
// kept only as long as a token it kills can still be presented. Apply is
// called by the one stream applier; denied by any number of verifiers.
type denyState struct {
	skew   int64 // seconds, rounded up
	maxTTL int64 // seconds, rounded up

	jtis [jtiShards]jtiShard

	mu       sync.RWMutex
	families map[string]int64 // fid → forget after
	subjects map[string]cutoff
	clients  map[string]cutoff
}

func newDenyState(skew, maxTTL time.Duration) *denyState {
	d := &denyState{
		skew:     ceilSeconds(skew),
		maxTTL:   ceilSeconds(maxTTL),
		families: make(map[string]int64),
		subjects: make(map[string]cutoff),
		clients:  make(map[string]cutoff),
	}
	for i := range d.jtis {
		d.jtis[i].m = make(map[jtiKey]uint32)
	}
	return d
}

func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

// clampDate bounds a NumericDate from an event to 1970..9999 so that sums
// with lifetimes cannot overflow.
func clampDate(s int64) int64 {
	return min(max(s, 0), maxNumericDate)
}

// apply records the deny entry of a revocation event and reports whether e
// was one (token, family, subject or client revocation). Entries that could
// only kill tokens already expired at now are not stored. Applying an event
// twice leaves the same state.
func (d *denyState) apply(e events.Event, now time.Time) bool {
	at := clampDate(e.Time.Unix())
	nowS := now.Unix()
	switch p := e.Payload.(type) {
	case *events.TokenRevoked:
		// No token lives longer than maxTTL (Verify refuses those that
		// claim to), so none revoked at `at` outlives at+maxTTL+skew: the
		// cap bounds memory against an absurd exp.
		forget := min(clampDate(p.Exp), at+d.maxTTL+d.skew) + d.skew
		if forget > nowS {
			d.addJTI(hashJTI(p.JTI), forget)
		}
		return true
	case *events.FamilyRevoked:
		// No token of the family is minted after the event.
		forget := at + d.maxTTL + d.skew
		if forget > nowS {
			d.mu.Lock()
			if forget > d.families[p.FID] {
				d.families[p.FID] = forget
			}
			d.mu.Unlock()
		}
		return true
	case *events.SubjectRevoked:
		// Both sub_types match on sub: a client-credentials token's sub is
		// the client id, and a token of a user who shares that name is
		// killed too rather than risk missing one (docs/events.md).
		d.addCutoff(d.subjects, p.Subject, clampDate(p.Cutoff), at, nowS)
		return true
	case *events.ClientRevoked:
		d.addCutoff(d.clients, p.ClientID, clampDate(p.Cutoff), at, nowS)
		return true
	}
	return false
}

// maxReserve bounds the jtis reserve makes room for at once (about 180 MB),
// so that a replay of a stream holding mostly other events cannot reserve
// without limit.
const maxReserve = 1 << 22

// reserve makes room for about n revoked jtis in the jti maps that are still
// empty, as at the start of a replay. Inserting into maps that never grow is
// faster, and above all a heap that holds the deny state from the start is
// collected far less often while the replay allocates (33 collections
// instead of 109 for 1M events; docs/performance.md). The maps hold no
// pointers, so the collector never scans them. A shard that stays below a
// quarter of its reservation is rebuilt smaller by the next sweep. Below 64
// jtis a shard (16k in all) nothing is reserved: small maps grow cheaply.
func (d *denyState) reserve(n int) {
	per := min(n, maxReserve) / jtiShards
	if per < 64 {
		return
	}
	for i := range d.jtis {
		s := &d.jtis[i]
		s.mu.Lock()
		if len(s.m) == 0 {
			s.m = make(map[jtiKey]uint32, per)
			s.peak = max(s.peak, per)
		}
		s.mu.Unlock()
	}
}

func (d *denyState) addJTI(k jtiKey, forget int64) {
	f := uint32(min(forget, math.MaxUint32))
	s := &d.jtis[k[0]]
	s.mu.Lock()
	if f > s.m[k] {
		s.m[k] = f
		s.peak = max(s.peak, len(s.m))
	}
	s.mu.Unlock()
}

// addCutoff merges a cut-off: the later cut-off and the later forget time
// win, so replaying events in any order gives the same state.
func (d *denyState) addCutoff(m map[string]cutoff, name string, at, eventTime, now int64) {
	forget := max(eventTime, at) + d.maxTTL + d.skew
	if forget <= now {
		return
	}
	d.mu.Lock()
	c := m[name]
	c.at = max(c.at, at)
	c.forget = max(c.forget, forget)
	m[name] = c
	d.mu.Unlock()
}

// denied returns which revocation handle kills a token with these claims
// ("jti", "family", "subject" or "client"), or "" when none does. iat is in
// seconds; a cut-off kills tokens with iat ≤ cutoff + skew.
func (d *denyState) denied(jti jtiKey, fid, sub, clientID string, iat int64) string {
	s := &d.jtis[jti[0]]
	s.mu.RLock()
	_, revoked := s.m[jti]
	s.mu.RUnlock()
	if revoked {
		return "jti"
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if fid != "" {
		if _, ok := d.families[fid]; ok {
			return "family"
		}
	}
	if c, ok := d.subjects[sub]; ok && iat <= c.at+d.skew {
		return "subject"
	}
	if c, ok := d.clients[clientID]; ok && iat <= c.at+d.skew {
		return "client"
	}
	return ""
}

// sweep forgets every entry whose tokens have all expired at now, and
// rebuilds jti maps that shrank to a quarter of their peak so the memory
// returns to the runtime.
func (d *denyState) sweep(now time.Time) {
	nowS := now.Unix()
	for i := range d.jtis {
		s := &d.jtis[i]
		s.mu.Lock()
		for k, f := range s.m {
			if int64(f) <= nowS {
				delete(s.m, k)
			}
		}
		if s.peak > 64 && len(s.m) < s.peak/4 {
			m := make(map[jtiKey]uint32, len(s.m))
			for k, f := range s.m {
				m[k] = f
			}
			s.m, s.peak = m, len(m)
		}
		s.mu.Unlock()
	}
	d.mu.Lock()
	for k, f := range d.families {
		if f <= nowS {
			delete(d.families, k)
		}
	}
	for _, m := range []map[string]cutoff{d.subjects, d.clients} {
		for k, c := range m {
			if c.forget <= nowS {
				delete(m, k)
			}
		}
	}
	d.mu.Unlock()
}

// DenySizes counts the deny state's entries.
type DenySizes struct {
	// JTIs is the number of revoked jtis kept.
	JTIs int
	// Families is the number of revoked refresh families kept.
	Families int
	// Subjects is the number of subject cut-offs kept.
	Subjects int
	// Clients is the number of client cut-offs kept.
	Clients int
}

func (d *denyState) sizes() DenySizes {
	var n DenySizes
	for i := range d.jtis {
		s := &d.jtis[i]
		s.mu.RLock()
		n.JTIs += len(s.m)
		s.mu.RUnlock()
	}
	d.mu.RLock()
	n.Families, n.Subjects, n.Clients = len(d.families), len(d.subjects), len(d.clients)
	d.mu.RUnlock()
	return n
}
