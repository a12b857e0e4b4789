package edge_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/edge"
)

func TestRevocationKinds(t *testing.T) {
	e := newEnv(t)
	var applied atomic.Int64
	v := e.startEdge(t, edge.WithObserver(edge.Observer{
		OnRevocationApplied: func(_ events.Type, at time.Time, replay bool) {
			if !replay && !at.IsZero() {
				applied.Add(1)
			}
		},
	}))
	now := time.Now().Unix()

	tests := []struct {
		name string
		// claims of the victim token (a fresh user token unless edited)
		claims func() map[string]any
		// revoke returns the event killing a token with claims c
		revoke func(c map[string]any) events.Payload
		// bystander is a token of the same kind that must survive
		bystander func(c map[string]any) map[string]any
	}{
		{
			name:   "jti",
			claims: claims,
			revoke: func(c map[string]any) events.Payload {
				return &events.TokenRevoked{JTI: c["jti"].(string), Exp: c["exp"].(int64), Reason: events.ReasonClient}
			},
			bystander: func(c map[string]any) map[string]any { return with(c, "jti", events.NewID()) },
		},
		{
			name:   "family",
			claims: claims,
			revoke: func(c map[string]any) events.Payload {
				return &events.FamilyRevoked{FID: c["fid"].(string), Reason: events.ReasonRefreshReuse}
			},
			bystander: func(c map[string]any) map[string]any { return with(c, "fid", events.NewID(), "jti", events.NewID()) },
		},
		{
			name:   "subject user",
			claims: func() map[string]any { return with(claims(), "sub", "bob") },
			revoke: func(c map[string]any) events.Payload {
				return &events.SubjectRevoked{Subject: "bob", SubjectType: events.SubjectUser, Cutoff: now}
			},
			bystander: func(c map[string]any) map[string]any { return with(c, "sub", "carol", "jti", events.NewID()) },
		},
		{
			name: "subject client (client credentials)",
			claims: func() map[string]any {
				return with(claims(), "sub", "reports-batch", "client_id", "reports-batch", "fid", nil)
			},
			revoke: func(c map[string]any) events.Payload {
				return &events.SubjectRevoked{Subject: "reports-batch", SubjectType: events.SubjectClient, Cutoff: now}
			},
			bystander: func(c map[string]any) map[string]any {
				return with(c, "sub", "billing", "client_id", "billing", "jti", events.NewID())
			},
		},
		{
			name:   "client",
			claims: func() map[string]any { return with(claims(), "client_id", "legacy-app") },
			revoke: func(c map[string]any) events.Payload {
				return &events.ClientRevoked{ClientID: "legacy-app", Cutoff: now}
			},
			bystander: func(c map[string]any) map[string]any {
				return with(c, "client_id", "web-portal", "jti", events.NewID())
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.claims()
			victim := sign(t, e.key, c)
			other := sign(t, e.key, tc.bystander(tc.claims()))
			// Verified (and cached) before the revocation.
			mustVerify(t, v, victim)
			mustVerify(t, v, other)
			e.publish(t, tc.revoke(c))
			eventually(t, func() error { return rejectedWith(v, victim, edge.ErrRevoked) })
			mustVerify(t, v, other)
		})
	}
	if applied.Load() < int64(len(tests)) {
		t.Fatalf("OnRevocationApplied saw %d live revocations, want %d", applied.Load(), len(tests))
	}

	t.Run("cut-offs spare tokens issued after cutoff plus skew", func(t *testing.T) {
		cut := time.Now().Unix() - 100
		e.publish(t,
			&events.SubjectRevoked{Subject: "dave", SubjectType: events.SubjectUser, Cutoff: cut},
			&events.ClientRevoked{ClientID: "kiosk", Cutoff: cut},
		)
		skewS := int64(skew / time.Second)
		dead := []string{
			sign(t, e.key, with(claims(), "sub", "dave", "iat", cut, "nbf", cut)),
			sign(t, e.key, with(claims(), "sub", "dave", "iat", cut+skewS, "nbf", cut+skewS)),
			sign(t, e.key, with(claims(), "client_id", "kiosk", "iat", cut+skewS, "nbf", cut)),
		}
		for _, tok := range dead {
			eventually(t, func() error { return rejectedWith(v, tok, edge.ErrRevoked) })
		}
		// Issued after the cut-off plus the skew: a new login lives.
		mustVerify(t, v, sign(t, e.key, with(claims(), "sub", "dave", "iat", cut+skewS+1, "nbf", cut+skewS+1)))
		mustVerify(t, v, sign(t, e.key, with(claims(), "client_id", "kiosk")))
	})
}

func TestReplayOnStart(t *testing.T) {
	e := newEnv(t)
	c := claims()
	tok := sign(t, e.key, c)
	fam := with(claims(), "fid", "fam-replayed")
	famTok := sign(t, e.key, fam)
	// Revoked before any edge exists.
	e.publish(t,
		&events.TokenRevoked{JTI: c["jti"].(string), Exp: c["exp"].(int64)},
		&events.FamilyRevoked{FID: "fam-replayed", Reason: events.ReasonAdmin},
	)
	v := e.startEdge(t)
	for _, tk := range []string{tok, famTok} {
		if err := rejectedWith(v, tk, edge.ErrRevoked); err != nil {
			t.Fatal(err)
		}
	}
	mustVerify(t, v, sign(t, e.key, claims()))
}

// TestReplayOfManyRevocations replays enough revocations that the edge
// reserves its deny state up front, and checks that every one of them, and
// the live ones after them, is applied.
func TestReplayOfManyRevocations(t *testing.T) {
	const n = 20_000 // above the 64 per shard below which nothing is reserved
	e := newEnv(t)
	exp := time.Now().Add(time.Hour).Unix()
	evs := make([]events.Event, 0, n)
	for i := range n {
		jti := "replayed-" + strconv.Itoa(i)
		ev, err := events.New(events.DeterministicID(events.TypeTokenRevoked, jti), testIssuer, time.Now(), &events.TokenRevoked{JTI: jti, Exp: exp})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.pub.PublishBatch(ctx, evs); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	v := e.startEdge(t)
	e.publish(t, &events.TokenRevoked{JTI: "live-1", Exp: exp})
	eventually(t, func() error {
		if got := v.Status().Deny.JTIs; got != n+1 {
			return fmt.Errorf("deny state holds %d jtis, want %d", got, n+1)
		}
		return nil
	})
	for _, jti := range []string{"replayed-0", "replayed-" + strconv.Itoa(n/2), "replayed-" + strconv.Itoa(n-1), "live-1"} {
		if err := rejectedWith(v, sign(t, e.key, with(claims(), "jti", jti)), edge.ErrRevoked); err != nil {
			t.Fatalf("%s: %v", jti, err)
		}
	}
	mustVerify(t, v, sign(t, e.key, claims()))
}

func TestStaleWhenNATSDownAndRecovers(t *testing.T) {
	e := newEnv(t)
	v := e.startEdge(t)
	tok := sign(t, e.key, claims())
	mustVerify(t, v, tok)

	e.srv.Shutdown()
	// Within the bound it keeps answering; beyond it, it fails closed, and
	// says so with a distinct error — even for a cached token.
	eventually(t, func() error { return rejectedWith(v, tok, edge.ErrStale) })
	if st := v.Status(); st.Current || st.Revocations.Current {
		t.Fatalf("status while NATS is down: %+v", st)
	}

	e.srv.Start()
	eventually(t, func() error {
		_, err := v.Verify(context.Background(), tok)
		return err
	})
	// A revocation published after recovery is applied.
	c := claims()
	victim := sign(t, e.key, c)
	mustVerify(t, v, victim)
	e.publish(t, &events.TokenRevoked{JTI: c["jti"].(string), Exp: c["exp"].(int64)})
	eventually(t, func() error { return rejectedWith(v, victim, edge.ErrRevoked) })
}

func TestUndecodableEventMakesStale(t *testing.T) {
	e := newEnv(t)
	var stale atomic.Bool
	v := e.startEdge(t, edge.WithObserver(edge.Observer{
		OnStreamError: func(_ string, err error) {
			if errors.Is(err, bus.ErrStale) {
				stale.Store(true)
			}
		},
	}))
	tok := sign(t, e.key, claims())
	mustVerify(t, v, tok)

	// A newer producer's event this edge cannot decode: it must not skip it.
	msg := nats.NewMsg(e.prefix + ".token.revoked")
	msg.Data = []byte(`{"specversion":"1.0","id":"x1","source":"https://issuer.test","type":"token.revoked","schemaversion":"2.0","time":"2026-01-01T00:00:00Z","data":{"jti":"a","exp":1}}`)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ack, err := e.js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatalf("publish undecodable event: %v", err)
	}
	eventually(t, func() error { return rejectedWith(v, tok, edge.ErrStale) })
	st := v.Status()
	if !st.Revocations.Stale || st.Revocations.Err == nil || st.Current {
		t.Fatalf("status after an undecodable event: %+v", st.Revocations)
	}
	if !stale.Load() {
		t.Error("OnStreamError was not told the stale error")
	}
	// Heartbeats keep flowing, but the edge stays closed: it cannot show
	// it applied what follows the event it could not decode.
	time.Sleep(3 * bound / 2)
	if err := rejectedWith(v, tok, edge.ErrStale); err != nil {
		t.Fatal(err)
	}

	// An operator repairs the stream (removes the event, or upgrades the
	// edge): the edge follows again from where it stopped, by itself.
	stream, err := e.js.Stream(ctx, ack.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(ctx, ack.Sequence); err != nil {
		t.Fatalf("delete the undecodable event: %v", err)
	}
	eventually(t, func() error {
		_, err := v.Verify(context.Background(), tok)
		return err
	})
}

func TestKeyRevokedRejectsAtOnce(t *testing.T) {
	e := newEnv(t)
	other := newKey(t, "ES256", "es256-b")
	e.is.serve(e.key, other)
	v := e.startEdge(t)
	cached := sign(t, e.key, claims())
	mustVerify(t, v, cached)
	survivor := sign(t, other, claims())
	mustVerify(t, v, survivor)

	e.publish(t, &events.KeyRevoked{KID: e.key.kid, Reason: "compromised"})
	// JWKS still serves the key (a stale replica); it stays denied.
	eventually(t, func() error { return rejectedWith(v, cached, edge.ErrKeyRevoked) })
	if err := rejectedWith(v, sign(t, e.key, claims()), edge.ErrKeyRevoked); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, v, survivor)

	// An edge started later learns the revocation by replay.
	v2 := e.startEdge(t)
	if err := rejectedWith(v2, cached, edge.ErrKeyRevoked); err != nil {
		t.Fatal(err)
	}
	if st := v2.Status(); st.RevokedKeys != 1 || st.KnownKeys != 1 {
		t.Fatalf("late edge keys: known %d, revoked %d; want 1 and 1", st.KnownKeys, st.RevokedKeys)
	}

	// Even a later announcement of the same kid does not bring it back to
	// an edge that saw the revocation, nor does the refetch it triggers.
	// (The key stream keeps only the latest event per kid, so a producer
	// must never re-announce a revoked kid: an edge started after this
	// would not know.)
	seq := v.Status().Keys.Seq
	e.publish(t, &events.KeyActivated{KID: e.key.kid, Alg: "ES256", Thumbprint: e.key.thumbprint})
	eventually(t, func() error {
		if got := v.Status().Keys.Seq; got <= seq {
			return fmt.Errorf("key stream at seq %d, want > %d", got, seq)
		}
		return nil
	})
	if err := rejectedWith(v, cached, edge.ErrKeyRevoked); err != nil {
		t.Fatal(err)
	}
}

func TestKeyPublishedTriggersRefetch(t *testing.T) {
	e := newEnv(t)
	learned := make(chan string, 4)
	v := e.startEdge(t, edge.WithUnknownKIDInterval(time.Hour), edge.WithObserver(edge.Observer{
		OnKeyLearned: func(kid string, at time.Time) {
			if !at.IsZero() {
				learned <- kid
			}
		},
	}))
	// The unknown-kid path is rate-limited away: only the event can teach
	// the edge the new key.
	fresh := newKey(t, "EdDSA", "eddsa-new")
	e.is.serve(e.key, fresh)
	e.publish(t, &events.KeyPublished{KID: fresh.kid, Alg: fresh.alg, Thumbprint: fresh.thumbprint})
	select {
	case kid := <-learned:
		if kid != fresh.kid {
			t.Fatalf("learned %q, want %q", kid, fresh.kid)
		}
	case <-time.After(wait):
		t.Fatal("OnKeyLearned not called")
	}
	mustVerify(t, v, sign(t, fresh, claims()))

	t.Run("thumbprint mismatch keeps the key out", func(t *testing.T) {
		// The stream announces another key under a kid JWKS serves: the
		// edge trusts neither until they agree.
		impostor := newKey(t, "ES256", "es256-x")
		served := newKey(t, "ES256", "es256-x")
		e.is.serve(e.key, fresh, served)
		e.publish(t, &events.KeyPublished{KID: "es256-x", Alg: "ES256", Thumbprint: impostor.thumbprint})
		tok := sign(t, served, claims())
		eventually(t, func() error {
			st := v.Status()
			if st.JWKSError == nil {
				return fmt.Errorf("no JWKS error reported")
			}
			return rejectedWith(v, tok, edge.ErrUnknownKID)
		})
		// The issuer fixes JWKS: the announced key becomes usable.
		e.is.serve(e.key, fresh, impostor)
		eventually(t, func() error {
			_, err := v.Verify(context.Background(), sign(t, impostor, claims()))
			return err
		})
	})

	t.Run("retired key is dropped", func(t *testing.T) {
		tok := sign(t, fresh, claims())
		mustVerify(t, v, tok)
		e.publish(t, &events.KeyRetired{KID: fresh.kid})
		eventually(t, func() error { return rejectedWith(v, tok, edge.ErrUnknownKID) })
	})
}

func TestCacheNeverSkipsDenyOrExpiry(t *testing.T) {
	e := newEnv(t)
	clock := &offsetClock{}
	v := e.startEdge(t, edge.WithClock(clock.now))

	c := claims()
	tok := sign(t, e.key, c)
	mustVerify(t, v, tok)
	mustVerify(t, v, tok) // from the cache
	if n := v.Status().CachedTokens; n != 1 {
		t.Fatalf("cache holds %d tokens, want 1", n)
	}
	e.publish(t, &events.TokenRevoked{JTI: c["jti"].(string), Exp: c["exp"].(int64)})
	eventually(t, func() error { return rejectedWith(v, tok, edge.ErrRevoked) })

	live := sign(t, e.key, claims())
	mustVerify(t, v, live)
	// Eleven minutes later the cached token has expired. Heartbeats keep
	// the edge current under the moved clock.
	clock.advance(11 * time.Minute)
	eventually(t, func() error { return rejectedWith(v, live, edge.ErrExpired) })
}

func TestDenyEntriesExpire(t *testing.T) {
	e := newEnv(t)
	clock := &offsetClock{}
	v := e.startEdge(t, edge.WithClock(clock.now), edge.WithSweepInterval(20*time.Millisecond))
	now := time.Now().Unix()
	e.publish(t,
		&events.TokenRevoked{JTI: "short", Exp: now + 60},
		&events.TokenRevoked{JTI: "long", Exp: now + 1800},
		&events.FamilyRevoked{FID: "f1", Reason: events.ReasonAdmin},
		&events.SubjectRevoked{Subject: "s1", SubjectType: events.SubjectUser, Cutoff: now},
		&events.ClientRevoked{ClientID: "c1", Cutoff: now},
		// Already dead: nothing to keep.
		&events.TokenRevoked{JTI: "dead", Exp: now - 3600},
	)
	want := func(d edge.DenySizes) func() error {
		return func() error {
			if got := v.Status().Deny; got != d {
				return fmt.Errorf("deny sizes %+v, want %+v", got, d)
			}
			return nil
		}
	}
	eventually(t, want(edge.DenySizes{JTIs: 2, Families: 1, Subjects: 1, Clients: 1}))
	clock.advance(2 * time.Minute) // past "short"'s exp + skew
	eventually(t, want(edge.DenySizes{JTIs: 1, Families: 1, Subjects: 1, Clients: 1}))
	clock.advance(time.Hour + time.Minute) // past max lifetime + skew
	eventually(t, want(edge.DenySizes{}))
}

func TestConcurrentVerifyWhileRevoking(t *testing.T) {
	e := newEnv(t)
	v := e.startEdge(t)
	const n = 40
	toks := make([]string, n)
	cs := make([]map[string]any, n)
	for i := range toks {
		cs[i] = claims()
		toks[i] = sign(t, e.key, cs[i])
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i++ {
				_, _ = v.Verify(ctx, toks[i%n])
				_ = v.Status()
			}
		})
	}
	for i := 0; i < n; i += 2 {
		e.publish(t, &events.TokenRevoked{JTI: cs[i]["jti"].(string), Exp: cs[i]["exp"].(int64)})
	}
	for i := range toks {
		want := error(nil)
		if i%2 == 0 {
			want = edge.ErrRevoked
		}
		eventually(t, func() error {
			_, err := v.Verify(context.Background(), toks[i])
			if !errors.Is(err, want) {
				return fmt.Errorf("token %d: %v, want %v", i, err, want)
			}
			return nil
		})
	}
	cancel()
	wg.Wait()
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	v := e.startEdge(t)
	mustVerify(t, v, sign(t, e.key, claims()))
	e.publish(t, &events.TokenRevoked{JTI: "s1", Exp: time.Now().Add(time.Minute).Unix()})
	eventually(t, func() error {
		st := v.Status()
		switch {
		case !st.Current || !st.Revocations.Current || !st.Keys.Current:
			return fmt.Errorf("not current: %+v", st)
		case st.Revocations.Seq == 0 || st.Revocations.LastCurrent.IsZero() || st.Revocations.LastHeartbeat.IsZero():
			return fmt.Errorf("revocation position missing: %+v", st.Revocations)
		case st.Revocations.HeartbeatAge > wait || st.Revocations.Lag > wait:
			return fmt.Errorf("revocation lag: %+v", st.Revocations)
		case st.Deny.JTIs != 1 || st.CachedTokens != 1:
			return fmt.Errorf("sizes: deny %+v, cached %d", st.Deny, st.CachedTokens)
		case st.KnownKeys != 1 || st.RevokedKeys != 0 || st.JWKSFetched.IsZero() || st.JWKSError != nil:
			return fmt.Errorf("keys: %d known, %d revoked, fetched %v, error %v", st.KnownKeys, st.RevokedKeys, st.JWKSFetched, st.JWKSError)
		}
		return nil
	})
	_ = v.Close()
	if err := rejectedWith(v, sign(t, e.key, claims()), edge.ErrStale); err != nil {
		t.Fatalf("after Close: %v", err)
	}
}
