package events

import "testing"

// BenchmarkDecodeTokenRevoked is the cost per event of an edge replaying its
// revocation stream (the bar: 1M events in under 10 s, with the I/O).
func BenchmarkDecodeTokenRevoked(b *testing.B) {
	e, err := New(DeterministicID(TypeTokenRevoked, "tok_7Yq2kLm0Rz"), testSource, testTime,
		&TokenRevoked{JTI: "tok_7Yq2kLm0Rz", Exp: testTime.Unix() + 600, ClientID: "billing-api", Reason: ReasonClient})
	if err != nil {
		b.Fatal(err)
	}
	msg, err := e.WithActor("billing-api").Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeTokenRevokedSlow is BenchmarkDecodeTokenRevoked on
// decodeSlow, the encoding/json reference (and Decode before its fast path),
// for comparison on the same machine in the same run.
func BenchmarkDecodeTokenRevokedSlow(b *testing.B) {
	e, err := New(DeterministicID(TypeTokenRevoked, "tok_7Yq2kLm0Rz"), testSource, testTime,
		&TokenRevoked{JTI: "tok_7Yq2kLm0Rz", Exp: testTime.Unix() + 600, ClientID: "billing-api", Reason: ReasonClient})
	if err != nil {
		b.Fatal(err)
	}
	msg, err := e.WithActor("billing-api").Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeSlow(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRevocationStream decodes each type an edge replays from the
// revocation stream, with Decode and with decodeSlow.
func BenchmarkDecodeRevocationStream(b *testing.B) {
	for _, typ := range []Type{TypeTokenRevoked, TypeFamilyRevoked, TypeSubjectRevoked, TypeClientRevoked, TypeHeartbeat} {
		msg, err := sampleEvent(b, typ).WithActor("admin-cli").Encode()
		if err != nil {
			b.Fatal(err)
		}
		for _, dec := range []struct {
			name   string
			decode func([]byte) (Event, error)
		}{{"Decode", Decode}, {"decodeSlow", decodeSlow}} {
			b.Run(string(typ)+"/"+dec.name, func(b *testing.B) {
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := dec.decode(msg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEncodeTokenRevoked is the producer's cost, which includes
// decoding its own output once.
func BenchmarkEncodeTokenRevoked(b *testing.B) {
	e, err := New(DeterministicID(TypeTokenRevoked, "tok_7Yq2kLm0Rz"), testSource, testTime,
		&TokenRevoked{JTI: "tok_7Yq2kLm0Rz", Exp: testTime.Unix() + 600, ClientID: "billing-api", Reason: ReasonClient})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
