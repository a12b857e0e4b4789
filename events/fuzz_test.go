package events

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzDecode checks that Decode never panics, that every error it returns is
// one of its three sentinels, and that whatever it accepts re-encodes into an
// event that decodes to the same type and id and re-encodes identically.
func FuzzDecode(f *testing.F) {
	for _, seed := range decodeSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := Decode(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownType) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("Decode error is none of the sentinels: %v", err)
			}
			return
		}
		if e.Payload == nil || e.Payload.EventType() != e.Type {
			t.Fatalf("Decode accepted %q with payload %#v", e.Type, e.Payload)
		}
		b, err := e.Encode()
		if err != nil {
			t.Fatalf("Decode accepted %q but Encode refuses it: %v", in, err)
		}
		e2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, b)
		}
		if e2.Type != e.Type || e2.ID != e.ID {
			t.Fatalf("round trip changed type/id: %q/%q to %q/%q", e.Type, e.ID, e2.Type, e2.ID)
		}
		b2, err := e2.Encode()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not a fixed point (%v):\n%s\n%s", err, b, b2)
		}
		if _, err := Subject("valet", e); err != nil {
			t.Fatalf("accepted event has no subject: %v", err)
		}
	})
}

// decodeSeeds returns the seed corpus of the Decode fuzz tests: the examples
// of docs/events.md and near misses of valid events.
func decodeSeeds(t testing.TB) [][]byte {
	t.Helper()
	var seeds [][]byte
	for _, ex := range docExamples(t) {
		seeds = append(seeds, ex.body)
	}
	tr := encoded(t, TypeTokenRevoked)
	key := encoded(t, TypeKeyPublished)
	near := []string{
		"", "null", "{}", "[]", `"token.revoked"`, "{", "\x00",
		string(tr[:len(tr)/2]),
		string(tr[:len(tr)-1]),
		string(key[:len(key)-2]),
		strings.Replace(string(tr), `"token.revoked"`, `7`, 1),
		strings.Replace(string(tr), `"token.revoked"`, `"token.issued"`, 1),
		strings.Replace(string(tr), `"1.0","time"`, `"2.0","time"`, 1),
		strings.Replace(string(tr), `"1.0","time"`, `"1.7","time"`, 1),
		strings.Replace(string(tr), `"1.0","time"`, `"1e0","time"`, 1),
		strings.Replace(string(tr), `"exp":`, `"exp":1e400,"x":`, 1),
		strings.Replace(string(tr), `"exp":`, `"exp":9223372036854775808,"x":`, 1),
		strings.Replace(string(tr), `"exp":`, `"exp":-9223372036854775808,"x":`, 1),
		strings.Replace(string(tr), `"jti":`, `"jti":null,"JTI":`, 1),
		strings.Replace(string(tr), `"data":{`, `"data":{"junk":`+strings.Repeat("[", 500)+strings.Repeat("]", 500)+`,`, 1),
		strings.Replace(string(tr), `"data":{`, `"data":{"junk":{"a":{"b":{"c":[1,2,{"d":null}]}}},`, 1),
		strings.Replace(string(tr), `"data":{`, `"data":[{`, 1) + "]",
		strings.Replace(string(tr), `"data":{`, `"data":"{`, 1),
		strings.Replace(string(tr), `"id":"`, `"id":"\u2028`, 1),
		strings.Replace(string(tr), `"source":`, `"actor":"\u00e9\ud800","source":`, 1),
		strings.Replace(string(tr), `"time":"2026-11-25T19:52:03.412Z"`, `"time":"9999-12-31T23:59:59.999999999-23:59"`, 1),
		strings.Replace(string(tr), `"time":"2026-11-25T19:52:03.412Z"`, `"time":"0000-01-01T00:00:00+00:01"`, 1),
		strings.Replace(string(key), `"thumbprint":"`, `"thumbprint":"=`, 1),
		strings.Replace(string(tr), `{`, `{"id":"dup",`, 1),
		string(tr) + string(tr),
	}
	for _, s := range near {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}
