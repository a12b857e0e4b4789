package events

import (
	"errors"
	"strings"
	"testing"
)

// natsMatch reports whether subject matches a NATS subject filter: "*"
// matches exactly one token, ">" (last) one or more remaining tokens.
func natsMatch(filter, subject string) bool {
	f := strings.Split(filter, ".")
	s := strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return i == len(f)-1 && len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

func TestNATSMatch(t *testing.T) {
	tests := []struct {
		filter, subject string
		want            bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.b", "a.b.c", false},
		{"a.b.c", "a.b", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.*.c", "a.b.c", true},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{"*.>", "a.b", true},
		{">", "a", true},
	}
	for _, tt := range tests {
		t.Run(tt.filter+" "+tt.subject, func(t *testing.T) {
			if got := natsMatch(tt.filter, tt.subject); got != tt.want {
				t.Errorf("natsMatch(%q, %q) = %v", tt.filter, tt.subject, got)
			}
		})
	}
}

// matchingStreams returns the streams whose filters under prefix match subject.
func matchingStreams(t *testing.T, prefix, subject string) []Stream {
	t.Helper()
	var out []Stream
	for _, s := range Streams() {
		filters := StreamSubjects(prefix, s)
		if len(filters) == 0 {
			t.Fatalf("StreamSubjects(%q, %v) is empty", prefix, s)
		}
		for _, f := range filters {
			if natsMatch(f, subject) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func TestSubject(t *testing.T) {
	for _, prefix := range []string{"valet", "t0a1b2c3d4e5f", "Valet_prod-2"} {
		for _, typ := range Types() {
			t.Run(prefix+"/"+string(typ), func(t *testing.T) {
				e := sampleEvent(t, typ)
				subject, err := Subject(prefix, e)
				if err != nil {
					t.Fatalf("Subject: %v", err)
				}
				want := prefix + "." + string(typ)
				if StreamOf(typ) == StreamKeys {
					want = prefix + ".key." + KeyID(e.Payload)
				}
				if subject != want {
					t.Errorf("Subject = %q, want %q", subject, want)
				}
				if strings.ContainsAny(subject, "*> \t\r\n") {
					t.Errorf("Subject %q holds a wildcard or whitespace", subject)
				}
				streams := matchingStreams(t, prefix, subject)
				if len(streams) != 1 || streams[0] != StreamOf(typ) {
					t.Errorf("subject %q matches streams %v; want exactly [%v]", subject, streams, StreamOf(typ))
				}
			})
		}
	}
}

func TestKeySubjects(t *testing.T) {
	tests := []struct {
		name string
		p    Payload
	}{
		{"published", &KeyPublished{KID: "es256-20261125-a", Alg: "ES256", Thumbprint: testThumbprint}},
		{"activated", &KeyActivated{KID: "es256-20261125-a", Alg: "ES256", Thumbprint: testThumbprint}},
		{"retired", &KeyRetired{KID: "es256-20261125-a"}},
		{"revoked", &KeyRevoked{KID: "es256-20261125-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(NewID(), testSource, testTime, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			// Every event of one kid shares one subject, so that the key
			// stream can keep only the latest per kid.
			if got, err := Subject("valet", e); err != nil || got != "valet.key.es256-20261125-a" {
				t.Errorf("Subject = %q, %v", got, err)
			}
		})
	}
	if got := KeyID(&TokenRevoked{JTI: "j", Exp: 1}); got != "" {
		t.Errorf("KeyID(token.revoked) = %q, want empty", got)
	}
}

func TestSubjectRefuses(t *testing.T) {
	good := sampleEvent(t, TypeTokenRevoked)
	withType := func(e Event, typ Type) Event { e.Type = typ; return e }
	keyEvent := func(kid string) Event {
		return Event{Envelope: Envelope{Type: TypeKeyRetired}, Payload: &KeyRetired{KID: kid}}
	}
	tests := []struct {
		name   string
		prefix string
		e      Event
		want   error // nil: any error
	}{
		{"empty prefix", "", good, nil},
		{"dotted prefix", "acme.valet", good, nil},
		{"wildcard prefix *", "*", good, nil},
		{"wildcard prefix >", ">", good, nil},
		{"prefix with a space", "va let", good, nil},
		{"prefix with non-ASCII", "välet", good, nil},
		{"prefix too long", strings.Repeat("p", 129), good, nil},
		{"unknown type", "valet", withType(good, "token.issued"), ErrUnknownType},
		{"wildcard type", "valet", withType(good, "token.>"), ErrUnknownType},
		{"empty type", "valet", withType(good, ""), ErrUnknownType},
		{"payload of another type", "valet", withType(good, TypeFamilyRevoked), ErrMalformed},
		{"nil payload", "valet", Event{Envelope: good.Envelope}, ErrMalformed},
		{"key event with a key payload of another type", "valet", withType(sampleEvent(t, TypeKeyPublished), TypeKeyRevoked), ErrMalformed},
		{"empty kid", "valet", keyEvent(""), ErrMalformed},
		{"dotted kid", "valet", keyEvent("a.b"), ErrMalformed},
		{"wildcard kid *", "valet", keyEvent("*"), ErrMalformed},
		{"wildcard kid >", "valet", keyEvent(">"), ErrMalformed},
		{"kid with a space", "valet", keyEvent("a b"), ErrMalformed},
		{"kid too long", "valet", keyEvent(strings.Repeat("k", 129)), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Subject(tt.prefix, tt.e)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Subject = %q, %v; want an error (%v)", got, err, tt.want)
			}
		})
	}
}

func TestStreams(t *testing.T) {
	tests := []struct {
		s    Stream
		name string
	}{
		{StreamRevocations, "revocations"},
		{StreamKeys, "keys"},
		{StreamAudit, "audit"},
	}
	if got := Streams(); len(got) != len(tests) {
		t.Fatalf("Streams() = %v", got)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if Streams()[i] != tt.s || tt.s.String() != tt.name {
				t.Errorf("stream %d: %v %q", i, Streams()[i], tt.s.String())
			}
			filters := StreamSubjects("valet", tt.s)
			for _, f := range filters {
				if !strings.HasPrefix(f, "valet.") {
					t.Errorf("filter %q is not under the prefix", f)
				}
			}
			// Filters of different streams never overlap: no subject of one
			// stream's filters is captured by another's.
			for _, other := range Streams() {
				if other == tt.s {
					continue
				}
				for _, f := range filters {
					probe := strings.ReplaceAll(strings.ReplaceAll(f, ">", "x.y"), "*", "x")
					if len(matchingStreams(t, "valet", probe)) != 1 {
						t.Errorf("%q (from %v filter %q) matches several streams", probe, tt.s, f)
					}
				}
			}
		})
	}
	if StreamOf("token.issued") != 0 || StreamOf("key.rotated") != 0 {
		t.Error("StreamOf gives a stream for an unknown type")
	}
	if StreamSubjects("valet", 0) != nil || StreamSubjects("valet", 42) != nil {
		t.Error("StreamSubjects gives filters for a value that is not a stream")
	}
	if got := Stream(42).String(); got != "Stream(42)" {
		t.Errorf("Stream(42).String() = %q", got)
	}
}
