package bus

import (
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// metaOf reads a delivered message's place in its stream, and the name of
// the server-side consumer that delivered it, from its reply subject. It
// parses the subject itself, without allocating, since it does so for every
// event of a replay, and defers to jetstream.Msg.Metadata for anything its
// parser does not take.
func metaOf(msg jetstream.Msg) (m Meta, consumer string, err error) {
	if a, ok := parseAckReply(msg.Reply()); ok {
		return Meta{Subject: msg.Subject(), Seq: a.seq, Pending: a.pending, Published: time.Unix(0, a.stamp)}, a.consumer, nil
	}
	md, err := msg.Metadata()
	if err != nil {
		return Meta{}, "", err
	}
	return Meta{Subject: msg.Subject(), Seq: md.Sequence.Stream, Pending: md.NumPending, Published: md.Timestamp}, md.Consumer, nil
}

// ackReply is what a JetStream ACK reply subject says of the message it
// came with.
type ackReply struct {
	consumer string // the server-side consumer that delivered it
	seq      uint64 // its stream sequence
	pending  uint64 // how many messages the stream held beyond it for the consumer
	stamp    int64  // when the stream stored it, Unix nanoseconds
}

// parseAckReply reads a JetStream ACK reply subject, or returns ok == false
// for anything else:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
//	$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<token>...]
//
// The first form has exactly 9 tokens, the second at least 11, as nats.go's
// own parser accepts.
func parseAckReply(reply string) (a ackReply, ok bool) {
	const prefix = "$JS.ACK."
	rest, found := strings.CutPrefix(reply, prefix)
	if !found {
		return ackReply{}, false
	}
	// The tokens after the prefix, as many as the second form needs.
	var tok [9]string
	n := 0
	for {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			if n < len(tok) {
				tok[n] = rest
			}
			n++
			break
		}
		if n < len(tok) {
			tok[n] = rest[:i]
		}
		n++
		rest = rest[i+1:]
	}
	// The consumer is at tok[c] and delivered at tok[c+1]: after <stream>,
	// and after <domain>.<account> in the second form.
	var c int
	switch {
	case n+2 == 9:
		c = 1
	case n+2 >= 11:
		c = 3
	default:
		return ackReply{}, false
	}
	seq, ok1 := parseUint(tok[c+2])
	ts, ok2 := parseUint(tok[c+4])
	pending, ok3 := parseUint(tok[c+5])
	if !ok1 || !ok2 || !ok3 || ts > math.MaxInt64 || tok[c] == "" {
		return ackReply{}, false
	}
	return ackReply{consumer: tok[c], seq: seq, pending: pending, stamp: int64(ts)}, true
}

// parseUint parses a non-empty decimal number that fits in a uint64.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
