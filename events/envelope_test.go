package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTypesComplete(t *testing.T) {
	want := []Type{
		TypeTokenRevoked, TypeFamilyRevoked, TypeSubjectRevoked, TypeClientRevoked,
		TypeClientUpdated, TypeClientDeleted, TypeClientSecretRotated,
		TypeFamilyCreated, TypeFamilyRotated,
		TypeKeyPublished, TypeKeyActivated, TypeKeyRetired, TypeKeyRevoked,
		TypeHeartbeat,
	}
	slices.Sort(want)
	got := Types()
	if !slices.Equal(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	for _, typ := range got {
		if !Known(typ) {
			t.Errorf("Known(%q) = false", typ)
		}
	}
	if Known("token.issued") || Known("") {
		t.Error("Known accepts a type that is not registered")
	}
}

func TestSamplesCoverTypes(t *testing.T) {
	samples := samplePayloads()
	for _, typ := range Types() {
		p, ok := samples[typ]
		if !ok {
			t.Errorf("no sample payload for %q", typ)
			continue
		}
		if p.EventType() != typ {
			t.Errorf("sample for %q has EventType %q", typ, p.EventType())
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, typ := range Types() {
		t.Run(string(typ), func(t *testing.T) {
			in := sampleEvent(t, typ).WithActor("admin-cli")
			b, err := in.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			out, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			switch {
			case out.SpecVersion != SpecVersion, out.ID != in.ID, out.Source != in.Source,
				out.Type != typ, out.SchemaVersion != SchemaVersion, !out.Time.Equal(in.Time),
				out.Actor != "admin-cli", out.DataContentType != "application/json":
				t.Errorf("envelope changed:\n in  %+v\n out %+v", in.Envelope, out.Envelope)
			}
			if !reflect.DeepEqual(out.Payload, in.Payload) {
				t.Errorf("payload changed: in %+v, out %+v", in.Payload, out.Payload)
			}
			again, err := out.Encode()
			if err != nil {
				t.Fatalf("re-Encode: %v", err)
			}
			if !bytes.Equal(again, b) {
				t.Errorf("re-encoding differs:\n %s\n %s", b, again)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	ok := &ClientDeleted{ClientID: "c1"}
	tests := []struct {
		name   string
		id     string
		source string
		at     time.Time
		p      Payload
	}{
		{"nil payload", "id1", testSource, testTime, nil},
		{"typed nil payload", "id1", testSource, testTime, (*TokenRevoked)(nil)},
		{"empty id", "", testSource, testTime, ok},
		{"id with space", "id 1", testSource, testTime, ok},
		{"id with newline", "id1\r\nX-Evil: 1", testSource, testTime, ok},
		{"id too long", strings.Repeat("a", 257), testSource, testTime, ok},
		{"empty source", "id1", "", testTime, ok},
		{"zero time", "id1", testSource, time.Time{}, ok},
		{"time past year 9999", "id1", testSource, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), ok},
		{"time before year 0", "id1", testSource, time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), ok},

		{"token.revoked without jti", "id1", testSource, testTime, &TokenRevoked{Exp: 1}},
		{"token.revoked without exp", "id1", testSource, testTime, &TokenRevoked{JTI: "j"}},
		{"token.revoked with negative exp", "id1", testSource, testTime, &TokenRevoked{JTI: "j", Exp: -1}},
		{"family.revoked without fid", "id1", testSource, testTime, &FamilyRevoked{Reason: ReasonAdmin}},
		{"family.revoked without reason", "id1", testSource, testTime, &FamilyRevoked{FID: "f"}},
		{"subject.revoked without sub", "id1", testSource, testTime, &SubjectRevoked{SubjectType: SubjectUser, Cutoff: 1}},
		{"subject.revoked without sub_type", "id1", testSource, testTime, &SubjectRevoked{Subject: "s", Cutoff: 1}},
		{"subject.revoked with unknown sub_type", "id1", testSource, testTime, &SubjectRevoked{Subject: "s", SubjectType: "group", Cutoff: 1}},
		{"subject.revoked without cutoff", "id1", testSource, testTime, &SubjectRevoked{Subject: "s", SubjectType: SubjectClient}},
		{"client.revoked without client_id", "id1", testSource, testTime, &ClientRevoked{Cutoff: 1}},
		{"client.revoked without cutoff", "id1", testSource, testTime, &ClientRevoked{ClientID: "c"}},
		{"client.updated without client_id", "id1", testSource, testTime, &ClientUpdated{Version: 1}},
		{"client.deleted without client_id", "id1", testSource, testTime, &ClientDeleted{}},
		{"client.secret_rotated without client_id", "id1", testSource, testTime, &ClientSecretRotated{}},
		{"family.created without fid", "id1", testSource, testTime, &FamilyCreated{Subject: "s", ClientID: "c"}},
		{"family.created without sub", "id1", testSource, testTime, &FamilyCreated{FID: "f", ClientID: "c"}},
		{"family.created without client_id", "id1", testSource, testTime, &FamilyCreated{FID: "f", Subject: "s"}},
		{"family.rotated without fid", "id1", testSource, testTime, &FamilyRotated{Generation: 1}},
		{"family.rotated without generation", "id1", testSource, testTime, &FamilyRotated{FID: "f"}},
		{"key.published without kid", "id1", testSource, testTime, &KeyPublished{Alg: "ES256", Thumbprint: testThumbprint}},
		{"key.published with dotted kid", "id1", testSource, testTime, &KeyPublished{KID: "a.b", Alg: "ES256", Thumbprint: testThumbprint}},
		{"key.published with wildcard kid", "id1", testSource, testTime, &KeyPublished{KID: ">", Alg: "ES256", Thumbprint: testThumbprint}},
		{"key.published with long kid", "id1", testSource, testTime, &KeyPublished{KID: strings.Repeat("k", 129), Alg: "ES256", Thumbprint: testThumbprint}},
		{"key.published without alg", "id1", testSource, testTime, &KeyPublished{KID: "k", Thumbprint: testThumbprint}},
		{"key.published with alg none", "id1", testSource, testTime, &KeyPublished{KID: "k", Alg: "None", Thumbprint: testThumbprint}},
		{"key.published without thumbprint", "id1", testSource, testTime, &KeyPublished{KID: "k", Alg: "ES256"}},
		{"key.published with short thumbprint", "id1", testSource, testTime, &KeyPublished{KID: "k", Alg: "ES256", Thumbprint: testThumbprint[:42]}},
		{"key.published with padded thumbprint", "id1", testSource, testTime, &KeyPublished{KID: "k", Alg: "ES256", Thumbprint: testThumbprint + "="}},
		{"key.published with std base64 thumbprint", "id1", testSource, testTime, &KeyPublished{KID: "k", Alg: "ES256", Thumbprint: "+" + testThumbprint[1:]}},
		{"key.activated without thumbprint", "id1", testSource, testTime, &KeyActivated{KID: "k", Alg: "ES256"}},
		{"key.activated without alg", "id1", testSource, testTime, &KeyActivated{KID: "k", Thumbprint: testThumbprint}},
		{"key.retired without kid", "id1", testSource, testTime, &KeyRetired{}},
		{"key.revoked without kid", "id1", testSource, testTime, &KeyRevoked{}},
		{"stream.heartbeat without instance", "id1", testSource, testTime, &Heartbeat{Service: "issuer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(tt.id, tt.source, tt.at, tt.p)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("New = %+v, %v; want ErrMalformed", e, err)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(e *Event)
		want error
	}{
		{"id cleared after New", func(e *Event) { e.ID = "" }, ErrMalformed},
		{"unknown type set after New", func(e *Event) { e.Type = "token.issued" }, ErrUnknownType},
		{"major version set after New", func(e *Event) { e.SchemaVersion = "2.0" }, ErrUnsupportedVersion},
		{"data cleared", func(e *Event) { e.Data = nil }, ErrMalformed},
		{"data without a required field", func(e *Event) { e.Data = json.RawMessage(`{"exp":1}`) }, ErrMalformed},
		{"actor with a newline", func(e *Event) { *e = e.WithActor("admin\n") }, ErrMalformed},
		{"actor too long", func(e *Event) { *e = e.WithActor(strings.Repeat("a", 257)) }, ErrMalformed},
		{"larger than MaxEventBytes", func(e *Event) {
			e.Data = json.RawMessage(`{"jti":"j","exp":1,"reason":"` + strings.Repeat("x", MaxEventBytes) + `"}`)
		}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEvent(t, TypeTokenRevoked)
			tt.edit(&e)
			b, err := e.Encode()
			if !errors.Is(err, tt.want) {
				t.Fatalf("Encode = %q, %v; want %v", b, err, tt.want)
			}
		})
	}
}

func TestEncodeDoesNotEscapeHTML(t *testing.T) {
	e, err := New("id1", testSource, testTime, &TokenRevoked{JTI: "j", Exp: 1, Reason: "<&>"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.WithActor("a<b>&c").Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"actor":"a<b>&c"`)) || !bytes.Contains(b, []byte(`"reason":"<&>"`)) {
		t.Errorf("Encode escaped HTML characters: %s", b)
	}
}

func TestDecodeRefuses(t *testing.T) {
	base := encoded(t, TypeTokenRevoked)
	key := encoded(t, TypeKeyPublished)
	subj := encoded(t, TypeSubjectRevoked)
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	setData := func(k string, v any) func(map[string]any) { return func(m map[string]any) { data(m)[k] = v } }
	delData := func(k string) func(map[string]any) { return func(m map[string]any) { delete(data(m), k) } }

	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty input", nil, ErrMalformed},
		{"not JSON", []byte("token.revoked jti=1"), ErrMalformed},
		{"JSON null", []byte("null"), ErrMalformed},
		{"JSON array", []byte("[" + string(base) + "]"), ErrMalformed},
		{"truncated", base[:len(base)/2], ErrMalformed},
		{"trailing garbage", append(slices.Clip(base), " {}"...), ErrMalformed},
		{"oversize", append([]byte(`{"pad":"`+strings.Repeat("x", MaxEventBytes)), `"}`...), ErrMalformed},

		{"unknown type", mutate(t, base, set("type", "token.issued")), ErrUnknownType},
		{"unknown key type", mutate(t, key, set("type", "key.rotated")), ErrUnknownType},
		{"type differs in case", mutate(t, base, set("type", "Token.Revoked")), ErrUnknownType},
		{"schemaversion 2.0", mutate(t, base, set("schemaversion", "2.0")), ErrUnsupportedVersion},
		{"schemaversion 0.9", mutate(t, base, set("schemaversion", "0.9")), ErrUnsupportedVersion},
		{"schemaversion 10.0", mutate(t, base, set("schemaversion", "10.0")), ErrUnsupportedVersion},
		{"schemaversion with a huge major", mutate(t, base, set("schemaversion", "99999999999999999999.0")), ErrUnsupportedVersion},
		{"schemaversion 2.0 with an unknown type", mutate(t, mutate(t, base, set("type", "x")), set("schemaversion", "2.0")), ErrUnsupportedVersion},

		{"schemaversion without minor", mutate(t, base, set("schemaversion", "1")), ErrMalformed},
		{"schemaversion with three parts", mutate(t, base, set("schemaversion", "1.0.0")), ErrMalformed},
		{"schemaversion with a sign", mutate(t, base, set("schemaversion", "+1.0")), ErrMalformed},
		{"schemaversion not numeric", mutate(t, base, set("schemaversion", "1.x")), ErrMalformed},
		{"schemaversion a number", mutate(t, base, set("schemaversion", 1.0)), ErrMalformed},
		{"missing schemaversion", mutate(t, base, del("schemaversion")), ErrMalformed},
		{"missing specversion", mutate(t, base, del("specversion")), ErrMalformed},
		{"specversion 0.3", mutate(t, base, set("specversion", "0.3")), ErrMalformed},
		{"missing id", mutate(t, base, del("id")), ErrMalformed},
		{"id not a string", mutate(t, base, set("id", 42)), ErrMalformed},
		{"id with a space", mutate(t, base, set("id", "a b")), ErrMalformed},
		{"id with CRLF", mutate(t, base, set("id", "a\r\nb")), ErrMalformed},
		{"id too long", mutate(t, base, set("id", strings.Repeat("i", 257))), ErrMalformed},
		{"missing source", mutate(t, base, del("source")), ErrMalformed},
		{"source with a space", mutate(t, base, set("source", "https://a b")), ErrMalformed},
		{"missing type", mutate(t, base, del("type")), ErrMalformed},
		{"missing time", mutate(t, base, del("time")), ErrMalformed},
		{"time not RFC 3339", mutate(t, base, set("time", "25/11/2026")), ErrMalformed},
		{"time a number", mutate(t, base, set("time", 1795636323)), ErrMalformed},
		{"zero time", mutate(t, base, set("time", "0001-01-01T00:00:00Z")), ErrMalformed},
		{"actor with a control character", mutate(t, base, set("actor", "a\x00b")), ErrMalformed},
		{"actor with a line separator", mutate(t, base, set("actor", "a\u2028b")), ErrMalformed},
		{"actor with invalid UTF-8", bytes.Replace(mutate(t, base, set("actor", "aXb")), []byte("aXb"), []byte("a\xffb"), 1), ErrMalformed},
		{"datacontenttype xml", mutate(t, base, set("datacontenttype", "application/xml")), ErrMalformed},
		{"data_base64 instead of data", mutate(t, mutate(t, base, del("data")), set("data_base64", "e30=")), ErrMalformed},

		{"missing data", mutate(t, base, del("data")), ErrMalformed},
		{"data null", mutate(t, base, set("data", nil)), ErrMalformed},
		{"data a string", mutate(t, base, set("data", `{"jti":"j","exp":1}`)), ErrMalformed},
		{"data an array", mutate(t, base, set("data", []any{map[string]any{"jti": "j", "exp": 1}})), ErrMalformed},
		{"data a number", mutate(t, base, set("data", 7)), ErrMalformed},
		{"data empty object", mutate(t, base, set("data", map[string]any{})), ErrMalformed},

		{"token.revoked without jti", mutate(t, base, delData("jti")), ErrMalformed},
		{"token.revoked without exp", mutate(t, base, delData("exp")), ErrMalformed},
		{"token.revoked exp as string", mutate(t, base, setData("exp", "1795636923")), ErrMalformed},
		{"token.revoked exp fractional", mutate(t, base, setData("exp", 1.5)), ErrMalformed},
		{"token.revoked exp overflows int64", bytes.Replace(base, []byte(`"exp":`), []byte(`"exp":99999999999999999999,"x":`), 1), ErrMalformed},
		{"token.revoked jti as number", mutate(t, base, setData("jti", 5)), ErrMalformed},
		{"subject.revoked with unknown sub_type", mutate(t, subj, setData("sub_type", "group")), ErrMalformed},
		{"key.published with dotted kid", mutate(t, key, setData("kid", "a.b")), ErrMalformed},
		{"key.published without thumbprint", mutate(t, key, delData("thumbprint")), ErrMalformed},
		{"key.published with alg none", mutate(t, key, setData("alg", "none")), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%.200s) = %+v, %v; want %v", tt.in, e, err, tt.want)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	base := encoded(t, TypeTokenRevoked)
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	nested := map[string]any{"a": []any{1, "two", nil, map[string]any{"b": true}}}

	tests := []struct {
		name string
		in   []byte
	}{
		{"as encoded", base},
		{"schemaversion 1.7", mutate(t, base, set("schemaversion", "1.7"))},
		{"schemaversion 1.12", mutate(t, base, set("schemaversion", "1.12"))},
		{"schemaversion 01.0", mutate(t, base, set("schemaversion", "01.0"))},
		{"unknown envelope extension", mutate(t, base, set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))},
		{"unknown nested envelope field", mutate(t, base, set("x-junk", nested))},
		{"unknown data fields", mutate(t, base, func(m map[string]any) {
			data(m)["iat"] = 1795636000
			data(m)["future"] = nested
		})},
		{"no datacontenttype", mutate(t, base, func(m map[string]any) { delete(m, "datacontenttype") })},
		{"datacontenttype with charset", mutate(t, base, set("datacontenttype", "application/json; charset=utf-8"))},
		{"time with an offset", mutate(t, base, set("time", "2026-11-25T20:52:03.412+01:00"))},
		{"unicode actor", mutate(t, base, set("actor", "Zoë Ångström"))},
		{"whitespace everywhere", []byte(" \n\t" + strings.ReplaceAll(string(base), ",", " ,\n ") + "\n")},
		{"exactly MaxEventBytes", func() []byte {
			b := mutate(t, base, set("pad", ""))
			return bytes.Replace(b, []byte(`"pad":""`), []byte(`"pad":"`+strings.Repeat("x", MaxEventBytes-len(b))+`"`), 1)
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "exactly MaxEventBytes" && len(tt.in) != MaxEventBytes {
				t.Fatalf("test input is %d bytes, want %d", len(tt.in), MaxEventBytes)
			}
			e, err := Decode(tt.in)
			if err != nil {
				t.Fatalf("Decode(%.200s): %v", tt.in, err)
			}
			p, ok := e.Payload.(*TokenRevoked)
			if !ok || p.JTI != "tok_1" || e.Type != TypeTokenRevoked {
				t.Fatalf("Decode = %+v, payload %+v", e.Envelope, e.Payload)
			}
			if _, err := e.Encode(); err != nil {
				t.Errorf("re-Encode: %v", err)
			}
		})
	}
}

func TestDeterministicID(t *testing.T) {
	id := DeterministicID(TypeTokenRevoked, "tok_7Yq2kLm0Rz")
	// Pinned: changing the derivation breaks de-duplication across a rolling
	// upgrade. It is also the id of the token.revoked example in the docs.
	if id != "Q_BFU-TEI9gBagUdMp3GDCW1" {
		t.Errorf("DeterministicID changed: %q", id)
	}
	if again := DeterministicID(TypeTokenRevoked, "tok_7Yq2kLm0Rz"); again != id {
		t.Errorf("DeterministicID not stable: %q then %q", id, again)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(raw) != 18 || len(id) != 24 {
		t.Errorf("DeterministicID = %q: want 24 base64url characters (%v)", id, err)
	}

	tests := []struct {
		name string
		a, b func() string
	}{
		{"type", func() string { return DeterministicID(TypeTokenRevoked, "x") }, func() string { return DeterministicID(TypeFamilyRevoked, "x") }},
		{"first part", func() string { return DeterministicID(TypeSubjectRevoked, "user", "alice", "100") }, func() string { return DeterministicID(TypeSubjectRevoked, "client", "alice", "100") }},
		{"middle part", func() string { return DeterministicID(TypeSubjectRevoked, "user", "alice", "100") }, func() string { return DeterministicID(TypeSubjectRevoked, "user", "bob", "100") }},
		{"last part", func() string { return DeterministicID(TypeSubjectRevoked, "user", "alice", "100") }, func() string { return DeterministicID(TypeSubjectRevoked, "user", "alice", "101") }},
		{"part boundary", func() string { return DeterministicID(TypeTokenRevoked, "ab", "c") }, func() string { return DeterministicID(TypeTokenRevoked, "a", "bc") }},
		{"type and part boundary", func() string { return DeterministicID("token.revoked", "x") }, func() string { return DeterministicID("token.revokedx") }},
		{"NUL inside a part", func() string { return DeterministicID(TypeTokenRevoked, "a\x00b") }, func() string { return DeterministicID(TypeTokenRevoked, "a", "b") }},
		{"trailing empty part", func() string { return DeterministicID(TypeTokenRevoked, "a") }, func() string { return DeterministicID(TypeTokenRevoked, "a", "") }},
		{"no parts and one empty part", func() string { return DeterministicID(TypeTokenRevoked) }, func() string { return DeterministicID(TypeTokenRevoked, "") }},
		{"part order", func() string { return DeterministicID(TypeClientRevoked, "c", "1") }, func() string { return DeterministicID(TypeClientRevoked, "1", "c") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a, b := tt.a(), tt.b(); a == b {
				t.Errorf("both give %q", a)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewID()
		if raw, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(raw) != 16 {
			t.Fatalf("NewID = %q: want 128 bits of base64url (%v)", id, err)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
		if _, err := New(id, testSource, testTime, &Heartbeat{Instance: "i"}); err != nil {
			t.Fatalf("New refuses NewID %q: %v", id, err)
		}
	}
}

func TestEventJSONHasNoPayloadKey(t *testing.T) {
	b, err := json.Marshal(sampleEvent(t, TypeTokenRevoked))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(`"Payload"`)) {
		t.Errorf("json.Marshal(Event) leaks the Go payload: %s", b)
	}
}
