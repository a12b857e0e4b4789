package bus

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestParseAckReply checks the reply-subject parser against the subjects
// servers write (both forms) and against what nats.go refuses.
func TestParseAckReply(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		ok    bool
		want  ackReply
	}{
		{"v1", "$JS.ACK.valet_revocations.cons_1.1.42.7.1764108723412000000.9", true, ackReply{"cons_1", 42, 9, 1764108723412000000}},
		{"v2", "$JS.ACK._.ACCHASH.valet_revocations.cons_1.1.42.7.1764108723412000000.9.r4nd", true, ackReply{"cons_1", 42, 9, 1764108723412000000}},
		{"v2 without the last token", "$JS.ACK.hub.ACCHASH.valet_revocations.cons_2.1.42.7.1764108723412000000.0", true, ackReply{"cons_2", 42, 0, 1764108723412000000}},
		{"v2 with more tokens", "$JS.ACK.hub.ACCHASH.s.c.1.3.7.5.0.x.y", true, ackReply{"c", 3, 0, 5}},
		{"caught up", "$JS.ACK.s.c.1.1.1.1.0", true, ackReply{"c", 1, 0, 1}},
		{"largest sequence", "$JS.ACK.s.c.1.18446744073709551615.1.1.0", true, ackReply{"c", 18446744073709551615, 0, 1}},
		{"10 tokens", "$JS.ACK.a.s.c.1.42.7.1764108723412000000.9", false, ackReply{}},
		{"8 tokens", "$JS.ACK.s.c.1.42.7.1764108723412000000", false, ackReply{}},
		{"not an ack", "_INBOX.abc.def", false, ackReply{}},
		{"empty", "", false, ackReply{}},
		{"prefix only", "$JS.ACK.", false, ackReply{}},
		{"empty consumer", "$JS.ACK.s..1.42.7.1764108723412000000.9", false, ackReply{}},
		{"sequence not a number", "$JS.ACK.s.c.1.x2.7.1764108723412000000.9", false, ackReply{}},
		{"empty sequence", "$JS.ACK.s.c.1..7.1764108723412000000.9", false, ackReply{}},
		{"negative pending", "$JS.ACK.s.c.1.42.7.1764108723412000000.-9", false, ackReply{}},
		{"sequence overflows", "$JS.ACK.s.c.1.99999999999999999999.7.1.9", false, ackReply{}},
		{"stamp beyond int64", "$JS.ACK.s.c.1.42.7.9300000000000000000.9", false, ackReply{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseAckReply(tc.reply)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("parseAckReply(%q) = %+v, %v; want %+v, %v", tc.reply, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseAckReply checks parseAckReply against a reference built the way
// nats.go reads the same subjects: whatever it accepts, the reference reads
// alike.
func FuzzParseAckReply(f *testing.F) {
	f.Add("$JS.ACK.valet_revocations.cons_1.1.42.7.1764108723412000000.9")
	f.Add("$JS.ACK._.ACCHASH.valet_revocations.cons_1.1.42.7.1764108723412000000.9.r4nd")
	f.Add("$JS.ACK.a.b.c.d.e.f.g.h.i.j.k")
	f.Fuzz(func(t *testing.T, reply string) {
		a, ok := parseAckReply(reply)
		if !ok {
			return
		}
		tokens := strings.Split(reply, ".")
		if tokens[0] != "$JS" || tokens[1] != "ACK" || (len(tokens) != 9 && len(tokens) < 11) {
			t.Fatalf("parseAckReply accepts %q", reply)
		}
		if len(tokens) == 9 {
			// The first form has no domain and account: align it on the
			// second.
			tokens = append(tokens[:2], append([]string{"", ""}, tokens[2:]...)...)
		}
		num := func(s string) uint64 {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("parseAckReply accepts %q, whose token %q is not a number", reply, s)
			}
			return n
		}
		if a.consumer != tokens[5] || a.seq != num(tokens[7]) || uint64(a.stamp) != num(tokens[9]) || a.pending != num(tokens[10]) {
			t.Fatalf("parseAckReply(%q) = %+v", reply, a)
		}
	})
}

// fakeMsg is a delivered message with a reply subject; the pipeline reads
// nothing else of it than Reply, Subject and Data.
type fakeMsg struct {
	jetstream.Msg
	reply, subject string
	data           []byte
}

func (m fakeMsg) Reply() string   { return m.reply }
func (m fakeMsg) Subject() string { return m.subject }
func (m fakeMsg) Data() []byte    { return m.data }

// TestPipelineFlushesAPartialBatch hands the pipeline messages whose pending
// count never reaches 0, as when messages counted pending were deleted before
// delivery: the batch is sent on after flushAfter instead of waiting for a
// message that never comes.
func TestPipelineFlushesAPartialBatch(t *testing.T) {
	p := newPipeline(1)
	defer p.stop()
	go p.decode()
	const n = 3
	for i := range n {
		p.receive(fakeMsg{reply: "$JS.ACK.s.c.1." + strconv.Itoa(i+1) + ".1.1.5", subject: "valet.token.revoked", data: []byte("{}")})
	}
	got := make(chan *batch, 1)
	go func() { got <- p.next() }()
	select {
	case b := <-got:
		if len(b.jobs) != n {
			t.Fatalf("batch of %d messages, want %d", len(b.jobs), n)
		}
		for i, j := range b.jobs {
			if j.metaErr != nil || j.meta.Seq != uint64(i+1) || j.meta.Pending != 5 {
				t.Fatalf("job %d: meta %+v, error %v", i, j.meta, j.metaErr)
			}
			if j.err == nil {
				t.Fatalf("job %d: decoding %q succeeded", i, j.msg.Data())
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a partial batch was never sent on")
	}
}

// TestPipelineSendsCaughtUpAtOnce checks that a message with nothing
// pending behind it, every live event, is sent on by itself.
func TestPipelineSendsCaughtUpAtOnce(t *testing.T) {
	p := newPipeline(1)
	defer p.stop()
	p.receive(fakeMsg{reply: "$JS.ACK.s.c.1.7.1.1.0", subject: "valet.token.revoked"})
	select {
	case b := <-p.work:
		if len(b.jobs) != 1 || b.jobs[0].meta.Seq != 7 {
			t.Fatalf("sent %+v", b.jobs)
		}
	default:
		t.Fatal("a caught-up message waits in its batch")
	}
}

// TestPipelineEndsAtAnotherConsumer plays the race a re-created server-side
// consumer opens: the first message of the new consumer (c_2) reaches the
// pipeline before the last one of the old (c_1). The pipeline must take
// neither, and end the session, so that the next one resumes after the last
// event applied rather than skip sequence 2.
func TestPipelineEndsAtAnotherConsumer(t *testing.T) {
	p := newPipeline(1)
	defer p.stop()
	p.receive(fakeMsg{reply: "$JS.ACK.s.c_1.1.1.1.1.5", subject: "valet.token.revoked"})
	p.receive(fakeMsg{reply: "$JS.ACK.s.c_2.1.3.1.1.0", subject: "valet.token.revoked"})
	p.receive(fakeMsg{reply: "$JS.ACK.s.c_1.1.2.2.1.4", subject: "valet.token.revoked"})
	select {
	case err := <-p.failed:
		if !errors.Is(err, errConsumerReset) {
			t.Fatalf("session ended with %v", err)
		}
	default:
		t.Fatal("a message of another consumer did not end the session")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || len(p.cur.jobs) != 1 || p.cur.jobs[0].meta.Seq != 1 {
		t.Fatalf("the pipeline holds %+v; want sequence 1 alone", p.cur)
	}
}
