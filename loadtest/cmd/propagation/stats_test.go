package main

import (
	"testing"
	"time"

	"github.com/valetauth/valet/events"
)

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := summarize(ds)
	if d.n != 100 || d.p50 != 50*time.Millisecond || d.p99 != 99*time.Millisecond || d.max != 100*time.Millisecond {
		t.Fatalf("summarize = %+v", d)
	}
	if (summarize(nil) != dist{}) {
		t.Fatal("summarize(nil) is not zero")
	}
	if got := summarize([]time.Duration{7}); got.p50 != 7 || got.p99 != 7 || got.max != 7 {
		t.Fatalf("one sample: %+v", got)
	}
}

// TestOnMsgFindsJTI checks that the tap finds the jti of a real encoded
// token.revoked event, and ignores other events and unknown jtis.
func TestOnMsgFindsJTI(t *testing.T) {
	g := &gateway{recv: make(chan int, 4)}
	g.setPhase(newPhase([]string{"t0", "t1"}, []string{"a", "b-1"}))
	enc := func(p events.Payload) []byte {
		ev, err := events.New(events.NewID(), issuer, time.Now(), p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	g.onMsg(enc(&events.TokenRevoked{JTI: "b-1", Exp: time.Now().Add(time.Minute).Unix(), ClientID: clientID}))
	g.onMsg(enc(&events.TokenRevoked{JTI: "zzz", Exp: time.Now().Add(time.Minute).Unix()}))
	g.onMsg(enc(&events.Heartbeat{Service: "s", Instance: "i"}))
	if len(g.recv) != 1 || <-g.recv != 1 {
		t.Fatal("the tap did not report exactly the known jti")
	}
}
