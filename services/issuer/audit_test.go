package issuer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/bus/bustest"
)

// TestAuditQueuePublishesEverything: audit events queued from many
// goroutines all reach the audit stream, each once, through the real
// JetStream; none is counted as dropped.
func TestAuditQueuePublishesEverything(t *testing.T) {
	env := bustest.New(t)
	js, pub := env.JS, env.Pub
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	q := newAuditQueue(pub, auditTestIssuer, time.Now, dropped)
	const writers, each = 8, 250
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				q.publish(&events.FamilyRotated{FID: fidFor(w, i), Generation: int64(i + 1)})
			}
		})
	}
	wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, bus.StreamName(env.Prefix, events.StreamAudit))
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == writers*each {
			break
		}
		if info.State.Msgs > writers*each {
			t.Fatalf("%d audit events stored, want %d", info.State.Msgs, writers*each)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d audit events stored after 30s", info.State.Msgs, writers*each)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if n := testutil.ToFloat64(dropped); n != 0 {
		t.Fatalf("%v events counted as dropped", n)
	}
}

const auditTestIssuer = "https://auth.example.test"

// failingAudit refuses every batch, as an unreachable NATS would.
type failingAudit struct{}

func (failingAudit) PublishBatch(context.Context, []events.Event) error {
	return errors.New("nats: no responders")
}

// TestAuditQueueCountsDrops: events that could not be published are counted,
// never retried forever nor blocking the caller.
func TestAuditQueueCountsDrops(t *testing.T) {
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	q := newAuditQueue(failingAudit{}, auditTestIssuer, time.Now, dropped)
	for i := range 100 {
		q.publish(&events.FamilyRotated{FID: fidFor(0, i), Generation: 1})
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(dropped) < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("%v of 100 failed events counted", testutil.ToFloat64(dropped))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fidFor is a distinct, well-formed family id per (writer, i).
func fidFor(w, i int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := []byte("AAAAAAAAAAAAAAAAAAAAAA")
	b[0], b[1], b[2] = alphabet[w%64], alphabet[i%64], alphabet[(i/64)%64]
	return string(b)
}
