package keys

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// accessClaims is an RFC 9068 §2.2 access token's claims, as the issuer
// mints them (fid: the refresh family, when there is one).
type accessClaims struct {
	Iss      string `json:"iss"`
	Sub      string `json:"sub"`
	Aud      string `json:"aud"`
	Exp      int64  `json:"exp"`
	Iat      int64  `json:"iat"`
	JTI      string `json:"jti"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	FID      string `json:"fid,omitempty"`
}

func benchManager(b *testing.B, alg string) *Manager {
	b.Helper()
	ring, err := NewKEKRing("k", map[string][]byte{"k": make([]byte, KEKSize)})
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	cfg.Algorithm = alg
	m, err := New(cfg, newMemStore(), newRecorder(), ring)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Refresh(b.Context()); err != nil {
		b.Fatal(err)
	}
	return m
}

func newClaims(now time.Time, i int) accessClaims {
	return accessClaims{
		Iss: "https://auth.example.com", Sub: "svc-reports", Aud: "https://api.example.com",
		Exp: now.Add(5 * time.Minute).Unix(), Iat: now.Unix(),
		JTI: "AAAAAAAAAAAAAAAA" + strconv.Itoa(i), ClientID: "svc-reports",
		Scope: "reports:read reports:write", FID: "Zx3kPq9mWv2LbN8rT4yHsA",
	}
}

// BenchmarkSignAccessToken is the issuer's hot-path cost floor: take the
// current key, marshal RFC 9068 claims, sign (one token per op).
func BenchmarkSignAccessToken(b *testing.B) {
	for _, alg := range Algorithms() {
		b.Run(alg, func(b *testing.B) {
			m := benchManager(b, alg)
			now := time.Now()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s, err := m.Current()
				if err != nil {
					b.Fatal(err)
				}
				payload, err := json.Marshal(newClaims(now, i))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Sign(TypeAccessToken, payload); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkSignAccessTokenParallel is the same on every core at once:
// Current takes no lock, so it scales with the cores.
func BenchmarkSignAccessTokenParallel(b *testing.B) {
	m := benchManager(b, ES256)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s, err := m.Current()
			if err != nil {
				b.Error(err)
				return
			}
			payload, _ := json.Marshal(newClaims(now, i))
			if _, err := s.Sign(TypeAccessToken, payload); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkSignAccessTokenJWX signs the same token through jwx's jws.Sign
// with the private JWK, for comparison with Signer.Sign (the ~42 µs figure
// of MISSION §3).
func BenchmarkSignAccessTokenJWX(b *testing.B) {
	m := benchManager(b, ES256)
	s, err := m.Current()
	if err != nil {
		b.Fatal(err)
	}
	key, err := s.JWK()
	if err != nil {
		b.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, TypeAccessToken)
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		payload, _ := json.Marshal(newClaims(now, i))
		if _, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(hdr))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCurrent is the key lookup alone.
func BenchmarkCurrent(b *testing.B) {
	m := benchManager(b, ES256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Current(); err != nil {
			b.Fatal(err)
		}
	}
}
