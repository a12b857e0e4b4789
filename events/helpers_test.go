package events

import (
	"encoding/json"
	"testing"
	"time"
)

const (
	testSource     = "https://auth.example.com"
	testThumbprint = "ZfO4MJGNl-2dGSZYYmw997qvrWw10iPLroqhntHdKoA"
)

var testTime = time.Date(2026, 11, 25, 19, 52, 3, 412000000, time.UTC)

// samplePayloads returns one complete payload of every type. A type added to
// the registry without a sample here fails TestSamplesCoverTypes.
func samplePayloads() map[Type]Payload {
	return map[Type]Payload{
		TypeTokenRevoked:        &TokenRevoked{JTI: "tok_1", Exp: testTime.Unix() + 600, ClientID: "c1", Reason: ReasonClient},
		TypeFamilyRevoked:       &FamilyRevoked{FID: "fam_1", Subject: "alice", ClientID: "c1", Reason: ReasonRefreshReuse},
		TypeSubjectRevoked:      &SubjectRevoked{Subject: "alice", SubjectType: SubjectUser, Cutoff: testTime.Unix(), Reason: ReasonAdmin},
		TypeClientRevoked:       &ClientRevoked{ClientID: "c1", Cutoff: testTime.Unix(), Reason: ReasonAdmin},
		TypeClientUpdated:       &ClientUpdated{ClientID: "c1", Version: 7},
		TypeClientDeleted:       &ClientDeleted{ClientID: "c1"},
		TypeClientSecretRotated: &ClientSecretRotated{ClientID: "c1", PreviousExpires: testTime.Unix() + 86400},
		TypeFamilyCreated:       &FamilyCreated{FID: "fam_1", Subject: "alice", ClientID: "c1", Grant: "authorization_code"},
		TypeFamilyRotated:       &FamilyRotated{FID: "fam_1", Generation: 2, Grace: true},
		TypeKeyPublished:        &KeyPublished{KID: "k1", Alg: "ES256", Thumbprint: testThumbprint, NotBefore: testTime.Unix() + 3600, JWKSURI: testSource + "/jwks.json"},
		TypeKeyActivated:        &KeyActivated{KID: "k1", Alg: "ES256", Thumbprint: testThumbprint},
		TypeKeyRetired:          &KeyRetired{KID: "k1"},
		TypeKeyRevoked:          &KeyRevoked{KID: "k1", Reason: "compromised"},
		TypeHeartbeat:           &Heartbeat{Service: "issuer", Instance: "issuer-0"},
	}
}

// sampleEvent returns a complete event of type typ built with New.
func sampleEvent(t testing.TB, typ Type) Event {
	t.Helper()
	p, ok := samplePayloads()[typ]
	if !ok {
		t.Fatalf("no sample payload for %q", typ)
	}
	e, err := New(DeterministicID(typ, "sample"), testSource, testTime, p)
	if err != nil {
		t.Fatalf("New(%s): %v", typ, err)
	}
	return e
}

// encoded returns the encoding of a complete event of type typ.
func encoded(t testing.TB, typ Type) []byte {
	t.Helper()
	b, err := sampleEvent(t, typ).Encode()
	if err != nil {
		t.Fatalf("Encode(%s): %v", typ, err)
	}
	return b
}

// mutate decodes b as a generic JSON object, lets f edit it (the payload is
// m["data"], a map when it is an object) and returns the re-encoded bytes.
func mutate(t testing.TB, b []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("mutate: %v", err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("mutate: %v", err)
	}
	return out
}

// data returns the payload object of a mutable envelope.
func data(m map[string]any) map[string]any { return m["data"].(map[string]any) }
