package edge

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
)

const testSource = "https://issuer.test"

func event(t testing.TB, at time.Time, p events.Payload) events.Event {
	t.Helper()
	e, err := events.New(events.NewID(), testSource, at, p)
	if err != nil {
		t.Fatalf("events.New: %v", err)
	}
	return e
}

func TestDenyStateApplyAndDenied(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	nowS := now.Unix()
	d := newDenyState(30*time.Second, time.Hour)
	for _, p := range []events.Payload{
		&events.TokenRevoked{JTI: "j1", Exp: nowS + 600},
		&events.FamilyRevoked{FID: "f1", Reason: events.ReasonRefreshReuse},
		&events.SubjectRevoked{Subject: "alice", SubjectType: events.SubjectUser, Cutoff: nowS - 100},
		&events.SubjectRevoked{Subject: "svc", SubjectType: events.SubjectClient, Cutoff: nowS - 100},
		&events.ClientRevoked{ClientID: "app", Cutoff: nowS - 100},
		&events.Heartbeat{Instance: "x"},
		&events.ClientUpdated{ClientID: "app"},
	} {
		d.apply(event(t, now, p), now)
	}
	tests := []struct {
		name               string
		jti, fid, sub, cid string
		iat                int64
		want               string
	}{
		{"revoked jti", "j1", "", "bob", "web", nowS, "jti"},
		{"other jti", "j2", "", "bob", "web", nowS, ""},
		{"revoked family", "j2", "f1", "bob", "web", nowS, "family"},
		{"other family", "j2", "f2", "bob", "web", nowS, ""},
		{"subject at cut-off", "j2", "", "alice", "web", nowS - 100, "subject"},
		{"subject within skew", "j2", "", "alice", "web", nowS - 70, "subject"},
		{"subject after cut-off plus skew", "j2", "", "alice", "web", nowS - 69, ""},
		{"client-credentials subject", "j2", "", "svc", "svc", nowS - 100, "subject"},
		{"client at cut-off plus skew", "j2", "", "bob", "app", nowS - 70, "client"},
		{"client after cut-off plus skew", "j2", "", "bob", "app", nowS - 69, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := d.denied(hashJTI(tc.jti), tc.fid, tc.sub, tc.cid, tc.iat); got != tc.want {
				t.Fatalf("denied = %q, want %q", got, tc.want)
			}
		})
	}
	if got, want := d.sizes(), (DenySizes{JTIs: 1, Families: 1, Subjects: 2, Clients: 1}); got != want {
		t.Fatalf("sizes %+v, want %+v", got, want)
	}
}

func TestDenyStateMergesAndIsIdempotent(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	nowS := now.Unix()
	d := newDenyState(0, time.Hour)
	late := event(t, now, &events.SubjectRevoked{Subject: "a", SubjectType: events.SubjectUser, Cutoff: nowS})
	early := event(t, now, &events.SubjectRevoked{Subject: "a", SubjectType: events.SubjectUser, Cutoff: nowS - 500})
	// Out of order and twice: the later cut-off wins.
	for _, e := range []events.Event{late, early, late} {
		d.apply(e, now)
	}
	if d.denied(hashJTI("x"), "", "a", "c", nowS) != "subject" {
		t.Fatal("the later cut-off was lost")
	}
	if got := d.sizes().Subjects; got != 1 {
		t.Fatalf("%d subject entries, want 1", got)
	}
}

func TestDenyStateForgets(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	atS := at.Unix()
	skew, ttl := 30*time.Second, time.Hour
	d := newDenyState(skew, ttl)
	for _, p := range []events.Payload{
		&events.TokenRevoked{JTI: "short", Exp: atS + 60},
		// An absurd exp is capped at the event time plus the lifetime.
		&events.TokenRevoked{JTI: "absurd", Exp: math.MaxInt64},
		&events.FamilyRevoked{FID: "f", Reason: events.ReasonAdmin},
		&events.SubjectRevoked{Subject: "s", SubjectType: events.SubjectUser, Cutoff: atS + 600},
		&events.ClientRevoked{ClientID: "c", Cutoff: atS},
		// Kept for the lifetime after the event's time, as documented,
		// although its cut-off is long past.
		&events.ClientRevoked{ClientID: "old", Cutoff: atS - 2*3600},
		// Dead on arrival: the token expired an hour ago.
		&events.TokenRevoked{JTI: "dead", Exp: atS - 3600},
	} {
		d.apply(event(t, at, p), at)
	}
	if got, want := d.sizes(), (DenySizes{JTIs: 2, Families: 1, Subjects: 1, Clients: 2}); got != want {
		t.Fatalf("sizes %+v, want %+v", got, want)
	}
	steps := []struct {
		after time.Duration
		want  DenySizes
	}{
		{60 * time.Second, DenySizes{JTIs: 2, Families: 1, Subjects: 1, Clients: 2}},           // within the skew
		{91 * time.Second, DenySizes{JTIs: 1, Families: 1, Subjects: 1, Clients: 2}},           // short: exp+skew passed
		{ttl + 2*skew + time.Second, DenySizes{JTIs: 0, Families: 0, Subjects: 1, Clients: 0}}, // absurd, f, c
		{600*time.Second + ttl + skew + time.Second, DenySizes{}},                              // s: cut-off in the future
	}
	for _, s := range steps {
		d.sweep(at.Add(s.after))
		if got := d.sizes(); got != s.want {
			t.Fatalf("after %s: sizes %+v, want %+v", s.after, got, s.want)
		}
	}
}

func TestDenyStateShrinksAfterSweep(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	d := newDenyState(0, time.Hour)
	for i := range 100_000 {
		d.addJTI(hashJTI(fmt.Sprint(i)), at.Unix()+10)
	}
	d.addJTI(hashJTI("keep"), at.Unix()+1000)
	d.sweep(at.Add(time.Minute))
	if got := d.sizes().JTIs; got != 1 {
		t.Fatalf("%d jtis after the sweep, want 1", got)
	}
	for i := range d.jtis {
		if d.jtis[i].peak > 64 {
			t.Fatalf("shard %d was not rebuilt: peak %d", i, d.jtis[i].peak)
		}
	}
	if d.denied(hashJTI("keep"), "", "s", "c", 0) != "jti" {
		t.Fatal("the surviving entry was lost by the rebuild")
	}
}

func TestDenyStateReserve(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name string
		// held are jtis already in the deny state; n is what reserve is
		// asked for.
		held, n int
		// wantPeak is the reservation recorded in a shard that was empty.
		wantPeak int
	}{
		{"a replay's reservation", 0, 256 * 1000, 1000},
		{"too small to matter", 0, 256 * 10, 0},
		{"held shards keep their maps", 5000, 256 * 1000, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDenyState(0, time.Hour)
			for i := range tc.held {
				d.addJTI(hashJTI(fmt.Sprint("held-", i)), at.Unix()+1000)
			}
			before := make([]int, jtiShards)
			for i := range d.jtis {
				before[i] = d.jtis[i].peak
			}
			d.reserve(tc.n)
			for i := range d.jtis {
				s := &d.jtis[i]
				want := before[i]
				if len(s.m) == 0 {
					want = max(want, tc.wantPeak)
				}
				if s.peak != want {
					t.Fatalf("shard %d (%d held): peak %d, want %d", i, len(s.m), s.peak, want)
				}
			}
			if got := d.sizes().JTIs; got != tc.held {
				t.Fatalf("%d jtis after reserve, want %d", got, tc.held)
			}
			for i := range tc.held {
				if d.denied(hashJTI(fmt.Sprint("held-", i)), "", "s", "c", 0) != "jti" {
					t.Fatalf("held jti %d lost by reserve", i)
				}
			}
		})
	}
}

func TestDenyStateReleasesAnUnusedReservation(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	d := newDenyState(0, time.Hour)
	d.reserve(1 << 20)
	// A replay of mostly other events: a few jtis, far below a quarter of
	// the reservation.
	for i := range 1000 {
		d.addJTI(hashJTI(fmt.Sprint(i)), at.Unix()+1000)
	}
	d.sweep(at)
	for i := range d.jtis {
		if s := &d.jtis[i]; s.peak > 64 {
			t.Fatalf("shard %d kept its reservation: peak %d with %d jtis", i, s.peak, len(s.m))
		}
	}
	if got := d.sizes().JTIs; got != 1000 {
		t.Fatalf("%d jtis after the sweep, want 1000", got)
	}
}

func TestTokenCacheIsBounded(t *testing.T) {
	c := newTokenCache(cacheShards * 4)
	now := int64(1_800_000_000)
	for i := range 10_000 {
		k := keyOf(fmt.Sprint("token-", i))
		c.put(&k, &cacheEntry{exp: now + int64(i%2)*1000}, now)
	}
	if n := c.len(); n > cacheShards*4 {
		t.Fatalf("cache holds %d entries, cap %d", n, cacheShards*4)
	}
	c.sweep(now + 1)
	for i := range c.shards {
		for _, e := range c.shards[i].m {
			if e.exp <= now+1 {
				t.Fatal("sweep left an expired entry")
			}
		}
	}
	if newTokenCache(0) != nil {
		t.Fatal("a zero-size cache should be disabled")
	}
}

func TestClaimsClone(t *testing.T) {
	c := Claims{Audience: []string{"a", "b"}, Scopes: []string{"x"}}
	d := c.clone()
	d.Audience[0], d.Scopes[0] = "z", "z"
	d.Audience = append(d.Audience, "c")
	if c.Audience[0] != "a" || c.Scopes[0] != "x" || len(c.Audience) != 2 {
		t.Fatalf("clone shares memory with the original: %+v", c)
	}
}
